"""A selector_width's MLP: it turns its head's output w / (w + 1) into the width w."""
from __future__ import annotations

import torch

from compiler.ir.attrs import LAYER, VALUES
from compiler.check.prove.mlp import mlp_units
from compiler.check.prove.state import MISS_LIMIT, CannotProve, Miss, ProofState
from compiler.ir.slots import mlp_slot


def check_width_mlp(state: ProofState, nid):
    attrs = state.graph.nodes[nid]
    W_in, b_in, W_out, b_out, target = mlp_units(state, nid)
    d_pre = float(state.input_error(W_in, mlp_slot(attrs[LAYER])).max())
    worst = 0.0
    for value in attrs[VALUES]:
        w = int(value)
        x = torch.zeros(state.d_model, dtype=torch.float64)
        x[state.helpers[nid]["dims"][0]] = w / (w + 1)
        pre = x @ W_in + b_in
        out = torch.relu(pre) @ W_out + b_out
        # The width as a number, or one-hot where it is categorical: its encoding either way.
        miss = float((out - state.vector({nid: value})[target]).abs().max())
        if miss >= MISS_LIMIT:  # a smaller miss is rounding, carried as error
            raise Miss(f"the selector_width '{state.name(nid)}' gives {state.decoded(nid, out)} where {w} was "
                       f"expected (its head gives {w}/{w + 1}){state.at(nid)}")
        if not bool((pre.abs() > d_pre).all()):
            raise CannotProve(f"a unit of the selector_width '{state.name(nid)}' may switch under input errors "
                              f"of up to {d_pre:.3g}{state.at(nid)}")
        worst = max(worst, miss)
    state.error[nid] = worst
