"""Syntax tree to core program: constants, lets, defs, imports and the layout, with type checks.

Defs are expanded at every call (there is no run-time function call in a transformer); constants
are folded; `-D NAME=VALUE` overrides a declared constant. Every error names file, line and column.

The resolver is cut by concern, one mixin to a module over shared state (base): files, declarations,
layout and meaning, scope (names and defs), expressions, types (elementwise ops, folding) and builtins;
program puts them together.
"""
from __future__ import annotations

from dsl.resolve.program import load_program, source_digest, sources_digest

__all__ = ["load_program", "source_digest", "sources_digest"]



