"""Model sizes as a table, per program and width: the four counts `adderc stats` reports (every
nonzero stored number; the leaderboard count, which leaves out positional encodings: the positional
table and the heads' ALiBi slopes, curvatures, centres and windows; and the two "unique after
tying" counts AdderBoard ranks by, board rule and strict), layers and d_model.

    python bench/size.py             # every example at its own width; add10 and add_lsb also at N = 20, 100, 1000
    python bench/size.py --targets   # issues #12's and #16's size targets, each with its measured figure
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compiler.api import compile_file  # noqa: E402


EXAMPLES = ROOT / "examples"
FORMS = ROOT / "bench" / "forms"


def nonzero(path) -> int:
    return compile_file(path)[1]["nonzero_params"]


def targets():
    """One row per target of issue #12: what is measured, the figure, the target, met or not."""
    add10, add_lsb = nonzero(EXAMPLES / "add10.rasp"), nonzero(EXAMPLES / "add_lsb.rasp")
    ten_four = {p.stem: nonzero(p) for p in sorted((FORMS / "add_10_4").glob("*.rasp"))}
    plain_lsb = nonzero(FORMS / "add_lsb" / "read_back.rasp")
    rows = [(f"examples/{name}", nonzero(EXAMPLES / name), limit)
            for name, limit in (("add_binary.rasp", 60), ("add_hex.rasp", 60), ("add3.rasp", 150),
                                ("mul_digit.rasp", 300))]
    rows += [(f"10 + 4 digits (bench/forms/add_10_4, largest of {len(ten_four)})", max(ten_four.values()), 120),
             ("plain LSB-first (bench/forms/add_lsb/read_back)", plain_lsb, round(1.2 * add_lsb, 1)),
             ("examples/add10.rasp", add10, 69), ("examples/add_lsb.rasp", add_lsb, 34)]
    tracr = ROOT / "examples" / "tracr"
    print(f"{'target':<52} {'nonzero':>8} {'target':>8}  met")
    for what, figure, limit in rows:
        print(f"{what:<52} {figure:>8} {'<= ' + str(limit):>8}  {'yes' if figure <= limit else 'no'}")
    if not tracr.is_dir():
        print(f"{'Tracr library ports (examples/tracr/)':<52} {'-':>8} {'1/3':>8}  not ported yet")
    board_targets()


def board_targets():
    """Issue #16's targets: the board's rank count (unique after tying, positional encodings free)."""
    adders = {name: compile_file(EXAMPLES / name)[1] for name in ("add_lsb.rasp", "add10.rasp")}
    smallest = min(adders, key=lambda name: adders[name]["unique_params"])
    rows = [(f"smallest 10-digit adder ({smallest}), board count", adders[smallest]["unique_params"], 6),
            (f"the same ({smallest}), strict count", adders[smallest]["unique_params_strict"], 8),
            ("examples/add10.rasp, board count", adders["add10.rasp"]["unique_params"], 30)]
    print(f"\n{'issue #16 target':<52} {'count':>8} {'target':>8}  met")
    for what, figure, limit in rows:
        print(f"{what:<52} {figure:>8} {'<= ' + str(limit):>8}  {'yes' if figure <= limit else 'no'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", action="store_true", help="issue #12's targets with their figures")
    if parser.parse_args().targets:
        targets()
        return
    rows = [(path, {}) for path in sorted((ROOT / "examples").glob("*.rasp"))
            if "# library" not in path.read_text().splitlines()[0]]
    # The size must not grow with the width: the two adders again at 20, 100 and 1,000 digits.
    rows += [(ROOT / "examples" / name, {"N": n}) for name in ("add10.rasp", "add_lsb.rasp") for n in (20, 100, 1000)]
    print(f"{'program':<22} {'N':>5} {'nonzero':>8} {'leaderboard':>11} {'unique':>6} {'strict':>6} "
          f"{'layers':>6} {'d_model':>7} {'compile s':>9}")
    for path, overrides in rows:
        started = time.perf_counter()
        _, stats, _ = compile_file(path, overrides)
        seconds = time.perf_counter() - started
        n = overrides.get("N", "")
        print(f"{path.name:<22} {n!s:>5} {stats['nonzero_params']:>8} {stats['nonzero_params_leaderboard']:>11} "
              f"{stats['unique_params']:>6} {stats['unique_params_strict']:>6} {stats['layers']:>6} {stats['d_model']:>7} {seconds:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
