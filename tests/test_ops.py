"""The op table (dsl.ops) is complete and true to itself: every op the language can write has an
entry, every entry can be written, and each entry's affine rule agrees with its evaluation."""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import sympy

from dsl.core import Aggregate, Map
from dsl.ops import (BINARY_OPS, BOOLEANS, COMPARE_OPS, ELEMENTWISE_BUILTINS, EQUATABLE, NEVER, NUMBERS, OPS,
                     ORDERED, UNARY_OPS, EvaluationError, apply_op)
from dsl.parser import GRAMMAR_PATH
from dsl.resolve import load_program
from dsl.resolve.names import BUILTIN_FUNCTIONS
from compiler.passes.encodings import relative_term

# Every operator and elementwise built-in, none of them over constants alone (those are folded).
EVERY_OP = '''layout base 10, msb_first: "<bos>" a[2] "+" b[2] "=" => sum[3] "<eos>"
let d = digit(tokens)
let x = (d + indices - d * 2) / 3 + d // 2 + d % 4 + d ** 2 + -d
let c = (x < 1 and x <= 2) or not (x > 3) or (x >= 0 and x == 1 and x != 2) or tokens == "+"
let m = min(x, 1) + max(x, 2) + abs(x) + (1 if c else 0)
let t = digit_token(d % 10) if is_digit(tokens) else nearest(m, {"0": 0, "1": 1})
output t
'''
# Quoted words in the grammar that are no elementwise op: punctuation, the conditional's words
# (if_else), & (which combines selectors) and the words of statements.
NOT_OPS = {"(", ")", "{", "}", "[", "]", ",", ":", "=", "=>", "&", "if", "else", "true", "false", "const", "let",
           "def", "import", "output", "meaning", "layout", "base", "..", "require"}
NUMERIC_OPERANDS = {NUMBERS, ORDERED, EQUATABLE}
POINTS = [sympy.Integer(v) for v in range(-6, 7)] + [sympy.Rational(1, 2)]  # every constant among them
CONSTANTS = [sympy.Integer(2), sympy.Integer(3), sympy.Rational(1, 2)]


def test_every_op_the_resolver_builds_has_an_entry_and_every_entry_is_built():
    program = load_program("every_op.rasp", text=EVERY_OP)
    built = {node.op for node in program.nodes if isinstance(node, Map)}
    assert built <= set(OPS)
    assert built == set(OPS), f"no program can write {sorted(set(OPS) - built)}"


def test_every_operator_of_the_grammar_is_an_op():
    grammar = GRAMMAR_PATH.read_text()
    # The words of the rules that build something (`sum "+" term -> add`), and two terminals.
    rules = [line for line in grammar.splitlines() if "->" in line or line.startswith(("POW", "COMPARE"))]
    literals = {word for line in rules for word in re.findall(r'"([^"]+)"', line)} - NOT_OPS
    for literal in literals:
        op = BINARY_OPS.get(literal) or COMPARE_OPS.get(literal) or UNARY_OPS.get(literal)
        assert op in OPS, f"the grammar's {literal!r} is no op in dsl.ops"
    assert {"**", "==", "<", "not"} <= literals  # the pattern above does find them


def test_every_elementwise_builtin_is_an_op_with_its_arity():
    for name, arity in ELEMENTWISE_BUILTINS.items():
        assert name in BUILTIN_FUNCTIONS and OPS[name].arity == arity
    for op in list(BINARY_OPS.values()) + list(COMPARE_OPS.values()):
        assert OPS[op].arity == 2
    for op in UNARY_OPS.values():
        assert OPS[op].arity == 1


def _variable_choices(op):
    """Which arguments are not constants: every non-empty choice."""
    for count in range(1, op.arity + 1):
        yield from itertools.combinations(range(op.arity), count)


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if op.operands in NUMERIC_OPERANDS))
def test_the_affine_rule_agrees_with_the_evaluation(name):
    """Where an op is affine by its rule, its value is that sum of factors times arguments at every
    point tried; where its rule says it is not, it bends for some constant, along a line of points."""
    op = OPS[name]
    for variable in _variable_choices(op):
        bends = []
        for constant in CONSTANTS:
            constants = tuple(None if i in variable else constant for i in range(op.arity))
            factors = op.affine_coefficients(constants)
            values = {}
            for t in POINTS:
                # Along a line on which no two varying arguments are equal (x / x is affine on x == y).
                args = tuple((i + 1) * t + i if c is None else c for i, c in enumerate(constants))
                try:
                    values[t] = apply_op(name, args, 10)
                except EvaluationError:
                    continue
                if factors is not None:
                    expected = sum((f * a for f, a in zip(factors, args) if f is not None), sympy.Integer(0))
                    assert values[t] == expected, (name, args)
            if factors is None:
                bends.append(not _on_a_line(values))
        assert not bends or any(bends), f"{name} with arguments {variable} varying is affine after all"


def test_ops_affine_only_by_a_constant_are_not_affine_without_one():
    assert OPS["mul"].affine_coefficients((None, None)) is None
    assert OPS["div"].affine_coefficients((sympy.Integer(2), None)) is None
    assert OPS["div"].affine_coefficients((None, sympy.Integer(2))) == (sympy.Rational(1, 2), None)
    assert OPS["mul"].affine_coefficients((sympy.Integer(3), None)) == (None, 3)


def test_boolean_and_token_ops_are_never_affine_by_rule():
    # Their arguments are booleans or tokens: the compiler reads such a value through a one-hot or
    # as a two-valued function, never by this rule.
    for op in OPS.values():
        if op.operands not in NUMERIC_OPERANDS:
            assert op.affine == NEVER, op.name
            assert op.affine_coefficients((None,) * op.arity) is None
    assert OPS["and"].operands == BOOLEANS


def _on_a_line(values: dict) -> bool:
    """Whether the values (t -> value) are an affine function of t."""
    points = [(x, y if not isinstance(y, bool) else sympy.Integer(int(y))) for x, y in values.items()]
    if len(points) <= 2:
        return True
    (x0, y0), (x1, y1) = points[0], points[1]
    slope = (y1 - y0) / (x1 - x0)
    return all(y == y0 + slope * (x - x0) for x, y in points)


def test_every_entry_evaluates_with_its_arity():
    samples = {NUMBERS: sympy.Integer(2), ORDERED: sympy.Integer(2), EQUATABLE: sympy.Integer(2), BOOLEANS: True}
    for op in OPS.values():
        if op.operands in samples:
            assert apply_op(op.name, (samples[op.operands],) * op.arity, 10) is not None
    assert apply_op("if_else", (True, sympy.Integer(1), sympy.Integer(2)), 10) == 1
    assert apply_op("digit", ("7",), 10) == 7 and apply_op("is_digit", ("+",), 10) is False
    assert apply_op("digit_token", (sympy.Integer(7),), 10) == "7"
    assert apply_op("nearest", (sympy.Rational(2, 3), (("0", 0), ("1", 1))), 10) == "1"


def test_the_table_is_where_ops_live():
    """The semantics and the compiler name no op facts of their own (the affine rule once had three copies)."""
    root = Path(__file__).resolve().parent.parent
    for path in ["dsl/semantics.py", "compiler/passes/encodings.py", "compiler/ir/reads.py", "compiler/passes/share.py"]:
        text = (root / path).read_text()
        assert '"add", "sub"' not in text and "AFFINE_OPS" not in text, path


def test_a_position_term_is_read_by_the_one_affine_rule():
    """The relative-term finder (compiler.passes.encodings) writes a predicate symbolically by the
    table's rule, so a difference divided by a constant is a distance too: one key two back."""
    program = load_program("halves.rasp", text='layout base 10, msb_first: "<bos>" a[2] "=" => b[2] "<eos>"\n'
                                               'let back = first(select(indices, indices, (q - k) / 2 == 1), tokens, '
                                               'default="<bos>")\noutput back\n')
    (aggregate,) = [n for n in program.nodes if isinstance(n, Aggregate)]
    assert relative_term(aggregate.selector.terms[0], program.layout.n_ctx, 10) == ("offset", 2)
