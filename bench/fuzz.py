"""A fuzzing campaign: random programs and mutants of the shipped ones through the oracle.

    python bench/fuzz.py --programs 10000 --seed 1 --jobs 2
    python bench/fuzz.py --programs 2000 --mutants 1000 --seed 7 --timeout 60 --out /tmp/fuzz

Every program must get a located error or compile into a model that equals the interpreter on its
inputs (every input when the layout has at most --exhaustive of them; else edge cases and
--random seeded ones); see tests/fuzz/oracle.py. Each internal error, hang and mismatch is saved
under --out as NAME.rasp plus NAME.txt (the kind, the message, the traceback head or the input).
The exit status is 1 when anything failed.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fuzz.mutate import corpus  # noqa: E402
from tests.fuzz.runner import generated_tasks, mutant_tasks, run_tasks, summarize  # noqa: E402


def save(out: Path, task, outcome) -> None:
    out.mkdir(parents=True, exist_ok=True)
    name = task.name.replace("/", "_")
    (out / f"{name}.rasp").write_text(task.text)
    report = [f"kind: {outcome.kind}", f"program: {task.name} (as {task.path})", f"dtype: {outcome.dtype}",
              f"message: {outcome.message}"]
    if outcome.detail:
        report += ["", outcome.detail]
    (out / f"{name}.txt").write_text("\n".join(report) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=1000, help="random programs (default 1000)")
    parser.add_argument("--mutants", type=int, default=None,
                        help="mutants of the shipped programs (default: a third of --programs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per program before it is a hang")
    parser.add_argument("--exhaustive", type=int, default=500,
                        help="check every input of layouts with at most this many (default 500)")
    parser.add_argument("--random", type=int, default=100, help="random inputs for larger layouts (default 100)")
    parser.add_argument("--float32-every", type=int, default=4,
                        help="also compile every Nth random program in float32 (0: never; default 4)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "fuzz_out")
    parser.add_argument("--quiet", action="store_true", help="no line per failure while running")
    parser.add_argument("--progress", type=int, default=500, help="a line every N programs (0: none)")
    args = parser.parse_args(argv)
    for name in ("programs", "jobs", "exhaustive", "random", "float32_every", "progress"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    if args.mutants is not None and args.mutants < 0:
        parser.error("--mutants must not be negative")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    mutant_count = args.programs // 3 if args.mutants is None else args.mutants
    options = {"exhaustive_limit": args.exhaustive, "random_inputs": args.random}
    tasks = itertools.chain(generated_tasks(args.programs, args.seed, args.float32_every, options),
                            mutant_tasks(corpus(ROOT), mutant_count, args.seed, options))

    seen = {"count": 0}
    started = time.perf_counter()

    def report(task, outcome):
        seen["count"] += 1
        if args.progress and seen["count"] % args.progress == 0:
            print(f"  ... {seen['count']:,} checked, {time.perf_counter() - started:.0f} s", flush=True)
        if outcome.failed:
            save(args.out, task, outcome)
            if not args.quiet:
                print(f"  {outcome.kind}: {task.name}: {outcome.message[:160]}", flush=True)

    print(f"fuzz: {args.programs} random programs and {mutant_count} mutants, seed {args.seed}, "
          f"{args.jobs} jobs, timeout {args.timeout:g} s", flush=True)
    result = summarize(run_tasks(tasks, args.jobs, args.timeout), report)
    seconds = time.perf_counter() - started
    counts = result["counts"]
    for label, key in [("programs tried", "tried"), ("compiled and matched", "compiled"),
                       ("located errors", "located"), ("unlocated errors", "unlocated"),
                       ("internal errors", "internal"), ("hangs", "hang"), ("mismatches", "mismatch")]:
        print(f"  {label:<22}{counts[key]:>8,}")
    print(f"  {'seconds':<22}{seconds:>8.1f}")
    print(f"  {'programs/second':<22}{counts['tried'] / max(seconds, 1e-9):>8.2f}")
    if result["failures"]:
        print(f"  reproducers in {args.out}")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
