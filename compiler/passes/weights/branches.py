"""A choice between values as arithmetic on its conditions: one ridge per branch.

A chain of conditionals whose conditions are two-valued inputs of the MLP, and whose branches are
affine in its inputs, is a sum over its branches of [the branch's path holds] * value. With
`violations` the number of the path's conditions that fail (affine in the inputs: each is c or
1 - c), the ridge code value - U * violations, for U larger than the value's range, puts every
combination where the path holds above every one where it fails: a piecewise-linear function of
that code that is the code itself above and 0 below is the branch's term, two units. The grid of
all combinations is never needed: each term is built and checked over its own inputs alone,
which is why `x if p else (y if r else z)` over seven inputs costs units per branch, not a table
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


def branch_parts(graph, nid, frontier, inputs: list[Input], output_vector) -> list[Part] | None:
    """One Part per branch, each checked over its own inputs; None when the MLP is no such chain
    or a branch's inputs are too many to check."""
    found = branches(graph, nid, frontier)
    if found is None:
        return None
    values = [graph.nodes[f][VALUES] for f in frontier]
    parts = []
    for branch in found:
        part = branch_part(branch, inputs, values, output_vector)
        if part is None:
            return None
        parts.append(part)
    return parts


def branch_part(branch: Branch, inputs, values, output_vector) -> Part | None:
    coeffs, constant = branch.value
    # violations = sum over the path of (1 - [input holds the needed value]), affine in the codes.
    violation, violation_constant = [Fraction(0)] * len(inputs), Fraction(0)
    for i, needed in branch.path:
        on = inputs[i].codes[values[i].index(needed)]
        off = next(c for c, v in zip(inputs[i].codes, values[i]) if v != needed)
        # [x == on] = (x - off) / (on - off); its failure is 1 minus that.
        violation[i] -= 1 / (on - off)
        violation_constant += 1 + off / (on - off)
    used = sorted({i for i, a in enumerate(coeffs) if a} | {i for i, _ in branch.path})
    box = [inputs[i].codes for i in used]
    size = 1
    for codes in box:
        size *= len(codes)
    if size > SUBGRID_LIMIT:
        return None
    low, high = _range(coeffs, constant, inputs)
    U = high - low + 1
    direction = [a - U * v for a, v in zip(coeffs, violation)]
    offset = constant - U * violation_constant
    read = read_of(inputs, direction) + Affine.constant(offset)
    table: dict = {}
    for combo in itertools.product(*box):
        point = dict(zip(used, combo))
        value = sum((coeffs[i] * x for i, x in point.items()), Fraction(0)) + constant
        violations = sum((violation[i] * x for i, x in point.items()), Fraction(0)) + violation_constant
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
