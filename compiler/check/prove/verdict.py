"""The prover's verdict on a model file: proved, a counterexample (an input the model really gets
wrong), or could not prove (naming the check that failed and the program line)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from compiler.check.program import same_program
from compiler.check.prove.checker import Checker
from compiler.check.prove.state import CannotProve, Miss
from compiler.check.replay import first_wrong_input
from compiler.model.transformer import per_head
from compiler.pipeline import compile_program
from compiler.progress import Progress


@dataclass
class Proof:
    status: str  # "proved", "counterexample", "could not prove"
    reason: str = ""
    dtype: str = "float64"
    errors: dict = field(default_factory=dict)  # value name -> proven bound on its stored error
    margins: dict = field(default_factory=dict)
    seconds: float = 0.0
    counterexample: dict | None = None  # the input replayed through the model, what it wrote, what was right
    sublayer_seconds: dict = field(default_factory=dict)  # sublayer number -> seconds its checks took

    def to_dict(self):
        return {"status": self.status, "reason": self.reason, "dtype": self.dtype, "errors": self.errors,
                "margins": self.margins, "seconds": round(self.seconds, 2), "counterexample": self.counterexample,
                "sublayer_seconds": {str(k): round(v, 3) for k, v in sorted(self.sublayer_seconds.items())}}


def prove(payload: dict, program, dtype: str = "float64", seed: int = 20261122, progress: bool = False) -> Proof:
    started = time.perf_counter()
    if not same_program(program, payload):
        return Proof("could not prove", "the model was compiled from a different program, so its residual map "
                                        "does not describe this program's values", dtype)
    # The compiler's knowledge (value sets, what each value is computed by) comes from compiling the
    # program again; every check below runs on the model file's own weights.
    ir = compile_program(program, {"dtype": "float64", "overrides": payload["program"].get("overrides", {}),
                                   "self_check": False})
    weights = {k: v.to(getattr(torch, dtype)).to(torch.float64)
               for k, v in per_head(payload["state_dict"], payload["config"]).items()}
    try:
        checker = Checker(ir, payload["residual_map"], weights, payload["config"], payload.get("weight_map", []),
                          dtype)
        with Progress(f"{dtype} proof, stored values", len(checker.entries), progress) as bar:
            checker.run(bar)
    except CannotProve as err:
        return Proof("could not prove", str(err), dtype, seconds=time.perf_counter() - started)
    except Miss as miss:
        return _replayed(payload, program, dtype, seed, str(miss), started)
    return Proof("proved", "", dtype, {k: float(v) for k, v in checker.error_by_label().items()},
                 checker.margins, time.perf_counter() - started, sublayer_seconds=checker.seconds)


def _replayed(payload, program, dtype, seed, miss: str, started) -> Proof:
    """The verdict on a failed check: a counterexample only for an input the model really gets wrong."""
    found = first_wrong_input(payload, program, dtype, seed=seed)
    seconds = time.perf_counter() - started
    if found is None:
        return Proof("could not prove", f"{miss}; no input replayed through the model was answered wrong, "
                                        f"so this may be a combination no input produces", dtype, seconds=seconds)
    layout = program.layout
    prompt = "".join(layout.prompt_tokens(found["operands"])[1:])
    operands = ", ".join(f"{k}={v}" for k, v in found["operands"].items())
    return Proof("counterexample", f"{prompt} ({operands}): the model writes {found['got']}, expected "
                                   f"{found['expected']}; the failed check: {miss}", dtype, seconds=seconds,
                 counterexample=found)
