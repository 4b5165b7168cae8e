"""Reading program values back out of a model's residual stream, through the residual map."""
from __future__ import annotations

import sympy
import torch

from dsl.semantics import num


def decode(entry: dict, state: torch.Tensor) -> list:
    """One stored value at every position of one sequence (state: [positions, d_model]).

    Numerical values come back as floats; categorical ones as the value (a string) whose
    dimension is largest, or the default when an aggregate selected nothing (all near zero).
    """
    dims = entry["dims"]
    if "sum_of" in entry:  # the shares of a sum's terms, as they were written
        return [float(x) for x in state[:, dims[0]]]
    if entry["encoding"] == "numerical":
        offset = float(number_of(entry["default"])) if entry.get("default") is not None else 0.0
        slope, bias = (float(number_of(t)) for t in entry.get("stored_as", ("1", "0")))
        return [slope * float(x) + bias + offset for x in state[:, dims[0]]]
    block = state[:, dims]
    out = []
    for row in block:
        if float(row.max()) < 0.5 and entry.get("unread_values"):
            out.append(UNREAD)  # the default, or a value whose dimension nothing reads
        elif float(row.max()) < 0.5 and "default" in entry:
            out.append(entry["default"])
        else:
            out.append(entry["values"][int(row.argmax())])
    return out


UNREAD = "(the default or a value nothing reads)"


def same_value(entry: dict, decoded, exact) -> bool:
    """Whether a decoded categorical value agrees with the exact one. An all-zero one-hot stands
    for the default (nothing selected) or for a value whose dimension was pruned as unread."""
    if decoded == UNREAD:
        return str(exact) in entry.get("unread_values", []) or str(exact) == entry.get("default")
    return decoded == str(exact)


def stored_values(residual_map: list[dict], states: list[torch.Tensor], batch_index: int = 0) -> dict[int, list]:
    """Every stored value, read right after the sublayer that writes it. Keyed by program node id."""
    return {entry["id"]: decode(entry, states[entry["sublayer"]][batch_index])
            for entry in residual_map if not entry.get("helper")}


def exact_stored(entry: dict, values: dict) -> list | None:
    """What an entry's dimensions should hold at every position, from the interpreter's values
    (keyed by node id); None when the interpreter has no such value."""
    if "sum_of" not in entry:
        return values.get(entry["id"])
    columns = [values.get(term["id"]) for term in entry["sum_of"]]
    if any(c is None for c in columns):
        return None
    shares = [(sympy.Rational(t["coefficient"]), number_of(t["default"])) for t in entry["sum_of"]]
    return [sum(c * (num(v) - d) for (c, d), v in zip(shares, row)) for row in zip(*columns)]


def number_of(text: str):
    """A numerical value as the residual map writes it (a number, or True/False)."""
    return sympy.Integer(text == "True") if text in ("True", "False") else sympy.Rational(text)
