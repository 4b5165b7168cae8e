"""An MLP must give the exact value at every input combination, and its ReLUs must not change
state under the input error bound, so its output error is the Jacobian times that bound (zero
on the flat runs of the functions the compiler builds)."""
from __future__ import annotations

import math

import torch

from compiler.ir.attrs import LAYER, SLOT
from compiler.check.prove.rounding import residual_rounding
from compiler.check.prove.state import MISS_LIMIT, CannotProve, Miss, ProofState, position_note


def mlp_units(state: ProofState, nid):
    attrs = state.graph.nodes[nid]
    layer = attrs[LAYER]
    prefix = f"blocks.{layer}.mlp."
    if prefix + "W_in" not in state.weights:  # the layer has no MLP: the value is what a zero block writes
        W_in, b_in = torch.zeros(state.d_model, 0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
        W_out, b_out = torch.zeros(0, state.d_model, dtype=torch.float64), torch.zeros(state.d_model, dtype=torch.float64)
    else:
        W_in, b_in = state.weights[prefix + "W_in"], state.weights[prefix + "b_in"]
        W_out, b_out = state.weights[prefix + "W_out"], state.weights[prefix + "b_out"]
    target = state.entries[nid]["dims"]
    units = (W_out[:, target].abs().sum(1) > 0).nonzero()[:, 0]
    served = [e for e in state.weight_map if e.get("id") == nid and "units" in e]
    if served:  # a sum's dimension may be written by other sublayers' units too
        start, end = served[0]["units"]
        units = units[(units >= start) & (units < end)]
    # Every unit writing this value must write nothing else.
    others = [d for d in range(state.d_model) if d not in target]
    if others and float(W_out[units][:, others].abs().max() if len(units) else 0) > 0:
        raise Miss(f"the MLP units for '{state.name(nid)}' also write other values{state.at(nid)}")
    return W_in[:, units], b_in[units], W_out[units][:, target], b_out[target], target


def check_mlp(state: ProofState, nid):
    attrs = state.graph.nodes[nid]
    W_in, b_in, W_out, b_out, target = mlp_units(state, nid)
    reads = (W_in.abs().sum(1) > 0).nonzero()[:, 0].tolist()
    at = attrs[SLOT]
    in_place = "updates" in state.entries[nid]
    if in_place:  # what it adds to is read too, through the dimension it updates (even with no units)
        reads = sorted(set(reads) | set(target))
    stored = sorted(n for n, helper in state.owners(reads, at) if not helper)
    for n in stored:
        if n not in state.error:
            raise CannotProve(f"the MLP for '{state.name(nid)}' reads '{state.name(n)}' before it is proved"
                              f"{state.at(nid)}")
    inputs = sorted(set(stored) | state.unread_sources(nid, stored))
    d_pre = state.input_error(W_in, at)
    worst, margin = 0.0, math.inf
    errors = state.error_column(len(target), at)
    read_errors = state.error_column(1, at)[:, 0]
    out_terms = _output_terms(state, nid, target)
    positions = state.positions_for(inputs)
    for position in positions:
        # Every combination at once: one row of X per combination.
        combos = state.combos(inputs, position, nid)
        X = state.vectors(stored, combos, position)
        pre = X @ W_in + b_in
        out = torch.relu(pre) @ W_out + b_out
        codes, table = state.values_over(nid, combos, position)
        exact_values = [table[c] for c in codes.tolist()]
        want = torch.stack([state.vector({nid: value}) for value in table])[torch.from_numpy(codes)]
        if in_place:  # it adds the new value minus what its dimension holds
            want = want - X
        miss = (out - want[:, target]).abs().amax(dim=1) if len(target) else torch.zeros(len(combos))
        if float(miss.max()) >= MISS_LIMIT:  # a smaller miss is rounding: it joins the error below
            i = int(miss.argmax())
            got = out[i] + X[i, target] if in_place else out[i]
            raise Miss(f"the MLP for '{state.name(nid)}' gives {state.decoded(nid, got)} where "
                       f"{exact_values[i]} was expected (off by {float(miss[i]):.3g}), on "
                       f"{state.describe(combos[i])}{position_note(positions, position)}{state.at(nid)}")
        # The model's own arithmetic: the input product rounds before the ReLU decides, the
        # output product after it, and the residual addition last.
        pre_rounding = state.rounding.affine_sum(X, read_errors, W_in, b_in, product=pre - b_in)
        pre_error = d_pre + pre_rounding
        if pre.shape[1]:
            if not bool((pre.abs() > pre_error).all()):
                i = int(((pre.abs() - pre_error).amin(dim=1)).argmin())
                raise CannotProve(f"an MLP unit for '{state.name(nid)}' may switch under input errors and "
                                  f"rounding of up to {float(pre_error.max()):.3g}, on {state.describe(combos[i])}"
                                  f"{position_note(positions, position)}{state.at(nid)}")
            margin = min(margin, float((pre.abs() - pre_error).min()))
        active = pre > 0
        hidden_reach = torch.where(active, pre + pre_error, torch.zeros_like(pre))
        # An inactive unit adds an exact zero: only the active ones count as terms of the sum
        # (and the units of other values that write the same dimensions, all of them).
        terms = out_terms - (W_out != 0).sum(0) + active.to(torch.float64) @ (W_out != 0).to(torch.float64)
        rounded = ((pre_rounding * active) @ W_out.abs() + state.rounding.signed_sum(hidden_reach, W_out, b_out, terms)
                   if pre.shape[1] else torch.zeros(len(combos), len(target), dtype=torch.float64))
        propagated = _propagated_error(active, W_in, W_out, target, in_place, errors)
        worst = max(worst, float((miss + propagated + rounded.amax(dim=1)).max()))
    worst += residual_rounding(state, target)
    state.error[nid] = worst
    state.margins[f"MLP '{state.name(nid)}' ReLU margin"] = margin


def _output_terms(state: ProofState, nid, target) -> torch.Tensor:
    """Per target dimension, the nonzero terms of the layer's output sum into it: every unit
    of the layer that writes it (a sum's dimension may take other values' units too) and the bias."""
    prefix = f"blocks.{state.graph.nodes[nid][LAYER]}.mlp."
    if prefix + "W_out" not in state.weights:
        return torch.zeros(len(target), dtype=torch.float64)
    return ((state.weights[prefix + "W_out"][:, target] != 0).sum(0)
            + (state.weights[prefix + "b_out"][target] != 0)).to(torch.float64)


def _propagated_error(active, W_in, W_out, target, in_place, errors):
    """Per combination, the most an MLP passes on of its input errors. It depends on which units
    are active: one Jacobian per distinct pattern, W_in diag(active) W_out, computed for a
    block of patterns at once as active @ (W_in^T * W_out) (one product instead of a loop)."""
    column = errors[:, :1]  # the same bound for every target dimension
    if active.shape[1] == 0:  # no units: only what an update in place keeps
        return torch.full((len(active),), float(column[target].max()) if in_place else 0.0, dtype=torch.float64)
    patterns, rows = torch.unique(active, dim=0, return_inverse=True)
    per_unit = (W_in.T[:, :, None] * W_out[:, None, :]).reshape(W_in.shape[1], -1)  # unit -> d_model x target
    bounds = torch.empty(len(patterns), dtype=torch.float64)
    block = max(1, 2 ** 23 // max(1, per_unit.shape[0] + per_unit.shape[1]))
    for start in range(0, len(patterns), block):
        jacobians = (patterns[start:start + block].to(torch.float64) @ per_unit).reshape(-1, *W_in.shape[:1],
                                                                                           len(target))
        if in_place:  # the dimension keeps its old content, error included
            for i, d in enumerate(target):
                jacobians[:, d, i] += 1
        bounds[start:start + block] = (jacobians.abs() * column).sum(1).amax(1)
    return bounds[rows.reshape(-1)]
