"""Golden figures of a compiled program: its sizes and a hash of its weights, with no timings.

Anyone who keeps compiled models under regression tests pins these. The examples' own figures are
pinned in tests/golden.json by the tool next to it, tests/golden.py; this module's command runs
that tool from a source checkout, as the README documents:

    python -m compiler.golden            # print the diff, exit 1 if there is one
    python -m compiler.golden --update   # rewrite tests/golden.json from the current compiler
"""
from __future__ import annotations

import hashlib
import json
import runpy
import sys
from pathlib import Path

import numpy as np
import torch

from compiler.api import compile_file

TIMING_KEYS = ("compile_seconds",)  # they vary from run to run: never golden
TOOL = Path(__file__).resolve().parent.parent / "tests" / "golden.py"


def weights_sha256(state_dict: dict) -> str:
    """sha256 over the tensors in name order: name, original dtype, shape, then the values as
    contiguous little-endian float64 bytes. The same weights give the same digest on any run."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name]
        if not isinstance(tensor, torch.Tensor):
            tensor = torch.as_tensor(tensor)
        values = tensor.detach().cpu().to(torch.float64).contiguous().numpy()
        values = np.ascontiguousarray(values, dtype="<f8")
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(str(tensor.dtype).encode("ascii") + b"\0")
        digest.update(json.dumps(list(tensor.shape)).encode("ascii") + b"\0")
        digest.update(values.tobytes())
    return digest.hexdigest()


def golden_entry(program_path, compiled=None) -> dict:
    """The golden figures of one program: its stats without timings, the weights' digest, its name.
    `compiled`: compile_file's result for it, where the caller has it already."""
    path = Path(program_path)
    ir, stats, _ = compiled or compile_file(path)
    entry = {key: value for key, value in stats.items() if key not in TIMING_KEYS}
    entry["weights_sha256"] = weights_sha256(ir.lowered[1])
    entry["program"] = path.name
    return entry


def main() -> int:
    if not TOOL.is_file():
        print("python -m compiler.golden: the golden tool (tests/golden.py) comes with a source checkout; "
              "this installation has none", file=sys.stderr)
        return 2
    sys.argv[0] = "python -m compiler.golden"
    runpy.run_path(str(TOOL), run_name="__main__")  # it exits with its own status
    return 0


if __name__ == "__main__":
    sys.exit(main())
