"""How large a program may be: every size a program controls is bounded before work grows with it.

A program's constants, widths and defs can ask for unbounded work (a 10**19-digit field, a power
with a ten-digit exponent, defs that double at every level). Each limit below is checked where the
size is first known, so such a program ends in a located error within seconds instead of a hang.
The limits leave room well above the examples: add10 and add_lsb at -D N=1000 use 3,005 positions,
nesting below 10, a few dozen operations and constants of a few digits.
"""
from __future__ import annotations

import math

# Tokens in a whole sequence (prompt, answer and end token). Every pass, the verifier and the
# prover work per position, and attention per pair of positions.
MAX_POSITIONS = 8192
# Decimal digits in a number: a literal, a -D value, any constant a program folds, and the
# numerator or denominator of a fraction. Below Python's 4,300-digit limit on int-to-text, so
# every constant can also be printed in a message.
MAX_NUMBER_DIGITS = 4000
# Bits of any value a meaning computes on the way to the answer, at the largest operands. An
# answer has at most MAX_POSITIONS base-36 digits (about 42,000 bits); products of two such
# operands fit as well.
MAX_MEANING_BITS = 100_000
# Tokens in one file (names, numbers, operators, strings; a comment counts as one). The parser
# takes about a second for 10,000 on a busy machine; 3,000 one-line defs are 37,000.
MAX_TOKENS = 40_000
# Operators nested inside one another in one expression as written (a + b + c nests two deep).
# The parser and the resolver walk expressions recursively.
MAX_NESTING = 100
# Defs called inside defs, one inside another.
MAX_DEF_DEPTH = 64
# Expressions the resolver visits, counting a def's body once per call it is expanded for.
MAX_EXPANSION = 100_000
# Operations of the resolved program (values after defs are expanded and equal ones shared), and
# the longest chain of operations each reading the one before. Compiler passes walk the chains.
MAX_OPERATIONS = 1000
MAX_CHAIN = 150

_LOG2_10 = math.log2(10)
MAX_NUMBER_BITS = int(MAX_NUMBER_DIGITS * _LOG2_10)


def digits_in(value: int) -> int:
    """Decimal digits of |value|, without turning it into text (which Python refuses past 4,300)."""
    value = abs(int(value))
    if value < 10:
        return 1
    estimate = int((value.bit_length() - 1) / _LOG2_10) + 1
    return estimate + 1 if value >= 10 ** estimate else estimate


def show_number(value) -> str:
    """A number for a message: in full when short, else its size and its leading and trailing digits."""
    numerator, denominator = (value.p, value.q) if hasattr(value, "p") else (int(value), 1)
    if digits_in(numerator) <= 40 and digits_in(denominator) <= 40:
        return str(value)
    return " / ".join(_show_long(part) for part in ((numerator, denominator) if denominator != 1 else (numerator,)))


def show_count(value: int) -> str:
    """A count for a message: with thousands separators, or by its size when very long."""
    return f"{value:,}" if digits_in(value) <= 40 else _show_long(value)


def _show_long(value: int) -> str:
    count = digits_in(value)
    if count <= 40:
        return str(value)
    sign = "-" if value < 0 else ""
    value = abs(value)
    head, tail = value // 10 ** (count - 6), value % 10 ** 6
    return f"{sign}{head}...{tail:06d} ({count:,} digits)"
