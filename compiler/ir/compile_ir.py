"""The intermediate representation the passes hand to one another.

`CompileIR.graph` is a networkx DAG over the program's core nodes (keyed by node id), whose node
attributes are named in compiler.ir.attrs. A pass returns the IR it was given (the checks) or a
copy with node attributes or fields added or replaced; each declares which with
compiler.ir.contract, and docs/architecture.md tabulates them. Linear reads (`Affine`) are how a
sublayer sees a program value in the residual stream.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import sympy

from dsl.core import Program


@dataclass
class Affine:
    """A linear functional of the residual stream plus a constant: sum(coeffs[dim] * x[dim]) + bias."""

    coeffs: dict[int, Any] = field(default_factory=dict)
    bias: Any = sympy.Integer(0)

    def __add__(self, other: "Affine") -> "Affine":
        coeffs = dict(self.coeffs)
        for dim, c in other.coeffs.items():
            coeffs[dim] = coeffs.get(dim, 0) + c
        return Affine({d: c for d, c in coeffs.items() if c != 0}, self.bias + other.bias)

    def scale(self, factor) -> "Affine":
        if factor == 0:
            return Affine()
        return Affine({d: c * factor for d, c in self.coeffs.items()}, self.bias * factor)

    @staticmethod
    def constant(value) -> "Affine":
        return Affine({}, sympy.sympify(value))


@dataclass
class CompileIR:
    program: Program
    graph: nx.DiGraph
    options: dict = field(default_factory=dict)
    n_layers: int = 0
    d_model: int = 0
    residual_map: list[dict] = field(default_factory=list)  # one entry per stored node: dims and encoding
    weights: Any = None  # compiler.ir.weights.Weights once built
    lowered: Any = None  # (config, state_dict) once lowered
    weight_map: list[dict] = field(default_factory=list)  # which heads and units serve which node
    # tensor name -> {index: program node ids} for every nonzero stored number (compiler.passes.lower)
    provenance: dict = field(default_factory=dict)
    # the lowered weights' ties and polynomials (compiler.model.structure), once found
    structure: dict | None = None
    # (operands, whole token sequence, interpreter evaluation) of the inputs compiler.passes.probe ran,
    # which compiler.passes.self_check compares the lowered model with.
    probes: list = field(default_factory=list)
