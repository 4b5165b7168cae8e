"""Structured weights: entries of the state dict that are one parameter, or a formula of a few.

The leaderboards tiny adders are ranked on count "unique parameters after tying": a number the
model is built from counts once, however many entries it fills, and the shape of a formula
(which entries it fills, their signs, the power of a digit's value) is structure. A model file
declares its structured entries in its "structure" field, of two kinds:

  ties         {"tensor": name, "entries": [[flat index, sign], ...]}: entries of one tensor that
               are equal up to sign (sign +1 or -1), one parameter. Two heads' equal output
               weights, the two hinges of one step.
  polynomials  {"tensor": name, "entries": [flat index, ...], "coefficients": [c0, c1, ...]}:
               entries of a tensor indexed by the vocabulary (embed.W_E by row, unembed.W_U by
               column, unembed.b_U), each the polynomial c0 + c1*d + c2*d^2 + ... in the digit
               value d of its token; the nonzero coefficients are its parameters. A readout's
               biases -c^2 + c/10 + 19/5, a digit embedding e(d) = d.

A polynomial is evaluated one way only: Horner's rule in float64 from the highest coefficient,
then rounded once to the model's dtype; the compiler stores exactly that value, so the entries
are a function of the coefficients, bit for bit. Every entry a formula names is a stored number
(nonzero and finite), and no entry is named twice.

A declaration is a claim the weights are checked against, never trusted: `holding` keeps the
formulas that the stored weights satisfy exactly, and only those are counted (a weight edited
after compiling breaks its formula, and the model is then counted entry by entry there).
"""
from __future__ import annotations

import math

import torch

# Tensors indexed by the vocabulary, and how a flat index finds its token: rows of W_E
# [vocab, d_model], columns of W_U [d_model, vocab], entries of b_U [vocab].
VOCAB_INDEXED = {
    "embed.W_E": lambda flat, shape: flat // shape[1],
    "unembed.W_U": lambda flat, shape: flat % shape[1],
    "unembed.b_U": lambda flat, shape: flat,
}
MAX_DEGREE = 3  # a cubic at most: four coefficients


def empty() -> dict:
    return {"ties": [], "polynomials": []}


def polynomial_value(coefficients, x: int) -> float:
    """c0 + c1*x + ... by Horner's rule in float64, highest coefficient first: the one evaluation
    a polynomial's entries are defined by (then rounded to the model's dtype)."""
    value = 0.0
    for c in reversed(coefficients):
        value = value * float(x) + float(c)
    return value


def flat_index(index, shape) -> int:
    """The row-major flat index of a tensor index: what formulas name entries by."""
    flat = 0
    for i, n in zip(index, shape):
        flat = flat * n + i
    return flat


def token_of(tensor: str, flat: int, shape) -> int:
    return VOCAB_INDEXED[tensor](flat, tuple(shape))


def _flat(state: dict, name: str) -> torch.Tensor:
    return state[name].detach().reshape(-1)


def tie_holds(tie: dict, state: dict) -> bool:
    flat = _flat(state, tie["tensor"])
    values = [float(flat[i]) * float(sign) for i, sign in tie["entries"]]  # in Python floats, exactly
    return all(v == values[0] for v in values) and values[0] != 0 and math.isfinite(values[0])


def polynomial_holds(poly: dict, state: dict) -> bool:
    tensor = state[poly["tensor"]]
    entries = poly["entries"]
    # every entry's defined value at once: float64 evaluations, rounded to the dtype by one cast
    want = torch.tensor([polynomial_value(poly["coefficients"], token_of(poly["tensor"], i, tensor.shape))
                         for i in entries], dtype=torch.float64).to(tensor.dtype)
    stored = _flat(state, poly["tensor"])[torch.tensor(entries, dtype=torch.long)]
    return bool(torch.equal(stored, want)) and bool((want != 0).all())


def holding(structure: dict | None, state: dict) -> dict:
    """The formulas of `structure` that the stored weights satisfy exactly."""
    if not structure:
        return empty()
    return {"ties": [t for t in structure["ties"] if tie_holds(t, state)],
            "polynomials": [p for p in structure["polynomials"] if polynomial_holds(p, state)]}


def parameters_of(formula: dict) -> int:
    """How many parameters one formula counts: one for a tie, its nonzero coefficients for a polynomial."""
    if "coefficients" in formula:
        return sum(1 for c in formula["coefficients"] if c != 0)
    return 1


def covered_entries(formula: dict) -> list[int]:
    return [e[0] for e in formula["entries"]] if "coefficients" not in formula else list(formula["entries"])


def formulas(structure: dict) -> list[dict]:
    return list(structure["ties"]) + list(structure["polynomials"])
