"""Regression tests for programs the fuzzer (bench/fuzz.py) found: each below once compiled (exit 0)
into a model that disagreed with the interpreter, ran for minutes, or crashed a pass."""
from __future__ import annotations

import itertools
import math
import time
from fractions import Fraction

import pytest
import sympy

from compiler.passes.weights.attention import head_tolerance, score_gap
from compiler.passes.build_graph import build_graph
from compiler.passes.value_sets import TooManyValues, infer_value_sets, mean_values, sum_values
from dsl.resolve import load_program
from tests.fuzz import oracle

# F1: a selector term that holds for every key a query sees; the model wrote the "nothing selected" 0.
F1_PROGRAMS = {
    "token_constant_key": 'layout base 10: "<bos>" a[2] => r[2]\n'
                          'output nearest_digit(first(select(digit(tokens) < 0, indices, not k), 2))\n',
    "literal_false_key": 'layout base 2: "+" b[3] => r[2] "<eos>"\n'
                         'output "<eos>" if indices == 0 else nearest_digit(first(select(0 > 3, tokens, not k), 1))\n',
    "query_only": 'layout base 2: "<bos>" a[1] => r[2]\n'
                  'output digit_token(first(select(1, is_digit(tokens), q), 1))\n',
    "selector_width": 'layout base 10: "<bos>" a[2] => r[2]\n'
                      'output nearest_digit(selector_width(select(digit(tokens) >= 0, indices, k)))\n',
    "sum": 'layout base 10: "*" b[1] => r[1]\n'
           'output nearest_digit(sum(select(digit(tokens) != 10, indices, k), 1))\n',
}

# F3: a decayed sum whose values lie 10^-9 apart, read by `% 2` with a step at 0.
F3_PROGRAM = ('layout base 2: "<bos>" a[1] "-" b[1] "," c[2] "=" => r[2]\n'
              'output nearest_digit((sum(select(tokens == "=", indices, k), 0 - digit(tokens), decay=10)) % 2)\n')

# F5: value sets of sums of many fractions; each must end in a located error within seconds.
F5_PROGRAMS = {
    "sum_of_a_mean": ('layout base 2: "<bos>" a[1] "-" b[3] "=" => r[3]\n'
                      'let m = mean(select(digit(tokens) == 1, indices, not k), indices)\n'
                      'output nearest_digit(sum(select(indices, indices, k >= 3), m) % 2)\n',
                      "more than 100000 possible values"),
    "sum_of_fractions_enumerated": (
        'layout msb_first, base 3: "<bos>" a[1] "|" b[3] "+" c[1] "=" => s[3] "<eos>"\n'
        'let v0 = (mean(select(tokens, 2, k == "<bos>"), digit(tokens))) % 3\n'
        'let v2 = sum(select(tokens, digit(tokens) + digit(tokens), k == "=") & select(tokens, indices, k != "<bos>"), '
        '0 - v0 - v0)\n'
        'output "<eos>" if indices == end(s) else nearest_digit((v2) % 3)\n',
        "a sum over up to 12 keys has more than 100000 possible values"),
}
SECONDS = 10


@pytest.mark.parametrize("name", sorted(F1_PROGRAMS))
def test_select_term_true_for_every_key_compiles_right(name):
    outcome = oracle.check(F1_PROGRAMS[name], f"{name}.rasp", dtypes=("float64", "float32"))
    assert outcome.kind == "compiled", (outcome.kind, outcome.message, outcome.detail)


def test_decayed_sum_of_nonpositive_values_matches_the_interpreter():
    outcome = oracle.check(F3_PROGRAM, "f3.rasp", dtypes=("float64",))
    assert outcome.kind == "compiled", (outcome.kind, outcome.message, outcome.detail)
    assert outcome.inputs == 16  # every input of the layout


def test_decayed_sum_too_fine_for_float32_is_refused_at_its_line():
    outcome = oracle.check(F3_PROGRAM, "f3.rasp", dtypes=("float32",))
    assert outcome.kind == "located" and "float32 cannot hold" in outcome.message, outcome


def test_head_leak_is_sized_by_its_values_gaps():
    """The F3 head: its values lie 10^-9 apart, so its leak bound must sit well under a reader's
    quarter-gap margin, not at the fixed 1e-6."""
    program = load_program("f3.rasp", None, F3_PROGRAM)
    graph = infer_value_sets(build_graph(program, {"dtype": "float64"})).graph
    (attrs,) = [a for a in graph.nodes.values() if getattr(a["node"], "decay", None) is not None]
    attrs = dict(attrs, encoding="numerical")
    values = sorted(float(v) for v in attrs["values"])
    closest = min(b - a for a, b in zip(values, values[1:]))
    assert closest < 1e-8
    tolerance = head_tolerance(attrs)
    assert tolerance <= closest / 8
    n_ctx, magnitude = program.layout.n_ctx, max(abs(v) for v in values)
    assert n_ctx * magnitude * math.exp(-score_gap(n_ctx, magnitude, tolerance)) <= float(tolerance)


@pytest.mark.parametrize("name", sorted(F5_PROGRAMS))
def test_sum_of_many_fractions_stops_with_a_located_error(name):
    text, message = F5_PROGRAMS[name]
    started = time.perf_counter()
    outcome = oracle.check(text, f"{name}.rasp")
    assert time.perf_counter() - started < SECONDS
    assert outcome.kind == "located" and message in outcome.message, (outcome.kind, outcome.message)


def _brute_sums(values, width):
    return {sum(c, Fraction(0)) for n in range(width + 1) for c in itertools.combinations_with_replacement(values, n)}


@pytest.mark.parametrize("values", [
    [Fraction(1, 2), Fraction(2, 3), Fraction(-3, 4)],
    [Fraction(0), Fraction(5, 7), Fraction(1, 3), Fraction(7)],
    [Fraction(-1), Fraction(-1, 6)],
])
def test_value_sets_of_fraction_sums_and_means_are_exact(values):
    width = 4
    exact = {sympy.Rational(v.numerator, v.denominator) for v in values}
    want_sums = _brute_sums(values, width)
    assert {Fraction(int(s.p), int(s.q)) for s in sum_values(exact, width, None, list(range(width)))} == want_sums
    want_means = {sum(c, Fraction(0)) / n for n in range(1, width + 1)
                  for c in itertools.combinations_with_replacement(values, n)}
    assert {Fraction(int(s.p), int(s.q)) for s in mean_values(exact, width)} == want_means


def test_decayed_sum_value_set_is_exact():
    values = {sympy.Integer(0), sympy.Integer(-1), sympy.Rational(1, 3)}
    got = sum_values(values, 3, 10, [0, 1, 2])
    want = {a + b / 10 + c / 100 for a, b, c in itertools.product(values, repeat=3)}
    assert got == want


def test_too_many_fraction_sums_are_refused_quickly():
    values = {sympy.Rational(1, p) for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43)}
    started = time.perf_counter()
    with pytest.raises(TooManyValues, match="possible values"):
        sum_values(values, 12, None, list(range(12)))
    assert time.perf_counter() - started < SECONDS


# Campaign seed 3 (gen-3002598): a sum a select tests with a non-linear predicate must be one-hot, which a
# head cannot write; it was built as a histogram of one-hots. Refused at its line; through `% 100` it compiles.
CATEGORICAL_SUM = ('layout base 10, msb_first: "<bos>" a[2] "," b[1] "=" => s[1] "<eos>"\n'
                   'let t = sum(select(indices, indices, k < q), digit(tokens)){through}\n'
                   'output "<eos>" if indices == end(s) else digit_token(last(select(t, indices, k % 3 == 0), 1))\n')


def test_sum_that_must_be_categorical_is_refused_at_its_line():
    outcome = oracle.check(CATEGORICAL_SUM.format(through=""), "sum.rasp")
    assert outcome.kind == "located" and "it cannot be categorical, but a select tests it" in outcome.message, \
        (outcome.kind, outcome.message)


def test_sum_read_through_a_function_compiles_right():
    outcome = oracle.check(CATEGORICAL_SUM.format(through=" % 100"), "sum.rasp")
    assert outcome.kind == "compiled", (outcome.kind, outcome.message, outcome.detail)


# Programs that once crashed a pass; each must compile and match the interpreter in both dtypes.
CRASHED_A_PASS = {
    # A selector_width over an `&` whose second select folds away: the derived value between them
    # has no reader, and scheduling took the maximum of a missing read slot (TypeError).
    "folded_reader": (
        'layout lsb_first, base 2: "<bos>" a[2] "," b[1] "=" => s[3] "<eos>"\n'
        'let v1 = selector_width(select(1 + digit(tokens), indices == 1, q) & '
        'select(shift(digit(tokens), 4, default=1), 5, abs(k - q) <= 0))\n'
        'output "<eos>" if indices == end(s) else nearest_digit((v1 + v1) % 2)\n'),
    # `TOKEN if c else nearest(x, ...)` where the value sets found the nearest constant: its
    # argument was never stored, and the readout read it anyway (KeyError 'dims').
    "constant_nearest": (
        'layout base 3, msb_first: "<bos>" a[3] "-" b[2] "=" => r[3] "<eos>"\n'
        'let v1: categorical = digit(tokens) + indices\n'
        'output "<eos>" if indices == end(r) else nearest(3 * (indices + 3) + v1, {"2": 0, "0": 10})\n'),
}


@pytest.mark.parametrize("name", sorted(CRASHED_A_PASS))
def test_programs_that_crashed_a_pass_compile_right(name):
    outcome = oracle.check(CRASHED_A_PASS[name], f"fuzz/{name}.rasp", dtypes=("float64", "float32"))
    assert outcome.kind == "compiled", outcome.message
