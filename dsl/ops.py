"""The elementwise operations: every fact about each one, in one table.

An op's entry says how many arguments it takes, what they must be and what it gives (the resolver
type-checks with it), how it is written (for messages), its exact value (sympy; the interpreter,
the value sets and the compiler all evaluate through `apply_op`), and where it is affine in its
arguments (the compiler reads an affine value through its inputs' reads, with no sublayer of its own).

Numbers are sympy Integers and Rationals, booleans Python bools, tokens strings.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import sympy

from dsl.core import Node
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


# What an op's arguments must be, checked by the resolver (dsl.resolve.op_types says why in words).
NUMBERS = "numbers"  # arithmetic: numbers or booleans, never tokens
ORDERED = "ordered"  # an ordering: numbers or booleans
EQUATABLE = "equatable"  # == and !=: two tokens, or two non-tokens
BOOLEANS = "booleans"
CONDITIONAL = "conditional"  # a boolean, then two branches of one kind
TOKEN = "token"  # one token (a digit to read)
NUMBER = "number"  # one number (a digit to write)
READOUT = "readout"  # a number and a candidate map, built by the resolver itself

# Where an op is affine in its arguments that are not constants.
ALWAYS = "always"
CONSTANT_FACTOR = "a constant factor"  # either argument a constant
CONSTANT_DIVISOR = "a constant divisor"  # the second argument a constant
NEVER = "never"


@dataclass(frozen=True)
class Op:
    name: str
    arity: int
    operands: str  # one of NUMBERS ... READOUT
    result: str  # "num", "bool", "token", or "branches": the branches' type
    written: str  # as the user writes it, for messages about its operands
    evaluate: Callable[[tuple, int], Any]  # (argument values, base) -> value, exactly
    affine: str = NEVER
    call: bool = False  # written as a built-in function call, name(args)

    def affine_coefficients(self, constants: tuple) -> tuple | None:
        """The factor each argument enters the value with, when the op is affine in the arguments
        that are not constants: the value is the sum of factor * argument over the arguments with a
        factor (a constant factor of a product has none: it is in the other's). `constants` holds
        each argument's value where it is a constant and None where it is not. None when not affine."""
        if self.affine == ALWAYS:
            return {"add": (1, 1), "sub": (1, -1), "neg": (-1,)}[self.name]
        if self.affine == CONSTANT_FACTOR:
            if constants[0] is not None:
                return (None, num(constants[0]))
            return (num(constants[1]), None) if constants[1] is not None else None
        if self.affine == CONSTANT_DIVISOR and constants[1] is not None:
            return (1 / num(constants[1]), None)
        return None


def _divide(a, b, how):
    a, b = num(a), num(b)
    if b == 0:
        raise EvaluationError("division by zero")
    if how == "div":
        return a / b
    if how == "floordiv":
        return sympy.floor(a / b)
    return a - b * sympy.floor(a / b)


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


def _equal(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return bool(num(a) == num(b))


def _digit(token, base):
    return sympy.Integer(DIGIT_ALPHABET.index(token)) if token in DIGIT_ALPHABET[:base] else sympy.Integer(0)


def _digit_token(value, base):
    value = num(value)
    if not (value.is_integer and 0 <= value < base):
        raise EvaluationError(f"digit_token({value}): not a base-{base} digit")
    return DIGIT_ALPHABET[int(value)]


def _nearest(value, candidates):
    """The candidate token whose value is closest to `value`; an exact tie is an error."""
    value = num(value)
    ranked = sorted(((abs(value - num(c)), token) for token, c in candidates), key=lambda p: p[0])
    if len(ranked) > 1 and ranked[0][0] == ranked[1][0]:
        raise EvaluationError(f"nearest({value}): {ranked[0][1]!r} and {ranked[1][1]!r} are equally near")
    return ranked[0][1]


OPS: dict[str, Op] = {op.name: op for op in (
    Op("add", 2, NUMBERS, "num", "+", lambda a, base: num(a[0]) + num(a[1]), ALWAYS),
    Op("sub", 2, NUMBERS, "num", "-", lambda a, base: num(a[0]) - num(a[1]), ALWAYS),
    Op("mul", 2, NUMBERS, "num", "*", lambda a, base: num(a[0]) * num(a[1]), CONSTANT_FACTOR),
    Op("div", 2, NUMBERS, "num", "/", lambda a, base: _divide(a[0], a[1], "div"), CONSTANT_DIVISOR),
    Op("floordiv", 2, NUMBERS, "num", "//", lambda a, base: _divide(a[0], a[1], "floordiv")),
    Op("mod", 2, NUMBERS, "num", "%", lambda a, base: _divide(a[0], a[1], "mod")),
    Op("pow", 2, NUMBERS, "num", "**", lambda a, base: _power(a[0], a[1])),
    Op("neg", 1, NUMBERS, "num", "-", lambda a, base: -num(a[0]), ALWAYS),
    Op("abs", 1, NUMBERS, "num", "abs(...)", lambda a, base: abs(num(a[0])), call=True),
    Op("min", 2, NUMBERS, "num", "min(...)", lambda a, base: min(num(a[0]), num(a[1])), call=True),
    Op("max", 2, NUMBERS, "num", "max(...)", lambda a, base: max(num(a[0]), num(a[1])), call=True),
    Op("eq", 2, EQUATABLE, "bool", "==", lambda a, base: _equal(a[0], a[1])),
    Op("ne", 2, EQUATABLE, "bool", "!=", lambda a, base: not _equal(a[0], a[1])),
    Op("lt", 2, ORDERED, "bool", "<", lambda a, base: bool(num(a[0]) < num(a[1]))),
    Op("le", 2, ORDERED, "bool", "<=", lambda a, base: bool(num(a[0]) <= num(a[1]))),
    Op("gt", 2, ORDERED, "bool", ">", lambda a, base: bool(num(a[0]) > num(a[1]))),
    Op("ge", 2, ORDERED, "bool", ">=", lambda a, base: bool(num(a[0]) >= num(a[1]))),
    Op("and", 2, BOOLEANS, "bool", "and", lambda a, base: bool(a[0]) and bool(a[1])),
    Op("or", 2, BOOLEANS, "bool", "or", lambda a, base: bool(a[0]) or bool(a[1])),
    Op("not", 1, BOOLEANS, "bool", "not", lambda a, base: not bool(a[0])),
    Op("if_else", 3, CONDITIONAL, "branches", "... if ... else ...", lambda a, base: a[1] if a[0] else a[2]),
    Op("digit", 1, TOKEN, "num", "digit(...)", lambda a, base: _digit(a[0], base), call=True),
    Op("is_digit", 1, TOKEN, "bool", "is_digit(...)", lambda a, base: a[0] in DIGIT_ALPHABET[:base], call=True),
    Op("digit_token", 1, NUMBER, "token", "digit_token(...)", lambda a, base: _digit_token(a[0], base), call=True),
    Op("nearest", 2, READOUT, "token", "nearest(...)", lambda a, base: _nearest(a[0], a[1])),
)}

# The operators as written, and the op each one is.
BINARY_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "//": "floordiv", "%": "mod", "**": "pow",
              "and": "and", "or": "or"}
COMPARE_OPS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
UNARY_OPS = {"neg": "neg", "not": "not"}  # the parser names a unary operator by its op already
# Built-in functions that are one op applied to their arguments: name -> arity.
ELEMENTWISE_BUILTINS = {op.name: op.arity for op in OPS.values() if op.call}


def affine_coefficients(op: str, constants: tuple) -> tuple | None:
    """`Op.affine_coefficients` of the op named `op`."""
    return OPS[op].affine_coefficients(constants)


def _tagged(values: tuple) -> tuple:
    # True == 1 and hash(True) == hash(1), so a cache keyed on bare values would hand a boolean
    # result to a numeric call (or back). The type goes into the key.
    return tuple((type(v).__name__, v) for v in values)


def apply_op(op: str, args: tuple, base: int) -> Any:
    """Apply an elementwise op to concrete values; numeric results are normalised to sympy.

    Memoised: ops are pure functions of their arguments, and the compiler evaluates them over
    whole value sets and the interpreter over many sequences."""
    return _apply_cached(op, _tagged(args), base)


def clear_op_cache():
    """Forget every memoised op result (a test that checks types fresh needs none left over)."""
    _apply_cached.cache_clear()


@lru_cache(maxsize=1 << 20)
def _apply_cached(op: str, tagged: tuple, base: int) -> Any:
    args = tuple(v for _, v in tagged)
    result = OPS[op].evaluate(args, base)
    if op == "if_else":
        branches = args[1:]
        if any(isinstance(b, bool) for b in branches) and not all(isinstance(b, bool) for b in branches):
            return num(result)  # a conditional mixing booleans and numbers is numeric
        return result
    if isinstance(result, bool) or isinstance(result, str):
        return result
    return sympy.nsimplify(result) if not isinstance(result, sympy.Basic) else result
