"""Evaluating a program's `meaning` (an integer expression over its operand fields).

Two backends share one evaluator: exact Python integers, and int64 torch tensors, which let the
verifier compute millions of expected answers at once (on a GPU too).
"""
from __future__ import annotations

import operator
from fractions import Fraction

from dsl import ast


class Unsupported(Exception):
    """The expression needs something the tensor backend cannot do exactly."""


_BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv, "%": operator.mod}
_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
            ">=": operator.ge}


def _number(value):
    """A truth value used as a number: as in Python, True counts 1. A bool tensor must be made an
    integer one first, or torch adds two of them as `or` ((x == d) + (y == d) would count 1 for 2)."""
    return value.long() if str(getattr(value, "dtype", "")) == "torch.bool" else value


def evaluate(e, operands: dict, constants: dict, tensors: bool = False):
    """The value of meaning expression `e`; operands are ints, or int64 tensors when `tensors`."""
    value = _evaluate(e, operands, constants, tensors)
    return _number(value) if tensors else value


def _evaluate(e, operands: dict, constants: dict, tensors: bool):
    rec = lambda x: _evaluate(x, operands, constants, tensors)
    num = lambda x: _number(rec(x)) if tensors else rec(x)
    if isinstance(e, ast.Number):
        return e.value
    if isinstance(e, ast.Name):
        return operands[e.name] if e.name in operands else int(constants[e.name])
    if isinstance(e, ast.UnaryOp) and e.op == "neg":
        return -num(e.operand)
    if isinstance(e, ast.UnaryOp) and e.op == "not":
        value = rec(e.operand)
        return ~value if tensors else not value
    if isinstance(e, ast.BinOp):
        left, right = (rec(e.left), rec(e.right)) if e.op in ("and", "or") else (num(e.left), num(e.right))
        if e.op in _BINARY:
            return _BINARY[e.op](left, right)
        if e.op == "**":
            if tensors and not isinstance(right, int):
                raise Unsupported("a power with a variable exponent")
            if not tensors and right < 0:  # exact, never a float: 10 ** -1 is 1/10
                return Fraction(left) ** right
            return left ** right
        if e.op == "/":
            if tensors:
                raise Unsupported("true division")
            return Fraction(left, 1) / right
        if e.op in ("and", "or"):
            if tensors:
                return (left & right) if e.op == "and" else (left | right)
            return (left and right) if e.op == "and" else (left or right)
    if isinstance(e, ast.Compare):
        values = [num(x) for x in e.operands]
        parts = [_COMPARE[op](values[i], values[i + 1]) for i, op in enumerate(e.ops)]
        result = parts[0]
        for part in parts[1:]:
            result = (result & part) if tensors else (result and part)
        return result
    if isinstance(e, ast.IfElse):
        condition = rec(e.condition)
        if tensors:
            import torch
            then, otherwise = num(e.then), num(e.otherwise)
            return torch.where(torch.as_tensor(condition), torch.as_tensor(then), torch.as_tensor(otherwise))
        return rec(e.then) if condition else rec(e.otherwise)
    if isinstance(e, ast.RangeCall):
        low, high = int(rec(e.low)), int(rec(e.high))
        total = 0 if e.function == "sum" else 1
        for place in range(low, high + 1):
            value = _number(_evaluate(e.body, {**operands, e.variable: place}, constants, tensors)) if tensors \
                else _evaluate(e.body, {**operands, e.variable: place}, constants, tensors)
            total = total + value if e.function == "sum" else total * value
        return total
    if isinstance(e, ast.Call) and e.function in ("min", "max", "abs"):
        args = [num(a) for a in e.args]
        if tensors:
            import torch
            args = [torch.as_tensor(a) for a in args]
            return {"min": lambda: torch.minimum(*args), "max": lambda: torch.maximum(*args),
                    "abs": lambda: args[0].abs()}[e.function]()
        return {"min": min, "max": max, "abs": abs}[e.function](*args)
    raise Unsupported(type(e).__name__)


def check(e) -> str | None:
    """What in `e` a meaning cannot contain, or None."""
    if isinstance(e, (ast.Number, ast.Name)):
        return None
    if isinstance(e, ast.UnaryOp):
        return check(e.operand)
    if isinstance(e, ast.BinOp):
        if e.op == "&":
            return "'&' (selectors)"
        return check(e.left) or check(e.right)
    if isinstance(e, ast.Compare):
        return next((r for r in map(check, e.operands) if r), None)
    if isinstance(e, ast.IfElse):
        return check(e.condition) or check(e.then) or check(e.otherwise)
    if isinstance(e, ast.Call) and e.function in ("min", "max", "abs"):
        return next((r for r in map(check, e.args) if r), None)
    if isinstance(e, ast.RangeCall):
        return check(e.low) or check(e.high) or check(e.body)
    if isinstance(e, ast.Call):
        return f"a call to {e.function}(...)"
    return f"a {type(e).__name__.lower()}"


def magnitude_bound(e, bounds: dict, constants: dict) -> int | None:
    """An upper bound on |value| over operands with |operand| <= bounds[name], or None if unknown.
    The tensor backend is exact only when every intermediate stays inside int64."""
    rec = lambda x: magnitude_bound(x, bounds, constants)
    if isinstance(e, ast.Number):
        return abs(e.value)
    if isinstance(e, ast.Name):
        return bounds[e.name] if e.name in bounds else abs(int(constants[e.name]))
    if isinstance(e, ast.UnaryOp):
        return rec(e.operand) if e.op == "neg" else 1
    if isinstance(e, ast.BinOp):
        left, right = rec(e.left), rec(e.right)
        if left is None or right is None:
            return None
        if e.op in ("+", "-"):
            return left + right
        if e.op == "*":
            return left * right
        if e.op in ("//", "%"):
            return max(left, right)
        if e.op == "**" and isinstance(e.right, ast.Number):
            return left ** e.right.value
        if e.op in ("and", "or"):
            return 1
        return None
    if isinstance(e, ast.Compare):
        return 1 if all(rec(x) is not None for x in e.operands) else None
    if isinstance(e, ast.IfElse):
        parts = [rec(e.condition), rec(e.then), rec(e.otherwise)]
        return None if None in parts else max(parts[1:])
    if isinstance(e, ast.Call) and e.function in ("min", "max", "abs"):
        parts = [rec(a) for a in e.args]
        return None if None in parts else max(parts)
    if isinstance(e, ast.RangeCall):
        low, high = range_of(e, constants)
        body = magnitude_bound(e.body, {**bounds, e.variable: max(abs(low), abs(high))}, constants)
        count = max(0, high - low + 1)
        if body is None:
            return None
        return count * body if e.function == "sum" else max(body, 1) ** count
    return None


def range_of(e, constants: dict) -> tuple[int, int]:
    """The first and last whole number of a range call (its ends are made of constants)."""
    return int(_evaluate(e.low, {}, constants, False)), int(_evaluate(e.high, {}, constants, False))


class TooLarge(Exception):
    """A meaning's value at `expression` can need `bits` bits: more than the caller allows."""

    def __init__(self, expression, bits: int):
        super().__init__(f"{bits} bits")
        self.expression, self.bits = expression, bits


def bit_bound(e, operand_bits: dict, constants: dict, limit: int) -> int:
    """An upper bound on the bit length of |value| of `e`, where operand `name` has at most
    operand_bits[name] bits; raises TooLarge at the first subexpression whose bound passes `limit`.

    Computed from sizes alone, so a meaning such as a ** 1000000 is refused before it is evaluated.
    """
    bits = _bits(e, operand_bits, constants, limit)
    if bits > limit:
        raise TooLarge(e, bits)
    return bits


def _bits(e, operand_bits, constants, limit):
    rec = lambda x: bit_bound(x, operand_bits, constants, limit)
    if isinstance(e, ast.Number):
        return abs(e.value).bit_length()
    if isinstance(e, ast.Name):
        return operand_bits[e.name] if e.name in operand_bits else abs(int(constants[e.name])).bit_length()
    if isinstance(e, ast.UnaryOp):
        operand = rec(e.operand)
        return operand if e.op == "neg" else 1
    if isinstance(e, ast.Compare):
        for x in e.operands:
            rec(x)
        return 1
    if isinstance(e, ast.IfElse):
        rec(e.condition)
        return max(rec(e.then), rec(e.otherwise))
    if isinstance(e, ast.RangeCall):
        low, high = range_of(e, constants)
        count = max(0, high - low + 1)
        inner = {**operand_bits, e.variable: max(abs(low), abs(high)).bit_length()}
        body = bit_bound(e.body, inner, constants, limit)
        return body + count.bit_length() if e.function == "sum" else body * count
    if isinstance(e, ast.Call):
        return max(rec(a) for a in e.args)
    if not isinstance(e, ast.BinOp):
        return 1
    left, right = rec(e.left), rec(e.right)
    if e.op in ("+", "-"):
        return max(left, right) + 1
    if e.op in ("*", "/"):  # a fraction's numerator and denominator together
        return left + right
    if e.op in ("//", "%", "and", "or"):
        return max(left, right)
    if e.op == "**":
        if left <= 1:  # 0, 1 or -1 to any power
            return 1
        # a bound on the exponent's value: the literal, else from its bit length (cheap to form
        # even when huge: the product is then only compared with the limit)
        exponent = abs(e.right.value) if isinstance(e.right, ast.Number) else 1 << right
        return exponent * left
    return max(left, right)
