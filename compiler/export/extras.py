"""Optional extras: a format's or a picture's library is imported only when it is asked for, and a
missing one is a clear message naming the extra that provides it, not an ImportError."""
from __future__ import annotations

import importlib

from dsl.errors import AdderError

EXTRAS = {"export": "pip install -e '.[export]' torch==2.13.0", "show": "pip install -e '.[show]' torch==2.13.0"}


def needs(module: str, extra: str, what: str):
    """The third-party `module`, or an AdderError saying which optional extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise AdderError(f"{what} needs the Python package '{module}', which is not installed",
                         hint=f"it comes with the optional extra '{extra}': {EXTRAS[extra]}") from None
