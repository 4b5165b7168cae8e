"""Equivalent phrasings, compiled side by side: how much the size of a model depends on how its
program is written (issue #12). Each folder of bench/forms/ is one group of programs with the same
layout and meaning (tests/test_forms.py checks that they agree); an optimizing compiler would give
every phrasing of a group the same small model, a ratio of 1.

    python bench/forms.py                   # every group: nonzero weights, layers, d_model, compile s
    python bench/forms.py --group reverse   # one group
    python bench/forms.py --verify          # also a quick verify (2,000 samples) of every model
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compiler.api import compile_file  # noqa: E402
from compiler.check.program import program_from_payload  # noqa: E402
from compiler.check.verify import verify  # noqa: E402
from compiler.model.file import load_model, save_model  # noqa: E402
from dsl.errors import AdderError  # noqa: E402

FORMS = ROOT / "bench" / "forms"
VERIFY_SAMPLES = 2000


def verdict(ir, stats, digest) -> str:
    """The verifier's result for one compiled phrasing, on a few inputs only."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        save_model(path, ir, stats, digest)
        _, payload = load_model(path)
    program = program_from_payload(payload, None)
    try:
        report = verify(payload, program, samples=VERIFY_SAMPLES, per_stratum=2, progress=False)
    except RuntimeError as err:
        # The verifier runs thousands of inputs per batch: a model with a huge MLP can need more
        # memory than the machine has, which says nothing about whether it is right.
        if "allocate" not in str(err):
            raise
        return "no memory"
    return report.status


def measure_group(folder: Path, check: bool) -> list[int]:
    """Print one row per phrasing and the group's ratio; returns the nonzero counts that compiled."""
    counts = []
    for path in sorted(folder.glob("*.rasp")):
        started = time.perf_counter()
        try:
            ir, stats, digest = compile_file(path)
        except AdderError as err:
            print(f"{folder.name:<14} {path.stem:<20} does not compile: {err.message}", flush=True)
            continue
        seconds = time.perf_counter() - started
        counts.append(stats["nonzero_params"])
        status = f" {verdict(ir, stats, digest):>9}" if check else ""
        print(f"{folder.name:<14} {path.stem:<20} {stats['nonzero_params']:>8} {stats['layers']:>6} "
              f"{stats['d_model']:>7} {seconds:>9.2f}{status}", flush=True)
    if counts:
        print(f"{folder.name:<14} {'ratio max/min':<20} {max(counts) / min(counts):>8.2f}", flush=True)
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = sorted(folder.name for folder in FORMS.iterdir() if folder.is_dir())
    parser.add_argument("--group", choices=groups, help="run this group only")
    parser.add_argument("--verify", action="store_true",
                        help=f"also verify every model ({VERIFY_SAMPLES} samples), so a wrong compile shows")
    args = parser.parse_args()
    check_column = f" {'verify':>9}" if args.verify else ""
    print(f"{'group':<14} {'phrasing':<20} {'nonzero':>8} {'layers':>6} {'d_model':>7} {'compile s':>9}{check_column}")
    worst = None
    for group in [args.group] if args.group else groups:
        counts = measure_group(FORMS / group, args.verify)
        if counts and (worst is None or max(counts) / min(counts) > worst[1]):
            worst = (group, max(counts) / min(counts))
    if worst:
        print(f"worst ratio: {worst[1]:.2f} ({worst[0]})")


if __name__ == "__main__":
    main()
