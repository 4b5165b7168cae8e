"""add10 sums per second, teacher-forced: one forward over the whole sequence, argmax at the answer
positions, every sum checked, for eager torch, torch.compile and ONNX Runtime, in both dtypes.

    python bench/throughput.py                       # batches 256 and 4096, 2 s per measurement
    python bench/throughput.py --batches 1024 16384 --seconds 5 --threads 2

Teacher forcing equals greedy decoding whenever every sum comes out right (see bench/add10.py).
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compiler.api import compile_file  # noqa: E402
from compiler.model.file import load_model, save_model  # noqa: E402

PROGRAM = ROOT / "examples" / "add10.rasp"


def sums(layout, count, seed):
    """Token ids of random sums, each prompt and its right answer (the last token is never fed)."""
    rng = random.Random(seed)
    vocab = {t: i for i, t in enumerate(layout.vocab)}
    pairs = [(rng.randrange(10 ** 10), rng.randrange(10 ** 10)) for _ in range(count)]
    return torch.tensor([[vocab[t] for t in layout.prompt_tokens({"a": a, "b": b}) + layout.answer_tokens(a + b)]
                         for a, b in pairs])


def measure(forward, full, start, seconds):
    """(sums per second, all right): forward(ids) -> logits [batch, positions, vocab] as a tensor or
    array, for every position or for the last ones only; the logits of the last seq - start
    positions must pick the tokens at start + 1.."""
    ids, want = full[:, :-1], full[:, start + 1:].numpy()
    answer = want.shape[1]
    right = bool((np.asarray(forward(ids))[:, -answer:].argmax(-1) == want).all())  # warms up too
    runs, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds or runs < 2:
        predicted = np.asarray(forward(ids))[:, -answer:].argmax(-1)
        right &= bool((predicted == want).all())
        runs += 1
    return runs * ids.shape[0] / (time.perf_counter() - began), right


def backends(model, onnx_path, threads, answer):
    """Each backend's forward. The torch ones run the last layer at the answer positions only
    (`last`), which is all teacher forcing reads; the ONNX graph takes whole sequences."""
    def eager(ids):
        with torch.no_grad():
            return model(ids)

    def eager_last(ids):
        with torch.no_grad():
            return model(ids, last=answer)
    compiled = torch.compile(model, fullgraph=True, dynamic=False)

    def compiled_last(ids):
        with torch.no_grad():
            return compiled(ids, last=answer)
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    ort = lambda ids: session.run(["logits"], {"token_ids": ids.numpy()})[0]
    return {"eager": eager, "eager, last": eager_last, "compile, last": compiled_last, "onnxruntime": ort}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from compiler.export.to_onnx import export
    print(f"add10, teacher-forced, {args.threads} thread(s), {args.seconds:g} s per measurement")
    print(f"{'backend':<14} {'dtype':<8} {'batch':>6} {'sums/s':>12}  right")
    with tempfile.TemporaryDirectory() as folder:
        for dtype in args.dtypes:
            ir, stats, digest = compile_file(PROGRAM, dtype=dtype)
            save_model(Path(folder) / f"{dtype}.pt", ir, stats, digest)
            model, payload = load_model(Path(folder) / f"{dtype}.pt")
            export(model, payload, Path(folder) / f"{dtype}.onnx")
            layout = ir.program.layout
            answer = layout.sequence_length - layout.prompt_length
            for name, forward in backends(model, Path(folder) / f"{dtype}.onnx", args.threads, answer).items():
                for batch in args.batches:
                    full = sums(layout, batch, args.seed)
                    rate, right = measure(forward, full, layout.prompt_length - 1, args.seconds)
                    print(f"{name:<14} {dtype:<8} {batch:>6} {rate:>12,.0f}  {'yes' if right else 'NO'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
