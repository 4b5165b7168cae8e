"""A check that no compile writes a model that disagrees with its program, before any weight is built.

A value whose magnitude puts neighbouring float numbers of the emitted dtype further apart than
two of its own values cannot be held by any weights in that dtype
(`value * 10 ** 30 + shift(value, 1)` in float64). It is refused at its line.
"""
from __future__ import annotations

import math

import sympy

from dsl.errors import AdderError
from dsl.semantics import num
from compiler.ir.attrs import LABEL, NODE, REALIZE, VALUES
from compiler.ir.compile_ir import CompileIR
from compiler.ir.contract import compiler_pass

EPSILON = {"float64": 2.0 ** -52, "float32": 2.0 ** -23}
LARGEST = {"float64": 1.7976931348623157e308, "float32": 3.4028234663852886e38}


@compiler_pass(reads={NODE, LABEL, REALIZE, VALUES}, reads_ir={"options"})
def check_precision(ir: CompileIR) -> CompileIR:
    """Refuse a value the emitted dtype cannot tell from a neighbouring value: two of its values
    closer together than neighbouring floats are apart where they lie."""
    dtype = ir.options.get("dtype", "float64")
    for nid in sorted(ir.graph.nodes):
        attrs = ir.graph.nodes[nid]
        if attrs.get(REALIZE) in ("const", "inline", "fused"):
            continue  # exact in the compiler's own tables, never a float of the model
        numbers = sorted({num(v) for v in attrs[VALUES] if not isinstance(v, str)})
        for low, high in zip(numbers, numbers[1:]):
            top = max(abs(low), abs(high))
            spacing = _spacing(top, dtype)
            if spacing >= high - low:
                _refuse(ir, attrs, dtype, low, high, spacing)
    return ir


def _refuse(ir, attrs, dtype, low, high, spacing):
    node, gap = attrs[NODE], high - low
    held = "cannot hold it at all" if spacing == math.inf else f"numbers are {spacing:.3g} apart there"
    hint = f"keep its values below about {float(gap) / EPSILON[dtype]:.3g}"
    if dtype == "float32" and _spacing(max(abs(low), abs(high)), "float64") < gap:
        hint = "compile in float64 (--dtype float64), or " + hint
    raise AdderError(f"{dtype} cannot hold '{attrs[LABEL]}': it takes {_number(low)} and {_number(high)}, "
                     f"{float(gap):.3g} apart, where {dtype} {held}", node.span,
                     ir.program.sources.get(node.span.file),
                     hint + " (scale it down, or reduce it with % or // before combining)")


def _number(value) -> str:
    """A value as the program has it: whole ones in full (neighbours differ in the last digits)."""
    if getattr(value, "is_integer", False) and abs(value) < 10 ** 40:
        return str(value)
    return f"{float(value):.6g}"


def _spacing(magnitude, dtype: str) -> float:
    """The distance between neighbouring floats of the dtype at this magnitude (inf past its range)."""
    value = float(magnitude) if magnitude < sympy.Float(LARGEST[dtype]) else math.inf
    if value == math.inf:
        return math.inf
    _, exponent = math.frexp(value)
    return math.ldexp(EPSILON[dtype], exponent - 1)
