"""Syntax tree to core program: constants, lets, defs, imports and the layout, with type checks.

Defs are expanded at every call (there is no run-time function call in a transformer); constants
are folded; `-D NAME=VALUE` overrides a declared constant. Every error names file, line and column.

The resolver is cut by concern, one mixin to a module over shared state (base): files, declarations,
layout_meaning, scope (names and defs), expressions, op_types (elementwise ops: type checks by the op
table, folding) and calls (of the built-in functions); program puts them together.
"""
from __future__ import annotations

from dsl.resolve.program import load_program, source_digest, sources_digest

__all__ = ["load_program", "source_digest", "sources_digest"]



