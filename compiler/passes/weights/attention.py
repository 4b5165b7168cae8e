"""One attention head per aggregate: scores from the select's terms, values from the aggregated value.

Scores. Each term of a select adds M to the score of a key it selects, so the selected keys score
T*M (T terms) and every other key at most (T-1)*M. A term comparing keys with queries is a table
over their one-hots; a term on keys (or queries) alone is a linear read of the indicator.
The "attend to nothing" slot (the sink) sits just under the selected keys, so it takes the weight
only when nothing is selected and the output is then 0, which reads back as the default. A head
that selects one key at a fixed offset needs no sink when position 0 always holds the default.

Modes. mean: equal scores, so the softmax averages. first/last: an ALiBi slope of -lambda/+lambda
per position makes the earliest/latest selected key win by a factor e^lambda over the next.
sum: the sink becomes an anchor far above every key, so each key's weight is e^(score - anchor)
and W_O multiplies by e^anchor; a decay d adds the slope ln(d), weighting a key d^-(q-k).

Every constant is derived from the value sets: the gap G is chosen so that the worst-case leaked
weight times the largest value stays below the head's tolerance: TOLERANCE, or less where two of
the head's own values lie closer than that (a decayed sum's 10^-9 steps, a mean's fractions), since
its readers put their steps a quarter of that distance away from every value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import sympy

from dsl.errors import AdderError
from dsl.semantics import eval_predicate, num
from compiler.ir.attrs import ENCODING, HELPER_DIM, LABEL, NODE, POSITION_FEATURES, SHARE, VALUES
from compiler.passes.encodings import (
    constant_term, head_mode, live_terms, lone_offset, position_affine, position_lines, position_splits,
    predicate_roles, relative_term,
)
from compiler.ir.compile_ir import Affine, CompileIR
from compiler.ir.reads import Reads
from compiler.ir.weights import Head

TOLERANCE = sympy.Rational(1, 10**6)


# Of the quarter gap a reader leaves around each value, the share one kind of head error may use:
# the leak past unselected keys and the anchor's share of a sum's denominator each take one, and
# float rounding of the output must fit in what is left.
GAP_SHARE = 16


def score_gap(n_keys: int, magnitude, tolerance=TOLERANCE) -> sympy.Integer:
    """Smallest whole G with n_keys * magnitude * e^-G <= tolerance."""
    bound = float(n_keys * max(magnitude, 1) / tolerance)
    return sympy.Integer(math.ceil(math.log(bound)))


def head_tolerance(attrs):
    """How far the head's output may stray from its value: TOLERANCE, or a share of the smallest
    distance between two of its values where that is smaller (a fixed tolerance would let the leak
    cross a reader's step between two values that close)."""
    if attrs[ENCODING] == "categorical":
        return TOLERANCE
    numbers = sorted({num(v) for v in attrs[VALUES] if not isinstance(v, str)})
    closest = min((b - a for a, b in zip(numbers, numbers[1:])), default=None)
    if closest is None or closest >= TOLERANCE * GAP_SHARE:
        return TOLERANCE
    return closest / GAP_SHARE


@dataclass
class _HeadPlan:
    """What every part of one head's construction reads: its node, the context, the gap G and
    the number T of score terms, and how to fail at the node's source."""
    ir: CompileIR
    nid: int
    G: sympy.Integer
    tolerance: sympy.Expr
    T: int = 0
    window: int | None = None  # keys further back than this are masked

    @property
    def reach(self) -> int:
        """The largest distance back of a key the head can see."""
        return self.n_ctx - 1 if self.window is None else min(self.n_ctx - 1, self.window)

    @property
    def attrs(self) -> dict:
        return self.ir.graph.nodes[self.nid]

    @property
    def node(self):
        return self.attrs["node"]

    @property
    def n_ctx(self) -> int:
        return self.ir.program.layout.n_ctx

    def fail(self, message, hint=None):
        node = self.node
        raise AdderError(message, node.span, self.ir.program.sources.get(node.span.file), hint)


def build_head(ir: CompileIR, nid: int, reads: Reads) -> Head:
    attrs = ir.graph.nodes[nid]
    node = attrs[NODE]
    # For width, the sink scores like a selected key and each key carries 1: the output is w/(w+1).
    mode = head_mode(attrs)
    head = Head(nid, attrs[LABEL], mode)
    categorical = attrs[ENCODING] == "categorical"
    magnitude = 1 if categorical or mode == "width" else \
        max(abs(num(v) - num(node.default)) for v in attrs[VALUES])
    tolerance = head_tolerance(attrs) if mode != "width" else TOLERANCE
    plan = _HeadPlan(ir, nid, score_gap(ir.program.layout.n_ctx, magnitude, tolerance), tolerance)

    terms, relative = _head_terms(plan)
    offsets = [c for kind, c in relative if kind == "offset"]
    windows = [w for kind, w in relative if kind in ("window", "ends")]
    ends = [w for kind, w in relative if kind == "ends"]
    plan.T = len(terms) + len(offsets) + len(ends)
    plan.window = min(windows) if windows else None
    M = MODE_SCORES[mode](head, plan)
    head.constants.update({"M": M, "G": plan.G, "terms": plan.T})
    _distance_terms(head, plan, M, offsets, windows, ends)
    _score_weights(head, plan, M, terms, reads)
    if mode == "width":
        head.b_V[0] = sympy.Integer(1)
        head.W_O[(0, attrs[HELPER_DIM])] = sympy.Integer(1)
    else:
        _value_weights(head, plan, reads)
    return head


def _head_terms(plan: _HeadPlan):
    """The select's terms as the head scores them: (term, roles, truth) for each term read from the
    residual stream (truth: value -> bool for a one-sided term, the read of a W_pos column for a
    one-sided part of a term on positions, None for a table), and the
    distance parts ("offset", c), ("window", w), ("ends", w) the ALiBi terms express."""
    graph, base = plan.ir.graph, plan.ir.program.layout.base
    live = live_terms(plan.node.selector, graph, base)
    splits = position_splits(live, graph, plan.n_ctx, base)
    lines = position_lines(live, graph, plan.n_ctx, base)
    columns = {part: _feature_read(dim, complemented)
               for part, (dim, complemented, _) in plan.attrs.get(POSITION_FEATURES, {}).items()}
    terms, relative = [], []
    for index, term in enumerate(live):
        if constant_term(term, graph, base) is False:
            plan.fail("this select never selects anything (its predicate is false for every value)")
        kind = relative_term(term, plan.n_ctx, base)
        if kind is not None:
            relative.append(kind)
        elif index in lines:
            terms.append((term, {"line"}, lines[index]))
        elif index in splits:
            split = splits[index]
            if split.relative is not None:
                relative.append(split.relative)
            terms += [(term, {role}, columns[(index, role)]) for role in ("q", "k") if (index, role) in columns]
        else:
            roles = predicate_roles(term.predicate)
            truth = None
            if roles != {"k", "q"}:  # a one-sided predicate, evaluated with the value on both sides
                side = term.keys if roles == {"k"} else term.queries
                truth = {v: bool(eval_predicate(term.predicate, v, v, base)) for v in graph.nodes[side.id][VALUES]}
            terms.append((term, roles, truth))
    return terms, relative


def _feature_read(dim: int, complemented: bool) -> Affine:
    """A one-sided part of a term on positions, read from its 0/1 column of W_pos
    (compiler.passes.allocate chose it)."""
    return Affine({dim: sympy.Integer(-1)}, sympy.Integer(1)) if complemented else Affine({dim: sympy.Integer(1)})


def _ordered_scores(head: Head, plan: _HeadPlan):
    """first/last: a slope of -G/+G per position makes the earliest/latest selected key win.
    M must lift a selected key over every unselected one the head sees, whatever their distance:
    a window bounds it. (A smaller M matters in float32: the score error a key's input error
    causes grows with M, and it must stay well under G.)"""
    span = plan.G * plan.reach
    M = span + 2 * plan.G
    head.slope = -plan.G if head.mode == "first" else plan.G
    low = 0 if head.mode == "first" else -span
    head.sink = plan.T * M + low - plan.G
    return M


def _mean_scores(head: Head, plan: _HeadPlan):
    M = 2 * plan.G
    if "paired_with" in plan.attrs:
        # Every other key scores at least 2M - ln(r) under the nearer of the pair: enough is
        # G, and a smaller M keeps the scores small, which float32 needs to resolve ln(r).
        M = sympy.Integer(math.ceil((plan.G + math.log(plan.attrs["paired_with"][1])) / 2) + 1)
    head.sink = plan.T * M - plan.G
    return M


def _width_scores(head: Head, plan: _HeadPlan):
    M = plan.G + sympy.Integer(math.ceil(math.log(plan.n_ctx + 1)))  # a whole sink's weight over n keys
    head.sink = plan.T * M
    return M


def _sum_scores(head: Head, plan: _HeadPlan):
    """sum: the sink is an anchor far above every key, so each key's weight is e^(score - anchor)."""
    node = plan.node
    if num(node.default) != 0:
        plan.fail("sum(...) compiles only with default 0", "add the default afterwards with a conditional")
    total = max(abs(num(v)) for v in plan.attrs["values"])
    anchor = score_gap(plan.n_ctx, total, plan.tolerance)
    M = plan.G
    head.sink = plan.T * M + anchor
    if node.decay is not None:
        head.slope = sympy.log(sympy.sympify(node.decay))
    head.constants["anchor"] = anchor
    return M


# The score per selected term M, the sink and the slope, by head mode (they set head.sink and
# head.slope and return M).
MODE_SCORES = {"first": _ordered_scores, "last": _ordered_scores, "mean": _mean_scores,
               "width": _width_scores, "sum": _sum_scores}


def _distance_terms(head: Head, plan: _HeadPlan, M, offsets, windows, ends):
    """Terms on the key's distance alone: offsets as a parabola, windows as a mask, the two ends
    of a window as a convex parabola under its mask."""
    # An offset term "the key c back" scores M - M*(d + c)^2 with d = k - q: M at that key, at most
    # 0 at any other, as a table would. Written as slope*d + curvature*d^2 the constant M - M*c^2
    # is taken off the sink instead (only differences with the sink matter); below, the model's
    # centred form replaces that.
    for c in offsets:
        head.curvature += -M
        head.slope += -2 * M * c
        head.sink -= M - M * c * c
    for w in ends:
        # The ends of a window w (0 and w back) score M under gamma*d*(d + w) + M, every key
        # between them at most M - gamma*(w - 1) = 0; the window masks the keys further back.
        gamma = M / (w - 1)
        head.curvature += gamma
        head.slope += gamma * w
        head.sink -= M
    if windows:
        head.window = min(windows)
    # Position 0 holds the same values in every input of a layout that starts with a fixed token;
    # when it holds the default, it can stand in for the sink.
    if lone_offset(plan.ir.graph, plan.nid, plan.n_ctx, plan.ir.program.layout.base) is not None:
        # Before the offset key exists the closest key is position 0, at least 3M above the rest.
        head.sink = None
    if "paired_with" in plan.attrs:
        # Two neighbouring keys, c and c + 1 back (compiler.passes.pair_heads): the parabola's top moves
        # half a position further back and tilts by ln(r), so the nearer key scores ln(r) more.
        (c,), ratio = offsets, plan.attrs["paired_with"][1]
        head.slope += -M + sympy.log(ratio)
        head.constants["pair ratio"] = ratio
    if head.curvature != 0:
        # The model measures the distance from a centre, e = d + center: the parabola's own top,
        # so the scores near it stay small numbers and a tilt like ln(r) is not lost next to
        # M*(2c + 1) in float32. The whole-number part of the slope moves into the centre.
        whole, tilt = sympy.sympify(head.slope).as_coeff_Add()
        head.center = whole / (2 * head.curvature)
        head.slope = tilt
        if head.sink is not None:  # the same shift for every key: keep the sink level with them
            head.sink += head.curvature * head.center ** 2 + tilt * head.center


def _score_weights(head: Head, plan: _HeadPlan, M, terms, reads: Reads):
    """One query/key dimension per key value a key-query term selects, or per one-sided term."""
    graph = plan.ir.graph
    base = plan.ir.program.layout.base
    qk_dim = 0
    for term, roles, truth in terms:
        if roles == {"line"}:
            qk_dim = _line_scores(head, graph, M, term, truth.beta, reads, qk_dim)
        elif roles == {"k", "q"}:
            qk_dim = _table_scores(head, term, M, reads, base, qk_dim)
        else:
            side = term.keys if roles == {"k"} else term.queries
            indicator = truth if isinstance(truth, Affine) else _indicator(reads, graph, side.id, truth)
            if roles == {"k"}:
                head.add_read("K", qk_dim, indicator)
                head.b_Q[qk_dim] = M
            else:
                head.add_read("Q", qk_dim, indicator, M)
                head.b_K[qk_dim] = sympy.Integer(1)
            qk_dim += 1


def _table_scores(head: Head, term, M, reads: Reads, base, qk_dim: int) -> int:
    """A term comparing keys with queries: one dimension per key value, its key the value's
    one-hot read and its query M times the query values it selects.

    A query value that selects most key values starts from M for every key instead (one dimension,
    a constant key against the query's read), and its row keeps only the key values it does not
    select, at -M: the key's one-hot reads add up to exactly 1. The score is the same; the query
    vector is nonzero in fewer key dimensions, and so fewer of their errors reach the score, each
    times M (what float32 needs), and W_Q has fewer entries."""
    keys, queries = reads.categorical(term.keys.id), reads.categorical(term.queries.id)
    chosen = {(vk, vq): bool(eval_predicate(term.predicate, vk, vq, base)) for vk in keys for vq in queries}
    start = {vq: M if 2 * sum(chosen[vk, vq] for vk in keys) > len(keys) else 0 for vq in queries}
    if any(start.values()):
        baseline = Affine()
        for vq, query_read in queries.items():
            baseline = baseline + query_read.scale(start[vq])
        head.b_K[qk_dim] = sympy.Integer(1)
        head.add_read("Q", qk_dim, baseline)
        qk_dim += 1
    for vk, key_read in keys.items():
        column = Affine()
        for vq, query_read in queries.items():
            change = (M if chosen[vk, vq] else 0) - start[vq]
            if change:
                column = column + query_read.scale(change)
        if not column.coeffs and column.bias == 0:
            continue
        head.add_read("K", qk_dim, key_read)
        head.add_read("Q", qk_dim, column)
        qk_dim += 1
    return qk_dim


def _position_read(graph, reads: Reads, nid) -> Affine:
    """The position, read off a value affine in it: (value - b) / a."""
    a, b = position_affine(graph, nid)
    return (reads.numeric(nid) + Affine.constant(-b)).scale(1 / a)


def _line_scores(head: Head, graph, M, term, beta, reads: Reads, qk_dim: int) -> int:
    """The key beta - q (a reversal) scores M - M*(k + q - beta)^2: M there, at most 0 at any
    other key, as a table would. That is -M*(k - q)^2, the head's curvature, plus
    -M*(4kq - 2*beta*k - 2*beta*q + beta^2) + M: one dimension with the key's position against
    (2*beta - 4q)*M, one with a constant key against the rest. Reads `indices` as a number."""
    beta = sympy.Rational(beta.numerator, beta.denominator)
    k, q = (_position_read(graph, reads, side.id) for side in (term.keys, term.queries))
    head.curvature += -M
    head.add_read("K", qk_dim, k)
    head.add_read("Q", qk_dim, q.scale(-4 * M) + Affine.constant(2 * M * beta))
    head.b_K[qk_dim + 1] = sympy.Integer(1)
    head.add_read("Q", qk_dim + 1, q.scale(2 * M * beta) + Affine.constant(M - M * beta ** 2))
    return qk_dim + 2


def _value_weights(head: Head, plan: _HeadPlan, reads: Reads):
    """The aggregated value, less the default, through V and O (a sum's W_O undoes its anchor)."""
    graph, attrs, node = plan.ir.graph, plan.attrs, plan.node
    scale = sympy.exp(head.constants["anchor"]) if head.mode == "sum" else sympy.Integer(1)
    if attrs["encoding"] == "categorical":
        value_reads = reads.categorical(node.value.id)
        v_dim = 0
        for value, out_dim in zip(attrs["values"], attrs["dims"]):
            if value == node.default or value not in value_reads:
                continue
            head.add_read("V", v_dim, value_reads[value])
            head.W_O[(v_dim, out_dim)] = scale
            v_dim += 1
    else:
        value_read = reads.numeric(node.value.id) + Affine.constant(-num(node.default))
        head.add_read("V", 0, value_read)
        coefficient = attrs.get("share", (None, 1))[1]
        if "paired_with" in attrs:  # weights r/(r+1) and 1/(r+1): the output weight restores both terms
            coefficient += graph.nodes[attrs["paired_with"][0]][SHARE][1]
        head.W_O[(0, attrs["dims"][0])] = scale * coefficient


def _indicator(reads: Reads, graph, nid, truth: dict) -> Affine:
    """[truth of the value] as a linear read of a value: through its one-hot, or exactly affine."""
    attrs = graph.nodes[nid]
    if attrs[ENCODING] == "categorical":
        total = Affine()
        for value, indicator in reads.categorical(nid).items():
            if truth[value]:
                total = total + indicator
        return total
    values = attrs[VALUES]
    y0 = sympy.Integer(int(truth[values[0]]))
    if len(values) == 1:
        return Affine.constant(y0)
    y1 = sympy.Integer(int(truth[values[-1]]))
    slope = (y1 - y0) / (num(values[-1]) - num(values[0]))
    return reads.numeric(nid).scale(slope) + Affine.constant(y0 - slope * num(values[0]))
