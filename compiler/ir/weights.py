"""The sparse exact weights (pass 8 builds them, prune shrinks them, lowering makes them dense).

Every table maps an index tuple to a sympy value; zeros may be present until prune drops them.
Provenance: every entry of a head or an MLP block serves the block's own program node (`node`,
plus a paired head's partner, which lowering reads from the graph). The tables outside any block
(the embeddings and the unembedding) mix nodes, so `Weights.provenance` names, entry by entry,
the program node ids each one serves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from compiler.ir.compile_ir import Affine

NodeIds = tuple  # the program node ids (ints) one stored number serves, in node order

# The tables whose entries carry their own provenance; every other entry belongs to a block.
TRACED_TABLES = ("W_E", "W_pos", "W_U", "b_U")


@dataclass
class Head:
    node: int
    label: str
    mode: str
    W_Q: dict = field(default_factory=dict)  # (residual dim, head dim) -> value
    b_Q: dict = field(default_factory=dict)  # head dim -> value
    W_K: dict = field(default_factory=dict)
    b_K: dict = field(default_factory=dict)
    W_V: dict = field(default_factory=dict)
    b_V: dict = field(default_factory=dict)
    W_O: dict = field(default_factory=dict)  # (head dim, residual dim) -> value
    sink: Any = None  # the logit of the "attend to nothing" slot, or None
    slope: Any = 0  # score += slope * e + curvature * e * e, e = d + center,
    curvature: Any = 0  # d = key position - query position
    center: Any = 0
    window: int | None = None  # keys more than this many positions back are masked
    constants: dict = field(default_factory=dict)  # the margins chosen, for reports

    def add_read(self, side: str, head_dim: int, read: Affine, factor=1):
        matrix, bias = getattr(self, "W_" + side), getattr(self, "b_" + side)
        for dim, coeff in read.coeffs.items():
            matrix[(dim, head_dim)] = matrix.get((dim, head_dim), 0) + coeff * factor
        if read.bias != 0:
            bias[head_dim] = bias.get(head_dim, 0) + read.bias * factor


@dataclass
class MLPBlock:
    node: int
    label: str
    units: int = 0
    W_in: dict = field(default_factory=dict)  # (residual dim, unit) -> value
    b_in: dict = field(default_factory=dict)
    W_out: dict = field(default_factory=dict)  # (unit, residual dim) -> value
    b_out: dict = field(default_factory=dict)  # residual dim -> value


@dataclass
class LayerWeights:
    heads: list[Head] = field(default_factory=list)
    mlps: list[MLPBlock] = field(default_factory=list)


def empty_provenance() -> dict:
    return {name: {} for name in TRACED_TABLES}


@dataclass
class Weights:
    W_E: dict = field(default_factory=dict)  # (token, dim)
    W_pos: dict = field(default_factory=dict)  # (position, dim)
    layers: list[LayerWeights] = field(default_factory=list)
    W_U: dict = field(default_factory=dict)  # (dim, token)
    b_U: dict = field(default_factory=dict)  # token
    tied_scale: Any = None  # W_U = tied_scale * W_E^T, stored as one number (compiler.passes.tie)
    # table name (TRACED_TABLES) -> {index as in that table: NodeIds}
    provenance: dict = field(default_factory=empty_provenance)

    def trace(self, table: str, index, node_ids: NodeIds):
        """Record that the entry at `index` of `table` serves these nodes (as well as any it served)."""
        known = self.provenance[table].get(index, ())
        self.provenance[table][index] = tuple(sorted(set(known) | set(node_ids)))


# ----- once lowered: which numbers of a dense tensor count as stored (stats and provenance agree)

def stored_mask(tensor: torch.Tensor) -> torch.Tensor:
    """Where a tensor holds a stored number: nonzero and finite. A -inf sink logit means "this
    head has no sink" and an infinite window "no window": flags, not weights."""
    return (tensor != 0) & torch.isfinite(tensor)


def stored_indices(tensor: torch.Tensor) -> list[tuple]:
    """The index of each stored number in a tensor, in row-major order."""
    return [tuple(index) for index in torch.nonzero(stored_mask(tensor)).tolist()]
