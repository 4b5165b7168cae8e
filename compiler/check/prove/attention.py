"""An attention head's realised scores must separate the selected keys from the others (and from
the sink), which bounds the weight it leaks, and so the error of its output."""
from __future__ import annotations

import math
from typing import NamedTuple

import sympy
import torch

from dsl.semantics import eval_predicate, num
from compiler.ir.attrs import NODE, REALIZE, SLOT
from compiler.check.prove.head_bounds import KeyOption, head_bound
from compiler.check.prove.rounding import residual_rounding
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
    errors = state.error_column(1, at)[:, 0]
    # Each projection's own rounding joins the errors its inputs bring: the query's and the key's,
    # bounded over every combination first, so that every score error below can use them.
    dq = state.input_error(w["W_Q"], at) + _query_rounding(state, nid, q_nodes, w, errors)
    dk = state.input_error(w["W_K"], at)
    dv = state.input_error(w["W_V"], at)
    W_O_abs = w["W_O"].abs()
    value_dims_out = W_O_abs.sum(1)  # per head value dim: total write magnitude
    worst_output, smallest_gap = 0.0, float("inf")
    sink = w["sink"]
    # What a key offers depends on its position and values, not on the query: computed once.
    offered = [_key_options(state, nid, mode, k_nodes, k, w, dq, errors) for k in range(state.n)]
    options = [offer for per_key in offered for offer in per_key]
    value_miss = max((offer.miss for offer in options), default=0.0)
    dk = dk + _largest(offer.k_rounding for offer in options)
    dv = dv + _largest(offer.v_rounding for offer in options)
    truth = _Truth(state, node.selector.terms)
    # Every key option of every position in one table, so that a query's scores against all of
    # them are two matrix products and a few elementwise operations.
    table = _KeyTable(offered, truth, dk, w["W_K"].shape[1])
    most_keys = 0
    # How large the weighted sum of values may be: at most the largest value (the weights add up
    # to at most 1), and for a sum head, whose weights are tiny and whose W_O scales them back up,
    # the sum of each key's largest weight times its value.
    value_reach = torch.zeros(w["W_V"].shape[1], dtype=torch.float64)
    for q in range(state.n):
        at_q = state.position_vector(q)
        visible = [k for k in range(q + 1) if q - k <= w["window"]]  # others are masked: no weight at all
        most_keys = max(most_keys, len(visible))
        terms = _position_terms(w, torch.tensor(visible, dtype=torch.long) - q)[0].tolist()
        top = max(terms + ([sink] if sink != -math.inf else []))
        for q_assign in state.combos(q_nodes, q, nid):
            query_values = truth.side_values("q", q_assign, q)
            qv = (state.vector(q_assign) + at_q) @ w["W_Q"] + w["b_Q"]
            keys = _scored_keys(state, w, table, visible, top, qv, dq, dk, query_values, summarise=mode != "sum")
            if mode == "sum" and sink != -math.inf:  # each weight is at most exp(score - sink)
                weighted = sum(torch.stack([math.exp(min(o.score + o.score_error - sink, 700)) * (o.value.abs() + dv)
                                            for o in opts]).amax(0) for opts in keys.values() if opts)
                value_reach = torch.maximum(value_reach, weighted)
            bound, gap = head_bound(mode, list(keys.values()), sink, q, node, dv, value_dims_out)
            worst_output = max(worst_output, bound)
            smallest_gap = min(smallest_gap, gap)
    # A value read off by rounding moves the output by at most that much per unit of weight
    # (a sum head's weights add up to at most one per key).
    worst_output += value_miss * float(value_dims_out.max()) * (state.n if mode == "sum" else 1)
    worst_output += _check_write_scale(state, nid, w["W_O"], mode, target, label)
    largest_value = _largest(o.value.abs() for o in options) + dv
    if mode == "sum" and sink != -math.inf:
        largest_value = torch.minimum(largest_value, value_reach)
    worst_output += _output_rounding(state, layer, w, largest_value, most_keys + 1, target["dims"])
    if worst_output >= MISS_LIMIT:
        raise CannotProve(f"the head for '{label}' (layer {layer}) may leak an error of {worst_output:.3g}, "
                          f"a quarter of a step or more{state.at(nid)}")
    if attrs[REALIZE] == "width":
        state.helper_error[nid] = worst_output
    else:
        state.error[nid] = worst_output
    state.margins[f"head '{label}' score gap"] = smallest_gap


class _KeyTable:
    """Every key option of a head, flat: its position, key vector (and its size plus the key
    error), its own score error, and which of the distinct key sides (what it compares) it has."""

    def __init__(self, offered, truth, dk, width):
        flat = [(k, o) for k, opts in enumerate(offered) for o in opts]
        self.truth = truth
        self.options = [o for _, o in flat]
        self.positions = torch.tensor([k for k, _ in flat], dtype=torch.long)
        self.kv = torch.stack([o.kv for o in self.options]) if flat else torch.zeros(0, width, dtype=torch.float64)
        self.kv_size = self.kv.abs() + dk
        self.k_error = torch.tensor([o.k_error for o in self.options], dtype=torch.float64)
        self.sizes = torch.tensor([o.size for o in self.options], dtype=torch.float64)
        sides, self.side_of = {}, []
        for k, o in flat:
            self.side_of.append(sides.setdefault(truth.side_values("k", o.k_assign, k), len(sides)))
        self.sides = list(sides)
        self.side_of = torch.tensor(self.side_of, dtype=torch.long)

    def selected(self, rows, query_values) -> torch.Tensor:
        """Whether each of the options `rows` is selected for a query with these values, each
        distinct key side decided once."""
        side_rows = self.side_of[rows]
        sides, index = torch.unique(side_rows, return_inverse=True)
        decided = torch.tensor([self.truth.selected(self.sides[side], query_values) for side in sides.tolist()],
                               dtype=torch.bool)
        return decided[index]


def _scored_keys(state: ProofState, w, table: _KeyTable, visible, top, qv, dq, dk, query_values,
                 summarise: bool) -> dict:
    """Per visible key position, one KeyOption per combination of its values, for one query:
    its realised score, and how far input errors and the model's rounding may move it.

    With `summarise`, a position's unselected options are two: one at the highest score any of
    them may have, one at the lowest, each exact and as large as the largest of them. The rules
    for every head but a sum head read nothing else of the unselected options, so the bound is
    the same, and a query costs what its selected keys cost, not what all its keys do."""
    rounding, sink = state.rounding, w["sink"]
    u = rounding.u
    gamma = float(rounding.gamma(w["W_Q"].shape[1]))
    q_error = float((qv.abs() * dk).sum() + (dq * dk).sum())
    keys = {k: [] for k in visible}
    if not visible:
        return keys
    rows = ((table.positions >= visible[0]) & (table.positions <= visible[-1])).nonzero()[:, 0]
    positions = table.positions[rows]
    content = table.kv[rows] @ qv
    # the product q.k in the model's dtype, the position term cast to it and added
    size = table.kv_size[rows] @ (qv.abs() + dq)
    term, term_size = _position_terms(w, positions - visible[-1])
    # the model's score is content + (term - top): top, the largest position term, is taken off
    # in float64 before the cast, so the cast and the addition round against the shifted score,
    # not against the term
    shifted = content.abs() + (term - top).abs()
    score = content + term
    error = (q_error + table.k_error[rows] + gamma * size + u * (term_size + abs(top))) + 2 * u * shifted
    # softmax takes the largest score m off before exp: s - m rounds against |s| + |m|
    m = _largest_score_size(score - top, error, sink - top if sink != -math.inf else None)
    # The sink's score rounds too (the cast of sink - top, the subtraction of m); every key's
    # score error takes that on, which covers each comparison with the sink.
    sink_error = 0.0 if sink == -math.inf else u * (2 * abs(sink - top) + m)
    error = error + u * (shifted + m) + sink_error
    selected = table.selected(rows, query_values)
    kept = selected if summarise else torch.ones_like(selected)
    for row, k, is_selected, s, e in zip(rows[kept].tolist(), positions[kept].tolist(), selected[kept].tolist(),
                                         score[kept].tolist(), error[kept].tolist()):
        o = table.options[row]
        keys[k].append(KeyOption(is_selected, s, e, o.value, o.exact, o.size))
    if summarise:
        others = ~selected
        _add_unselected_bounds(keys, table, rows[others], positions[others], score[others], error[others])
    return keys


def _add_unselected_bounds(keys, table: _KeyTable, rows, positions, score, error):
    """Per position, two unselected options: the highest score (plus error) and the lowest
    (minus error) its unselected options may have, as exact scores, with their largest size."""
    if not len(rows):
        return
    first = int(positions.min())
    slot = positions - first
    count = int(slot.max()) + 1
    high = torch.full((count,), -math.inf, dtype=torch.float64).scatter_reduce(0, slot, score + error, "amax")
    low = torch.full((count,), math.inf, dtype=torch.float64).scatter_reduce(0, slot, score - error, "amin")
    sizes = torch.full((count,), -math.inf, dtype=torch.float64).scatter_reduce(
        0, slot, table.sizes[rows], "amax")
    # any one unselected option of the position lends its value vectors (no rule reads them)
    lender = torch.zeros(count, dtype=torch.long).scatter_(0, slot.flip(0), rows.flip(0))
    for i in torch.unique(slot).tolist():
        o = table.options[int(lender[i])]
        size = float(sizes[i])
        keys[first + i] += [KeyOption(False, float(high[i]), 0.0, o.value, o.exact, size),
                            KeyOption(False, float(low[i]), 0.0, o.value, o.exact, size)]


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
    k_rounding: torch.Tensor  # the rounding of its key projection, per key dimension
    v_rounding: torch.Tensor  # the rounding of its value projection, per value dimension
    size: float  # the largest |entry| of its value vector


def _key_options(state: ProofState, nid, mode, k_nodes, k, w, dq, errors) -> list[_KeyOffer]:
    """One _KeyOffer per combination of the key's values at position k (the products for all
    combinations at once)."""
    combos = state.combos(k_nodes, k, nid)
    X = state.vectors(k_nodes, combos, k) + state.position_vector(k)
    KV, V = X @ w["W_K"] + w["b_K"], X @ w["W_V"] + w["b_V"]
    reach = X.abs() + errors
    k_rounding = state.rounding.matmul(reach, w["W_K"], w["b_K"])
    v_rounding = state.rounding.matmul(reach, w["W_V"], w["b_V"])
    k_errors = (KV.abs() @ dq).tolist()
    sizes = V.abs().amax(1).tolist() if V.shape[1] else [0.0] * len(combos)
    options = []
    for i, k_assign in enumerate(combos):
        exact = _exact_value(state, nid, mode, k_assign, w, V[i], k)
        options.append(_KeyOffer(k_assign, KV[i], k_errors[i], V[i], exact, float((V[i] - exact).abs().max()),
                                 k_rounding[i], v_rounding[i], sizes[i]))
    return options


def _query_rounding(state: ProofState, nid, q_nodes, w, errors) -> torch.Tensor:
    """The most the query projection rounds, per query dimension, over every query."""
    worst = torch.zeros(w["W_Q"].shape[1], dtype=torch.float64)
    for q in range(state.n):
        combos = state.combos(q_nodes, q, nid)
        X = state.vectors(q_nodes, combos, q) + state.position_vector(q)
        worst = torch.maximum(worst, state.rounding.matmul(X.abs() + errors, w["W_Q"], w["b_Q"]).amax(0))
    return worst


def _largest(vectors) -> torch.Tensor | float:
    vectors = list(vectors)
    return torch.stack(vectors).amax(0) if vectors else 0.0


def _largest_score_size(scores: torch.Tensor, errors: torch.Tensor, sink) -> float:
    """How large the realised largest score may be, from each score and its error (and the
    sink's score, exact, if there is a sink)."""
    high = float((scores + errors).max()) if len(scores) else -math.inf
    low = float((scores - errors).max()) if len(scores) else -math.inf
    if sink is not None:
        high, low = max(high, sink), max(low, sink)
    if high == -math.inf:
        return 0.0
    return max(abs(high), abs(low))


def _position_terms(w, distances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The score terms keys `distances` back (negative numbers) get from their positions, and the
    sizes of their parts (what the model's float64 arithmetic on them rounds against)."""
    e = distances.to(torch.float64) + w["center"]
    slope, curve = w["slope"] * e, w["curvature"] * e ** 2
    return slope + curve, slope.abs() + curve.abs()


def _output_rounding(state: ProofState, layer, w, largest_value, entries, dims) -> float:
    """What the head's output may lose to rounding after its scores: each softmax weight off by
    a relative rho, the weighted sum of values over `entries` (the keys and the sink), at most
    `largest_value` per value dimension, the product with W_O (a sum over every head's terms
    into a dimension) and the residual addition."""
    rounding = state.rounding
    rho = rounding.softmax_relative(entries)
    mix = float(rounding.gamma(entries))
    z_error = (rho * largest_value + mix * (1 + rho) * largest_value
               + entries * rounding.softmax_absolute(entries) * largest_value)
    z_size = (1 + rho) * (1 + mix) * largest_value
    W_O_layer = state.weights[f"blocks.{layer}.attn.W_O"]
    b_O = state.weights[f"blocks.{layer}.attn.b_O"]
    W_O = w["W_O"].abs()
    worst = 0.0
    for d in dims:
        terms = int((W_O_layer[:, :, d] != 0).sum()) + int(b_O[d] != 0)
        column = W_O[:, d]
        error = float(z_error @ column) + float(rounding.gamma(terms)) * (float(z_size @ column) + abs(float(b_O[d])))
        worst = max(worst, error)
    return worst + residual_rounding(state, dims)


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
