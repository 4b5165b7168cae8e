"""An attention head's realised scores must separate the selected keys from the others (and from
the sink), which bounds the weight it leaks, and so the error of its output."""
from __future__ import annotations

from typing import NamedTuple

import sympy
import torch

from dsl.semantics import eval_predicate, num
from compiler.ir.attrs import NODE, REALIZE, SLOT
from compiler.check.prove.head_bounds import KeyOption, head_bound
from compiler.check.prove.state import MISS_LIMIT, CannotProve, Miss, ProofState, vector_text
from compiler.passes.encodings import head_mode, predicate_roles


def head_of(state: ProofState, nid):
    served = [e for e in state.weight_map if e.get("id") == nid and "head" in e]
    if served:
        layer, h = int(served[0]["block"].split(".")[1]), served[0]["head"]
        return layer, h, _head_weights(state, layer, h)
    if state.entries.get(nid, {}).get("shared"):
        raise CannotProve(f"the model file does not say which head writes '{state.name(nid)}'{state.at(nid)}")
    for layer in range(state.config["n_layers"]):
        if not state.config["n_heads"][layer]:
            continue
        prefix = f"blocks.{layer}.attn."
        W_O = state.weights[prefix + "W_O"]
        entry = state.helpers.get(nid) or state.entries[nid]
        for h in range(W_O.shape[0]):
            if float(W_O[h][:, entry["dims"]].abs().max()) > 0:
                return layer, h, _head_weights(state, layer, h)
    raise CannotProve(f"no head writes '{state.name(nid)}'{state.at(nid)}")


def _head_weights(state: ProofState, layer, h):
    prefix = f"blocks.{layer}.attn."
    return {name: state.weights[prefix + name][h] for name in
            ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O")} | {
        "sink": float(state.weights[prefix + "sink"][h]),
        "slope": float(state.weights[prefix + "alibi_slope"][h]),
        "curvature": float(state.weights[prefix + "alibi_curvature"][h]),
        "center": float(state.weights[prefix + "alibi_center"][h]),
        "window": float(state.weights[prefix + "window"][h])}


def check_head(state: ProofState, nid):
    attrs = state.graph.nodes[nid]
    node = attrs[NODE]
    label = state.name(nid)
    layer, h, w = head_of(state, nid)
    mode = head_mode(attrs)
    target = state.helpers[nid] if attrs[REALIZE] == "width" else state.entries[nid]
    # The head may write only its own dimensions.
    writes = (w["W_O"].abs().sum(0) > 0).nonzero()[:, 0].tolist()
    if set(writes) - set(target["dims"]):
        raise Miss(f"the head for '{label}' also writes dimensions of other values{state.at(nid)}")
    read_q = (w["W_Q"].abs().sum(1) > 0).nonzero()[:, 0].tolist()
    read_k = (w["W_K"].abs().sum(1) > 0).nonzero()[:, 0].tolist()
    read_v = (w["W_V"].abs().sum(1) > 0).nonzero()[:, 0].tolist()
    at = attrs[SLOT]
    q_nodes = sorted(n for n, helper in state.owners(read_q, at) if not helper)
    k_nodes = sorted({n for n, helper in state.owners(read_k + read_v, at) if not helper})
    for n in q_nodes + k_nodes:
        if n not in state.error:
            raise CannotProve(f"the head for '{label}' reads '{state.name(n)}' before it is proved{state.at(nid)}")
    dq = state.input_error(w["W_Q"], at)
    dk = state.input_error(w["W_K"], at)
    dv = state.input_error(w["W_V"], at)
    W_O_abs = w["W_O"].abs()
    value_dims_out = W_O_abs.sum(1)  # per head value dim: total write magnitude
    worst_output, smallest_gap = 0.0, float("inf")
    sink = w["sink"]
    # What a key offers depends on its position and values, not on the query: computed once.
    offered = [_key_options(state, nid, mode, k_nodes, k, w, dq) for k in range(state.n)]
    value_miss = max((offer.miss for options in offered for offer in options), default=0.0)
    truth = _Truth(state, node.selector.terms)
    for q in range(state.n):
        at_q = state.position_vector(q)
        for q_assign in state.combos(q_nodes, q, nid):
            query_values = truth.side_values("q", q_assign, q)
            qv = (state.vector(q_assign) + at_q) @ w["W_Q"] + w["b_Q"]
            q_error = float((qv.abs() * dk).sum() + (dq * dk).sum())
            keys = []  # per key position: one KeyOption per combination of its values
            for k in range(q + 1):
                if q - k > w["window"]:
                    continue  # masked: the key gets no weight at all
                e = k - q + w["center"]
                keys.append([KeyOption(truth.selected(truth.side_values("k", o.k_assign, k), query_values),
                                       float(qv @ o.kv) + w["slope"] * e + w["curvature"] * e ** 2,
                                       q_error + o.k_error, o.value, o.exact)
                             for o in offered[k]])
            bound, gap = head_bound(mode, keys, sink, q, node, dv, value_dims_out)
            worst_output = max(worst_output, bound)
            smallest_gap = min(smallest_gap, gap)
    # A value read off by rounding moves the output by at most that much per unit of weight
    # (a sum head's weights add up to at most one per key).
    worst_output += value_miss * float(value_dims_out.max()) * (state.n if mode == "sum" else 1)
    worst_output += _check_write_scale(state, nid, w["W_O"], mode, target, label)
    if worst_output >= MISS_LIMIT:
        raise CannotProve(f"the head for '{label}' (layer {layer}) may leak an error of {worst_output:.3g}, "
                          f"a quarter of a step or more{state.at(nid)}")
    if attrs[REALIZE] == "width":
        state.helper_error[nid] = worst_output
    else:
        state.error[nid] = worst_output
    state.margins[f"head '{label}' score gap"] = smallest_gap


def _check_write_scale(state: ProofState, nid, W_O, mode, target, label):
    """Each value dimension must land in one residual dimension at the scale the encoding
    says (1, or a sum term's coefficient); the score analysis only bounds the attention
    weights. Returns the extra output error a rounded scale adds (sum heads check their
    scale against the decay themselves)."""
    if mode == "sum":
        return 0.0
    want = float(sympy.Rational(target["coefficient"])) if target.get("shared") else 1.0
    largest = max([1.0] + [abs(float(num(v) - num(state.graph.nodes[nid][NODE].default)))
                           for v in state.values(nid)] if target.get("encoding") == "numerical"
                  and mode != "width" else [1.0])
    extra = 0.0
    for j in range(W_O.shape[0]):
        column = W_O[j]
        written = column.nonzero()[:, 0].tolist()
        if not written:
            continue
        if len(written) != 1:
            raise Miss(f"the head for '{label}' writes one value into several dimensions{state.at(nid)}")
        deviation = abs(float(column[written[0]]) - want)
        if deviation * largest >= MISS_LIMIT:
            raise Miss(f"the head for '{label}' writes its value scaled by "
                       f"{float(column[written[0]]):.6g}, not {want:.6g}{state.at(nid)}")
        extra = max(extra, deviation * largest)  # a rounded scale: carried as error
    return extra


class _KeyOffer(NamedTuple):
    """What a key at one position offers for one combination of its values."""
    k_assign: dict  # the values
    kv: torch.Tensor  # its key vector
    k_error: float  # its share of the score error
    value: torch.Tensor  # its value vector
    exact: torch.Tensor  # the value vector it should carry
    miss: float  # how far the two differ


def _key_options(state: ProofState, nid, mode, k_nodes, k, w, dq) -> list[_KeyOffer]:
    """One _KeyOffer per combination of the key's values at position k."""
    options = []
    at_k = state.position_vector(k)
    for k_assign in state.combos(k_nodes, k, nid):
        x = state.vector(k_assign) + at_k
        kv = x @ w["W_K"] + w["b_K"]
        value = x @ w["W_V"] + w["b_V"]
        exact = _exact_value(state, nid, mode, k_assign, w, value, k)
        options.append(_KeyOffer(k_assign, kv, float((kv.abs() * dq).sum()), value, exact,
                                 float((value - exact).abs().max())))
    return options


class _Truth:
    """Whether a key is selected for a query, from the program's own predicates on their exact
    values; each term is decided once per pair of values it compares (many combinations share them)."""

    def __init__(self, state: ProofState, terms):
        self.state, self.terms = state, terms
        self.roles = [predicate_roles(t.predicate) for t in terms]
        self.known: dict = {}

    def side_values(self, side, assignment, position) -> tuple:
        return tuple(self.state.value_of((t.keys if side == "k" else t.queries).id, assignment, position)
                     if side in roles else None for t, roles in zip(self.terms, self.roles))

    def selected(self, keys: tuple, queries: tuple) -> bool:
        for i, term in enumerate(self.terms):
            pair = (i, keys[i], queries[i])
            if pair not in self.known:
                self.known[pair] = bool(eval_predicate(term.predicate, keys[i], queries[i], self.state.base))
            if not self.known[pair]:
                return False
        return True


def _exact_value(state: ProofState, nid, mode, k_assign, w, value, k):
    """The value vector a selected key should carry (what the compiler meant V to read)."""
    node = state.graph.nodes[nid][NODE]
    # A value dimension that W_O writes nowhere reaches no residual dimension: whatever it holds is
    # what it should hold (a head's value vector is as wide as its query-key part, so a width or
    # one-hot head often has such dimensions).
    unwritten = w["W_O"].abs().sum(1) == 0
    exact_value = None if mode == "width" else state.value_of(node.value.id, k_assign, k)
    entry = state.entries.get(node.id)
    # Every key of a width head offers 1; the sink's share of the weight makes it a width.
    out = torch.ones_like(value) if mode == "width" else torch.zeros_like(value)
    if mode != "width" and entry["encoding"] == "numerical":
        out[0] = float(num(exact_value) - num(node.default))
        if (w["W_V"][:, 1:].abs().sum() > 0) or (w["b_V"][1:].abs().sum() > 0):
            raise CannotProve(f"the numerical head for '{state.name(nid)}' uses more than one value dimension"
                              f"{state.at(nid)}")
    elif mode != "width":
        # value dim j carries the indicator of the value whose dimension its W_O column writes
        for j in range(value.shape[0]):
            column = w["W_O"][j]
            if float(column.abs().max()) == 0:
                continue
            written = int(column.abs().argmax())
            text = entry["values"][entry["dims"].index(written)]
            out[j] = 1.0 if text == str(exact_value) else 0.0
    out = torch.where(unwritten, value, out)
    miss = float((value - out).abs().max())
    if miss >= MISS_LIMIT:
        raise Miss(f"the head for '{state.name(nid)}' reads {state.describe(k_assign)} at position {k} "
                   f"as {vector_text(value)} where {vector_text(out)} was expected{state.at(nid)}")
    return out
