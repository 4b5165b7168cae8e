"""Shrink a failing program to a small one that fails the same way.

    python -m tests.fuzz.minimize bench/fuzz_out/gen-123.rasp [--path AS] [--dtype float32]

Greedy reduction, repeated until nothing more goes: delete whole lines, replace a call or a
parenthesised group by one of its arguments or by a simple leaf, then delete runs of tokens
(8, 4, 2, 1 at a time). A candidate is kept when the oracle gives the same kind of failure with
the same signature (for an internal error, the exception type and its message without numbers;
for a mismatch, a mismatch in the same dtype). Runs in-process: hangs are not minimised here.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from tests.fuzz.mutate import TOKEN
from tests.fuzz.oracle import Outcome, check

LEAVES = ["0", "1", "indices", "digit(tokens)", "tokens", "true"]


def signature(outcome: Outcome) -> tuple:
    if outcome.kind == "internal":
        return outcome.kind, re.sub(r"[0-9]+", "#", outcome.message.split("\n")[0])[:120]
    return outcome.kind, outcome.dtype


def _groups(tokens: list[str]) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """(start, end, argument ranges) of every parenthesised group; start is the callee's name when
    there is one. Ranges are token index half-open intervals."""
    found, stack = [], []
    for i, t in enumerate(tokens):
        if t == "(":
            stack.append((i, [i + 1]))
        elif t == "," and stack:
            stack[-1][1].append(i + 1)
        elif t == ")" and stack:
            open_at, starts = stack.pop()
            ends = [s - 1 for s in starts[1:]] + [i]
            j = open_at - 1
            while j >= 0 and tokens[j].isspace():
                j -= 1
            start = j if j >= 0 and re.fullmatch(r"[A-Za-z_]\w*", tokens[j]) else open_at
            found.append((start, i + 1, list(zip(starts, ends))))
    return found


def _candidates(text: str):
    lines = text.splitlines(keepends=True)
    for i in range(len(lines)):
        yield "".join(lines[:i] + lines[i + 1:])
    tokens = TOKEN.findall(text)
    for start, end, arguments in _groups(tokens):
        for a, b in arguments:
            yield "".join(tokens[:start] + ["("] + tokens[a:b] + [")"] + tokens[end:])
        for leaf in LEAVES:
            yield "".join(tokens[:start] + [leaf] + tokens[end:])
    significant = [i for i, t in enumerate(tokens) if not t.isspace()]
    for size in (8, 4, 2, 1):
        for s in range(0, len(significant) - size + 1):
            drop = set(significant[s:s + size])
            yield "".join(t for i, t in enumerate(tokens) if i not in drop)


def minimize(text: str, path: str, dtypes=("float64",), budget_s: float = 300.0, **options) -> str:
    """The smallest text found within the budget that fails as `text` does."""
    target = signature(check(text, path, dtypes=dtypes, **options))
    if target[0] not in ("internal", "mismatch"):
        raise ValueError(f"nothing to minimise: the program gives {target[0]}")
    deadline = time.monotonic() + budget_s
    improved = True
    while improved and time.monotonic() < deadline:
        improved = False
        for candidate in _candidates(text):
            if time.monotonic() >= deadline:
                break
            if len(candidate) >= len(text):
                continue
            if signature(check(candidate, path, dtypes=dtypes, **options)) == target:
                text, improved = candidate, True
                break
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="shrink a failing fuzz program")
    parser.add_argument("program", type=Path)
    parser.add_argument("--path", help="the path the program stands for (its imports resolve beside it)")
    parser.add_argument("--dtype", action="append", help="dtypes to compile in (default float64)")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds (default 300)")
    args = parser.parse_args(argv)
    text = args.program.read_text()
    dtypes = tuple(args.dtype or ["float64"])
    small = minimize(text, args.path or str(args.program), dtypes, args.budget)
    outcome = check(small, args.path or str(args.program), dtypes=dtypes)
    print(small, end="")
    print(f"# {outcome.kind} ({outcome.dtype}): {outcome.message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
