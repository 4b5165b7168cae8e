"""The language's built-in names, how each is called, and how values are named in messages."""
from __future__ import annotations

from typing import Any

from dsl.limits import show_number
from dsl.ops import BINARY_OPS, COMPARE_OPS, ELEMENTWISE_BUILTINS, UNARY_OPS

__all__ = ["AGGREGATES", "BINARY_OPS", "BUILTIN_FUNCTIONS", "COMPARE_OPS", "ELEMENTWISE_BUILTINS", "LAYOUT_BUILTINS",
           "MEANING_HINT", "MODEL_FILE_MAGIC", "NUMBER_HINT", "RESERVED_NAMES", "SIGNATURES", "UNARY_OPS", "describe", "show_value",
           "type_of_value"]

AGGREGATES = {"mean": "mean", "aggregate": "mean", "sum": "sum", "first": "first", "last": "last"}
LAYOUT_BUILTINS = {"start", "end", "width"}
BUILTIN_FUNCTIONS = (set(AGGREGATES) | set(ELEMENTWISE_BUILTINS) | LAYOUT_BUILTINS
                     | {"select", "selector_width", "shift", "nearest", "nearest_digit"})
# Names a program cannot define: the built-in functions and the built-in sequences and predicate roles.
RESERVED_NAMES = BUILTIN_FUNCTIONS | {"tokens", "indices", "k", "q"}
# Every model file is a zip archive (torch.save); a program is text and never starts with these bytes.
MODEL_FILE_MAGIC = b"PK\x03\x04"
NUMBER_HINT = ("a program's constants are sizes, offsets and factors; keep them smaller (a very large one "
               "is also beyond what a float weight can hold)")
REQUIRE_HINT = ("a requirement is a condition on the operands' values, with numbers, consts, + - * // % **, "
                "comparisons, and, or, not, e.g. require a >= b")
MEANING_HINT = ("a meaning states the answer from the operands' values, with numbers, consts, + - * // % **, "
                "comparisons, conditionals, min, max and abs, e.g. meaning sum = a + b")
# How each built-in is called, for hints that show the right shape of a call.
SIGNATURES = {
    "select": "select(keys, queries, predicate)", "selector_width": "selector_width(selector)",
    "mean": "mean(selector, values, default=...)", "aggregate": "aggregate(selector, values, default=...)",
    "sum": "sum(selector, values, decay=...)", "first": "first(selector, values, default=...)",
    "last": "last(selector, values, default=...)", "shift": "shift(values, positions, default=...)",
    "digit": "digit(tokens)", "digit_token": "digit_token(number)", "is_digit": "is_digit(tokens)",
    "min": "min(x, y)", "max": "max(x, y)", "abs": "abs(x)", "start": "start(field)", "end": "end(field)",
    "width": "width(field)", "nearest": 'nearest(value, {"0": 0, "1": 1})', "nearest_digit": "nearest_digit(value)",
}


def type_of_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "candidates"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "token"
    return "num"


def describe(type_name: str) -> str:
    return {"num": "a number", "bool": "a boolean", "token": "a token", "selector": "a selector",
            "candidates": "a candidate map"}[type_name]


def show_value(value) -> str:
    """A constant as a message shows it: a token quoted, a number in full or abbreviated."""
    if isinstance(value, str):
        return repr(value)
    return show_number(value) if type_of_value(value) == "num" and getattr(value, "is_Rational", False) else str(value)
