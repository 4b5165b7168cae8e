"""Proof verdicts and times (issue #13): every example and every bench/forms phrasing proved in both
dtypes, add10 and add_lsb at large widths, and a planted error of one weight per example, which
must come back as a concrete counterexample.

    python bench/prove.py                  # everything below
    python bench/prove.py --only examples  # one part: examples, forms, wide or planted
    python bench/prove.py --wide 100 1000  # the widths for add10 and add_lsb (default: 1000)

Times are wall-clock seconds of `prove` alone (not the compile), on this machine. The target of
issue #13 is under 10 s for each example and form in each dtype, under 30 s at N = 1000.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from compiler.api import compile_file  # noqa: E402
from compiler.check.program import program_from_payload  # noqa: E402
from compiler.check.prove import prove  # noqa: E402
from compiler.model.file import load_model, save_model  # noqa: E402

EXAMPLES = ROOT / "examples"
FORMS = ROOT / "bench" / "forms"
DTYPES = ("float64", "float32")
TARGET_SECONDS = 10.0
WIDE_TARGET_SECONDS = 30.0


def payload_for(path: Path, overrides=None) -> dict:
    """The model file's contents, written and read back as `adderc verify` would see them."""
    ir, stats, digest = compile_file(path, overrides)
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "model.pt"
        save_model(model, ir, stats, digest)
        return load_model(model)[1]


def timed_verdicts(payload: dict) -> list[tuple[str, float, str]]:
    """(status, seconds, reason) of a proof in each dtype."""
    program = program_from_payload(payload, None)
    rows = []
    for dtype in DTYPES:
        started = time.perf_counter()
        proof = prove(payload, program, dtype)
        rows.append((proof.status, time.perf_counter() - started, proof.reason))
    return rows


def print_row(name: str, verdicts, target: float) -> bool:
    cells = "  ".join(f"{status:>15} {seconds:7.2f} s" for status, seconds, _ in verdicts)
    met = all(status == "proved" and seconds < target for status, seconds, _ in verdicts)
    print(f"{name:44} {cells}  {'met' if met else 'NOT met'}", flush=True)
    for status, _, reason in verdicts:
        if status != "proved":
            print(f"{'':44}   {reason[:160]}", flush=True)
    return met


def header(title: str) -> None:
    print(f"\n{title}\n{'program':44} {'float64':>25}  {'float32':>25}  target", flush=True)


def planted(payload: dict) -> dict:
    """The model with one weight changed: the largest weight of the first MLP's output doubled, an
    error that moves a stored value by a whole unit or more."""
    state = {k: v.clone() for k, v in payload["state_dict"].items()}
    name = next(k for k in sorted(state) if k.endswith("mlp.W_out") and state[k].abs().max() > 0)
    flat = state[name].view(-1)
    flat[int(flat.abs().argmax())] *= 2
    return dict(payload, state_dict=state)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("examples", "forms", "wide", "planted"), default=None,
                        help="run one part only (default: all four)")
    parser.add_argument("--wide", type=int, nargs="+", default=[1000],
                        help="widths N for add10 and add_lsb (default: 1000)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    parts = [args.only] if args.only else ["examples", "forms", "wide", "planted"]
    examples = sorted(EXAMPLES.glob("*.rasp"))
    met = []
    if "examples" in parts:
        header(f"examples, target < {TARGET_SECONDS:g} s per dtype")
        met += [print_row(p.name, timed_verdicts(payload_for(p)), TARGET_SECONDS) for p in examples]
    if "forms" in parts:
        header(f"bench/forms phrasings, target < {TARGET_SECONDS:g} s per dtype")
        for path in sorted(FORMS.glob("*/*.rasp")):
            met.append(print_row(str(path.relative_to(FORMS)), timed_verdicts(payload_for(path)), TARGET_SECONDS))
    if "wide" in parts:
        header(f"wide adders, target < {WIDE_TARGET_SECONDS:g} s per dtype")
        for n in args.wide:
            for name in ("add10.rasp", "add_lsb.rasp"):
                payload = payload_for(EXAMPLES / name, {"N": n})
                met.append(print_row(f"{name} -D N={n}", timed_verdicts(payload), WIDE_TARGET_SECONDS))
    if "planted" in parts:
        print("\nplanted error (largest weight of the first MLP's output doubled): must be a counterexample", flush=True)
        for path in examples:
            proof = prove(planted(payload := payload_for(path)), program_from_payload(payload, None))
            found = proof.status == "counterexample"
            shown = proof.counterexample if found else proof.reason[:160]
            print(f"{path.name:44} {proof.status:>15}  {shown}", flush=True)
            met.append(found)
    print(f"\n{sum(met)} of {len(met)} rows meet their target", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
