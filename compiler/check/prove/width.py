"""A selector_width's MLP: it turns its head's output w / (w + 1) into the width w."""
from __future__ import annotations

import torch

from compiler.ir.attrs import LAYER, VALUES
from compiler.check.prove.mlp import mlp_units
from compiler.check.prove.rounding import residual_rounding
from compiler.check.prove.state import MISS_LIMIT, CannotProve, Miss, ProofState
from compiler.ir.slots import mlp_slot


def check_width_mlp(state: ProofState, nid):
    attrs = state.graph.nodes[nid]
    W_in, b_in, W_out, b_out, target = mlp_units(state, nid)
    at = mlp_slot(attrs[LAYER])
    d_pre = state.input_error(W_in, at)
    read_errors = state.error_column(1, at)[:, 0]
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
        pre_rounding = state.rounding.matmul(x.abs() + read_errors, W_in, b_in)
        pre_error = d_pre + pre_rounding
        if not bool((pre.abs() > pre_error).all()):
            raise CannotProve(f"a unit of the selector_width '{state.name(nid)}' may switch under input errors "
                              f"and rounding of up to {float(pre_error.max()):.3g}{state.at(nid)}")
        active = pre > 0
        hidden_reach = torch.where(active, pre + pre_error, torch.zeros_like(pre))
        # The input errors pass through the active units' Jacobian (a step's two hinges cancel);
        # the rounding of each unit and of the output sum do not cancel.
        jacobian = (W_in * active) @ W_out  # [d_model, target]
        passed = ((jacobian.abs() * read_errors[:, None]).sum(0) + (pre_rounding * active) @ W_out.abs()
                  + state.rounding.matmul(hidden_reach, W_out, b_out))
        worst = max(worst, miss + float(passed.max()))
    worst += residual_rounding(state, target)
    state.error[nid] = worst
