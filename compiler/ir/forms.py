"""A numeric value as an affine form over the values it is computed from, and which of an MLP's
inputs are affine functions of the others.

An MLP tells apart every combination of its inputs' values. An input that is an affine function
of the others (x - y next to x and y, `total - 10` next to `total`) adds no case to tell apart,
only combinations that cannot occur: x, y and x - y make a grid of 1,900 where 100 are real, and
a piecewise-linear function over the grid pays for the other 1,800. Such an input is computed
inside the MLP from the others instead of read.

Forms are over program values, not residual dimensions: they hold before anything is stored.
"""
from __future__ import annotations

from typing import NamedTuple

import sympy

from dsl.core import Map
from dsl.ops import affine_coefficients
from dsl.semantics import num
from compiler.ir.attrs import ENCODING, NODE, REALIZE, VALUES
from compiler.ir.reads import constant_args


class Form(NamedTuple):
    """sum(coeffs[leaf] * leaf) + constant, over the values (leaves) it is computed from."""
    coeffs: dict
    constant: sympy.Rational


class Dependent(NamedTuple):
    """An MLP input computed from the inputs it reads: sum(coeff * input) + constant."""
    terms: tuple  # ((input id, coefficient), ...)
    constant: sympy.Rational

    def value(self, env) -> sympy.Rational:
        return sum((c * num(env[i]) for i, c in self.terms), sympy.Integer(0)) + self.constant


def affine_form(graph, nid) -> Form:
    """The value as an affine form: a derived number that an affine op computes is expanded into
    its arguments' forms; anything else (stored, categorical, a non-affine op) is a leaf."""
    attrs = graph.nodes[nid]
    if attrs[REALIZE] == "const":
        return Form({}, num(attrs[VALUES][0]))
    node = attrs[NODE]
    if attrs[REALIZE] == "derived" and attrs[ENCODING] == "numerical" and isinstance(node, Map):
        factors = affine_coefficients(node.op, constant_args(node, graph))
        if factors is not None:
            coeffs, constant = {}, sympy.Integer(0)
            for arg, factor in zip(node.args, factors):
                if factor is None:
                    continue
                inner = affine_form(graph, arg.id)
                constant += factor * inner.constant
                for leaf, c in inner.coeffs.items():
                    coeffs[leaf] = coeffs.get(leaf, 0) + factor * c
            return Form({leaf: c for leaf, c in coeffs.items() if c != 0}, constant)
    return Form({nid: sympy.Integer(1)}, sympy.Integer(0))


def independent_inputs(graph, inputs) -> tuple[list, dict]:
    """(inputs to read, {input computed from them: Dependent}). Categorical inputs are always
    read; numeric ones are taken fewest values first, so the grid the MLP covers stays small."""
    read, dependents, basis = [], {}, []  # basis: (id, form) of the inputs read that are numbers
    ordered = sorted(inputs, key=lambda i: (graph.nodes[i][ENCODING] != "categorical", len(graph.nodes[i][VALUES]), i))
    for nid in ordered:
        attrs = graph.nodes[nid]
        if attrs[ENCODING] == "categorical":
            read.append(nid)
            if not any(isinstance(v, str) for v in attrs[VALUES]):
                basis.append((nid, Form({nid: sympy.Integer(1)}, sympy.Integer(0))))
            continue
        form = affine_form(graph, nid)
        dependent = _as_combination(form, basis)
        if dependent is None:
            read.append(nid)
            basis.append((nid, form))
        else:
            dependents[nid] = dependent
    return sorted(read), dependents


def _as_combination(form: Form, basis) -> Dependent | None:
    """form as sum(c_i * basis_i) + constant, when its linear part is a combination of the basis's."""
    if not basis or not form.coeffs:
        return None
    leaves = sorted({leaf for _, f in basis for leaf in f.coeffs})
    if not set(form.coeffs) <= set(leaves):  # it reads a value none of the basis does
        return None
    matrix = sympy.Matrix([[f.coeffs.get(leaf, 0) for _, f in basis] for leaf in leaves])
    target = sympy.Matrix([form.coeffs.get(leaf, 0) for leaf in leaves])
    try:
        solution, free = matrix.gauss_jordan_solve(target)
    except ValueError:  # no combination gives it
        return None
    solution = solution.subs({p: 0 for p in free})
    constant = form.constant - sum((c * f.constant for c, (_, f) in zip(solution, basis)), sympy.Integer(0))
    terms = tuple((i, sympy.Rational(c)) for c, (i, _) in zip(solution, basis) if c != 0)
    return Dependent(terms, sympy.Rational(constant))
