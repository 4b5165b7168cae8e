"""Compiled models in the formats researchers use: `adderc export MODEL --to FORMAT -o PATH`.

Each format is one module of this package with `export(model, payload, path) -> list[str]` (the
lines the command prints); FORMATS names them. A format's library is an optional extra, imported
only when that format is asked for: a missing one is a clear message naming the extra, not an
ImportError.
"""
from __future__ import annotations

import importlib

from dsl.errors import AdderError

EXTRAS = {"export": "pip install -e '.[export]' torch==2.13.0", "show": "pip install -e '.[show]' torch==2.13.0"}

# format name -> the function that writes it; each module registers here (see the modules below).
FORMATS: dict = {}


def needs(module: str, extra: str, what: str):
    """The third-party `module`, or an AdderError saying which optional extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise AdderError(f"{what} needs the Python package '{module}', which is not installed",
                         hint=f"it comes with the optional extra '{extra}': {EXTRAS[extra]}") from None
