"""Elementwise ops: type checks by the op table (dsl.ops), folding of constants, and their bounds."""
from __future__ import annotations

from dsl.core import Const
from dsl.limits import MAX_NUMBER_BITS, MAX_NUMBER_DIGITS, digits_in, show_number
from dsl import ops
from dsl.ops import OPS
from dsl.resolve.names import NUMBER_HINT, SIGNATURES, describe, type_of_value
from dsl.semantics import EvaluationError, apply_op, num

NUMERIC = {"num", "bool"}  # booleans count as 0 and 1
TOKEN_TO_NUMBER = "turn a digit token into its value with digit(...)"


class OpTypes:
    """The resolver's elementwise ops: every one is type-checked and, over constants, folded."""

    def elementwise(self, op, args, span, arg_spans=None):
        """Type-check and build an elementwise op, folding it when every argument is constant.

        Errors point at `arg_spans` (where each argument is written here): shared nodes keep the
        span of their first use, which may be elsewhere.
        """
        type_name = self.result_type(op, args, span, arg_spans or tuple(span for _ in args))
        if all(isinstance(a, Const) for a in args):
            if op == "pow":
                self.check_power(args[0].value, args[1].value, span)
            try:
                value = apply_op(op, tuple(a.value for a in args), self.layout.base if self.layout else 10)
            except EvaluationError as err:
                raise self.error(f"{err}, in a constant expression", span, self.constant_hint(op, args)) from None
            self.check_constant(value, span)
            return self.builder.const(value, span)
        return self.builder.map(op, args, type_name, span)

    def check_power(self, base, exponent, span):
        """Refuse a constant power too large to compute, from its size alone: 2 ** 100000000 would
        take minutes to build before any other check could see it."""
        base, exponent = num(base), num(exponent)
        if not (base.is_Rational and exponent.is_Rational):
            return
        bits = max(abs(base.p).bit_length(), abs(base.q).bit_length()) - 1  # log2 of the larger part, rounded down
        if bits >= 1 and abs(exponent) * bits > MAX_NUMBER_BITS:
            digits = int(abs(exponent) * bits / 3.33)
            raise self.error(f"{show_number(base)} ** {show_number(exponent)} has over {digits:,} digits; a "
                             f"constant has at most {MAX_NUMBER_DIGITS:,}", span, NUMBER_HINT)

    def check_constant(self, value, span):
        """Refuse a folded constant past MAX_NUMBER_DIGITS, so that repeated products cannot grow
        one without bound (each step is checked, so none is ever much larger than the limit)."""
        if type_of_value(value) != "num":
            return
        if not value.is_Rational:
            raise self.error(f"this constant is {value}, which is not a rational number", span,
                             "constants are whole numbers and fractions; a root such as 2 ** (1/2) is neither")
        # the bit length rules out almost every constant before counting digits exactly
        if max(abs(value.p).bit_length(), abs(value.q).bit_length()) > MAX_NUMBER_BITS - 8 and \
                max(digits_in(value.p), digits_in(value.q)) > MAX_NUMBER_DIGITS:
            raise self.error(f"this constant is {show_number(value)}; a constant has at most "
                             f"{MAX_NUMBER_DIGITS:,} digits", span, NUMBER_HINT)

    def constant_hint(self, op, args):
        """What to change when folding constants fails; the values come from consts, maybe set by -D."""
        if op == "digit_token":
            base = self.layout.base if self.layout else 10
            return f"digit_token(...) takes a whole number from 0 to {base - 1}"
        if op in ("div", "floordiv", "mod"):
            return "every argument here is known when compiling; change the consts so the divisor is not 0"
        if op == "nearest":
            return "give the candidates values that are not equally near this one"
        return "every argument here is known when compiling; change the consts it uses"

    def result_type(self, op, args, span, arg_spans):
        """The type `op` gives over these arguments, or the error for an argument it cannot take
        (`dsl.ops.OPS` says what each op takes)."""
        entry = OPS[op]
        uses = [_At(a, where) for a, where in zip(args, arg_spans)]
        if any(a.type == "selector" for a in uses):
            raise self.error("a selector cannot be used as a value here",
                             next(a.span for a in uses if a.type == "selector"),
                             "aggregate it first, e.g. mean(sel, values) or first(sel, values)")
        checks = {ops.NUMBERS: self.check_numbers, ops.ORDERED: self.check_ordered,
                  ops.EQUATABLE: self.check_equatable, ops.BOOLEANS: self.check_booleans,
                  ops.CONDITIONAL: self.check_conditional, ops.TOKEN: self.check_token,
                  ops.NUMBER: self.check_number, ops.READOUT: lambda entry, uses, span: None}
        checks[entry.operands](entry, uses, span)
        if entry.result == "branches":
            return uses[1].type if uses[1].type == uses[2].type else "num"
        return entry.result

    def check_numbers(self, entry, uses, span):
        for a in uses:
            if a.type == "token":
                raise self.error(f"'{entry.written}' needs numbers, but this is a token (a categorical value, "
                                 "where a numeric one is needed)", a.span, TOKEN_TO_NUMBER)
            if a.type not in NUMERIC:
                raise self.error(f"'{entry.written}' needs numbers, but this is {describe(a.type)}", a.span,
                                 "only numbers and booleans take part in arithmetic")

    def check_ordered(self, entry, uses, span):
        for a in uses:
            if a.type not in NUMERIC:
                raise self.error(f"'{entry.written}' orders numbers, but this is {describe(a.type)}", a.span,
                                 f"tokens have no order: compare them with == or !=, or {TOKEN_TO_NUMBER}")

    def check_equatable(self, entry, uses, span):
        left, right = uses[0].type, uses[1].type
        if (left == "token") != (right == "token"):
            raise self.error(f"cannot compare {describe(left)} with {describe(right)}", span,
                             f'compare a token with a token string such as "+", or {TOKEN_TO_NUMBER}')

    def check_booleans(self, entry, uses, span):
        for a in uses:
            if a.type != "bool":
                raise self.error(f"'{entry.written}' needs booleans, but this is {describe(a.type)}", a.span,
                                 "compare it, e.g. x != 0" if a.type != "token" else 'compare it, e.g. t == "+"')

    def check_conditional(self, entry, uses, span):
        condition, then, otherwise = uses
        if condition.type != "bool":
            raise self.error(f"a condition must be a boolean, but this is {describe(condition.type)}", condition.span,
                             "compare it, e.g. x != 0" if condition.type != "token" else 'compare it, e.g. t == "+"')
        if then.type != otherwise.type and not {then.type, otherwise.type} <= NUMERIC:
            raise self.error(f"the branches of a conditional have different types: "
                             f"{describe(then.type)} and {describe(otherwise.type)}", span,
                             "make both tokens (digit_token(x) turns a digit value into its token) or both numbers")

    def check_token(self, entry, uses, span):
        if uses[0].type != "token":
            raise self.error(f"{entry.written} takes a token, but this is {describe(uses[0].type)}", uses[0].span,
                             f"pass it tokens, or a value aggregated from them: {SIGNATURES[entry.name]}")

    def check_number(self, entry, uses, span):
        if uses[0].type not in NUMERIC:
            raise self.error(f"{entry.written} takes a number, but this is {describe(uses[0].type)}",
                             uses[0].span, "a token needs no conversion; use it as it is")


class _At:
    """A node seen at one particular use, so type errors point where the user wrote it."""

    def __init__(self, node, span):
        self.node, self.span, self.type = node, span, node.type
