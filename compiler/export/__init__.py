"""Compiled models in the formats researchers use: `adderc export MODEL --to FORMAT -o PATH`.

Each format is one module of this package with `export(model, payload, path) -> list[str]` (the
lines the command prints); FORMATS names them. A module is imported only when its format is asked
for, since its library is an optional extra (compiler.export.extras).
"""
from __future__ import annotations

import importlib

# format name -> the module of this package that writes it
FORMATS = {
    "onnx": "to_onnx",
    "safetensors": "to_safetensors",
    "transformer-lens": "to_transformer_lens",
    "adderboard": "to_adderboard",
}


def export(format: str, model, payload: dict, path) -> list[str]:
    """Write `model` (with its file's `payload`) to `path` as `format`; the lines to print."""
    module = importlib.import_module(f"compiler.export.{FORMATS[format]}")
    return module.export(model, payload, path)


def load_transformer_lens(path, **options):
    """A TransformerLens model built from an adderc model file (or an exported folder) whose
    forward(token_ids) gives the compiled model's logits; see compiler.export.to_transformer_lens."""
    return importlib.import_module(f"compiler.export.{FORMATS['transformer-lens']}").load(path, **options)
