"""`adderc show`: real pictures of real models, PNG and SVG, titled with the program's names."""
import json
import xml.etree.ElementTree as ElementTree

import pytest
import torch

from dsl.layout import Layout
from compiler.cli import main
from compiler.model.file import load_model
from compiler.show.attention import attention_patterns, head_output
from compiler.show.common import states_of
from tests.conftest import EXAMPLES, compiled, saved_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("show")
    return {name: saved_model(folder, EXAMPLES / f"{name}.rasp", f"{name}.pt") for name in ("add10", "add_lsb", "sub")}


@pytest.fixture(scope="module")
def drawn(models, tmp_path_factory):
    """name -> (exit code, the --json document, folder), each model drawn once."""
    out = {}
    for name, path in models.items():
        folder = tmp_path_factory.mktemp(f"pictures-{name}")
        capture = pytest.MonkeyPatch()
        lines = []
        capture.setattr("builtins.print", lambda *a, **k: lines.append(" ".join(map(str, a))))
        try:
            code = main(["show", str(path), "-o", str(folder), "--json"])
        finally:
            capture.undo()
        out[name] = (code, json.loads("\n".join(lines)), folder)
    return out


def _svg_text(path) -> str:
    root = ElementTree.parse(path).getroot()  # fails on a file that is not XML
    assert root.tag == SVG + "svg"
    return " ".join("".join(t.itertext()) for t in root.iter(SVG + "text"))


@pytest.mark.parametrize("name", ["add10", "add_lsb", "sub"])
def test_every_picture_is_a_png_and_an_svg(drawn, name):
    code, listing, folder = drawn[name]
    assert code == 0 and listing["output"] == str(folder)
    stems = {p.rsplit("/", 1)[1].rsplit(".", 1)[0] for p in listing["files"]}
    assert {"graph", "residual", "attention-layer0", "mlp-layer0", "readout"} <= stems
    for path in listing["files"]:
        data = open(path, "rb").read()
        if path.endswith(".png"):
            assert data.startswith(PNG_MAGIC) and len(data) > 5_000
        else:
            assert _svg_text(path)


def test_titles_name_the_program_values_and_lines(drawn):
    _, _, folder = drawn["add10"]
    expect = {"graph": ["program graph of add10.rasp", "carry", "generates", "line 33"],
              "residual": ["pair", "total % 10", "layer 1 MLP"],
              "attention-layer1": ["carry", "add10.rasp:33", "shift(pair, LOOKBACK)", "sink"],
              "mlp-layer0": ["generates", "add10.rasp:20", "let generates = pair >= 10", "propagates"],
              "mlp-layer1": ["total % 10", "add10.rasp:39"],
              "readout": ["total % 10", "nearest_digit"]}
    for stem, words in expect.items():
        text = _svg_text(folder / f"{stem}.svg")
        missing = [w for w in words if w not in text]
        assert not missing, f"{stem}.svg lacks {missing}"
    _, _, lsb = drawn["add_lsb"]
    assert "wrapped" in _svg_text(lsb / "mlp-layer0.svg")


def test_the_drawn_patterns_are_the_ones_the_model_attends_with(models):
    model, payload = load_model(models["add10"])
    layout = Layout.from_dict(payload["layout"])
    tokens = layout.tokenize("5193798811+1806201129=")
    states = states_of(model, layout, tokens)
    for layer, block in enumerate(model.blocks):
        x = states[2 * layer]
        pattern = attention_patterns(block.attn, x)
        assert torch.allclose(pattern.sum(-1), torch.ones_like(pattern.sum(-1)))
        expected, _ = block.attn(x[None])
        assert torch.allclose(head_output(block.attn, x, pattern), expected[0].double(), atol=1e-9)


def test_a_given_prompt_is_drawn_and_a_bad_one_refused(models, tmp_path, capsys):
    assert main(["show", str(models["add10"]), "--prompt", "5193798811+1806201129=", "-o", str(tmp_path / "p")]) == 0
    assert "5193798811+1806201129=" in _svg_text(tmp_path / "p" / "attention-layer1.svg")
    capsys.readouterr()
    assert main(["show", str(models["add10"]), "--prompt", "12+3=", "-o", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err
    assert "prompt" in err and "expected 22 tokens" in err and "Traceback" not in err
    assert not (tmp_path / "q").exists()


def test_a_bad_output_folder_is_refused_before_any_work(models, tmp_path, capsys):
    assert main(["show", str(models["add10"]), "-o", str(tmp_path / "missing" / "deeper")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["show", str(models["add10"]), "-o", str(models["add10"])]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_a_sum_is_drawn_at_its_own_value_not_its_stored_shares(tmp_path):
    """A sum's dimension stores coefficient * (value - default) per term; a picture labelled with
    the sum (an MLP's x axis) must read the sum itself. mul_digit's carry MLP reads
    `gen_at - stop_at`, whose gen_at has default -1: its stored shares are one too high."""
    from compiler.check.prove.state import num
    from compiler.ir.maps import number_of
    from compiler.show.common import as_numbers, residual_entries
    from dsl.semantics import evaluate

    path = saved_model(tmp_path, EXAMPLES / "mul_digit.rasp", "mul.pt")
    model, payload = load_model(path)
    layout = Layout.from_dict(payload["layout"])
    ir = compiled(EXAMPLES / "mul_digit.rasp")[0]
    sums = [e for e in residual_entries(payload) if e.sum_of is not None]
    assert any(number_of(t.default) != 0 for e in sums for t in e.sum_of)  # the case the offset matters for
    for operands in ({"a": 1234567890, "d": 9}, {"a": 999, "d": 7}):
        tokens = layout.prompt_tokens(operands) + layout.answer_tokens(
            ir.program.meaning.expected(operands))
        tokens = tokens[: model.config["n_ctx"]]
        states = states_of(model, layout, tokens)
        values = evaluate(ir.program, tokens).values
        for entry in sums:
            want = [sum(number_of(t.coefficient) * num(v) for t, v in zip(entry.sum_of, row))
                    for row in zip(*(values[t.id] for t in entry.sum_of))]
            got = as_numbers(entry, states[entry.sublayer])
            assert got == pytest.approx([float(w) for w in want], abs=1e-6), entry.node


def test_an_mlp_is_drawn_for_distinct_values_of_what_else_it_reads(tmp_path):
    """The curves of a block reading two values are one per value of the other, chosen by value
    and spread over its range: mul_digit's `(shift(value, LOOKBACK + 1) * m) % 10` once drew four
    curves for 0, 4.8e-296, 9.6e-296 and 1.4e-295 (noise in a dimension nothing wrote yet)."""
    from compiler.ir.slots import mlp_slot
    from compiler.show.common import as_numbers, reading, residual_entries, sample_states, weight_entries
    from compiler.show.mlp import MAX_SERIES, curve_series

    path = saved_model(tmp_path, EXAMPLES / "mul_digit.rasp", "mul.pt")
    model, payload = load_model(path)
    layout = Layout.from_dict(payload["layout"])
    states = sample_states(model, layout, layout.tokenize("1234567890*9="))
    entries, slot = residual_entries(payload), mlp_slot(0)
    observed = states[slot - 1].reshape(-1, states[slot - 1].shape[-1]).double()
    checked = 0
    for block in (e for e in weight_entries(payload) if e.block == "blocks.0.mlp"):
        dims = (model.blocks[0].mlp.W_in[:, block.units[0]:block.units[1]] != 0).any(dim=1).nonzero()[:, 0].tolist()
        read = reading(entries, dims, slot - 1)
        if len(read) < 2:
            continue
        primary = max(read, key=lambda e: len(torch.unique(observed[:, list(e.dims)], dim=0)))
        other = next(e for e in read if e is not primary)
        shown = [as_numbers(other, fixed[None])[0] for _, fixed in curve_series(read, primary, observed)]
        met = sorted({round(v, 6) for v in as_numbers(other, observed)})
        assert len(shown) == min(MAX_SERIES, len(met)) and len(set(shown)) == len(shown)
        assert min(shown) == met[0] and max(shown) == met[-1]  # spread over the whole range
        assert all(v == 0 or abs(v) > 1e-6 for v in shown)
        checked += 1
    assert checked >= 2
