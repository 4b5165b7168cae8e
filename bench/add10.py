"""add10: compile time, size figures and accuracy, printed as a table.

    python bench/add10.py                  # 1,000,000 random sums (seed 20261122), both dtypes
    python bench/add10.py --samples 100000 --seed 7 --device cuda

Accuracy is checked teacher-forced: one forward pass over the whole sequence checks every answer
position at once (if every earlier token is right, the model's next one is what greedy decoding
would write, so this equals greedy generation whenever it reports no error).
"""
from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compiler.api import compile_file, load_compiled  # noqa: E402

PROGRAM = ROOT / "examples" / "add10.rasp"


def named_cases():
    return [(0, 0), (9999999999, 1), (9999999999, 9999999999), (1111111111, 8888888889),
            (5000000000, 5000000000), (5193798811, 1806201129), (4713690728, 286309271)]


def nines_runs(rng, count):
    """Pairs whose low digits sum to 9 for a run of every length, with a carry born below it."""
    pairs = []
    for _ in range(count):
        run = rng.randrange(1, 11)
        a = rng.randrange(10 ** 10)
        b = (10 ** run - 1 - a % 10 ** run) + rng.randrange(10 ** (10 - run)) * 10 ** run
        pairs.append((a, (b + rng.randrange(0, 10)) % 10 ** 10))
    return pairs


def check(model, layout, pairs, device, batch=1024):
    vocab = {t: i for i, t in enumerate(layout.vocab)}
    start = layout.prompt_length - 1
    wrong, first_wrong = 0, None
    seconds = 0.0
    for i in range(0, len(pairs), batch):
        chunk = pairs[i:i + batch]
        full = [layout.prompt_tokens({"a": a, "b": b}) + layout.answer_tokens(a + b) for a, b in chunk]
        ids = torch.tensor([[vocab[t] for t in s] for s in full], device=device)
        t0 = time.perf_counter()
        with torch.no_grad():
            predicted = model(ids[:, :-1], last=ids.shape[1] - 1 - start).argmax(-1)
        seconds += time.perf_counter() - t0
        bad = (predicted != ids[:, start + 1:]).any(dim=1)
        wrong += int(bad.sum())
        if first_wrong is None and bool(bad.any()):
            first_wrong = chunk[int(bad.nonzero()[0])]
    return wrong, first_wrong, seconds


def random_on_tensors(model, program, samples, seed, device):
    """Seeded random sums built as tensors (the verifier's path): (wrong, seconds)."""
    from compiler.check.replay import teacher_forced_ids
    from compiler.check.verify import tensor_batches
    batch = 1 << 17 if device.startswith("cuda") else 2048  # what verify uses
    wrong, started = 0, time.perf_counter()
    for _, answer, ids in tensor_batches(program.layout, program.meaning, samples, seed, batch, device):
        bad, _ = teacher_forced_ids(model, program.layout, ids)
        wrong += int(bad.sum())
    return wrong, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    # Compile time in a fresh process, as a user sees it (imports excluded, parsing included).
    code = ("import time,sys; sys.path.insert(0, %r); from compiler.api import compile_file; "
            "t=time.perf_counter(); compile_file(%r); print(time.perf_counter()-t)" % (str(ROOT), str(PROGRAM)))
    cold = float(subprocess.check_output([sys.executable, "-c", code]).decode().split()[-1])
    print(f"program            {PROGRAM.relative_to(ROOT)}")
    print(f"compile seconds    {cold:.2f} (fresh process)")

    nine_pairs = nines_runs(random.Random(args.seed + 1), 10000)
    print(f"seed               {args.seed}")
    for dtype in ("float64", "float32"):
        ir, stats, _ = compile_file(PROGRAM, dtype=dtype)
        model = load_compiled(ir).to(args.device)
        if dtype == "float64":
            print(f"layers             {stats['layers']}")
            print(f"d_model            {stats['d_model']}")
            print(f"heads per layer    {[l['heads'] for l in stats['per_layer']]}")
            print(f"MLP widths         {[l['d_mlp'] for l in stats['per_layer']]}")
            print(f"dense params       {stats['dense_params']}")
            print(f"nonzero params     {stats['nonzero_params']} (leaderboard count {stats['nonzero_params_leaderboard']})")
        for name, pairs in (("named cases", named_cases()), ("runs of 9s", nine_pairs)):
            wrong, first, seconds = check(model, ir.program.layout, pairs, args.device)
            print(f"{dtype}  {name:<12} {len(pairs) - wrong}/{len(pairs)} right"
                  + (f", first wrong {first}" if first else ""))
        wrong, seconds = random_on_tensors(model, ir.program, args.samples, args.seed, args.device)
        print(f"{dtype}  {'random':<12} {args.samples - wrong}/{args.samples} right  "
              f"({args.samples / seconds:,.0f} sums/s teacher-forced, inputs built as tensors)")


if __name__ == "__main__":
    main()
