"""Pass 2: value sets, exactly, with sympy.

Adds to every node:
  values: the sorted tuple of every value the node can take, over every input of the layout;
  source: "const", "token" (depends on the token alone), "position" (on the position alone) or "mixed";
  per_position: for "position" nodes, the exact value at each position;
  max_width (aggregates): the most keys any query can select;
  at_zero: the value at position 0, when the layout starts with a fixed token (a causal model
    sees nothing else there, so every value at position 0 is fixed; one evaluation finds them).
Value sets over-approximate (inputs are taken as independent), which is sound: a compiled block
is exact on every value in the set, hence on every value that occurs.
"""
from __future__ import annotations

import itertools
from fractions import Fraction
from functools import reduce

import sympy

from dsl.core import Aggregate, Const, Indices, Map, Select, SelectorWidth, Tokens
from dsl.errors import AdderError
from dsl.semantics import EvaluationError, _evaluate_node, apply_op, selection_matrix
from compiler.ir import CompileIR

MAX_VALUES = 100_000
TOO_MANY_HINT = ("every value a node can take is compiled into its readers' weights: store fewer distinct "
                 "values (e.g. reduce with % or // before combining), or combine fewer inputs in one let")


def hint_for(problem: str) -> str:
    """What to do about a value the layout's inputs make undefined somewhere."""
    if "equally near" in problem:
        return ("some input lands halfway between two candidates: round the value first (with //), "
                "or give the candidates values that cannot tie")
    if "division by zero" in problem or "divides by zero" in problem:
        return ("value sets are taken over all inputs, and both branches of a conditional are evaluated: "
                "keep the divisor away from zero, e.g. max(y, 1)")
    return "value sets are taken over all inputs; change the expression so it is defined for every one"


class TooManyValues(EvaluationError):
    pass


def sort_key(value):
    if isinstance(value, str):
        return (1, 0, value)
    return (0, sympy.Rational(int(value)) if isinstance(value, bool) else value, "")


def infer_value_sets(ir: CompileIR) -> CompileIR:
    graph = ir.graph.copy()
    layout = ir.program.layout
    n_ctx = layout.n_ctx
    # Position-only nodes are evaluated exactly at every position (tokens cannot matter to them).
    position_values: dict[int, list] = {}
    dummy_tokens = [layout.begin] * n_ctx
    at_zero = _values_at_position_zero(ir.program)
    for nid in sorted(graph.nodes):
        attrs = graph.nodes[nid]
        node = attrs["node"]
        sources = {graph.nodes[p]["source"] for p in graph.predecessors(nid)}
        attrs["source"] = _source(node, sources)
        try:
            if attrs["source"] in ("position", "const"):
                position_values[nid] = _evaluate_node(node, position_values, dummy_tokens, n_ctx, layout.base,
                                                      ir.program)
                attrs["per_position"] = position_values[nid]
                attrs["values"] = _sorted(set(position_values[nid]))
            else:
                attrs["values"] = _infer(node, graph, layout, position_values, ir)
        except TooManyValues as err:
            raise AdderError(f"cannot compile '{attrs['label']}': {err}", node.span,
                             ir.program.sources.get(node.span.file),
                             "select fewer keys (a window on indices), or aggregate values with fewer "
                             "possible values") from None
        except EvaluationError as err:
            raise AdderError(f"cannot compile '{attrs['label']}': {err} for some input the layout allows",
                             node.span, ir.program.sources.get(node.span.file), hint_for(str(err))) from None
        if len(attrs["values"]) > MAX_VALUES:
            raise AdderError(f"'{attrs['label']}' can take more than {MAX_VALUES} values, too many to compile",
                             node.span, ir.program.sources.get(node.span.file), TOO_MANY_HINT)
        if at_zero is not None:
            attrs["at_zero"] = at_zero[nid]
    return _replace(ir, graph)


def _values_at_position_zero(program) -> dict | None:
    """Every node's value at position 0 when the layout fixes the first token, else None."""
    from dsl.semantics import evaluate
    first = program.layout.items[0]
    if first[0] != "literal":
        return None
    try:
        values = evaluate(program, [first[1]]).values
    except EvaluationError:
        return None
    return {nid: column[0] for nid, column in values.items()}


def _replace(ir, graph):
    from dataclasses import replace
    return replace(ir, graph=graph)


def _source(node, input_sources):
    if isinstance(node, Tokens):
        return "token"
    if isinstance(node, Indices):
        return "position"
    if isinstance(node, Const):
        return "const"
    kinds = input_sources - {"const"}
    if isinstance(node, (Aggregate, SelectorWidth)):
        # Which keys a query sees depends on its position (causal), even over constants:
        # selector_width(select(1, 1, k == q)) is the position plus one.
        return "position" if kinds <= {"position"} else "mixed"
    if not kinds:
        return "const"
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _sorted(values):
    return tuple(sorted(values, key=sort_key))


def _infer(node, graph, layout, position_values, ir):
    values_of = lambda n: graph.nodes[n.id]["values"]
    if isinstance(node, Tokens):
        return tuple(layout.vocab)
    if isinstance(node, Const):
        return (node.value,)
    if isinstance(node, Map):
        domains = [values_of(a) for a in node.args]
        size = reduce(lambda x, y: x * len(y), domains, 1)
        if size > MAX_VALUES:
            raise AdderError(f"'{graph.nodes[node.id]['label']}' combines {size} input values, too many to compile",
                             node.span, ir.program.sources.get(node.span.file), TOO_MANY_HINT)
        return _sorted({apply_op(node.op, combo, layout.base) for combo in itertools.product(*domains)})
    width, distances = selector_reach(node.selector, layout, position_values, graph)
    graph.nodes[node.id]["max_width"] = width
    if isinstance(node, SelectorWidth):
        return _sorted({sympy.Integer(w) for w in range(width + 1)})
    value_set = set(values_of(node.value))
    default = node.default
    if width == 0:  # nothing is ever selected
        return (default,)
    if node.mode in ("first", "last") or width <= 1:
        return _sorted(value_set | {default})
    if node.mode == "mean":
        if node.type == "token" or ir.program.encodings.get(node.id) == "categorical":
            return _sorted(value_set | {default})
        return _sorted(_means(value_set, width) | {default})
    return _sorted(_sums(value_set, width, node.decay, distances) | {default})


def _means(values, width):
    nums = {sympy.Integer(int(v)) if isinstance(v, bool) else v for v in values}
    too_many = f"a mean over up to {width} keys has more than {MAX_VALUES} possible values"
    result = set()
    for count, sums in enumerate(_sums_of_counts(nums, width, too_many), start=1):
        result.update(Fraction(int(s), count) if isinstance(s, int) else s / count for s in sums)
        if len(result) > MAX_VALUES:
            raise TooManyValues(too_many)
    return {sympy.Rational(v.numerator, v.denominator) if isinstance(v, Fraction) else v for v in result}


def _sums(values, width, decay, distances):
    nums = {sympy.Integer(int(v)) if isinstance(v, bool) else v for v in values} | {sympy.Integer(0)}
    if decay is None:
        too_many = f"a sum over up to {width} keys has more than {MAX_VALUES} possible values"
        sums = {sympy.Integer(0)}
        for sums in _sums_of_counts(nums, width, too_many):
            pass
        return {sympy.Integer(s) if isinstance(s, int) else s for s in sums}
    sums = {sympy.Integer(0)}
    for distance in distances:
        weight = sympy.Integer(1) / sympy.sympify(decay) ** distance
        sums = _grown(sums, nums, weight, f"a decayed sum has more than {MAX_VALUES} possible values")
    return sums


def _sums_of_counts(nums, width, too_many):
    """The sets of sums of exactly 1, 2, ..., width values from nums, one after another. Whole
    numbers go through a bit mask (bit i set: the sum min*count + i occurs), which is fast enough
    to find a set too big before enumerating it; other numbers are enumerated exactly."""
    if not all(getattr(v, "is_integer", False) for v in nums):
        sums = {sympy.Integer(0)}
        for _ in range(width):
            sums = _grown(sums, nums, 1, too_many)
            yield sums
        return
    low = min(int(v) for v in nums)
    step = 0
    for v in nums:
        step |= 1 << (int(v) - low)
    mask = 1
    for count in range(1, width + 1):
        grown = 0
        for bit in _bits(step):
            grown |= mask << bit
        mask = grown
        if mask.bit_count() > MAX_VALUES:
            raise TooManyValues(too_many)
        yield {low * count + i for i in _bits(mask)}


def _bits(mask: int):
    """The positions of the set bits of a non-negative int."""
    position = 0
    while mask:
        skip = (mask & -mask).bit_length() - 1
        position += skip
        yield position
        mask >>= skip + 1
        position += 1


def _grown(sums, nums, weight, too_many: str) -> set:
    """{s + v * weight}, stopping as soon as it passes MAX_VALUES (enumerating on is slow)."""
    out = set()
    for s in sums:
        out.update(s + v * weight for v in nums)
        if len(out) > MAX_VALUES:
            raise TooManyValues(too_many)
    return out


def selector_reach(selector, layout, position_values, graph) -> tuple[int, list[int]]:
    """The most keys any query selects, and the query-to-key distances it can select at.

    Exact for a term on positions alone (its selection is known for every query), and none for
    a term that no value satisfies; otherwise any key at or before the query may be selected.
    """
    from compiler.encodings import constant_term, relative_term
    width, distances = layout.n_ctx, set(range(layout.n_ctx))
    for term in selector.terms:
        if constant_term(term, graph, layout.base) is False:
            return 0, []
        kind = relative_term(term, layout.n_ctx, layout.base)
        if kind is not None:  # known without looking at every (key, query) pair
            reach = {kind[1]} if kind[0] == "offset" else set(range(kind[1] + 1))
            width = min(width, len(reach))
            distances &= reach
        elif term.keys.id in position_values and term.queries.id in position_values:
            one = Select(-1, "selector", selector.span, (term,))
            rows = selection_matrix(one, position_values, layout.base)
            width = min(width, max((len(r) for r in rows), default=0))
            distances &= {q - k for q, row in enumerate(rows) for k in row}
    return width, sorted(distances)
