"""Pass 2: value sets, exactly, with sympy.

Adds to every node:
  values: the sorted tuple of every value the node can take, over every input of the layout;
  source: "const", "token" (depends on the token alone), "position" (on the position alone) or "mixed";
  per_position: for "position" and "const" nodes, the exact value at each position;
  max_width (aggregates and selector widths that depend on tokens): the most keys any query can select;
  at_zero: the value at position 0, when the layout starts with a fixed token (a causal model
    sees nothing else there, so every value at position 0 is fixed; one evaluation finds them).
Value sets over-approximate (inputs are taken as independent), which is sound: a compiled block
is exact on every value in the set, hence on every value that occurs.
"""
from __future__ import annotations

import itertools
import math
from fractions import Fraction
from functools import reduce

import numpy
import sympy

from dsl.core import Aggregate, Const, Indices, Map, Select, SelectorWidth, Tokens
from dsl.errors import AdderError
from dsl.semantics import EvaluationError, _evaluate_node, apply_op, selection_matrix
from compiler.ir.attrs import AT_ZERO, LABEL, MAX_WIDTH, NODE, PER_POSITION, SOURCE, VALUES
from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR

MAX_VALUES = 100_000
# Work one aggregate's value set may take: machine words of bit masks shifted, then additions of
# enumerated values, each about a second. Past it the aggregate is refused, never left to run
# for minutes.
MASK_WORDS = 100_000_000
ADDITIONS = 2_000_000
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
    if isinstance(value, bool):
        return (0, int(value), "")
    # Sorting 10^5 sympy numbers takes seconds: floats order them, exact Fractions break ties.
    exact = _fraction(value)
    if exact is None:
        return (0, value, "")
    try:
        rough = float(exact)
    except OverflowError:
        rough = math.inf if exact > 0 else -math.inf
    return (0, rough, exact)


@compiler_pass(reads={NODE, LABEL}, adds={SOURCE, VALUES, PER_POSITION, MAX_WIDTH, AT_ZERO})
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
        node = attrs[NODE]
        sources = {graph.nodes[p][SOURCE] for p in graph.predecessors(nid)}
        attrs[SOURCE] = _source(node, sources)
        try:
            if attrs[SOURCE] in ("position", "const"):
                position_values[nid] = _evaluate_node(node, position_values, dummy_tokens, n_ctx, layout.base,
                                                      ir.program)
                attrs[PER_POSITION] = position_values[nid]
                attrs[VALUES] = _sorted(set(position_values[nid]))
            else:
                attrs[VALUES] = _infer(node, graph, layout, position_values, ir)
        except TooManyValues as err:
            raise AdderError(f"cannot compile '{attrs[LABEL]}': {err}", node.span,
                             ir.program.sources.get(node.span.file),
                             "select fewer keys (a window on indices), or aggregate values with fewer "
                             "possible values") from None
        except EvaluationError as err:
            raise AdderError(f"cannot compile '{attrs[LABEL]}': {err} for some input the layout allows",
                             node.span, ir.program.sources.get(node.span.file), hint_for(str(err))) from None
        if len(attrs[VALUES]) > MAX_VALUES:
            raise AdderError(f"'{attrs[LABEL]}' can take more than {MAX_VALUES} values, too many to compile",
                             node.span, ir.program.sources.get(node.span.file), TOO_MANY_HINT)
        if at_zero is not None:
            attrs[AT_ZERO] = at_zero[nid]
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
    values_of = lambda n: graph.nodes[n.id][VALUES]
    if isinstance(node, Tokens):
        return tuple(layout.vocab)
    if isinstance(node, Const):
        return (node.value,)
    if isinstance(node, Map):
        domains = [values_of(a) for a in node.args]
        size = reduce(lambda x, y: x * len(y), domains, 1)
        if size > MAX_VALUES:
            raise AdderError(f"'{graph.nodes[node.id][LABEL]}' combines {size} input values, too many to compile",
                             node.span, ir.program.sources.get(node.span.file), TOO_MANY_HINT)
        return _sorted({apply_op(node.op, combo, layout.base) for combo in itertools.product(*domains)})
    width, distances = selector_reach(node.selector, layout, position_values, graph)
    graph.nodes[node.id][MAX_WIDTH] = width
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
    for count, sums in enumerate(_sumsets([nums] * width, too_many), start=1):
        result.update(s / count for s in sums)
        if len(result) > MAX_VALUES:
            raise TooManyValues(too_many)
    return {_exact(v) for v in result}


def _sums(values, width, decay, distances):
    nums = {sympy.Integer(int(v)) if isinstance(v, bool) else v for v in values} | {sympy.Integer(0)}
    if decay is None:
        steps, too_many = [nums] * width, f"a sum over up to {width} keys has more than {MAX_VALUES} possible values"
    else:
        weights = [sympy.Integer(1) / sympy.sympify(decay) ** distance for distance in distances]
        steps = [{v * weight for v in nums} for weight in weights]
        too_many = f"a decayed sum has more than {MAX_VALUES} possible values"
    sums = {0}
    for sums in _sumsets(steps, too_many, every=False):
        pass
    return {_exact(v) for v in sums}


def _exact(value):
    if isinstance(value, Fraction):
        return sympy.Rational(value.numerator, value.denominator)
    return sympy.Integer(value) if isinstance(value, int) else value


def _sumsets(steps, too_many, every=True):
    """The sets {a1 + ... + ai : each aj in steps[j]}, for i = 1, 2, ..., one after another
    (with every=False at least the last). Rational values are scaled to whole numbers by their
    common denominator and each set is a bit mask (bit i set: the sum low + i occurs), fast enough
    to find a set too big before enumerating it; once the masks grow too wide to shift (far-apart
    values over a large denominator), the steps left are enumerated. Both ways the work is bounded,
    so a sum of many distinct fractions is refused within seconds instead of running for minutes."""
    fractions = [[_fraction(v) for v in step] for step in steps]
    sums, done = {0}, 0
    if all(f is not None for step in fractions for f in step):
        scale = reduce(math.lcm, (f.denominator for step in fractions for f in step), 1)
        whole = [{f.numerator * (scale // f.denominator) for f in step} for step in fractions]
        done, sums = yield from _masked_sumsets(whole, scale, too_many, every)
        steps = [set(step) for step in fractions]
    yield from _enumerated_sumsets(sums, steps[done:], too_many)


def _fraction(value):
    """The value as a Fraction, or None for one that is not rational (enumerated as it is)."""
    if isinstance(value, int):
        return Fraction(value)
    if getattr(value, "is_Rational", False):
        return Fraction(int(value.p), int(value.q))
    return None


def _masked_sumsets(whole, scale, too_many, every):
    """Yields the sets the steps of whole make; returns how many steps it took and the last set,
    stopping before a step whose shifts would pass MASK_WORDS."""
    mask, low, span, words, last = 1, 0, 0, 0, {0}
    for count, step in enumerate(whole):
        least = min(step)
        span += max(step) - least
        words += len(step) * (span // 64 + 1)
        if words > MASK_WORDS:
            return count, last if every or count == 0 else _unmasked(mask, low, scale)
        grown = 0
        for bit in (v - least for v in step):
            grown |= mask << bit
        mask, low = grown, low + least
        if mask.bit_count() > MAX_VALUES:
            raise TooManyValues(too_many)
        if every or count + 1 == len(whole):
            last = _unmasked(mask, low, scale)
            yield last
    return len(whole), last


def _unmasked(mask, low, scale) -> set:
    return {Fraction(low + i, scale) for i in _bits(mask)}


def _enumerated_sumsets(sums, steps, too_many):
    work = 0
    for step in steps:
        # |A + B| >= |A| + |B| - 1 for sets of numbers: past MAX_VALUES before adding anything.
        if len(sums) + len(step) - 1 > MAX_VALUES:
            raise TooManyValues(too_many)
        work += len(sums) * len(step)
        if work > ADDITIONS:
            raise TooManyValues(f"{too_many.replace(f'more than {MAX_VALUES}', 'too many')} to enumerate "
                                f"(more than {ADDITIONS:,} additions)")
        sums = _grown(sums, step, 1, too_many)
        yield sums


def _bits(mask: int):
    """The positions of the set bits of a non-negative int, in C: shifting a mask of 10^7 bits
    once per set bit would be quadratic."""
    raw = numpy.frombuffer(mask.to_bytes((mask.bit_length() + 7) // 8, "little"), dtype=numpy.uint8)
    return numpy.unpackbits(raw, bitorder="little").nonzero()[0].tolist()


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
    from compiler.passes.encodings import constant_term, relative_term
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
