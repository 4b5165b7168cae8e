"""Regression tests for bugs the fuzz campaign found (tests/fuzz, bench/fuzz.py).

Each program is the campaign's minimal reproducer; the fuzz oracle is the judge: a located error,
or a model equal to the interpreter on every input of the layout.
"""
from __future__ import annotations

import pytest

from dsl.resolve import load_program
from dsl.semantics import EvaluationError, evaluate
from tests.fuzz.oracle import check

# F6: a let nothing reads, undefined on most inputs (digit_token of 15/4 at position 6).
UNREAD_UNDEFINED_LET = '''layout base 10: "<bos>" a[1] "-" b[1] "=" => s[2] "<eos>"
let unused = digit_token(mean(select(is_digit(tokens), indices, k), indices) % 10)
output "<eos>" if indices == end(s) else digit_token(digit(tokens))
'''


def test_a_let_the_output_does_not_read_cannot_make_the_program_undefined():
    program = load_program("<f6>", text=UNREAD_UNDEFINED_LET)
    tokens = program.layout.prompt_tokens({"a": 2, "b": 3}) + ["0", "0"]  # at 6: a mean of 15/4
    evaluation = evaluate(program, tokens)
    assert evaluation.output[-1] == "<eos>"
    with pytest.raises(EvaluationError, match="not a base-10 digit"):
        evaluation["unused"]  # inspecting the let itself still says why it has no value


def test_a_let_the_output_needs_is_still_an_error_where_undefined():
    text = UNREAD_UNDEFINED_LET.replace("digit_token(digit(tokens))", "unused")
    program = load_program("<f6>", text=text)
    with pytest.raises(EvaluationError, match="not a base-10 digit"):
        evaluate(program, program.layout.prompt_tokens({"a": 2, "b": 3}) + ["0", "0"])


def test_unread_undefined_let_compiles_to_a_model_equal_to_the_interpreter():
    outcome = check(UNREAD_UNDEFINED_LET, "<f6>", dtypes=("float64", "float32"))
    assert outcome.kind == "compiled", (outcome.message, outcome.detail)
