"""A paired head: one head for two shifts of a value, c and c + 1 back, both terms of one sum.
Its scores depend on positions alone, so its attention weights are computed outright."""
from __future__ import annotations

import math

import sympy
import torch

from dsl.semantics import num
from compiler.ir.attrs import NODE, PAIRED_WITH, SLOT
from compiler.check.prove.attention import head_of
from compiler.check.prove.rounding import Rounding, residual_rounding
from compiler.check.prove.state import MISS_LIMIT, CannotProve, Miss, ProofState
from compiler.passes.encodings import relative_term


def check_pair_head(state: ProofState, nid):
    """One head for two shifts of a value, c and c + 1 back, both terms of one sum
    (compiler.passes.pair_heads). Its scores depend on positions alone, so at every query the
    attention weights are computed outright and compared with the weights the two terms
    need; each key's share of the difference, times the most its value can be, bounds the
    error (position 0 holds the default, which contributes nothing whatever its weight)."""
    attrs = state.graph.nodes[nid]
    partner = attrs[PAIRED_WITH][0]
    label = f"{state.name(nid)}' and '{state.name(partner)}"
    layer, h, w = head_of(state, nid)
    if any(float(w[name].abs().max()) > 0 for name in ("W_Q", "b_Q", "W_K", "b_K")):
        raise CannotProve(f"the head for '{label}' reads the stream in its scores; a paired head must not"
                          f"{state.at(nid)}")
    target = state.entries[nid]
    writes = (w["W_O"].abs().sum(0) > 0).nonzero()[:, 0].tolist()
    if set(writes) - set(target["dims"]):
        raise Miss(f"the head for '{label}' also writes dimensions of other values{state.at(nid)}")
    if float(w["W_O"][1:].abs().sum()) > 0 or float(w["W_V"][:, 1:].abs().sum() + w["b_V"][1:].abs().sum()) > 0:
        raise CannotProve(f"the head for '{label}' uses more than one value dimension{state.at(nid)}")
    value_node = attrs[NODE].value.id
    default = num(attrs[NODE].default)
    coefficients = {}
    for term in (nid, partner):
        offset = _offset_of(state.graph.nodes[term][NODE], state.n, state.base)
        if offset is None:
            raise CannotProve(f"'{state.name(term)}' is not a shift by a fixed offset{state.at(term)}")
        coefficients[offset] = float(sympy.Rational(state.entries[term]["coefficient"]))
    out_scale = float(w["W_O"][0, target["dims"][0]])
    read_v = (w["W_V"].abs().sum(1) > 0).nonzero()[:, 0].tolist()
    at = attrs[SLOT]
    v_nodes = sorted(n for n, helper in state.owners(read_v, at) if not helper)
    for n in v_nodes:
        if n not in state.error:
            raise CannotProve(f"the head for '{label}' reads '{state.name(n)}' before it is proved{state.at(nid)}")
    dv = float(state.input_error(w["W_V"], at)[0])
    read_errors = state.error_column(1, at)[:, 0]
    # The value each key carries, checked against the exact one (a rounded miss adds to the
    # value's error), and the most it can be away from zero.
    largest, read_miss, v_rounding = [0.0] * state.n, 0.0, 0.0
    for k in range(state.n):
        for assign in state.combos(v_nodes, k, nid):
            x = state.vector(assign)
            carried = float((x @ w["W_V"] + w["b_V"])[0])
            exact = float(num(state.value_of(value_node, assign, k)) - default)
            if abs(carried - exact) >= MISS_LIMIT:
                raise Miss(f"the head for '{label}' reads {state.describe(assign)} at position {k} as "
                           f"{carried + float(default):.10g} where {exact + float(default):.10g} was expected"
                           f"{state.at(nid)}")
            read_miss = max(read_miss, abs(carried - exact))
            largest[k] = max(largest[k], abs(exact))
            v_rounding = max(v_rounding, float(state.rounding.matmul(x.abs() + read_errors, w["W_V"], w["b_V"])[0]))
    dv += read_miss + v_rounding
    rounding = state.rounding
    worst = 0.0
    largest = torch.tensor(largest, dtype=torch.float64)
    for q in range(state.n):
        keys = torch.arange(max(0, q - int(min(w["window"], state.n))), q + 1)
        e = (keys - q).to(torch.float64) + w["center"]
        scores = w["slope"] * e + w["curvature"] * e * e
        if w["sink"] != -math.inf:
            scores = torch.cat([scores, torch.tensor([w["sink"]], dtype=torch.float64)])
        weights = torch.softmax(scores, dim=0)[:len(keys)]
        want = torch.tensor([coefficients.get(q - k, 0.0) for k in keys.tolist()], dtype=torch.float64)
        error = (out_scale * weights - want).abs() * largest[keys] + abs(out_scale) * weights * dv
        # The model takes this pattern in float64 too, then casts it to its dtype: each weight is
        # off by twice float64's softmax rounding (the model's and this proof's) and one cast;
        # then come the weighted sum of values and the residual addition.
        entries = len(scores)
        rho = 2 * Rounding("float64").softmax_relative(entries) + rounding.u
        reach = abs(out_scale) * (1 + rho) * weights * (largest[keys] + dv)
        error = (error + rho * reach + float(rounding.gamma(entries + 1)) * (1 + rho) * reach
                 + rounding.softmax_absolute(entries) * abs(out_scale) * (largest[keys] + dv))
        worst = max(worst, float(error.sum()))
    worst += residual_rounding(state, target["dims"])
    if worst >= MISS_LIMIT:
        raise CannotProve(f"the head for '{label}' (layer {layer}) may leak an error of {worst:.3g}, "
                          f"a quarter of a step or more{state.at(nid)}")
    state.error[nid] = worst
    state.error[partner] = 0.0  # its share is in the bound above
    state.margins[f"head '{label}' largest weight error"] = worst


def _offset_of(node, n_ctx, base) -> int | None:
    kind = relative_term(node.selector.terms[0], n_ctx, base)
    return kind[1] if kind is not None and kind[0] == "offset" else None

