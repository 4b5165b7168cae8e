"""The adderc command line, as a user runs it: outputs, the model file, and error exits."""
import io
import json

import pytest
import torch

from compiler.cli import main
from tests.conftest import ADD10


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "model.pt"
    assert main([str(ADD10), "-o", str(path)]) == 0
    return path


def test_compile_prints_the_figures(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["compile", str(ADD10), "-o", str(out), "--dtype", "float32"]) == 0
    text = capsys.readouterr().out
    assert "layers 2" in text and "nonzero" in text and "compiled in" in text and out.exists()


def test_run_prompts_operands_and_stdin(model_path, capsys, monkeypatch):
    assert main(["run", str(model_path), "1234567890+9876543210=", "9999999999+0000000001="]) == 0
    assert capsys.readouterr().out.split() == ["11111111100", "10000000000"]
    assert main(["run", str(model_path), "--operands", "5193798811", "1806201129", "1", "2"]) == 0
    assert capsys.readouterr().out.split() == ["06999999940", "00000000003"]
    monkeypatch.setattr("sys.stdin", io.StringIO("0000000000+0000000000=\n\n5000000000+5000000000=\n"))
    assert main(["run", str(model_path)]) == 0
    assert capsys.readouterr().out.split() == ["00000000000", "10000000000"]


def test_model_file_is_plain_data(model_path):
    payload = torch.load(model_path, weights_only=True)
    assert payload["config"]["n_layers"] == 2
    assert payload["vocab"][:10] == list("0123456789")
    assert "layout base 10" in payload["program"]["source"] and len(payload["program"]["sha256"]) == 64
    assert payload["residual_map"] and payload["compiler_version"]
    assert all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values())


def test_stats_json(model_path, capsys):
    assert main(["stats", str(model_path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    for key in ("layers", "d_model", "dense_params", "nonzero_params", "nonzero_params_leaderboard",
                "compile_seconds", "per_layer"):
        assert key in stats
    assert stats["nonzero_params"] < stats["dense_params"]


def test_check(capsys):
    assert main(["check", str(ADD10), "-D", "N=20"]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["run", "MODEL", "12+34="], "expected 22 tokens"),
    (["run", "MODEL", "1234567890=9876543210="], "expected '+'"),
    (["run", "MODEL", "12345678x0+9876543210="], "not in the vocabulary"),
    (["run", "MODEL", "--operands", "1"], "2 value(s) per prompt"),
    (["run", "MODEL", "--operands", "1", "99999999999"], "not a whole number from 0 to 9999999999"),
    (["stats", "missing.pt"], "no such file"),
    (["explain", "missing.pt"], "no such file"),
    (["explain", "MODEL", "--line", "x"], "--line"),
    (["compile", "missing.rasp"], "cannot read program"),
    (["compile", str(ADD10), "-D", "M=3"], "declares no const"),
    (["compile", str(ADD10), "-D", "N=x"], "whole number"),
])
def test_bad_input_exits_2_with_a_message(argv, message, model_path, capsys):
    argv = [str(model_path) if a == "MODEL" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_corrupt_model_file(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model at all")
    assert main(["run", str(bad), "1+1="]) == 2
    assert "not an adderc model" in capsys.readouterr().err
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    assert main(["stats", str(foreign)]) == 2
    assert "not an adderc model" in capsys.readouterr().err


def test_program_error_names_file_line_and_column(tmp_path, capsys):
    program = tmp_path / "bad.rasp"
    program.write_text('layout base 10: "<bos>" a[2] "+" b[2] "=" => s[3] "<eos>"\n'
                       'let x = digit(tokens) + undefined_thing\noutput digit_token(x % 10)\n')
    assert main([str(program), "-o", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert f"{program}:2:25: error: unknown name 'undefined_thing'" in err
    assert "^" in err and not (tmp_path / "m.pt").exists()


def test_every_head_and_unit_is_traced_to_a_program_node(model_path):
    payload = torch.load(model_path, weights_only=True)
    config = payload["config"]
    heads = [e for e in payload["weight_map"] if "head" in e]
    assert len(heads) == sum(config["n_heads"])
    assert {e["node"] for e in heads} == {"shift(value, ALIGN)", "carry", "shift(pair, LOOKBACK)"}
    for layer in range(config["n_layers"]):
        spans = sorted(e["units"] for e in payload["weight_map"] if e["block"] == f"blocks.{layer}.mlp")
        covered = [u for start, end in spans for u in range(start, end)]
        assert covered == list(range(config["d_mlp"][layer]))
    assert all(e["line"] > 0 for e in payload["weight_map"])
    # and every stored number, to the nodes it serves (tests/test_explain.py reads them back)
    traced = payload["provenance"]["tensors"]
    for name, tensor in payload["state_dict"].items():
        stored = int(((tensor != 0) & torch.isfinite(tensor)).sum())
        assert len(traced.get(name, [])) == stored, name
