"""model.pt: plain tensors and plain data only, loadable with torch.load(weights_only=True).

It carries everything needed without the program file: config, vocabulary, layout, residual map,
the program's source with its sha256, and the compiler version.
"""
from __future__ import annotations

from pathlib import Path

import torch

from dsl.errors import AdderError
from dsl.layout import Layout
from compiler import __version__
from compiler.model import CompiledTransformer

FORMAT = "adderc-model"
FORMAT_VERSION = 2  # 2: ALiBi centres, grouped key/value projections, tied unembeddings
REQUIRED = ("format", "format_version", "config", "state_dict", "vocab", "layout", "residual_map", "program")


def save_model(path: str | Path, ir, stats: dict, digest: str) -> None:
    config, state = ir.lowered
    program = ir.program
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "compiler_version": __version__,
        "config": config, "state_dict": {k: v.contiguous() for k, v in state.items()},
        "vocab": list(program.layout.vocab), "layout": program.layout.to_dict(),
        "residual_map": ir.residual_map, "weight_map": ir.weight_map,
        "program": {"path": Path(program.path).name, "source": program.source, "sha256": digest,
                    "sources": {Path(p).name: text for p, text in program.sources.items()},
                    "overrides": dict(ir.options.get("overrides", {})),
                    "constants": {k: (int(v) if getattr(v, "is_integer", False) else str(v))
                                  for k, v in program.constants.items()}},
        "meaning": ({"field": program.meaning.field, "expression": program.meaning.text}
                    if program.meaning else None),
        "stats": stats,
    }
    torch.save(payload, str(path))


def load_model(path: str | Path):
    """(model, payload), or an AdderError saying what is wrong with the file."""
    path = Path(path)
    if not path.exists():
        raise AdderError(f"cannot read model file {path}: no such file")
    try:
        payload = torch.load(str(path), weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises many kinds for a corrupt or foreign file
        raise AdderError(f"cannot read model file {path}: not an adderc model (torch cannot load it: "
                         f"{type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise AdderError(f"cannot read model file {path}: not an adderc model")
    missing = [key for key in REQUIRED if key not in payload]
    if missing:
        raise AdderError(f"cannot read model file {path}: it lacks {', '.join(missing)}")
    if payload["format_version"] != FORMAT_VERSION:
        raise AdderError(f"cannot read model file {path}: format version {payload['format_version']}, "
                         f"this adderc reads version {FORMAT_VERSION}")
    try:
        model = CompiledTransformer(payload["config"])
        model.load_state_dict(payload["state_dict"])
        Layout.from_dict(payload["layout"])
    except Exception as err:
        raise AdderError(f"cannot read model file {path}: its weights do not fit its config "
                         f"({str(err).splitlines()[0]})") from None
    model.eval()
    return model, payload
