"""The reference interpreter: add10 against Python integers, and each aggregate on small programs."""
import itertools
import random
from fractions import Fraction
from pathlib import Path

import pytest
import sympy

from dsl.core import Aggregate, SelectorWidth
from dsl.ops import clear_op_cache
from dsl.resolve import load_program
from dsl.semantics import EvaluationError, evaluate, value_from_inputs

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "add10.rasp"
LAYOUT = 'layout base 10, msb_first: "<bos>" a[2] "+" b[2] "=" => sum[3] "<eos>"\n'
SEQ = ["<bos>", "1", "2", "+", "3", "0", "=", "0", "4", "2"]  # 12 + 30 = 042, fed back digit by digit
DIGITS = [int(t) if t.isdigit() else 0 for t in SEQ]


def adder(n):
    return load_program(EXAMPLE, overrides=None if n == 10 else {"N": n})


def check_sum(program, a, b):
    """Teacher-forced run: from the '=' on, each position must predict the next answer token."""
    layout = program.layout
    sequence = layout.prompt_tokens({"a": a, "b": b}) + layout.answer_tokens(a + b)
    output = evaluate(program, sequence[:-1]).output
    assert len(output) == layout.n_ctx
    assert output[layout.prompt_length - 1:] == sequence[layout.prompt_length:], (a, b)
    assert program.meaning.expected({"a": a, "b": b}) == a + b


def edge_cases(n):
    top = 10 ** n - 1
    half = 5 * 10 ** (n - 1)
    return [(0, 0), (top, 1), (1, top), (top, top), (top, 0), (half, half), (half - 1, half),
            (int("1" * n), int("8" * n)), (int("1" * n), int("8" * (n - 1) + "9"))]


def run(body, tokens=SEQ):
    return evaluate(load_program("<test>", text=LAYOUT + body + '\noutput "0"\n'), tokens)


# ----- add10 against Python integers

@pytest.mark.parametrize("n", [1, 2])
def test_adder_exhaustive(n):
    program = adder(n)
    assert program.layout.fields["sum"].width == n + 1
    for a, b in itertools.product(range(10 ** n), repeat=2):
        check_sum(program, a, b)


@pytest.mark.parametrize("n", [3, 5, 10])
def test_adder_random_and_carry_edges(n):
    program = adder(n)
    rng = random.Random(1000 + n)
    pairs = [(rng.randrange(10 ** n), rng.randrange(10 ** n)) for _ in range(150)] + edge_cases(n)
    for a, b in pairs:
        check_sum(program, a, b)


def test_adder_long_carry_chains_n10():
    program = adder(10)
    for a, b in [(9_999_999_999, 1), (9_999_999_999, 9_999_999_999), (5_000_000_000, 5_000_000_000),
                 (1_234_567_890, 9_876_543_210), (4_545_454_545, 5_454_545_455), (9_999_999_990, 10)]:
        check_sum(program, a, b)


def test_adder_intermediate_values():
    program = adder(3)
    layout = program.layout
    sequence = layout.prompt_tokens({"a": 987, "b": 15}) + layout.answer_tokens(1002)
    ev = evaluate(program, sequence[:-1])
    b_start = layout.fields["b"].start
    assert ev["pair"][b_start:b_start + 3] == [9 + 0, 8 + 1, 7 + 5]
    assert ev["generates"][b_start:b_start + 3] == [False, False, True]
    assert ev["propagates"][b_start:b_start + 3] == [True, True, False]
    assert "".join(ev.output[layout.prompt_length - 1:-1]) == "1002"


def test_meaning_of_the_example():
    program = adder(10)
    assert program.meaning.field == "sum" and program.meaning.text == "a + b"
    for a, b in [(0, 0), (123, 456), (9_999_999_999, 9_999_999_999)]:
        assert program.meaning.expected({"a": a, "b": b}) == a + b


def test_a_wrong_program_is_caught():
    """The checker above is not vacuous: an adder that drops the carry fails it."""
    text = EXAMPLE.read_text()
    assert "+ carry\n" in text
    broken = load_program("<broken>", text=text.replace("+ carry\n", "\n"), overrides={"N": 3})
    check_sum(broken, 123, 456)  # no carries: still right
    with pytest.raises(AssertionError):
        check_sum(broken, 999, 1)


# ----- aggregates on small programs

def test_mean_is_an_exact_rational():
    ev = run("let m = mean(select(indices, indices, k <= 2), digit(tokens) % 2)")
    assert ev["m"][2] == sympy.Rational(1, 3)  # the odd digits among <bos>, 1, 2
    for q, value in enumerate(ev["m"]):
        keys = range(min(q, 2) + 1)
        assert isinstance(value, sympy.Rational) and not isinstance(value, sympy.Float)
        assert Fraction(int(value.p), int(value.q)) == Fraction(sum(DIGITS[k] % 2 for k in keys), len(keys))


def test_mean_of_booleans_is_a_fraction():
    ev = run('let m = mean(select(indices, indices, true), tokens == "+")')
    assert ev["m"][3] == sympy.Rational(1, 4) and ev["m"][5] == sympy.Rational(1, 6)
    assert ev["m"][0] == 0


def test_sum_with_decay_is_exact():
    ev = run("let s = sum(select(indices, indices, true), digit(tokens), decay=10)")
    for q, value in enumerate(ev["s"]):
        expected = sum(Fraction(DIGITS[k], 10 ** (q - k)) for k in range(q + 1))
        assert value == sympy.Rational(expected.numerator, expected.denominator)
    assert ev["s"][2] == sympy.Rational(21, 10)


def test_plain_sum_and_selector_width():
    ev = run("let v = digit(tokens)\nlet s = sum(select(v, v, k == q), v)\n"
             "let w = selector_width(select(v, v, k == q))")
    for q in range(len(SEQ)):
        same = [k for k in range(q + 1) if DIGITS[k] == DIGITS[q]]
        assert ev["w"][q] == len(same)
        assert ev["s"][q] == DIGITS[q] * len(same)


def test_a_term_undefined_only_where_no_pair_meets_it_selects_as_written():
    # `q / k` divides by zero at key 0, which the first term never lets through, and a key after
    # its query is never compared: the selection is decided term by term, pair by pair, as written.
    ev = run("let sel = select(indices, indices, k >= 1) & select(indices, indices, q / k >= 2)\n"
             "let w = selector_width(sel)")
    for q in range(len(SEQ)):
        assert ev["w"][q] == len([k for k in range(1, q + 1) if q / k >= 2])


def test_first_and_last_pick_the_earliest_and_latest_selected():
    ev = run("let v = digit(tokens)\nlet sel = select(v, indices, k > 0)\n"
             "let f = first(sel, indices, default=99)\nlet l = last(sel, indices, default=99)")
    for q in range(len(SEQ)):
        hits = [k for k in range(q + 1) if DIGITS[k] > 0]
        assert ev["f"][q] == (hits[0] if hits else 99)
        assert ev["l"][q] == (hits[-1] if hits else 99)
    assert ev["f"][:3] == [99, 1, 1] and ev["l"][:4] == [99, 1, 2, 2]


def test_default_when_nothing_is_selected():
    ev = run('let sel = select(tokens, tokens, k == "=")\nlet f = first(sel, indices, default=7)\n'
             'let m = mean(sel, indices)\nlet t = last(sel, tokens, default="<eos>")')
    position = SEQ.index("=")
    assert ev["f"] == [7] * position + [position] * (len(SEQ) - position)
    assert ev["m"][:position] == [0] * position
    assert ev["t"][position - 1] == "<eos>" and ev["t"][position] == "="


def test_conjoined_selectors_need_every_term():
    ev = run('let sel = select(indices, indices, k >= 2) & select(tokens, tokens, k != "+")\n'
             "let w = selector_width(sel)")
    for q in range(len(SEQ)):
        assert ev["w"][q] == sum(1 for k in range(2, q + 1) if SEQ[k] != "+")


def test_shift_reads_earlier_positions():
    ev = run('let v = digit(tokens)\nlet s = shift(v, 2)\nlet t = shift(tokens, 1, default="<eos>")')
    assert ev["s"] == [0, 0] + DIGITS[:-2]
    assert ev["t"] == ["<eos>"] + SEQ[:-1]


def test_elementwise_arithmetic_matches_python():
    ev = run("let x = indices - 4\nlet d = x // 3\nlet m = x % 3\nlet r = x / 3\nlet p = -x ** 2\n"
             "let c = 0 < x <= 3\nlet z = max(x, 0) if x != 2 else abs(x) * 10")
    for i in range(len(SEQ)):
        x = i - 4
        assert (ev["d"][i], ev["m"][i], ev["p"][i]) == (x // 3, x % 3, -(x ** 2))
        assert ev["r"][i] == sympy.Rational(x, 3)
        assert ev["c"][i] is (0 < x <= 3)
        assert ev["z"][i] == (max(x, 0) if x != 2 else 20)


def test_categorical_mean_over_differing_tokens_raises():
    body = 'let t = mean(select(indices, indices, true), tokens, default="0")'
    with pytest.raises(EvaluationError, match="categorical mean over differing values"):
        run(body)["t"]  # a let the output does not read is undefined where inspected
    assert run(body, tokens=["<bos>"])["t"] == ["<bos>"]  # one value: nothing to disagree


def test_categorical_annotation_forbids_averaging_numbers():
    body = "let v: categorical = mean(select(indices, indices, k <= 1), digit(tokens))"
    with pytest.raises(EvaluationError) as info:
        run(body)["v"]
    assert info.value.node is not None and "v" in info.value.node.names
    assert run(body.replace("categorical", "numerical"))["v"][1] == sympy.Rational(1, 2)


def test_division_by_zero_raises():
    with pytest.raises(EvaluationError, match="division by zero"):
        run("let x = 1 / (indices - 3)")["x"]


def test_if_else_keeps_booleans_and_numbers_apart():
    clear_op_cache()
    ev = run("let c = indices == 1\nlet n = 1 if c else 0\nlet b = true if c else false")
    assert all(isinstance(v, bool) for v in ev["b"])
    assert not any(isinstance(v, bool) for v in ev["n"])


def test_the_value_of_a_node_at_one_position_is_its_value_in_the_sequence():
    """value_from_inputs, which the compiler and the prover evaluate with, is what evaluate computes."""
    program = adder(3)
    ev = evaluate(program, SEQ)
    for node in program.nodes:
        if isinstance(node, (Aggregate, SelectorWidth)):
            continue  # they look at other positions: no value at one position alone
        for i, token in enumerate(SEQ):
            inputs = tuple(ev.values[a.id][i] for a in node.inputs())
            assert value_from_inputs(node, inputs, program.layout.base, token=token, position=i) == ev.values[node.id][i]
