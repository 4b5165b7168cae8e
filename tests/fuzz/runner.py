"""Run oracle checks in worker processes, each with a wall-clock timeout.

A program that hangs the compiler must not hang the campaign: each worker runs one check at a
time, and one that outlives its timeout is killed and replaced, and the check counts as a hang.
A worker that dies (a crash in native code, the kernel's out-of-memory killer) counts as an
internal error. Workers come from a forkserver that has imported the compiler once, so a
replacement starts in milliseconds, without the seconds torch takes to import, and without forking
a parent whose torch threads are already running.
"""
from __future__ import annotations

import multiprocessing
import random
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch

from tests.fuzz.generate import random_program
from tests.fuzz.mutate import mutate
from tests.fuzz.oracle import Outcome, check


@dataclass
class Task:
    """One program to check: `path` names it for messages and resolves its imports."""
    name: str
    text: str
    path: str
    dtypes: tuple = ("float64",)
    options: dict = field(default_factory=dict)  # more keyword arguments for oracle.check


def _serve(connection) -> None:
    torch.set_num_threads(1)  # J workers on J cores: intra-op threads would only contend
    while True:
        task = connection.recv()
        if task is None:
            return
        connection.send(check(task.text, task.path, dtypes=task.dtypes, **task.options))


class _Worker:
    def __init__(self, context):
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.task: Task | None = None
        self.deadline = 0.0

    def give(self, task: Task, timeout: float) -> None:
        self.task, self.deadline = task, time.monotonic() + timeout
        self.connection.send(task)

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.connection.send(None)
            except (BrokenPipeError, OSError):
                pass
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


def _context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.fuzz.oracle", "tests.fuzz.runner"])
    return context


def run_tasks(tasks: Iterable[Task], jobs: int = 2, timeout: float = 60.0) -> Iterator[tuple[Task, Outcome]]:
    """(task, outcome) for every task, in the order they finish."""
    context = _context()
    pending = iter(tasks)
    workers = [_Worker(context) for _ in range(max(1, jobs))]
    idle = list(workers)
    try:
        while True:
            for worker in list(idle):
                task = next(pending, None)
                if task is None:
                    break
                worker.give(task, timeout)
                idle.remove(worker)
            busy = [w for w in workers if w.task is not None]
            if not busy:
                return
            wait_for = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait([w.connection for w in busy], timeout=wait_for)
            for worker in busy:
                result = _collect(worker, worker.connection in ready, timeout)
                if result is None:
                    continue
                yield result
                if result[1].extra.get("worker_lost"):
                    workers.remove(worker)
                    worker.stop(kill=True)
                    worker = _Worker(context)
                    workers.append(worker)
                worker.task = None
                idle.append(worker)
    finally:
        for worker in workers:
            worker.stop(kill=worker.task is not None)


def _collect(worker: _Worker, ready: bool, timeout: float) -> tuple[Task, Outcome] | None:
    task = worker.task
    if ready:
        try:
            return task, worker.connection.recv()
        except (EOFError, OSError):
            code = worker.process.exitcode
            return task, Outcome("internal", f"the worker process died (exit code {code})",
                                 extra={"worker_lost": True})
    if time.monotonic() >= worker.deadline:
        return task, Outcome("hang", f"no result within {timeout:g} s", seconds=timeout,
                             extra={"worker_lost": True})
    return None


# ----- the task streams of a campaign ---------------------------------------------------------------

def generated_tasks(count: int, seed: int, float32_every: int = 4, options: dict | None = None) -> Iterator[Task]:
    """`count` random programs; every `float32_every`-th is also compiled and checked in float32."""
    for index in range(count):
        program_seed = seed * 1_000_003 + index
        dtypes = ("float64", "float32") if float32_every and index % float32_every == 0 else ("float64",)
        yield Task(f"gen-{program_seed}", random_program(program_seed), f"fuzz/gen_{program_seed}.rasp",
                   dtypes, dict(options or {}, seed=program_seed))


def mutant_tasks(sources: list, count: int, seed: int, options: dict | None = None) -> Iterator[Task]:
    """`count` mutants of the (path, text) sources. A program that compiles is drawn three times as
    often as one of tests/bad_programs (whose mutants are nearly all errors again). A mutant keeps
    its source's path, so its imports still resolve."""
    if not sources:
        return
    rng = random.Random(seed)
    weights = [1 if "bad_programs" in Path(path).parts else 3 for path, _ in sources]
    for index in range(count):
        path, text = rng.choices(sources, weights)[0]
        yield Task(f"mut-{seed}-{index}", mutate(text, rng), str(path), ("float64",),
                   dict(options or {}, seed=index))


def summarize(results: Iterable[tuple[Task, Outcome]], on_result: Callable | None = None) -> dict:
    """Counts per outcome kind, and the failing (task, outcome) pairs."""
    counts = {kind: 0 for kind in ("tried", "compiled", "located", "unlocated", "internal", "hang", "mismatch")}
    failures = []
    for task, outcome in results:
        counts["tried"] += 1
        counts[outcome.kind] += 1
        if outcome.failed:
            failures.append((task, outcome))
        if on_result is not None:
            on_result(task, outcome)
    return {"counts": counts, "failures": failures}
