"""Reference semantics: what a program means, evaluated exactly with sympy.

Numbers are sympy Integers and Rationals (means are exact fractions, never floats), booleans are
Python bools and tokens are strings. Compiled models are checked against `evaluate`.
Elementwise operations are pure functions of their arguments, so they are memoised: the compiler
evaluates them over whole value sets and the interpreter over many sequences.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import sympy

from dsl.core import Aggregate, Const, Indices, Map, Node, Program, Select, SelectorWidth, Tokens, Var, needed_by
from dsl.layout import DIGIT_ALPHABET


class EvaluationError(Exception):
    """A program operation failed on concrete values (division by zero, an ambiguous mean...)."""

    def __init__(self, message: str, node: Node | None = None):
        super().__init__(message)
        self.node = node


def num(value: Any) -> sympy.Rational:
    if isinstance(value, bool):
        return sympy.Integer(int(value))
    if isinstance(value, str):
        raise EvaluationError(f"token {value!r} used as a number")
    return sympy.Rational(value)


def _divide(a, b, how):
    a, b = num(a), num(b)
    if b == 0:
        raise EvaluationError("division by zero")
    if how == "div":
        return a / b
    if how == "floordiv":
        return sympy.floor(a / b)
    return a - b * sympy.floor(a / b)


def _digit(token, base):
    return sympy.Integer(DIGIT_ALPHABET.index(token)) if token in DIGIT_ALPHABET[:base] else sympy.Integer(0)


def _digit_token(value, base):
    value = num(value)
    if not (value.is_integer and 0 <= value < base):
        raise EvaluationError(f"digit_token({value}): not a base-{base} digit")
    return DIGIT_ALPHABET[int(value)]


def _power(a, b):
    a, b = num(a), num(b)
    if a == 0 and b < 0:
        raise EvaluationError("zero to a negative power")
    result = a ** b
    # The language is exact rational arithmetic: 2 ** (1/2) has no value in it, so it is an
    # undefined operation like a division by zero, not a number the later ops would choke on.
    if not result.is_Rational:
        raise EvaluationError(f"{a} ** ({b}) is not a rational number (a fractional exponent)")
    return result


# op name -> (arity, evaluator(args, base)); type rules live in `result_type`.
OPS: dict[str, tuple[int, Callable]] = {
    "add": (2, lambda a, base: num(a[0]) + num(a[1])),
    "sub": (2, lambda a, base: num(a[0]) - num(a[1])),
    "mul": (2, lambda a, base: num(a[0]) * num(a[1])),
    "div": (2, lambda a, base: _divide(a[0], a[1], "div")),
    "floordiv": (2, lambda a, base: _divide(a[0], a[1], "floordiv")),
    "mod": (2, lambda a, base: _divide(a[0], a[1], "mod")),
    "pow": (2, lambda a, base: _power(a[0], a[1])),
    "neg": (1, lambda a, base: -num(a[0])),
    "abs": (1, lambda a, base: abs(num(a[0]))),
    "min": (2, lambda a, base: min(num(a[0]), num(a[1]))),
    "max": (2, lambda a, base: max(num(a[0]), num(a[1]))),
    "eq": (2, lambda a, base: _equal(a[0], a[1])),
    "ne": (2, lambda a, base: not _equal(a[0], a[1])),
    "lt": (2, lambda a, base: bool(num(a[0]) < num(a[1]))),
    "le": (2, lambda a, base: bool(num(a[0]) <= num(a[1]))),
    "gt": (2, lambda a, base: bool(num(a[0]) > num(a[1]))),
    "ge": (2, lambda a, base: bool(num(a[0]) >= num(a[1]))),
    "and": (2, lambda a, base: bool(a[0]) and bool(a[1])),
    "or": (2, lambda a, base: bool(a[0]) or bool(a[1])),
    "not": (1, lambda a, base: not bool(a[0])),
    "if_else": (3, lambda a, base: a[1] if a[0] else a[2]),
    "digit": (1, lambda a, base: _digit(a[0], base)),
    "is_digit": (1, lambda a, base: a[0] in DIGIT_ALPHABET[:base]),
    "digit_token": (1, lambda a, base: _digit_token(a[0], base)),
    "nearest": (2, lambda a, base: _nearest(a[0], a[1])),
}


def _nearest(value, candidates):
    """The candidate token whose value is closest to `value`; an exact tie is an error."""
    value = num(value)
    ranked = sorted(((abs(value - num(c)), token) for token, c in candidates), key=lambda p: p[0])
    if len(ranked) > 1 and ranked[0][0] == ranked[1][0]:
        raise EvaluationError(f"nearest({value}): {ranked[0][1]!r} and {ranked[1][1]!r} are equally near")
    return ranked[0][1]

AFFINE_OPS = {"add", "sub", "neg"}  # plus mul/div by a constant: see compiler.passes.encodings


def _equal(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return bool(num(a) == num(b))


def _tagged(values: tuple) -> tuple:
    # True == 1 and hash(True) == hash(1), so a cache keyed on bare values would hand a boolean
    # result to a numeric call (or back). The type goes into the key.
    return tuple((type(v).__name__, v) for v in values)


def apply_op(op: str, args: tuple, base: int) -> Any:
    """Apply an elementwise op to concrete values; numeric results are normalised to sympy."""
    return _apply_cached(op, _tagged(args), base)


@lru_cache(maxsize=1 << 20)
def _apply_cached(op: str, tagged: tuple, base: int) -> Any:
    args = tuple(v for _, v in tagged)
    result = OPS[op][1](args, base)
    if op == "if_else":
        branches = args[1:]
        if any(isinstance(b, bool) for b in branches) and not all(isinstance(b, bool) for b in branches):
            return num(result)  # a conditional mixing booleans and numbers is numeric
        return result
    if isinstance(result, bool) or isinstance(result, str):
        return result
    return sympy.nsimplify(result) if not isinstance(result, sympy.Basic) else result


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
    rows = []
    for q in range(n):
        row = []
        for k in range(q + 1):
            if all(_term_holds(t, values, k, q, base) for t in select.terms):
                row.append(k)
        rows.append(row)
    return rows


@lru_cache(maxsize=1 << 20)
def _cached_predicate(predicate: Node, key, query, base):
    return bool(eval_predicate(predicate, key[1], query[1], base))


def _term_holds(term, values, k, q, base):
    key, query = values[term.keys.id][k], values[term.queries.id][q]
    return _cached_predicate(term.predicate, (type(key).__name__, key), (type(query).__name__, query), base)


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
    n = len(tokens)
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
            values[node.id] = _evaluate_node(node, values, tokens, n, base, program)
        except EvaluationError as err:
            err.node = err.node or node
            if node.id in needed:
                raise
            undefined[node.id] = err
    return Evaluation(tokens, values, program, undefined)


def _evaluate_node(node, values, tokens, n, base, program):
    if isinstance(node, Tokens):
        return list(tokens)
    if isinstance(node, Indices):
        return [sympy.Integer(i) for i in range(n)]
    if isinstance(node, Const):
        return [node.value] * n
    if isinstance(node, Map):
        columns = [values[a.id] for a in node.args]
        return [apply_op(node.op, tuple(col[i] for col in columns), base) for i in range(n)]
    if isinstance(node, Aggregate):
        rows = selection_matrix(node.selector, values, base)
        categorical = program.encodings.get(node.id) == "categorical"
        column = values[node.value.id]
        return [aggregate_values(node, rows[q], column, q, categorical) for q in range(n)]
    if isinstance(node, SelectorWidth):
        rows = selection_matrix(node.selector, values, base)
        return [sympy.Integer(len(r)) for r in rows]
    raise TypeError(f"cannot evaluate {node!r}")  # pragma: no cover - resolve only builds the kinds above
