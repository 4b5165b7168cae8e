"""ONNX: the compiled model as one graph, written by torch's default (dynamo) exporter.

One input, `token_ids` int64 [batch, seq] (batch and seq dynamic, seq at most the model's context),
one output, `logits` [batch, seq, vocab] at the model's dtype. The file's metadata_props record what
a reader needs without adderc: the opset, the dtype, the vocabulary (a JSON list: logits column i
is token vocab[i]), the context, the compiler version and the program's sha256.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from pathlib import Path

import torch

from dsl.errors import AdderError
from compiler.export.extras import needs

OPSET = 18
INPUT, OUTPUT = "token_ids", "logits"


def metadata(model, payload: dict) -> dict[str, str]:
    """The strings stored in the file's metadata_props."""
    config = payload["config"]
    return {"adderc.opset": str(OPSET), "adderc.dtype": config["dtype"],
            "adderc.vocab": json.dumps(list(payload["vocab"])), "adderc.n_ctx": str(config["n_ctx"]),
            "adderc.compiler_version": str(payload.get("compiler_version", "")),
            "adderc.program_sha256": str(payload.get("program", {}).get("sha256", "")),
            "adderc.input": f"{INPUT}: int64 [batch, seq], seq <= n_ctx",
            "adderc.output": f"{OUTPUT}: {config['dtype']} [batch, seq, {config['d_vocab']}]"}


def _check_target(path: Path) -> None:
    if path.is_dir():
        raise AdderError(f"cannot write {path}: it is a folder", hint=f"name a file, e.g. {path / 'model.onnx'}")
    if not path.parent.is_dir():
        raise AdderError(f"cannot write {path}: the folder {path.parent} does not exist",
                         hint=f"create it first: mkdir -p {path.parent}")


def _example_ids(config: dict) -> torch.Tensor:
    # Batch 2 and a seq of 2 or more: a size of 1 would be specialised by the tracer, not kept dynamic.
    seq = max(2, config["n_ctx"])
    return (torch.arange(2 * seq) % config["d_vocab"]).view(2, seq)[:, :config["n_ctx"]].clone()


def _trace(model, config: dict):
    """The ONNX program torch's exporter makes of `model`, its progress talk kept off stdout (which
    --json keeps for the JSON)."""
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=config["n_ctx"])
    dynamic = ({0: batch, 1: seq},) if config["n_ctx"] > 1 else ({0: batch},)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # e.g. "torchvision is not installed", which no adderc graph uses
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", FutureWarning)  # the exporter's own deprecations
            return torch.onnx.export(model, (_example_ids(config),), input_names=[INPUT],
                                     output_names=[OUTPUT],
                                     dynamic_shapes=dynamic, opset_version=OPSET, dynamo=True, verbose=False)
    finally:
        quiet.setLevel(level)


def export(model, payload: dict, path) -> list[str]:
    onnx = needs("onnx", "export", "ONNX export")
    needs("onnxscript", "export", "ONNX export")  # torch's exporter writes the graph through it
    path = Path(path)
    _check_target(path)
    config = payload["config"]
    model.eval().prepare()  # the graph keeps the plan the weights have now
    try:
        program = _trace(model, config)
        proto = program.model_proto
        onnx.helper.set_model_props(proto, metadata(model, payload))
        onnx.checker.check_model(proto)
    except AdderError:
        raise
    except Exception as err:  # the exporter raises many kinds; any is adderc's failure to export
        first = (str(err).strip().splitlines() or [""])[0][:300]
        raise AdderError(f"cannot export to ONNX: torch's exporter failed ({type(err).__name__}: {first})") from None
    # written beside the target, then renamed over it: a failed write leaves no half-written file
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        onnx.save(proto, str(partial))
        os.replace(partial, path)
    except (OSError, ValueError) as err:
        raise AdderError(f"cannot write {path}: {getattr(err, 'strerror', None) or err}") from None
    finally:
        partial.unlink(missing_ok=True)
    return [f"onnx: opset {OPSET}, {config['dtype']}, input {INPUT} int64 [batch, seq <= {config['n_ctx']}], "
            f"output {OUTPUT} [batch, seq, {config['d_vocab']}]; vocabulary in metadata_props 'adderc.vocab'"]
