"""--prove: proves add10 for all 10^20 inputs, finds a planted error, and says when it cannot."""
import re

import pytest

from compiler.api import compile_file
from compiler.model.file import load_model, save_model
from compiler.check.prove import prove
from compiler.check.verify import program_from_payload
from dsl.resolve import load_program
from tests.conftest import ADD10, ROOT


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    path = tmp_path_factory.mktemp("prove") / "m.pt"
    ir, stats, digest = compile_file(ADD10)
    save_model(path, ir, stats, digest)
    return load_model(path)[1]


def test_add10_is_proved_for_every_input(payload):
    proof = prove(payload, program_from_payload(payload, None), "float32")
    assert proof.status == "proved", proof.reason
    # float32 rounding is bounded, not ignored: the errors are those of float32 arithmetic
    assert 1e-6 < max(proof.errors.values()) < 1e-3
    assert proof.margins["smallest logit margin after errors"] > 0.9
    assert all(gap >= 10 for name, gap in proof.margins.items() if "score gap" in name)


def _edited(payload, name, edit):
    copy = dict(payload, state_dict={k: v.clone() for k, v in payload["state_dict"].items()})
    edit(copy["state_dict"][name])
    return copy


def test_a_planted_error_is_a_counterexample(payload):
    dims = next(e for e in payload["residual_map"] if e["node"] == "generates")["dims"]
    broken = _edited(payload, "blocks.0.mlp.W_out", lambda t: t[:, dims[0]].mul_(2))
    proof = prove(broken, program_from_payload(payload, None))
    assert proof.status == "counterexample"
    # A concrete input, what the model wrote on it, and the failed check named by its source line.
    assert "the model writes" in proof.reason and proof.counterexample["got"] != proof.counterexample["expected"]
    assert "'generates'" in proof.reason and "add10.rasp:20)" in proof.reason
    assert not re.search(r"#\d+", proof.reason)


def test_what_cannot_be_proved_is_said_plainly(payload):
    # The carry head's sink raised far above its keys: no finite error bound holds any more.
    heads = [e for e in payload["weight_map"] if e.get("node") == "carry"]
    layer, head = int(heads[0]["block"].split(".")[1]), heads[0]["head"]
    drowned = _edited(payload, f"blocks.{layer}.attn.sink", lambda t: t.__setitem__(head, 1e4))
    proof = prove(drowned, program_from_payload(payload, None))
    assert proof.status == "could not prove" and "'carry'" in proof.reason and "add10.rasp:" in proof.reason
    other = load_program(ADD10, {"N": 3})
    assert prove(payload, other).status == "could not prove"


@pytest.mark.parametrize("body", [
    "let s = sum(select(indices, indices, q - k < 3), digit(tokens), decay=10)\n"
    "output digit_token((s * 10) // 1 % 10)",
    "output digit_token(sum(select(indices, indices, q - k < 4), digit(tokens) >= 5) % 10)",
])
def test_sum_heads_are_proved(tmp_path, body):
    path = tmp_path / "s.rasp"
    path.write_text('layout base 10, msb_first: "<bos>" a[3] "+" b[3] "=" => sum[4] "<eos>"\n' + body + "\n")
    ir, stats, digest = compile_file(path)
    save_model(tmp_path / "s.pt", ir, stats, digest)
    payload = load_model(tmp_path / "s.pt")[1]
    proof = prove(payload, program_from_payload(payload, None))
    assert proof.status == "proved", proof.reason


@pytest.mark.parametrize("default, sink_needed", [(None, False), (7, True)])
def test_position_zero_stands_in_for_the_sink_only_when_it_holds_the_default(tmp_path, default, sink_needed):
    # Before the offset key exists a shift gives its default. <bos> at position 0 reads as digit 0,
    # so with default 0 the head may fall back on position 0 instead of a sink; with default 7 it
    # may not, and the proof must hold either way (it ranges over every value except at
    # position 0, which the layout fixes).
    path = tmp_path / "s.rasp"
    extra = "" if default is None else f", default={default}"
    path.write_text('layout base 10, msb_first: "<bos>" a[3] "+" b[3] "=" => sum[4] "<eos>"\n'
                    f"let back = shift(digit(tokens), 5{extra})\n"
                    "output digit_token(back % 10)\n")
    ir, stats, digest = compile_file(path)
    head = next(h for layer in ir.weights.layers for h in layer.heads)
    assert (head.sink is not None) == sink_needed
    save_model(tmp_path / "s.pt", ir, stats, digest)
    payload = load_model(tmp_path / "s.pt")[1]
    proof = prove(payload, program_from_payload(payload, None))
    assert proof.status == "proved", proof.reason
    # Without its sink the default-7 head would read position 0's digit 0: the proof must object.
    if sink_needed:
        sinkless = _edited(payload, "blocks.0.attn.sink", lambda t: t.fill_(float("-inf")))
        assert prove(sinkless, program_from_payload(payload, None)).status != "proved"


def test_a_head_writing_at_the_wrong_scale_is_a_counterexample(payload):
    # Attention weights alone do not fix what a head writes: W_O must carry the value at its
    # encoding's scale. 'carry' shares its dimension with another term of 'total'.
    entry = next(e for e in payload["weight_map"] if e["node"] == "carry")
    layer, head = int(entry["block"].split(".")[1]), entry["head"]
    scaled = _edited(payload, f"blocks.{layer}.attn.W_O", lambda t: t[head].mul_(1.5))
    proof = prove(scaled, program_from_payload(payload, None))
    assert proof.status == "counterexample" and "'carry'" in proof.reason and "scaled" in proof.reason


def test_an_error_in_an_update_in_place_is_a_counterexample(payload):
    entry = next(e for e in payload["weight_map"] if e["node"] == "total % 10")
    start, end = entry["units"]
    layer = entry["block"].split(".")[1]
    broken = _edited(payload, f"blocks.{layer}.mlp.W_out", lambda t: t[start].mul_(0.5))
    proof = prove(broken, program_from_payload(payload, None))
    assert proof.status == "counterexample" and "'total % 10'" in proof.reason


@pytest.fixture(scope="module")
def lsb_payload(tmp_path_factory):
    path = tmp_path_factory.mktemp("prove_lsb") / "m.pt"
    ir, stats, digest = compile_file(ROOT / "examples" / "add_lsb.rasp")
    save_model(path, ir, stats, digest)
    return load_model(path)[1]


def test_the_smallest_adder_is_proved(lsb_payload):
    # Paired heads, a sum hosted in the embedding's dimension, an update in place and a tied
    # unembedding: each has its own proof rule or reading of the weights.
    for dtype in ("float64", "float32"):
        proof = prove(lsb_payload, program_from_payload(lsb_payload, None), dtype)
        assert proof.status == "proved", proof.reason
        assert proof.margins["smallest logit margin after errors"] > 0


@pytest.mark.parametrize("name, edit, status", [
    # The pair's tilt off by 0.5: the two keys no longer weigh 10 : 1.
    ("blocks.0.attn.alibi_slope", lambda t: t.add_(0.5), ("counterexample", "could not prove")),
    # The tied unembedding's scale flipped: every readout inverts.
    ("unembed.logit_scale", lambda t: t.mul_(-1), ("counterexample",)),
    # The shared value projection doubled: both heads read twice the digit.
    ("blocks.0.attn.W_V", lambda t: t.mul_(2), ("counterexample", "could not prove")),
])
def test_a_broken_small_adder_is_not_proved(lsb_payload, name, edit, status):
    proof = prove(_edited(lsb_payload, name, edit), program_from_payload(lsb_payload, None))
    assert proof.status in status, proof.reason


@pytest.fixture(scope="module")
def width_payload(tmp_path_factory):
    path = tmp_path_factory.mktemp("prove_width") / "m.pt"
    ir, stats, digest = compile_file(ROOT / "bench" / "forms" / "count_digit" / "width.rasp")
    save_model(path, ir, stats, digest)
    return load_model(path)[1]


def test_a_width_head_with_unwritten_value_dimensions_is_proved(width_payload):
    # The head's value vector is as wide as its query-key part; only the dimension W_O writes
    # carries the width's 1. The others once counted as a miss of 1 ("could not prove").
    for dtype in ("float64", "float32"):
        proof = prove(width_payload, program_from_payload(width_payload, None), dtype)
        assert proof.status == "proved", proof.reason


def test_a_width_head_reading_half_its_value_is_a_counterexample(width_payload):
    # Every key offers the constant 1 through the value bias: halved, the head reads w/2 / (w + 1).
    entry = next(e for e in width_payload["weight_map"] if e.get("node") == "count" and "head" in e)
    layer, head = int(entry["block"].split(".")[1]), entry["head"]
    halved = _edited(width_payload, f"blocks.{layer}.attn.b_V", lambda t: t[head].mul_(0.5))
    proof = prove(halved, program_from_payload(width_payload, None))
    assert proof.status == "counterexample", proof.reason
