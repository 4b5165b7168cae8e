"""Pass 3: choose how each value lives in the residual stream, and what computes it.

Adds to every node:
  encoding: "categorical" (one dimension per value, one-hot) or "numerical" (one dimension, the value);
  realize: how the value comes to exist —
    "const"     a constant: folded into the biases of whoever reads it;
    "embed"     a function of the token alone (or the position alone): a column of W_E (or W_pos);
    "inline"    such a function used only inside a bigger one: folded into that one's table;
    "derived"   an affine function of values already in the stream (sums, differences, any function
                of one categorical value, any function of a two-valued one): no dimension, no sublayer,
                its readers read it through their own weights;
    "attention" an aggregate: one attention head;
    "width"     selector_width: a head writes w/(w+1) to a helper dimension, an MLP in the same
                layer turns it into w;
    "mlp"       any other elementwise function: hidden units of an MLP;
    "fused"     an elementwise function used only by other MLP functions: computed inside them;
    "readout"   the output `nearest(x, candidates)` of a readable number x, optionally inside a
                chain `T1 if c1 else T2 if c2 else ... nearest(...)` of constant tokens, each with a
                readable two-valued condition: the unembedding scores each candidate c as
                2*c*x - c*c, the nearest wins, each condition lifts its token over everything
                inside it, and no sublayer is needed.
Numerical is the default because it costs one dimension; categorical is chosen where the value is
a token, a program annotates it, or a select compares keys with queries (a table needs one-hots).
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import NamedTuple

import sympy

from dsl.core import Aggregate, Indices, Map, SelectorWidth, Var
from dsl.errors import AdderError
from dsl.ops import affine_coefficients
from dsl.semantics import eval_predicate, num
from compiler.ir.attrs import AT_ZERO, ENCODING, LABEL, MAX_WIDTH, NODE, PER_POSITION, REALIZE, SOURCE, VALUES
from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR
from compiler.ir.reads import constant_args
from compiler.ir.position_terms import AffineMatch, PositionSplit, affine_match, pattern, split_positions

READABLE = {"const", "embed", "derived", "mlp", "attention", "width"}


def predicate_roles(predicate) -> set[str]:
    """Which of k and q a predicate mentions."""
    if isinstance(predicate, Var):
        return {predicate.role}
    roles = set()
    for arg in getattr(predicate, "args", ()):
        roles |= predicate_roles(arg)
    return roles


# A term over two values decides its truth on every pair of their values; past this many pairs
# it is left to the weights (a table) rather than enumerated.
_CONSTANT_TERM_PAIRS = 10_000


def constant_term(term, graph, base: int):
    """True or False when a select term holds for every key and query value or for none (over the
    value sets, which over-approximate, so the fold is sound), else None. Such a term selects
    nothing a weight could express: true, it is left out; false, nothing is ever selected. A
    weight for it would add the same score to every key but not to the sink, which is no
    selection at all."""
    roles = predicate_roles(term.predicate)
    keys = graph.nodes[term.keys.id][VALUES] if "k" in roles else (None,)
    queries = graph.nodes[term.queries.id][VALUES] if "q" in roles else (None,)
    if len(keys) * len(queries) > _CONSTANT_TERM_PAIRS:
        return None
    return _constant_truth(term.predicate, keys, queries, base)


@lru_cache(maxsize=1024)
def _constant_truth(predicate, keys: tuple, queries: tuple, base: int):
    # A one-sided predicate is evaluated with the value on both sides, as its weights read it.
    pairs = [(k, q) for k in keys for q in queries] if keys[0] is not None and queries[0] is not None else \
        [(v, v) for v in (keys if keys[0] is not None else queries)]
    truth = {bool(eval_predicate(predicate, k, q, base)) for k, q in pairs}
    return truth.pop() if len(truth) == 1 else None


def live_terms(selector, graph, base: int) -> list:
    """The terms of a select that weights must express: those not true for every value."""
    return [t for t in selector.terms if constant_term(t, graph, base) is not True]


def relative_term(term, n_ctx: int, base: int):
    """("offset", c) when a term on indices selects exactly the key c positions back,
    ("window", w) when it selects the keys at most w positions back, else None. Such terms need no
    table: a curvature of the ALiBi score or a sliding window expresses them with a constant."""
    if not (isinstance(term.keys, Indices) and isinstance(term.queries, Indices)):
        return None
    return _relative_distances(term.predicate, n_ctx, base)


_K, _Q, _D = sympy.symbols("k q d", integer=True)
_RELATIONS = {"eq": sympy.Eq, "ne": sympy.Ne, "lt": sympy.Lt, "le": sympy.Le, "gt": sympy.Gt, "ge": sympy.Ge}
_CONNECTIVES = {"and": sympy.And, "or": sympy.Or, "not": sympy.Not}


def position_splits(terms, graph, n_ctx: int, base: int) -> dict[int, PositionSplit]:
    """For the terms of one select (live terms, in order): index -> how a term on positions alone
    splits into one-sided parts and a distance part (compiler.ir.position_terms), for each
    term that is not already a relative term and splits. The ends of a window take a convex
    parabola, which no other parabola of the same head may share: such a term, when the head has
    another, stays a table."""
    splits, curved = {}, 0
    for index, term in enumerate(terms):
        kind = relative_term(term, n_ctx, base)
        if kind is not None:
            curved += kind[0] == "offset"
            continue
        split = position_split(term, graph, base)
        if split is not None:
            splits[index] = split
            curved += split.relative is not None and split.relative[0] in ("offset", "ends")
    if curved > 1:
        splits = {i: s for i, s in splits.items() if s.relative is None or s.relative[0] != "ends"}
    return splits


def position_lines(terms, graph, n_ctx: int, base: int) -> dict[int, AffineMatch]:
    """For the terms of one select: index -> the line k = beta - q (in positions) a term selects
    on (a reversal, compiler.ir.position_terms.affine_match), for each term whose two sides are
    affine in the position (position_affine) and that is neither a relative term nor split. Such a term scores M - M*(k + q - beta)^2: the head's curvature
    gives -M*(k - q)^2, one query-key dimension the rest, so the head may have no other
    parabola. A line whose top falls on a key of a query that selects nothing stays a table."""
    splits = position_splits(terms, graph, n_ctx, base)
    curved = any(s.relative is not None and s.relative[0] in ("offset", "ends") for s in splits.values())
    lines = {}
    for index, term in enumerate(terms):
        kind = relative_term(term, n_ctx, base)
        curved = curved or (kind is not None and kind[0] == "offset")
        if index in splits or kind is not None or predicate_roles(term.predicate) != {"k", "q"}:
            continue
        if position_affine(graph, term.keys.id) is None or position_affine(graph, term.queries.id) is None:
            continue
        match = affine_match(*_position_sides(term, graph), base)
        if match is not None and match.alpha == -1 and line_realised(match, n_ctx):
            lines[index] = match
    return {} if curved or len(lines) > 1 else lines


def position_affine(graph, nid) -> tuple | None:
    """(a, b) when the value is a*position + b at every position (a != 0), read as a number, so
    the position is (value - b) / a: `indices`, and place numbers like `end(a) - indices`."""
    attrs = graph.nodes[nid]
    if attrs[SOURCE] != "position":
        return None
    values = attrs[PER_POSITION]
    if len(values) < 2 or any(isinstance(v, (str, bool)) for v in values):
        return None
    a, b = sympy.nsimplify(values[1] - values[0]), sympy.nsimplify(values[0])
    if a == 0 or any(sympy.nsimplify(v) != a * p + b for p, v in enumerate(values)):
        return None
    return a, b


def line_realised(match: AffineMatch, n_ctx: int) -> bool:
    """The parabola's top, the key beta - q, is a key only for the queries that select it."""
    return all(not 0 <= match.beta - q <= q for q in range(n_ctx)
               if match.query_positions is not None and q not in match.query_positions)


def position_parts(graph, nid, n_ctx: int, base: int) -> list[tuple]:
    """The one-sided parts of an aggregate's terms on positions alone, as (index of the live term,
    "q" or "k", its split, the term's pattern over positions): each part is a 0/1 column of W_pos
    its head reads (which positions it holds, compiler.passes.allocate chooses)."""
    node = graph.nodes[nid][NODE]
    terms = live_terms(node.selector, graph, base)
    parts = []
    for index, split in sorted(position_splits(terms, graph, n_ctx, base).items()):
        holds = pattern(*_position_sides(terms[index], graph), base)
        for role, positions in (("q", split.query_positions), ("k", split.key_positions)):
            if positions is not None:
                parts.append((index, role, split, holds))
    return parts


def position_split(term, graph, base: int) -> PositionSplit | None:
    """The split of a term comparing two values fixed by the position, else None."""
    if predicate_roles(term.predicate) != {"k", "q"}:
        return None
    keys, queries = graph.nodes[term.keys.id], graph.nodes[term.queries.id]
    if keys[SOURCE] != "position" or queries[SOURCE] != "position":
        return None
    return split_positions(*_position_sides(term, graph), base)


def _position_sides(term, graph) -> tuple:
    return (term.predicate, tuple(graph.nodes[term.keys.id][PER_POSITION]),
            tuple(graph.nodes[term.queries.id][PER_POSITION]))


def _symbolic(predicate):
    """The predicate as a sympy expression in k and q, comparisons written as (a - b) REL 0."""
    if isinstance(predicate, Var):
        return _K if predicate.role == "k" else _Q
    if not isinstance(predicate, Map):
        value = predicate.value
        if isinstance(value, str):
            raise ValueError("token")
        return sympy.true if value is True else sympy.false if value is False else sympy.sympify(value)
    args = [_symbolic(a) for a in predicate.args]
    op = predicate.op
    if op in _RELATIONS:
        return _RELATIONS[op](sympy.expand(args[0] - args[1]), 0)
    if op in _CONNECTIVES:
        return _CONNECTIVES[op](*args)
    factors = affine_coefficients(op, tuple(a if a.is_number else None for a in args))
    if factors is None:
        raise ValueError(op)
    return sum((a * f for a, f in zip(args, factors) if f is not None), sympy.Integer(0))


@lru_cache(maxsize=256)
def _relative_distances(predicate, n_ctx, base):
    # Substitute k = q - d: if q cancels from every comparison, the predicate depends on the
    # distance alone and is decided for each d once, instead of for every (k, q) pair.
    try:
        shifted = _symbolic(predicate).subs(_K, _Q - _D)
    except (ValueError, TypeError):
        return None
    atoms = shifted.atoms(sympy.core.relational.Relational)
    if any(_Q in sympy.expand(atom.lhs - atom.rhs).free_symbols for atom in atoms):
        return None
    distances = {d for d in range(n_ctx) if bool(shifted.subs(_D, d))}
    if not distances:
        return None
    if len(distances) == 1:
        return ("offset", next(iter(distances)))
    if distances == set(range(max(distances) + 1)):
        return ("window", max(distances))
    return None


def _summed_by_a_head(attrs) -> bool:
    node = attrs[NODE]
    return isinstance(node, Aggregate) and node.mode == "sum" and attrs[SOURCE] == "mixed" and \
        attrs.get(MAX_WIDTH, 0) > 1 and len(attrs[VALUES]) > 1


def head_mode(attrs) -> str:
    """The mode an aggregate's head runs in: first or last of at most one key is a mean (there
    is nothing to break ties between); selector_width is "width"."""
    node = attrs[NODE]
    if isinstance(node, SelectorWidth):
        return "width"
    return "mean" if node.mode in ("first", "last") and attrs[MAX_WIDTH] <= 1 else node.mode


def lone_offset(graph, nid, n_ctx: int, base: int):
    """c when a mean head selects exactly the key c back and needs no sink (position 0 holds its
    default, so before the key exists the nearest key, position 0, reads as the default), else
    None."""
    attrs = graph.nodes[nid]
    node = attrs[NODE]
    if attrs[REALIZE] != "attention" or head_mode(attrs) != "mean":
        return None
    terms = live_terms(node.selector, graph, base)
    if len(terms) != 1:
        return None
    kind = relative_term(terms[0], n_ctx, base)
    value = graph.nodes[node.value.id]
    if kind is None or kind[0] != "offset" or value.get(AT_ZERO, object()) != node.default:
        return None
    return kind[1]


def indicator_is_affine(values, truth) -> bool:
    """Whether [predicate] over these numeric values is an affine function of the value."""
    points = [(num(v), sympy.Integer(int(bool(t)))) for v, t in zip(values, truth)]
    if len(points) <= 2:
        return True
    (x0, y0), (x1, y1) = points[0], points[-1]
    slope = (y1 - y0) / (x1 - x0)
    return all(y == y0 + slope * (x - x0) for x, y in points)


@compiler_pass(reads={NODE, LABEL, SOURCE, VALUES, MAX_WIDTH, PER_POSITION}, adds={ENCODING, REALIZE})
def choose_encodings(ir: CompileIR) -> CompileIR:
    graph = ir.graph.copy()
    program = ir.program
    base = program.layout.base

    def fail(nid, message, hint=None):
        node = graph.nodes[nid][NODE]
        raise AdderError(message, node.span, program.sources.get(node.span.file), hint)

    needs_categorical: dict[int, str] = {program.output.id: "it is the output"}
    for nid in graph.nodes:
        node = graph.nodes[nid][NODE]
        if node.type == "token":
            needs_categorical.setdefault(nid, "it holds tokens")
        if isinstance(node, (Aggregate, SelectorWidth)):
            terms = live_terms(node.selector, graph, base)
            splits = position_splits(terms, graph, program.layout.n_ctx, base)
            lines = position_lines(terms, graph, program.layout.n_ctx, base)
            for index, term in enumerate(terms):
                roles = predicate_roles(term.predicate)
                if relative_term(term, program.layout.n_ctx, base):
                    continue  # a position-relative term reads nothing from the residual stream
                if index in splits:
                    continue  # its one-sided parts are columns of W_pos of their own
                if index in lines:
                    continue  # a parabola in the positions, read from `indices` as a number
                if roles == {"k", "q"}:
                    for side in (term.keys, term.queries):
                        needs_categorical.setdefault(side.id, "a select compares it with another value")
                for role, side in (("k", term.keys), ("q", term.queries)):
                    if roles == {role} and side.type != "token":
                        values = graph.nodes[side.id][VALUES]
                        truth = [eval_predicate(term.predicate, v, v, base) for v in values]
                        if not indicator_is_affine(values, truth):
                            needs_categorical.setdefault(side.id, "a select tests it with a non-linear predicate")
        if isinstance(node, Aggregate) and (node.type == "token" or program.encodings.get(nid) == "categorical"):
            if node.mode == "mean":
                needs_categorical.setdefault(node.value.id, "a categorical mean aggregates it")
    # An aggregate stored one-hot carries its value one-hot through the head: the value must be
    # categorical too (a two-valued number reads as one-hot exactly, anything wider does not).
    changed = True
    while changed:
        changed = False
        for nid in graph.nodes:
            node = graph.nodes[nid][NODE]
            categorical = nid in needs_categorical or program.encodings.get(nid) == "categorical"
            if isinstance(node, Aggregate) and categorical and node.value.id not in needs_categorical and \
                    len(graph.nodes[node.value.id][VALUES]) > 2:
                needs_categorical[node.value.id] = f"the one-hot aggregate '{graph.nodes[nid][LABEL]}' carries it"
                changed = True
    for nid in graph.nodes:
        attrs = graph.nodes[nid]
        declared = program.encodings.get(nid)
        if declared == "numerical" and nid in needs_categorical:
            fail(nid, f"'{attrs[LABEL]}' is declared numerical, but it must be categorical: "
                      f"{needs_categorical[nid]}", "remove the ': numerical' annotation")
        attrs[ENCODING] = "categorical" if (declared == "categorical" or nid in needs_categorical) else "numerical"
        if attrs[ENCODING] == "categorical" and _summed_by_a_head(attrs):
            # A head adds its keys' one-hots: a histogram of the values, not the one-hot of their sum.
            why = needs_categorical.get(nid, "it is declared categorical")
            fail(nid, f"'{attrs[LABEL]}' is a sum over up to {attrs[MAX_WIDTH]} keys, which a head computes as a "
                      f"number: it cannot be categorical, but {why}",
                 "read it through a function, e.g. `s % 100` or `min(s, 9)` (an MLP writes that one-hot), "
                 "or remove the ': categorical' annotation")

    for nid in sorted(graph.nodes):
        attrs = graph.nodes[nid]
        node = attrs[NODE]
        consumers = list(graph.successors(nid))
        if attrs[SOURCE] == "const" or len(attrs[VALUES]) == 1:
            # One value over every input is a constant wherever it comes from (an aggregate whose
            # select never selects, a comparison no input satisfies): folded into its readers.
            attrs[REALIZE] = "const"
        elif attrs[SOURCE] in ("token", "position"):
            leaves_source = any(graph.nodes[c][SOURCE] != attrs[SOURCE] for c in consumers)
            attrs[REALIZE] = "embed" if (leaves_source or nid == program.output.id) else "inline"
            # An affine function of embedded values (10 * value) reads their columns: no column
            # of its own.
            if attrs[REALIZE] == "embed" and nid != program.output.id and isinstance(node, Map) \
                    and _derivable(node, attrs, graph) \
                    and all(graph.nodes[a.id][REALIZE] in ("embed", "const") for a in node.args):
                attrs[REALIZE] = "derived"
        elif isinstance(node, Aggregate):
            attrs[REALIZE] = "attention"
        elif isinstance(node, SelectorWidth):
            attrs[REALIZE] = "width"
        elif nid in readout_nodes(graph, program.output.id):
            attrs[REALIZE] = "readout"
        elif isinstance(node, Map):
            attrs[REALIZE] = "derived" if _derivable(node, attrs, graph) else "mlp"
    _absorb_single_input_mixes(graph, program.output.id)
    # An MLP value read only by other MLP functions need not be stored: they compute it themselves.
    for nid in sorted(graph.nodes, reverse=True):
        attrs = graph.nodes[nid]
        consumers = list(graph.successors(nid))
        if attrs.get(REALIZE) == "mlp" and consumers and nid != program.output.id and all(
                graph.nodes[c][REALIZE] in ("mlp", "fused") for c in consumers):
            attrs[REALIZE] = "fused"
    return replace(ir, graph=graph)


def _absorb_single_input_mixes(graph, output_id):
    """A derived value mixing a number x with MLP functions of that same x (x - 100*(x >= 95))
    would store each function in a dimension of its own and make every reader read them all.
    It is one function of x instead: one MLP computes it whole (and allocate may then update
    x's dimension in place), and the functions it absorbs are computed inside it."""
    for nid in sorted(graph.nodes):
        attrs = graph.nodes[nid]
        if attrs.get(REALIZE) != "derived" or attrs[ENCODING] != "numerical" or len(_leaves(graph, nid)) < 2:
            continue
        inside, frontier, stack = set(), set(), [p for p in graph.predecessors(nid)]
        while stack:
            pid = stack.pop()
            p = graph.nodes[pid]
            private = list(graph.successors(pid)) and all(r == nid or r in inside for r in graph.successors(pid)) \
                and pid != output_id
            if p[REALIZE] == "const":
                continue
            computed = p[REALIZE] in ("mlp", "fused") or (p[REALIZE] == "derived" and _computes(graph, pid))
            if private and computed and p[ENCODING] == "numerical":
                inside.add(pid)
                stack.extend(graph.predecessors(pid))
            else:
                frontier.add(pid)
        absorbed = [p for p in inside if graph.nodes[p][REALIZE] in ("mlp", "fused")]
        if len(frontier) != 1 or not absorbed or graph.nodes[next(iter(frontier))][ENCODING] != "numerical":
            continue
        attrs[REALIZE] = "mlp"
        for pid in inside:
            graph.nodes[pid][REALIZE] = "fused"


def _leaves(graph, nid) -> set:
    """The stored values a derived value reads (through derived values)."""
    out = set()
    for p in graph.predecessors(nid):
        realize = graph.nodes[p][REALIZE]
        if realize == "derived":
            out |= _leaves(graph, p)
        elif realize != "const":
            out.add(p)
    return out


def _computes(graph, nid) -> bool:
    """Whether a derived value has an MLP function under it (through derived values only)."""
    return any(graph.nodes[p][REALIZE] in ("mlp", "fused")
               or (graph.nodes[p][REALIZE] == "derived" and _computes(graph, p)) for p in graph.predecessors(nid))


class ReadoutLift(NamedTuple):
    """One level of a readout chain: `token` wins wherever `condition` equals `when`."""
    node: Map  # the if_else
    condition: object
    token: str
    when: bool


def readout_parts(graph, output_id):
    """(nearest node, its chain of ReadoutLift, outermost first) when the output can be read out
    by the unembedding alone, else None. Decided on realisations so far."""
    readable = lambda n: graph.nodes[n.id].get(REALIZE) in READABLE
    node, lifts = graph.nodes[output_id][NODE], []
    while isinstance(node, Map) and node.op == "if_else":
        condition, then, otherwise = node.args
        for token_side, other, when in ((then, otherwise, True), (otherwise, then, False)):
            if graph.nodes[token_side.id].get(REALIZE) == "const" and isinstance(other, Map) and \
                    other.op in ("if_else", "nearest") and graph.nodes[other.id].get(REALIZE) != "const" \
                    and readable(condition) and len(graph.nodes[condition.id][VALUES]) <= 2:
                lifts.append(ReadoutLift(node, condition, token_side.value, when))
                node = other
                break
        else:
            return None
    # A nearest that value sets found constant is a token like the chain's: no readout. Each token
    # of the chain owns its column of W_U, so it may be neither a candidate nor another level's.
    if not (isinstance(node, Map) and node.op == "nearest" and readable(node.args[0])):
        return None
    tokens = [lift.token for lift in lifts]
    if len(set(tokens)) < len(tokens) or set(tokens) & set(dict(node.args[1].value)):
        return None
    return node, tuple(lifts)


def readout_nodes(graph, output_id) -> set:
    parts = readout_parts(graph, output_id)
    if parts is None:
        return set()
    return {output_id, parts[0].id} | {lift.node.id for lift in parts[1]}


def _derivable(node: Map, attrs, graph) -> bool:
    inputs = [a for a in node.args if graph.nodes[a.id][REALIZE] != "const"]
    if any(graph.nodes[a.id][REALIZE] not in READABLE for a in inputs):
        return False
    if len(inputs) == 1:
        only = graph.nodes[inputs[0].id]
        if only[ENCODING] == "categorical" or len(only[VALUES]) <= 2:
            return True
    if attrs[ENCODING] != "numerical" or any(a.type == "token" for a in inputs):
        return False
    return affine_coefficients(node.op, constant_args(node, graph)) is not None
