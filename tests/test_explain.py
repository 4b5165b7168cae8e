"""`adderc explain`: every stored number traced to the program node and line it serves, through
prune's renumbering, grouped heads, unit offsets, tied unembeddings and reused dimensions."""
import json
from dataclasses import replace

import pytest
import sympy
import torch

from compiler.cli import main
from tests.golden import programs
from compiler.passes.lower import lower
from compiler.ir.weights import stored_indices
from tests.conftest import ADD10, ROOT, saved_model

LSB = ROOT / "examples" / "add_lsb.rasp"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{example name: its model file}, for every example program."""
    folder = tmp_path_factory.mktemp("explain")
    return {path.name: saved_model(folder, path, path.stem + ".pt") for path in programs()}


def _json(capsys, *argv):
    assert main(["explain", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _stats(capsys, path):
    assert main(["stats", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_stored_number_of_every_example_has_one_row_naming_its_node(models, capsys):
    for name, path in models.items():
        rows = _json(capsys, path)
        assert len(rows) == _stats(capsys, path)["nonzero_params"], name
        state = torch.load(path, weights_only=True)["state_dict"]
        assert len({(r["tensor"], tuple(r["index"])) for r in rows}) == len(rows)
        for row in rows:
            assert {"tensor", "index", "value", "node", "line", "file", "column", "node_id"} <= set(row)
            assert row["value"] == state[row["tensor"]][tuple(row["index"])].item() != 0, (name, row)
            assert row["node_id"] is not None and row["line"] > 0 and row["node"] != "-", (name, row)
            assert row["nodes"][0]["node_id"] == row["node_id"]


def test_rows_quote_the_node_as_written_and_its_line(models, capsys):
    rows = _json(capsys, models["add10.rasp"])
    source = ADD10.read_text().splitlines()
    for row in rows:
        for node in row["nodes"]:
            assert node["file"] == "add10.rasp"
            assert node["node"].removesuffix("...") in source[node["line"] - 1]
    carry = [r for r in rows if r["name"] == "carry"]
    assert carry and all(r["node"] == "first(below & stops, generates)" and r["line"] == 33 for r in carry)
    assert {r["tensor"] for r in carry} >= {"blocks.1.attn.sink", "blocks.1.attn.window", "blocks.1.attn.alibi_slope"}
    assert main(["explain", str(models["add10.rasp"])]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[-1] == f"{len(rows)} stored numbers, each with the program node it serves"
    assert len(text) == len(rows) + 2  # a heading, a row per number, the count
    assert any("add10.rasp:33" in line and "carry = first(below & stops, generates)" in line for line in text)


def test_line_restricts_to_what_a_line_costs_and_says_how_many(models, capsys):
    path = models["add10.rasp"]
    rows = _json(capsys, path)
    lines = len(ADD10.read_text().splitlines())
    counted = 0
    for line in range(1, lines + 1):
        chosen = _json(capsys, path, "--line", line)
        assert chosen == [r for r in rows if any(n["line"] == line for n in r["nodes"])]
        assert main(["explain", str(path), "--line", str(line)]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == \
            f"line {line} of add10.rasp costs {len(chosen)} of the model's {len(rows)} stored numbers"
        counted += len(chosen)
    assert counted == len(rows)  # in add10 every number serves nodes of one line
    assert main(["explain", str(path), "--line", str(lines + 5)]) == 2
    assert capsys.readouterr().err.strip() == f"error: --line {lines + 5}: add10.rasp has {lines} lines"
    assert main(["explain", str(path), "--line", "0"]) == 2
    assert "--line" in capsys.readouterr().err


def test_a_reused_dimension_names_the_node_that_wrote_each_value(models, capsys):
    payload = torch.load(models["add10.rasp"], weights_only=True)
    (total,) = [e for e in payload["residual_map"] if e["node"] == "total"]
    dim = total["dims"][0]
    writers = {}
    for row in _json(capsys, models["add10.rasp"]):
        if row["tensor"].endswith((".W_O", ".W_out")) and row["index"][-1] == dim:
            writers.setdefault(row["tensor"], set()).update(n["name"] for n in row["nodes"])
    # a shared sum: each term's head; an in-place update: the node that replaced the value
    assert writers == {"blocks.1.attn.W_O": {"carry", "shift(pair, LOOKBACK)"}, "blocks.1.mlp.W_out": {"total % 10"}}


def test_shared_projections_and_a_tied_unembedding_name_every_node_they_serve(models, capsys):
    path = models["add_lsb.rasp"]
    payload = torch.load(path, weights_only=True)
    assert payload["config"]["n_kv_heads"][0] < payload["config"]["n_heads"][0]
    rows = _json(capsys, path)
    by_tensor = lambda name: [r for r in rows if r["tensor"] == name]
    heads = {tuple(n["node_id"] for n in r["nodes"]) for r in by_tensor("blocks.0.attn.W_O")}
    (shared,) = {tuple(n["node_id"] for n in r["nodes"]) for r in by_tensor("blocks.0.attn.W_V")}
    assert len(heads) == 2 and set(shared) == {i for ids in heads for i in ids}  # one V for the group
    (scale,) = by_tensor("unembed.logit_scale")
    assert scale["index"] == [] and scale["name"].startswith("nearest_digit(")
    for row in by_tensor("embed.W_E"):  # W_E is the unembedding too
        assert [n["name"] for n in row["nodes"]] == ["value", scale["name"]]


def test_an_output_bias_summing_blocks_names_them_all(add10_ir):
    w = add10_ir.weights
    layer = w.layers[0]
    assert [m.label for m in layer.mlps] == ["generates", "propagates"]
    biased = [replace(m, b_out={**m.b_out, 0: sympy.Integer(1)}) for m in layer.mlps]
    weights = replace(w, layers=[replace(layer, mlps=biased)] + w.layers[1:])
    provenance = lower(replace(add10_ir, weights=weights)).provenance
    assert provenance["blocks.0.mlp.b_out"][(0,)] == tuple(m.node for m in layer.mlps)


def test_lowering_traces_exactly_the_stored_numbers(add10_ir):
    config, state = add10_ir.lowered
    for name, tensor in state.items():
        assert set(add10_ir.provenance[name]) == set(stored_indices(tensor)), name


def test_a_weight_edited_after_compiling_is_listed_untraced(models, tmp_path, capsys):
    payload = torch.load(models["add10.rasp"], weights_only=True)
    payload["state_dict"]["blocks.0.attn.b_O"][0] = 7.0  # stored as zeros, so traced nowhere
    edited = tmp_path / "edited.pt"
    torch.save(payload, edited)
    rows = _json(capsys, edited)
    assert len(rows) == _stats(capsys, edited)["nonzero_params"]
    (row,) = [r for r in rows if r["tensor"] == "blocks.0.attn.b_O"]
    assert row["node"] == "-" and row["node_id"] is None and row["value"] == 7.0


def test_a_missing_or_bad_model_file_exits_2_with_one_line(tmp_path, capsys):
    assert main(["explain", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    assert main(["explain", str(bad), "--json"]) == 2
    captured = capsys.readouterr()
    assert "not an adderc model" in captured.err and captured.out == ""
