"""Meanings written once for every N: a def called in a meaning, and sum(p in LOW..HIGH: ...) or
product(...) over whole numbers (#15 item 6). examples/digit_sum.rasp uses both."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from compiler.api import compile_file, load_compiled, run_prompts
from compiler.check.prove import prove
from compiler.check.verify import program_from_payload
from compiler.model.file import load_model, save_model
from dsl.errors import AdderError
from dsl.resolve import load_program

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "digit_sum.rasp"
BODY = "let value = digit(tokens)\noutput nearest_digit(value)\n"


def _meaning(tmp_path, lines: str, n=4, answer="s[N + 1]"):
    path = tmp_path / "m.rasp"
    path.write_text(f'const N = {n}\nlayout base 10, msb_first: "<bos>" a[N] "+" b[N] "=" => {answer} "<eos>"\n'
                    + lines + "\n" + BODY)
    return load_program(path).meaning


def _digits(x, n):
    return [x // 10 ** p % 10 for p in range(n)]


def test_a_sum_over_places_is_the_meaning_it_spells_out(tmp_path):
    meaning = _meaning(tmp_path, "def d(x, p) = x // 10 ** p % 10\n"
                                 "meaning s = sum(p in 0..N-1: (d(a, p) + d(b, p)) * 10 ** p)")
    rng = random.Random(5)
    for _ in range(200):
        a, b = rng.randrange(10 ** 4), rng.randrange(10 ** 4)
        # digit by digit without the carries: a + b itself
        assert meaning.expected({"a": a, "b": b}) == a + b
    tensors = {"a": torch.tensor([1234, 9999]), "b": torch.tensor([4321, 1])}
    assert meaning.expected_tensor(tensors).tolist() == [5555, 10000]


def test_a_product_and_a_def_with_lets(tmp_path):
    meaning = _meaning(tmp_path, "def top(x) {\n  let first = x // 10 ** (N - 1)\n  first + 0\n}\n"
                                 "meaning s = product(p in 1..3: p) + top(a) * 0 + sum(p in 0..N-1: 0) + b",
                       answer="s[N + 1]")
    assert meaning.expected({"a": 5000, "b": 7}) == 6 + 7


def test_an_empty_range_adds_nothing_and_multiplies_by_one(tmp_path):
    meaning = _meaning(tmp_path, "meaning s = sum(p in 3..2: 100) + product(p in 1..0: 0) + a")
    assert meaning.expected({"a": 4, "b": 0}) == 5


def test_the_place_variable_hides_a_def_parameter_of_the_same_name(tmp_path):
    meaning = _meaning(tmp_path, "def f(p) = p + sum(p in 0..2: p)\nmeaning s = f(a)")
    assert meaning.expected({"a": 10, "b": 0}) == 10 + 3


def test_digit_sum_compiles_runs_and_proves():
    ir, stats, digest = compile_file(EXAMPLE)
    layout = ir.program.layout
    prompts = [layout.prompt_tokens({"a": a}) for a in (9876, 0, 9999, 1005)]
    assert run_prompts(load_compiled(ir), layout, prompts) == ["30", "00", "36", "06"]
    assert ir.lowered[0]["n_layers"] == 1


def test_digit_sum_is_proved_in_both_dtypes(tmp_path):
    path = tmp_path / "digit_sum.pt"
    save_model(path, *compile_file(EXAMPLE))
    _, payload = load_model(path)
    program = program_from_payload(payload, None)
    assert [prove(payload, program, d).status for d in ("float64", "float32")] == ["proved", "proved"]


def test_the_meaning_follows_N_and_its_width_is_checked():
    wider = load_program(EXAMPLE, {"N": 8})
    assert wider.meaning.expected({"a": 99999999}) == 72
    with pytest.raises(AdderError, match="needs 3"):
        load_program(EXAMPLE, {"N": 12})  # 9 * 12 = 108 does not fit s[2]


def test_a_negative_power_is_a_fraction_never_a_rounded_float(tmp_path):
    meaning = _meaning(tmp_path, "meaning s = sum(p in -1..0: 10 ** p) + a")
    with pytest.raises(ValueError, match="not a whole number"):
        meaning.expected({"a": 0, "b": 0})
    assert _meaning(tmp_path, "meaning s = 10 ** (0 - 1) * 10 + a").expected({"a": 1, "b": 0}) == 2
