"""A choice between values as arithmetic on its conditions: one ridge per branch.

A chain of conditionals whose conditions are two-valued inputs of the MLP, and whose branches are
affine in its inputs, is a sum over its branches of [the branch's path holds] * value. With
`violations` the number of the path's conditions that fail (affine in the inputs: each is c or
1 - c), the ridge code value - U * violations, for U larger than the value's range, puts every
combination where the path holds above every one where it fails. Two realisations follow:
`branch_parts`, a piecewise-linear function of each code that is the code above and 0 below (two
units a branch, each branch on its own), and `branch_ramps`, one unit a branch, relu(code - L +
1/2), which is off the kink by at least 1/2 everywhere and adds 1/2 - L where its path holds:
since exactly one path holds at every combination, the output bias takes that back. The grid of
all combinations is never needed: each term is built and checked over its own inputs alone,
which is why `x if p else (y if r else z)` over seven inputs costs a unit per branch, not a table
over 80,000 combinations.
"""
from __future__ import annotations

import itertools
from fractions import Fraction
from typing import NamedTuple

from dsl.core import Map
from compiler.ir.attrs import ENCODING, FUSED, IN_PLACE, NODE, VALUES
from compiler.ir.compile_ir import Affine
from compiler.passes.weights.ridges import Input, Part, frontier_forms, read_of

SUBGRID_LIMIT = 20_000  # combinations of one branch's own inputs


class Branch(NamedTuple):
    path: tuple  # ((input index, the value of that two-valued input the path needs), ...)
    value: tuple  # (coefficients over the inputs, constant): the branch's value, affine


def branches(graph, nid, frontier) -> list[Branch] | None:
    """The branches of the conditional chain the MLP for nid computes, None when it is not one."""
    attrs = graph.nodes[nid]
    if attrs[ENCODING] != "numerical" or IN_PLACE in attrs:
        return None
    inside = {nid, *attrs.get(FUSED, ())}
    index = {f: i for i, f in enumerate(frontier)}
    form = frontier_forms(graph, nid, frontier)
    if not _is_conditional(graph, nid):
        return None

    def walk(n, path):
        node = graph.nodes[n][NODE]
        if n in inside and _is_conditional(graph, n):
            condition = node.args[0].id
            if condition not in index or len(graph.nodes[condition][VALUES]) != 2:
                return None
            on, off = (_value_where_true(graph, condition), _value_where_false(graph, condition))
            found = []
            for branch, needed in ((node.args[1].id, on), (node.args[2].id, off)):
                taken = dict(path)
                if taken.get(index[condition], needed) != needed:
                    continue  # a path no input takes: its branch never decides anything
                deeper = walk(branch, {**taken, index[condition]: needed})
                if deeper is None:
                    return None
                found += deeper
            return found
        value = form(n)
        return None if value is None else [Branch(tuple(sorted(path.items())), value)]

    return walk(nid, {})


def branch_parts(found: list[Branch], inputs: list[Input], values, output_vector) -> list[Part] | None:
    """One Part per branch of the chain (`branches`), each checked over its own inputs; None when
    a branch's inputs are too many to check. `values`: each input's values, as its codes are."""
    parts = []
    for branch in found:
        part = branch_part(branch, inputs, values, output_vector)
        if part is None:
            return None
        parts.append(part)
    return parts


class Ramp(NamedTuple):
    """One unit relu(read) adding out[dim] * relu(read) to the output: a branch's term, for a
    read that is never near 0 at any combination."""
    read: Affine
    out: dict


def branch_ramps(found: list[Branch], inputs: list[Input], values, output_vector) -> list | None:
    """One unit per branch, for a numeric output: relu(value - U * violations - L + 1/2), with L
    the least value of any branch, is value - L + 1/2 (at least 1/2) where the path holds and 0
    (from -1/2 down) where it fails. The paths partition every combination, so the terms add up
    to the output plus 1/2 - L everywhere, which the output bias takes back. Each branch is checked
    over its own inputs; None when a branch's inputs are too many to check."""
    unit_vector = output_vector(Fraction(1))  # `branches` found a chain only for a numeric output
    if not found or len(unit_vector) != 1 or any(output_vector(Fraction(0)).values()):
        return None
    floor = min(_range(*branch.value, inputs)[0] for branch in found) - Fraction(1, 2)  # L - 1/2
    ramps = []
    for branch in found:
        coeffs, constant = branch.value
        violation, violation_constant = _violations(branch, inputs, values)
        box = _box(branch, inputs)
        if box is None:
            return None
        U = _range(coeffs, constant, inputs)[1] - floor + Fraction(1, 2)
        for point in box:
            value, violations = _at(point, coeffs, constant, violation, violation_constant)
            pre = value - U * violations - floor
            if (violations == 0 and pre < Fraction(1, 2)) or (violations != 0 and pre > Fraction(-1, 2)):
                return None  # cannot happen with U and L as chosen; refused rather than trusted
        direction = [a - U * v for a, v in zip(coeffs, violation)]
        read = read_of(inputs, direction) + Affine.constant(constant - U * violation_constant - floor)
        ramps.append(Ramp(read, unit_vector))
    (dim, scale), = unit_vector.items()
    return ramps + [Part(Affine(), {Fraction(0): {dim: scale * floor}})]


def _violations(branch: Branch, inputs, values) -> tuple[list, Fraction]:
    """violations = sum over the path of (1 - [input holds the needed value]), affine in the codes:
    (coefficients, constant)."""
    violation, violation_constant = [Fraction(0)] * len(inputs), Fraction(0)
    for i, needed in branch.path:
        on = inputs[i].codes[values[i].index(needed)]
        off = next(c for c, v in zip(inputs[i].codes, values[i]) if v != needed)
        # [x == on] = (x - off) / (on - off); its failure is 1 minus that.
        violation[i] -= 1 / (on - off)
        violation_constant += 1 + off / (on - off)
    return violation, violation_constant


def _box(branch: Branch, inputs) -> list | None:
    """Every combination of the branch's own inputs ({input index: code}), None past SUBGRID_LIMIT."""
    coeffs, _ = branch.value
    used = sorted({i for i, a in enumerate(coeffs) if a} | {i for i, _ in branch.path})
    size = 1
    for i in used:
        size *= len(inputs[i].codes)
    if size > SUBGRID_LIMIT:
        return None
    return [dict(zip(used, combo)) for combo in itertools.product(*[inputs[i].codes for i in used])]


def _at(point: dict, coeffs, constant, violation, violation_constant) -> tuple[Fraction, Fraction]:
    """(the branch's value, its path's violations) at one combination of its inputs."""
    value = sum((coeffs[i] * x for i, x in point.items()), Fraction(0)) + constant
    return value, sum((violation[i] * x for i, x in point.items()), Fraction(0)) + violation_constant


def branch_part(branch: Branch, inputs, values, output_vector) -> Part | None:
    coeffs, constant = branch.value
    violation, violation_constant = _violations(branch, inputs, values)
    box = _box(branch, inputs)
    if box is None:
        return None
    low, high = _range(coeffs, constant, inputs)
    U = high - low + 1
    direction = [a - U * v for a, v in zip(coeffs, violation)]
    offset = constant - U * violation_constant
    read = read_of(inputs, direction) + Affine.constant(offset)
    table: dict = {}
    for point in box:
        value, violations = _at(point, coeffs, constant, violation, violation_constant)
        code = value - U * violations
        vector = output_vector(value if violations == 0 else Fraction(0))
        if table.setdefault(code, vector) != vector:
            return None  # cannot happen with U past the value's range; refused rather than trusted
    return Part(read, table)


def _range(coeffs, constant, inputs) -> tuple[Fraction, Fraction]:
    """The least and largest value of an affine form over the inputs' codes."""
    low = high = constant
    for a, item in zip(coeffs, inputs):
        if a:
            ends = (a * min(item.codes), a * max(item.codes))
            low, high = low + min(ends), high + max(ends)
    return low, high


def _is_conditional(graph, n) -> bool:
    node = graph.nodes[n][NODE]
    return isinstance(node, Map) and node.op == "if_else"


def _value_where_true(graph, condition):
    return next(v for v in graph.nodes[condition][VALUES] if v is True or v == 1)


def _value_where_false(graph, condition):
    return next(v for v in graph.nodes[condition][VALUES] if not (v is True or v == 1))
