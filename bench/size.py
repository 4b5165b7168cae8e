"""Model sizes as a table: nonzero weights (all stored, and the leaderboard count, which leaves out
positional encodings: the positional table and the heads' ALiBi slopes, curvatures, centres and windows),
layers and d_model, per program and width.

    python bench/size.py     # every example at its own width; add10 and add_lsb also at N = 20, 100, 1000
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compiler.api import compile_file  # noqa: E402


def main():
    argparse.ArgumentParser(description=__doc__).parse_args()
    rows = [(path, {}) for path in sorted((ROOT / "examples").glob("*.rasp"))
            if "# library" not in path.read_text().splitlines()[0]]
    # The size must not grow with the width: the two adders again at 20, 100 and 1,000 digits.
    rows += [(ROOT / "examples" / name, {"N": n}) for name in ("add10.rasp", "add_lsb.rasp") for n in (20, 100, 1000)]
    print(f"{'program':<22} {'N':>5} {'nonzero':>8} {'leaderboard':>11} {'layers':>6} {'d_model':>7} {'compile s':>9}")
    for path, overrides in rows:
        started = time.perf_counter()
        _, stats, _ = compile_file(path, overrides)
        seconds = time.perf_counter() - started
        n = overrides.get("N", "")
        print(f"{path.name:<22} {n!s:>5} {stats['nonzero_params']:>8} {stats['nonzero_params_leaderboard']:>11} "
              f"{stats['layers']:>6} {stats['d_model']:>7} {seconds:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
