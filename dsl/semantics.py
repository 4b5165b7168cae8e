"""Reference semantics: what a program means, evaluated exactly with sympy.

Numbers are sympy Integers and Rationals (means are exact fractions, never floats), booleans are
Python bools and tokens are strings. Compiled models are checked against `evaluate`. The
elementwise operations themselves, with every fact about them, are in `dsl.ops`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sympy

from dsl.core import Aggregate, Const, Indices, Map, Node, Program, Select, SelectorWidth, Tokens, Var, needed_by
# EvaluationError and num are used with the semantics everywhere; they live with the ops they come from.
from dsl.ops import EvaluationError, apply_op, num

__all__ = ["EvaluationError", "Evaluation", "aggregate_values", "apply_op", "eval_predicate", "evaluate",
           "evaluate_node", "num", "selection_matrix", "value_from_inputs"]


def eval_predicate(predicate: Node, key: Any, query: Any, base: int) -> bool:
    """Evaluate a select predicate (an expression over Var k, Var q and constants)."""
    if isinstance(predicate, Var):
        return key if predicate.role == "k" else query
    if isinstance(predicate, Const):
        return predicate.value
    args = tuple(eval_predicate(a, key, query, base) for a in predicate.args)
    return apply_op(predicate.op, args, base)


def selection_matrix(select: Select, values: dict[int, list], base: int) -> list[list[int]]:
    """For each query position, the selected key positions (causal: keys at or before the query)."""
    n = len(next(iter(values.values())))
    masks = [(1 << (q + 1)) - 1 for q in range(n)]  # bit k of row q: key k is selected for query q
    try:
        for term in select.terms:
            rows = _term_rows(term.predicate, _tagged_column(values[term.keys.id]),
                              _tagged_column(values[term.queries.id]), base)
            masks = [mask & row for mask, row in zip(masks, rows)]
    except EvaluationError:
        # Some pair of values is undefined for a term, but maybe not one the program meets: a key
        # after its query, or a pair an earlier term already rejects. Term by term, in order.
        return [[k for k in range(q + 1) if all(_term_holds(t, values, k, q, base) for t in select.terms)]
                for q in range(n)]
    return [[k for k in range(q + 1) if mask >> k & 1] for q, mask in enumerate(masks)]


def _term_holds(term, values, k, q, base):
    key, query = values[term.keys.id][k], values[term.queries.id][q]
    return _cached_predicate(term.predicate, (type(key).__name__, key), (type(query).__name__, query), base)


def _tagged_column(column: list) -> tuple:
    # True == 1 and hash(True) == hash(1): the type goes into every cache key.
    return tuple((type(v).__name__, v) for v in column)


@lru_cache(maxsize=4096)
def _term_rows(predicate: Node, keys: tuple, queries: tuple, base: int) -> tuple:
    """Row q: the bit mask of the keys the term selects for query q. Decided once per distinct pair
    of key and query values, and once per pair of columns: a term on positions alone is the same
    for every sequence of a layout."""
    positions_of: dict = {}  # key value -> bit mask of the positions holding it
    for k, key in enumerate(keys):
        positions_of[key] = positions_of.get(key, 0) | (1 << k)
    rows = []
    for query in queries:
        row = 0
        for key, positions in positions_of.items():
            if _cached_predicate(predicate, key, query, base):
                row |= positions
        rows.append(row)
    return tuple(rows)


@lru_cache(maxsize=1 << 20)
def _cached_predicate(predicate: Node, key, query, base):
    return bool(eval_predicate(predicate, key[1], query[1], base))


def aggregate_values(node: Aggregate, selected: list[int], values: list, query: int, categorical: bool):
    """Combine `values` at the `selected` positions per the aggregate's mode."""
    if not selected:
        return node.default
    picked = [values[k] for k in selected]
    if node.mode == "first":
        return picked[0]
    if node.mode == "last":
        return picked[-1]
    if node.mode == "sum":
        decay = num(node.decay) if node.decay is not None else sympy.Integer(1)
        return sum((num(v) / decay ** (query - k) for k, v in zip(selected, picked)), sympy.Integer(0))
    # mean
    if categorical or any(isinstance(v, str) for v in picked):
        if any(v != picked[0] for v in picked):
            raise EvaluationError(
                f"categorical mean over differing values {sorted(set(map(str, picked)))} at position {query}",
                node)
        return picked[0]
    return sympy.Rational(sum(num(v) for v in picked), len(picked))


@dataclass
class Evaluation:
    """Every node's value at every position of one sequence."""

    tokens: list[str]
    values: dict[int, list]  # node id -> per-position values
    program: Program
    # node id -> why it has no value: a node the output does not need, undefined on this sequence
    undefined: dict[int, EvaluationError] = field(default_factory=dict)

    def __getitem__(self, name: str) -> list:
        nid = self.program.named()[name].id
        if nid in self.undefined:
            raise self.undefined[nid]
        return self.values[nid]

    @property
    def output(self) -> list:
        return self.values[self.program.output.id]


def evaluate(program: Program, tokens: list[str]) -> Evaluation:
    """Run the program on one token sequence, exactly.

    A program means its output. A let the output does not read is evaluated too, so that it can
    be inspected, but where it is undefined it only has no value: the compiler builds no more
    than the output needs, so such a let cannot make the program, or its model, undefined."""
    base = program.layout.base
    needed = needed_by(program.output)
    values: dict[int, list] = {}
    undefined: dict[int, EvaluationError] = {}
    for node in program.nodes:
        # The output's inputs are all needed too, so only unneeded nodes can inherit a failure.
        failed = next((undefined[i.id] for i in node.inputs() if i.id in undefined), None)
        if failed is not None:
            undefined[node.id] = failed
            continue
        try:
            values[node.id] = evaluate_node(node, values, tokens, base, program)
        except EvaluationError as err:
            err.node = err.node or node
            if node.id in needed:
                raise
            undefined[node.id] = err
    return Evaluation(tokens, values, program, undefined)


def value_from_inputs(node: Node, inputs: tuple, base: int, token: str | None = None,
                      position: int | None = None) -> Any:
    """The value at one position of a node that looks at no other position (the tokens, the
    indices, a constant or an elementwise op), from its inputs' values there: `inputs` in the
    order of `node.inputs()`, and the token and the position where the node is one of those."""
    if isinstance(node, Tokens):
        return token
    if isinstance(node, Indices):
        return sympy.Integer(position)
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Map):
        return apply_op(node.op, inputs, base)
    raise TypeError(f"{node!r} has no value at one position alone")  # aggregates look at others


def evaluate_node(node: Node, values: dict[int, list], tokens: list[str], base: int, program: Program) -> list:
    """A node's value at every position of `tokens`, from its inputs' columns in `values`."""
    n = len(tokens)
    if isinstance(node, Aggregate):
        rows = selection_matrix(node.selector, values, base)
        categorical = program.encodings.get(node.id) == "categorical"
        column = values[node.value.id]
        return [aggregate_values(node, rows[q], column, q, categorical) for q in range(n)]
    if isinstance(node, SelectorWidth):
        rows = selection_matrix(node.selector, values, base)
        return [sympy.Integer(len(r)) for r in rows]
    if isinstance(node, Tokens):
        return list(tokens)
    if isinstance(node, Const):
        return [node.value] * n
    columns = [values[a.id] for a in node.inputs()]
    return [value_from_inputs(node, tuple(column[i] for column in columns), base, position=i) for i in range(n)]
