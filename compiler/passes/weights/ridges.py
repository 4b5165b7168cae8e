"""The ways one MLP can compute its function: each a sum of ridge functions of its inputs.

A ridge function is g(a . x): a function of one affine form of the inputs, which
`piecewise_linear` builds as units relu(a . x - t), one per slope change of g. How many there
are depends on the form, so the block is built several ways and the one with the fewest nonzero
weights is kept (compiler.passes.weights.mlp):
  - a code: the inputs folded into one mixed-radix number, in every order of the inputs (the
    order decides how often f changes slope along the code: 558 units one way, 18 another);
  - a ridge and an affine rest, f(x) = g(a . x) + l . x, for each form a that the function's own
    expression computes or compares: x - y in `(x - y) * (x > y)` makes f = relu(x - y), two
    units where a code over x and y needs 33. The rest l . x is one unit that never switches off.
Inputs are codes (exact Fractions, for speed) read linearly off the residual stream. Nothing
here knows a program: the candidates come from the value grid and the expression's affine forms.
"""
from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import NamedTuple

import sympy

from dsl.core import Map
from dsl.ops import affine_coefficients
from compiler.ir.attrs import DEPENDENT, FUSED, NODE, REALIZE, VALUES
from compiler.ir.compile_ir import Affine
from compiler.ir.reads import constant_args

# The search builds every candidate block, which costs about one step per combination and output
# dimension: it tries every order of the inputs only while that stays under ORDER_WORK in all, and
# forms at all only up to SEARCH_LIMIT combinations. Past them, the inputs' own order (and the
# reverse, while that fits) is what is tried.
SEARCH_LIMIT = 20_000
ORDER_WORK = 200_000


class Input(NamedTuple):
    codes: list  # Fraction per value, in the order of the input's values
    read: Affine  # the code as a linear read of the residual stream


class Part(NamedTuple):
    """One ridge: its code's read, and the output vector ({dim: value}) at each code value."""
    read: Affine
    table: dict


def exact(value) -> Fraction:
    value = sympy.Rational(value)
    return Fraction(int(value.p), int(value.q))


def mixed_radix(inputs: list[Input], grid: dict, order) -> list[Part]:
    """One code c = sum K_i (x_i - min_i) over the inputs in this order, each K_i large enough
    that no two combinations share a code."""
    read, factors, spread, min_gap = Affine(), {}, Fraction(0), None
    for i in order:
        codes = sorted(set(inputs[i].codes))
        gaps = [b - a for a, b in zip(codes, codes[1:])]
        gap = min(gaps) if gaps else Fraction(1)
        factor = Fraction(1) if min_gap is None else (spread + min_gap) / gap
        factors[i] = (factor, codes[0])
        read = read + inputs[i].read.scale(factor) + Affine.constant(-factor * codes[0])
        spread += factor * (codes[-1] - codes[0])
        min_gap = gap if min_gap is None else min(min_gap, gap)
    table = {}
    for point, vector in grid.items():
        table[sum(factor * (point[i] - low) for i, (factor, low) in factors.items())] = vector
    return [Part(read, table)]


def ridge_and_rest(inputs: list[Input], grid: dict, direction) -> list[Part] | None:
    """f = g(a . x) + l . x with a = direction, when some l makes f - l . x constant wherever
    a . x is (solved exactly per output dimension), else None."""
    levels: dict = {}
    for point in grid:
        levels.setdefault(_dot(direction, point), []).append(point)
    if len(levels) == len(grid):  # a . x tells every combination apart: it is a code
        return [Part(read_of(inputs, direction), {level: grid[points[0]] for level, points in levels.items()})]
    rows: dict = {}  # a difference of two points of one level -> the difference of their outputs
    for points in levels.values():
        first = points[0]
        for point in points[1:]:
            step = tuple(p - q for p, q in zip(point, first))
            change = _difference(grid[point], grid[first])
            if rows.setdefault(step, change) != change:
                return None
    dims = sorted({d for vector in grid.values() for d in vector})
    slopes = _solve(list(rows.items()), dims, len(inputs))
    if slopes is None:
        return None
    ridge_table = {level: {d: grid[points[0]].get(d, 0) - _dot(slopes[d], points[0]) for d in dims}
                   for level, points in levels.items()}
    parts, rests = [], {}  # rests: a normalised l -> {dim: its multiple of it}
    along, first = _normalised(direction)
    for d in dims:
        if any(slopes[d]):
            unit, scale = _normalised(slopes[d])
            if unit == along:  # along a itself: part of g
                for level in ridge_table:
                    ridge_table[level][d] += scale / first * level
            else:
                rests.setdefault(unit, {})[d] = scale
    parts.append(Part(read_of(inputs, direction), ridge_table))
    for unit, scales in rests.items():
        values = {_dot(unit, point) for point in grid}
        parts.append(Part(read_of(inputs, unit), {v: {d: s * v for d, s in scales.items()} for v in values}))
    return parts


def candidates(inputs: list[Input], grid: dict, directions) -> list[list[Part]]:
    """Every realisation to try, the inputs' own order first (it wins ties)."""
    n = len(inputs)
    work = len(grid) * max(1, len({d for vector in grid.values() for d in vector}))
    orders = [tuple(range(n))]
    if n > 1 and work * math.factorial(n) <= ORDER_WORK:
        orders = list(itertools.permutations(range(n)))
    elif n > 1 and work * 2 <= ORDER_WORK:
        orders.append(tuple(reversed(range(n))))
    found = [mixed_radix(inputs, grid, order) for order in orders]
    if n > 1 and len(grid) <= SEARCH_LIMIT:
        for direction in directions:
            parts = ridge_and_rest(inputs, grid, direction)
            if parts is not None:
                found.append(parts)
    return found


def frontier_forms(graph, nid, frontier):
    """form(n): (coefficients over the frontier, constant) of a value the MLP for nid computes
    or reads, when it is affine in the frontier, else None (memoised)."""
    index = {f: i for i, f in enumerate(frontier)}
    dependents = graph.nodes[nid].get(DEPENDENT, {})
    inside = {nid, *graph.nodes[nid].get(FUSED, ())}
    forms: dict = {}

    def form(n):
        if n not in forms:
            forms[n] = _form(graph, n, index, dependents, inside, form)
        return forms[n]
    return form


def expression_directions(graph, nid, frontier) -> list[tuple]:
    """The affine forms over the frontier that the MLP's function computes or compares (the
    arguments of a comparison, min, max or abs give their difference), normalised, plus each
    input alone."""
    form = frontier_forms(graph, nid, frontier)
    found = [tuple(Fraction(int(i == j)) for j in range(len(frontier))) for i in range(len(frontier))]
    for n in sorted({nid, *graph.nodes[nid].get(FUSED, ())}):
        node = graph.nodes[n][NODE]
        own = form(n)
        if own is not None:
            found.append(own[0])
        if isinstance(node, Map) and len(node.args) == 2 and node.op in _COMPARING:
            a, b = form(node.args[0].id), form(node.args[1].id)
            if a is not None and b is not None:
                found.append(tuple(x - y for x, y in zip(a[0], b[0])))
        elif isinstance(node, Map) and node.op == "abs":
            inner = form(node.args[0].id)
            if inner is not None:
                found.append(inner[0])
    unique = []
    for direction in found:
        if any(direction):
            unit = _normalised(direction)[0]
            if unit not in unique:
                unique.append(unit)
    return unique


_COMPARING = {"eq", "ne", "lt", "le", "gt", "ge", "min", "max"}


def _form(graph, n, index, dependents, inside, form):
    """(coefficients over the frontier, constant) of a value in the MLP's region, or None."""
    n_inputs = len(index)
    if n in index:
        return tuple(Fraction(int(index[n] == j)) for j in range(n_inputs)), Fraction(0)
    if n in dependents:
        coeffs = [Fraction(0)] * n_inputs
        for i, c in dependents[n].terms:
            coeffs[index[i]] += exact(c)
        return tuple(coeffs), exact(dependents[n].constant)
    attrs = graph.nodes[n]
    if attrs[REALIZE] == "const":
        value = attrs[VALUES][0]
        return (None if isinstance(value, str) else ((Fraction(0),) * n_inputs, exact(value)))
    node = attrs[NODE]
    if n not in inside or not isinstance(node, Map):
        return None
    factors = affine_coefficients(node.op, constant_args(node, graph))
    if factors is None:
        return None
    coeffs, constant = [Fraction(0)] * n_inputs, Fraction(0)
    for arg, factor in zip(node.args, factors):
        if factor is None:
            continue
        inner = form(arg.id)
        if inner is None:
            return None
        constant += exact(factor) * inner[1]
        for j, c in enumerate(inner[0]):
            coeffs[j] += exact(factor) * c
    return tuple(coeffs), constant


def _dot(direction, point) -> Fraction:
    return sum((a * x for a, x in zip(direction, point) if a), Fraction(0))


def _difference(u: dict, v: dict) -> tuple:
    dims = sorted(set(u) | set(v))
    return tuple((d, u.get(d, 0) - v.get(d, 0)) for d in dims if u.get(d, 0) != v.get(d, 0))


def read_of(inputs, direction) -> Affine:
    """The linear read of sum(direction[i] * code of input i)."""
    read = Affine()
    for a, item in zip(direction, inputs):
        if a:
            read = read + item.read.scale(a)
    return read


def _normalised(direction) -> tuple[tuple, Fraction]:
    """(the direction scaled so its first nonzero coefficient is 1, that coefficient)."""
    first = next(a for a in direction if a)
    return tuple(a / first for a in direction), first


def _solve(rows, dims, n) -> dict | None:
    """Per output dimension, slopes l with l . step = change for every row, or None."""
    if not rows:
        return {d: (Fraction(0),) * n for d in dims}
    A = sympy.Matrix([[sympy.Rational(x) for x in step] for step, _ in rows])
    B = sympy.Matrix([[sympy.Rational(dict(change).get(d, 0)) for d in dims] for _, change in rows])
    try:
        solution, free = A.gauss_jordan_solve(B)
    except ValueError:  # inconsistent: no affine rest makes f a function of a . x
        return None
    solution = solution.subs({p: 0 for p in free})
    return {d: tuple(exact(solution[i, j]) for i in range(n)) for j, d in enumerate(dims)}
