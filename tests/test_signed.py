"""Signed answers: `=> diff[N, signed]` writes a sign token ("+" for zero and up, "-" below) and then
the digits of the magnitude. The layout, the model file, the bad programs, and examples/sub_signed.rasp
against Python's own a - b."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from compiler.api import compile_file, load_compiled, run_prompts
from compiler.check.prove import prove
from compiler.cli import main
from compiler.model.file import load_model, save_model
from dsl.layout import SIGN_TOKENS
from compiler.check.verify import program_from_payload
from dsl.resolve import load_program

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sub_signed.rasp"
SEED = 20261203
BODY = "\nlet value = digit(tokens)\noutput nearest_digit(value)\n"


def _program(tmp_path, answer: str, meaning: str = "a - b", order: str = "msb_first") -> Path:
    path = tmp_path / "signed.rasp"
    path.write_text(f'const N = 3\nlayout base 10, {order}: "<bos>" a[N] "-" b[N] "=" => {answer} "<eos>"\n'
                    f"meaning diff = {meaning}\n" + BODY)
    return path


def _layout(tmp_path, answer="diff[N, signed]", order="msb_first", meaning="a - b"):
    return load_program(_program(tmp_path, answer, meaning, order)).layout


def test_a_signed_field_takes_one_position_more_and_adds_the_sign_tokens(tmp_path):
    layout = _layout(tmp_path)
    answer = layout.answer
    assert (answer.signed, answer.width, answer.length) == (True, 3, 4)
    assert answer.end == answer.start + 3
    assert layout.sequence_length == 1 + 3 + 1 + 3 + 1 + 4 + 1
    assert set(SIGN_TOKENS) <= set(layout.vocab)
    assert layout.vocab.count("-") == 1  # the prompt's "-" is the sign's token too
    unsigned = _layout(tmp_path, "diff[N + 1]", meaning="a - b + 1000")
    assert not unsigned.answer.signed and "+" not in unsigned.vocab


@pytest.mark.parametrize("order, value, tokens", [
    ("msb_first", -5, ["-", "0", "0", "5"]), ("msb_first", 0, ["+", "0", "0", "0"]),
    ("msb_first", 999, ["+", "9", "9", "9"]), ("lsb_first", -120, ["-", "0", "2", "1"])])
def test_answer_tokens_write_the_sign_then_the_magnitude(tmp_path, order, value, tokens):
    layout = _layout(tmp_path, order=order)
    assert layout.answer_tokens(value) == tokens + ["<eos>"]
    assert layout.answer_value(tokens) == value
    assert layout.answer_fits(value) and not layout.answer_fits(-1000) and not layout.answer_fits(1000)


def test_the_field_options_may_come_in_either_order(tmp_path):
    first = _layout(tmp_path, "diff[N, signed, lsb_first]")
    second = _layout(tmp_path, "diff[N, lsb_first, signed]")
    assert first.items == second.items
    assert first.answer.order == "lsb_first" and first.answer.signed


@pytest.mark.parametrize("answer, meaning, message", [
    ("diff[N, sigend]", "a - b", "'sigend' is not a digit order or 'signed'"),
    ("diff[N, signed, signed]", "a - b", "says 'signed' twice"),
    ("diff[N, lsb_first, msb_first]", "a - b", "has two digit orders"),
    ("diff[N]", "a - b", "can be negative"),
    ("diff[N - 1, signed]", "a - b", "do not add up"),
])
def test_bad_signed_layouts_exit_2_with_a_located_message(tmp_path, capsys, answer, meaning, message):
    assert main([str(_program(tmp_path, answer, meaning)), "-o", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert message in err and "signed.rasp:" in err and "Traceback" not in err
    assert not (tmp_path / "m.pt").exists()


def test_the_signed_operand_message_points_at_the_field(tmp_path, capsys):
    path = tmp_path / "operand.rasp"
    path.write_text('const N = 2\nlayout base 10, msb_first: "<bos>" a[N, signed] "-" b[N] "=" => diff[N, signed] "<eos>"\n'
                    "meaning diff = a - b\n" + BODY)
    assert main([str(path), "-o", str(tmp_path / "m.pt")]) == 2
    assert "operand.rasp:2:36: error: operand field 'a' cannot be signed" in capsys.readouterr().err


@pytest.fixture(scope="module")
def compiled():
    return compile_file(EXAMPLE, {}, "float64")


def _answers(ir, pairs):
    layout = ir.program.layout
    prompts = [layout.prompt_tokens({"a": a, "b": b}) for a, b in pairs]
    return run_prompts(load_compiled(ir), layout, prompts)


def _want(ir, pairs):
    return [ir.program.layout.written_answer(ir.program.layout.answer_tokens(a - b)) for a, b in pairs]


def test_sub_signed_writes_the_sign_and_the_magnitude(compiled):
    ir, _, _ = compiled
    pairs = [(5, 7), (7, 5), (5, 5), (0, 0), (9_000_000_000, 1), (0, 9_999_999_999), (9_999_999_999, 0),
             (1_234_567_890, 1_234_567_891), (1_234_567_891, 1_234_567_890)]
    assert _answers(ir, pairs[:3]) == ["-0000000002", "+0000000002", "+0000000000"]
    assert _answers(ir, pairs) == _want(ir, pairs)


def test_sub_signed_on_random_inputs_and_long_equal_runs(compiled):
    ir, _, _ = compiled
    rng = random.Random(SEED)
    pairs = [(rng.randrange(10 ** 10), rng.randrange(10 ** 10)) for _ in range(500)]
    for run in range(10):  # `run` equal leading digits, then the place that decides the sign
        a = rng.randrange(10 ** 10)
        head = a // 10 ** (10 - run) * 10 ** (10 - run)
        pairs += [(a, head + rng.randrange(10 ** (10 - run))) for _ in range(5)]
    assert _answers(ir, pairs) == _want(ir, pairs)


def test_every_input_at_two_digits(tmp_path):
    ir, _, _ = compile_file(EXAMPLE, {"N": 2}, "float64")
    pairs = [(a, b) for a in range(100) for b in range(100)]
    assert _answers(ir, pairs) == _want(ir, pairs)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sub_signed_is_proved_and_its_file_round_trips(compiled, tmp_path, dtype):
    ir, stats, digest = compiled
    path = tmp_path / "sub_signed.pt"
    save_model(path, ir, stats, digest)
    _, payload = load_model(path)
    assert payload["layout"]["items"][payload["layout"]["answer_index"]][-1] == "signed"
    proof = prove(payload, program_from_payload(payload, None), dtype)
    assert proof.status == "proved", proof


def test_a_model_file_with_a_bad_fifth_item_is_refused(compiled, tmp_path, capsys):
    ir, stats, digest = compiled
    path = tmp_path / "hostile.pt"
    save_model(path, ir, stats, digest)
    _, payload = load_model(path)
    payload["layout"]["items"][payload["layout"]["answer_index"]][4] = "unsigned"
    torch.save(payload, path)
    assert main(["verify", str(path), "--samples", "0"]) == 2
    err = capsys.readouterr().err
    assert "hostile.pt" in err and "unsigned" in err and "Traceback" not in err


def test_the_adderboard_export_refuses_a_signed_answer(compiled, tmp_path, capsys):
    ir, stats, digest = compiled
    path = tmp_path / "sub_signed.pt"
    save_model(path, ir, stats, digest)
    assert main(["export", "--to", "adderboard", "-o", str(tmp_path / "board.py"), str(path)]) == 2
    assert "cannot write an AdderBoard submission" in capsys.readouterr().err
    assert not (tmp_path / "board.py").exists()
