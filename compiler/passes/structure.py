"""Pass 12: find the structure in the lowered weights, so that each parameter is counted once.

Two general forms (compiler.model.structure says how a model file declares them):
- A line of a vocabulary-indexed tensor (a column of W_E, a row of W_U, b_U) whose nonzero
  digit entries are exactly a polynomial of low degree in the digit's value becomes that
  polynomial's coefficients. The fit is exact (rational interpolation on the sympy weights,
  checked at every entry); it is kept when it has fewer nonzero coefficients than the line has
  entries. Its entries are then stored as the polynomial's one defined float evaluation, which
  can differ from the correctly rounded exact value by an ulp or so: self_check and the prover
  see the stored numbers, so what is checked is what is counted.
- Entries of one tensor with equal magnitude become one parameter with a sign per entry.

Sets ir.structure and rewrites the polynomial entries of ir.lowered in place (bit-level only).
"""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import sympy
import torch

from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR
from compiler.ir.weights import stored_indices
from compiler.model.structure import MAX_DEGREE, empty, polynomial_value

# |stored - exact| above this many units of the dtype's epsilon, relative to the line's largest
# entry, would not be rounding: the line is then stored entry by entry
SNAP_ULPS = 16


@compiler_pass(reads_ir={"weights", "lowered"}, sets_ir={"lowered", "structure"})
def find_structure(ir: CompileIR) -> CompileIR:
    config, state = ir.lowered
    state = {name: tensor.clone() for name, tensor in state.items()}
    base, w = ir.program.layout.base, ir.weights
    d_model, d_vocab = config["d_model"], config["d_vocab"]
    structure = empty()
    lines = [("unembed.b_U", {t: v for t, v in w.b_U.items()}, lambda t: t)]
    for dim in range(d_model):
        lines.append(("embed.W_E", {t: v for (t, d), v in w.W_E.items() if d == dim},
                      lambda t, dim=dim: t * d_model + dim))
        if "unembed.W_U" in state:
            lines.append(("unembed.W_U", {t: v for (d, t), v in w.W_U.items() if d == dim},
                          lambda t, dim=dim: dim * d_vocab + t))
    for name, line, flat_of in lines:
        digits = {t: v for t, v in sorted(line.items()) if t < base and v != 0}
        poly = _polynomial(name, digits, flat_of, state)
        if poly is not None:
            structure["polynomials"].append(poly)
    covered = {(p["tensor"], i) for p in structure["polynomials"] for i in p["entries"]}
    for name, tensor in state.items():
        structure["ties"] += _ties(name, tensor, covered)
    return replace(ir, lowered=(config, state), structure=structure)


def _polynomial(name: str, digits: dict, flat_of, state: dict) -> dict | None:
    """The polynomial formula of one line, or None where it would not save a parameter."""
    if len(digits) < 2 or not all(sympy.sympify(v).is_Rational for v in digits.values()):
        return None
    points = [(t, Fraction(int(sympy.numer(v)), int(sympy.denom(v)))) for t, v in digits.items()]
    coefficients = fit_polynomial(points)
    if coefficients is None or sum(1 for c in coefficients if c) >= len(points):
        return None
    floats = [float(c) for c in coefficients]
    tensor = state[name]
    flat = tensor.view(-1)
    scale = max(abs(v) for _, v in points)
    snapped = {}
    for t, exact in points:
        value = torch.tensor(polynomial_value(floats, t), dtype=torch.float64).to(tensor.dtype)
        if float(value) == 0 or abs(float(value) - float(exact)) > SNAP_ULPS * torch.finfo(tensor.dtype).eps * float(scale):
            return None
        snapped[flat_of(t)] = value
    for index, value in snapped.items():
        flat[index] = value
    return {"tensor": name, "entries": sorted(snapped), "coefficients": floats}


def fit_polynomial(points: list) -> list[Fraction] | None:
    """The coefficients (lowest power first) of the lowest-degree polynomial through every point,
    exactly, up to MAX_DEGREE; None if there is none."""
    for degree in range(min(MAX_DEGREE, len(points) - 1) + 1):
        coefficients = _interpolate(points[:degree + 1])
        if all(_evaluate(coefficients, x) == y for x, y in points):
            while coefficients and coefficients[-1] == 0:
                coefficients.pop()
            return coefficients or [Fraction(0)]
    return None


def _interpolate(points: list) -> list[Fraction]:
    """Lagrange interpolation through distinct x, as coefficients lowest power first."""
    result = [Fraction(0)] * len(points)
    for i, (xi, yi) in enumerate(points):
        basis, denominator = [Fraction(1)], Fraction(1)
        for j, (xj, _) in enumerate(points):
            if j != i:
                basis = [a - xj * b for a, b in zip([Fraction(0)] + basis, basis + [Fraction(0)])]
                denominator *= xi - xj
        for k, c in enumerate(basis):
            result[k] += yi * c / denominator
    return result


def _evaluate(coefficients, x) -> Fraction:
    value = Fraction(0)
    for c in reversed(coefficients):
        value = value * x + c
    return value


def _ties(name: str, tensor: torch.Tensor, covered: set) -> list[dict]:
    """Groups of two or more stored entries of one tensor with the same magnitude."""
    flat = tensor.reshape(-1)
    groups: dict[float, list] = {}
    for (i,) in stored_indices(flat):
        if (name, i) in covered:
            continue
        value = float(flat[i])
        groups.setdefault(abs(value), []).append([i, 1 if value > 0 else -1])
    return [{"tensor": name, "entries": entries} for _, entries in sorted(groups.items()) if len(entries) > 1]

