"""The compiler never writes a model that disagrees with its program.

The compiler bugs behind issue 10's wrong models (a constant selector term, selector_width over
constants, a head reading queries alone), each compiled and then checked against the interpreter;
and the checks that refuse any other wrong model (compiler.passes.self_check): a value the dtype cannot
hold, a model float32 computes wrongly, and lowered weights corrupted on purpose.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compiler.api import compile_file, load_compiled, run_prompts
from compiler.cli import main
from compiler.check.stored import stored_values
from compiler.passes.self_check import self_check
from compiler.check.inputs import edge_cases
from dsl.errors import AdderError
from dsl.semantics import evaluate

ADD10_HEAD = """const N = 10
layout base 10, msb_first: "<bos>" a[N] "+" b[N] "=" => sum[N + 1] "<eos>"
meaning sum = a + b
let value = digit(tokens)
const ALIGN = start(b) - start(a)
let pair = value + shift(value, ALIGN)
let generates = pair >= 10
const LOOKBACK = end(sum) - 1 - end(b)
let below = select(indices, indices, q - k < LOOKBACK)
"""
# p is never true (pair <= 18), so the select on it takes every key: the carry is the earliest
# key's `generates` in the window, a different program from add10 but one the model must follow.
CONSTANT_FALSE_KEY = ADD10_HEAD + """let p = pair == 37
let carry = first(below & select(p, indices, not k), generates)
let total = shift(pair, LOOKBACK) + carry
output "<eos>" if indices == end(sum) else nearest_digit(total % 10)
"""
LENGTH = """const N = 3
layout base 10, msb_first: "<bos>" a[N] "=" => r[N + 1] "<eos>"
let length = selector_width(select(1, 1, k == q))
let value = digit(tokens)
output "<eos>" if indices == end(r) else nearest_digit((length + value) % 10)
"""
QUERY_ONLY = """const N = 3
layout base 10, msb_first: "<bos>" a[N] "=" => r[N + 1] "<eos>"
let value = digit(tokens)
let c = last(select(indices, value, q == 3), value)
output "<eos>" if indices == end(r) else nearest_digit((value + c) % 10)
"""
MULTIPLY = """layout base 10, msb_first: "<bos>" a[2] "*" b[2] "=" => prod[4] "<eos>"
meaning prod = a * b
let value = digit(tokens)
let A = 10 * first(select(indices, indices, k == start(a)), value) + first(select(indices, indices, k == start(a) + 1), value)
let B = 10 * first(select(indices, indices, k == start(b)), value) + first(select(indices, indices, k == start(b) + 1), value)
let P = A * B
let place = end(prod) - 1 - indices
let digit_of_P = P // 10 ** max(place, 0) % 10
output "<eos>" if indices == end(prod) else nearest_digit(digit_of_P)
"""


def _compile(tmp_path, text, name="program.rasp", **kwargs):
    path = tmp_path / name
    path.write_text(text)
    return compile_file(path, text=None, **kwargs)[0], path


def _interpreter_answer(program, operands) -> str:
    layout = program.layout
    tokens = layout.prompt_tokens(operands)
    while len(tokens) < layout.sequence_length:
        tokens.append(evaluate(program, tokens).output[-1])
    return layout.written_answer(tokens[layout.prompt_length:])


def _assert_follows_interpreter(ir, inputs):
    model, layout = load_compiled(ir), ir.program.layout
    got = run_prompts(model, layout, [layout.prompt_tokens(o) for o in inputs])
    want = [_interpreter_answer(ir.program, o) for o in inputs]
    assert got == want


# ----- the compiler bugs ----------------------------------------------------------------------

def test_a_select_term_false_for_every_key_folds_away(tmp_path):
    ir, _ = _compile(tmp_path, CONSTANT_FALSE_KEY)
    carry = next(h for layer in ir.weights.layers for h in layer.heads if h.label == "carry")
    assert carry.constants["terms"] == 0 and not carry.b_K and not carry.b_Q  # no score for a term always true
    inputs = [{"a": 1, "b": 9999999999}, {"a": 9999999999, "b": 1}] + edge_cases(ir.program.layout)[:10]
    _assert_follows_interpreter(ir, inputs)


def test_selector_width_of_every_key_is_the_position_plus_one(tmp_path):
    ir, _ = _compile(tmp_path, LENGTH)
    length = next(n for n in ir.graph.nodes if ir.graph.nodes[n]["label"] == "length")
    assert ir.graph.nodes[length]["source"] == "position"
    assert ir.graph.nodes[length]["per_position"] == list(range(1, ir.program.layout.n_ctx + 1))
    _assert_follows_interpreter(ir, [{"a": a} for a in (0, 5, 123, 999, 480)])


def test_a_head_reading_queries_alone_selects_what_they_ask_for(tmp_path):
    # Such a head has a key bias and no key weights; the model once took it for content-free.
    ir, _ = _compile(tmp_path, QUERY_ONLY)
    model, layout = load_compiled(ir), ir.program.layout
    for a in (938, 333, 30):
        tokens = layout.prompt_tokens({"a": a})
        ids = torch.tensor([[layout.vocab.index(t) for t in tokens]])
        with torch.no_grad():
            decoded = stored_values(ir.residual_map, model.residuals(ids))
        c = next(e["id"] for e in ir.residual_map if e["node"] == "c")
        assert [round(v) for v in decoded[c]] == [int(v) for v in evaluate(ir.program, tokens).values[c]]


# ----- what the checks refuse -----------------------------------------------------------------

def test_a_value_float64_cannot_hold_is_refused_at_its_line(tmp_path):
    text = ADD10_HEAD.replace("let pair = value + shift(value, ALIGN)",
                              "let wide = value * 10 ** 30 + shift(value, ALIGN)\n"
                              "let pair = wide // 10 ** 30 + wide % 10 ** 30")
    text += """let propagates = pair == 9
let carry = first(below & select(propagates, indices, not k), generates)
let total = shift(pair, LOOKBACK) + carry
output "<eos>" if indices == end(sum) else nearest_digit(total % 10)
"""
    with pytest.raises(AdderError) as caught:
        _compile(tmp_path, text)
    assert caught.value.span.line == 6
    assert "float64 cannot hold 'wide'" in str(caught.value)
    # Scaled by 10 ** 12 it fits float64 but not float32, which is told to use float64.
    small = text.replace("10 ** 30", "10 ** 12")
    _compile(tmp_path, small)
    with pytest.raises(AdderError, match="compile in float64"):
        _compile(tmp_path, small, dtype="float32")


def test_a_multiply_float32_gets_wrong_is_refused_and_writes_no_model(tmp_path, capsys):
    program = tmp_path / "multiply.rasp"
    program.write_text(MULTIPLY)
    model = tmp_path / "model.pt"
    assert main(["compile", str(program), "-o", str(model), "--dtype", "float32"]) == 2
    err = capsys.readouterr().err
    assert not model.exists()
    assert ":8:" in err.splitlines()[0] and "float32" in err.splitlines()[0]  # the digit picked from P
    assert "compile in float64" in err


def test_the_multiply_compiles_in_float64_and_is_right(tmp_path):
    ir, _ = _compile(tmp_path, MULTIPLY)
    layout = ir.program.layout
    pairs = [(a, b) for a in range(0, 100, 7) for b in range(0, 100, 11)] + [(99, 99), (0, 0), (10, 10)]
    got = run_prompts(load_compiled(ir), layout, [layout.prompt_tokens({"a": a, "b": b}) for a, b in pairs])
    assert got == [layout.written_answer(layout.answer_tokens(a * b)) for a, b in pairs]


def _corrupted(ir, name, change):
    config, state = ir.lowered
    state = dict(state)
    state[name] = state[name].clone()
    change(state[name])
    return type(ir)(**{**ir.__dict__, "lowered": (config, state)})


def _head_of(ir, label):
    entry = next(e for e in ir.weight_map if e["node"] == label and "head" in e)
    return entry["block"], entry["head"]


def _line(ir, label):
    return next(ir.graph.nodes[n]["span"].line for n in ir.graph.nodes if ir.graph.nodes[n]["label"] == label)


@pytest.fixture(scope="module")
def add10(tmp_path_factory):
    return compile_file(Path(__file__).resolve().parent.parent / "examples" / "add10.rasp")[0]


def test_a_head_whose_sink_outscores_its_keys_is_caught_at_its_line(add10):
    # What the constant-term bug did: the sink took the weight, and nothing carried.
    block, head = _head_of(add10, "carry")
    bad = _corrupted(add10, f"{block}.sink", lambda t: t.__setitem__(head, 1e4))
    with pytest.raises(AdderError, match="computes this value wrongly") as caught:
        self_check(bad)
    # carry is written into the dimension total keeps: the error is at total and names carry.
    assert caught.value.span.line == _line(add10, "total")
    assert "'carry'" in str(caught.value)


def test_a_value_off_by_more_than_its_margin_is_caught(add10):
    # An MLP's output bias nudged by 0.3: every value keeps its argmax, but 0.3 is past the
    # quarter gap its readers' kinks allow.
    mlp = next(e for e in add10.weight_map if "units" in e and e["block"] == "blocks.0.mlp")
    dim = next(e["dims"][0] for e in add10.residual_map if e["id"] == mlp["id"])
    bad = _corrupted(add10, "blocks.0.mlp.b_out", lambda t: t.__setitem__(dim, t[dim] + 0.3))
    with pytest.raises(AdderError, match=r"loses this value.*error 0\.3.*allowed 0\.25") as caught:
        self_check(bad)
    assert caught.value.span.line == mlp["line"]


def test_a_wrong_readout_is_caught_at_the_output(add10):
    layout = add10.program.layout
    eos = layout.vocab.index("<eos>")
    bad = _corrupted(add10, "unembed.b_U", lambda t: t.__setitem__(eos, t[eos] - 1e3))
    with pytest.raises(AdderError, match="writes") as caught:
        self_check(bad)
    assert caught.value.span.line == add10.program.output.span.line


def test_a_layout_too_wide_for_the_interpreter_is_checked_against_its_meaning():
    ir = compile_file(Path(__file__).resolve().parent.parent / "examples" / "add_lsb.rasp", {"N": 100})[0]
    assert not ir.probes  # too wide for the probe's budget as well
    zero = ir.program.layout.vocab.index("0")
    bad = _corrupted(ir, "unembed.b_U", lambda t: t.__setitem__(zero, t[zero] + 1e3))
    with pytest.raises(AdderError, match=r"writes .0. where (its meaning|the program) writes"):
        self_check(bad)
