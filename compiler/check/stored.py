"""Reading program values back out of a model's residual stream, through the residual map.

How a value is encoded is compiler.ir.maps' ResidualEntry; this module compares what a model's
states hold with what the interpreter says they should.
"""
from __future__ import annotations

import torch

from compiler.ir.maps import UNREAD, ResidualEntry


def same_value(entry: ResidualEntry, decoded, exact) -> bool:
    """Whether a decoded categorical value agrees with the exact one. An all-zero one-hot stands
    for the default (nothing selected) or for a value whose dimension was pruned as unread."""
    if decoded == UNREAD:
        return str(exact) in entry.unread_values or str(exact) == entry.default
    return decoded == str(exact)


def stored_values(residual_map: list, states: list[torch.Tensor], batch_index: int = 0) -> dict[int, list]:
    """Every stored value, read right after the sublayer that writes it. Keyed by program node id.
    The map's entries may come parsed already (a caller decoding many rows parses them once)."""
    entries = (e if isinstance(e, ResidualEntry) else ResidualEntry.from_dict(e) for e in residual_map)
    return {entry.id: entry.decode_all(states[entry.sublayer][batch_index]) for entry in entries if not entry.helper}


def exact_stored(entry: ResidualEntry, values: dict) -> list | None:
    """What an entry's dimensions should hold at every position, from the interpreter's values
    (keyed by node id); None when the interpreter has no such value."""
    if entry.sum_of is None:
        return values.get(entry.id)
    columns = [values.get(term.id) for term in entry.sum_of]
    if any(c is None for c in columns):
        return None
    return [sum(term.share(v) for term, v in zip(entry.sum_of, row)) for row in zip(*columns)]
