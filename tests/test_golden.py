"""Golden figures: every example compiles to the same sizes and the same weights as tests/golden.json."""
import copy
import json
import os
import subprocess
import sys

import pytest
import torch

from compiler.golden import golden_entry, weights_sha256
from tests import golden
from tests.conftest import ADD10, ROOT, compiled


@pytest.fixture(scope="module")
def actual():
    # What golden.collect gives (the documented command below runs it itself), from the session's
    # compiles of the examples.
    return {path.name: golden_entry(path, compiled(path)) for path in golden.programs(ROOT / "examples")}


def test_examples_match_the_golden_file(actual):
    expected = golden.load(ROOT / "tests" / "golden.json")
    lines = golden.diff(expected, actual)
    assert not lines, "\n".join(lines + [golden.UPDATE_HINT])


def test_golden_file_is_as_update_writes_it():
    text = (ROOT / "tests" / "golden.json").read_text(encoding="utf-8")
    assert text == golden.dumps(json.loads(text)), golden.UPDATE_HINT
    for entry in json.loads(text).values():
        assert "compile_seconds" not in entry


def test_compiling_twice_gives_the_same_weights(actual):
    again = golden_entry(ADD10)
    assert again["weights_sha256"] == actual[ADD10.name]["weights_sha256"]
    assert again == actual[ADD10.name]


def test_same_weights_under_another_hash_seed(actual):
    # Set and dict-of-str iteration order depends on PYTHONHASHSEED: a compiler that leans on it
    # would give different weights in another process.
    code = "from compiler.golden import golden_entry; import sys; print(golden_entry(sys.argv[1])['weights_sha256'])"
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code, str(ADD10)], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[-1] == actual[ADD10.name]["weights_sha256"]


def test_weights_sha256():
    a = {"x": torch.tensor([1.0, 2.0], dtype=torch.float64), "w": torch.zeros(2, 3)}
    digest = weights_sha256(a)
    assert len(digest) == 64
    assert weights_sha256(dict(reversed(list(a.items())))) == digest  # name order, not dict order
    assert weights_sha256({**a, "x": torch.tensor([1.0, 2.5], dtype=torch.float64)}) != digest
    assert weights_sha256({**a, "w": torch.zeros(3, 2)}) != digest  # shape counts
    assert weights_sha256({**a, "x": torch.tensor([1.0, 2.0], dtype=torch.float32)}) != digest  # dtype too
    assert weights_sha256({**a, "w": torch.zeros(3, 2).t()}) == weights_sha256(
        {**a, "w": torch.zeros(2, 3)})  # layout in memory does not


def test_library_files_are_skipped(tmp_path):
    (tmp_path / "b.rasp").write_text(ADD10.read_text())
    (tmp_path / "a_lib.rasp").write_text("# library: helpers for the others\nconst K = 1\n")
    assert [p.name for p in golden.programs(tmp_path)] == ["b.rasp"]


# --- diff on small dicts -------------------------------------------------------------------------

def _entry(**changes):
    entry = {"program": "add10.rasp", "layers": 2, "d_model": 52, "dtype": "float64",
             "nonzero_params": 921, "dense_params": 22841, "weights_sha256": "abc123" + "0" * 58,
             "per_layer": [{"layer": 0, "heads": 1, "mlp_nonzero": 24},
                           {"layer": 1, "heads": 2, "mlp_nonzero": 241}]}
    entry.update(changes)
    return entry


def test_diff_equal_is_empty():
    assert golden.diff({"add10.rasp": _entry()}, {"add10.rasp": _entry()}) == []


def test_diff_growth():
    lines = golden.diff({"add10.rasp": _entry()}, {"add10.rasp": _entry(nonzero_params=950, d_model=50)})
    assert lines == ["add10.rasp: d_model 52 -> 50 (-2)", "add10.rasp: nonzero_params 921 -> 950 (+29)"]


def test_diff_per_layer():
    grown = _entry()
    grown["per_layer"] = copy.deepcopy(grown["per_layer"])
    grown["per_layer"][1]["mlp_nonzero"] = 250
    grown["per_layer"].append({"layer": 2, "heads": 1, "mlp_nonzero": 3})
    lines = golden.diff({"add10.rasp": _entry()}, {"add10.rasp": grown})
    assert lines == ["add10.rasp: layer 1 mlp_nonzero 241 -> 250 (+9)",
                     "add10.rasp: new layer 2: heads 1, mlp_nonzero 3"]
    assert golden.diff({"add10.rasp": grown}, {"add10.rasp": _entry()})[-1].startswith("add10.rasp: layer gone: 2")


def test_diff_weight_change():
    lines = golden.diff({"add10.rasp": _entry()}, {"add10.rasp": _entry(weights_sha256="def456" + "1" * 58)})
    assert lines == ["add10.rasp: weights changed (sha256 abc123000000… -> def456111111…)"]


def test_diff_new_and_removed_program():
    lines = golden.diff({"y.rasp": _entry(program="y.rasp")}, {"x.rasp": _entry(program="x.rasp")})
    assert lines == ["new program x.rasp", "program gone: y.rasp"]


def test_diff_fields_and_strings():
    old, new = _entry(), _entry(dtype="float32", extra=1)
    del new["dense_params"]
    assert golden.diff({"p": old}, {"p": new}) == [
        "p: field gone: dense_params (was 22841)", "p: dtype 'float64' -> 'float32'", "p: new field extra = 1"]


def test_main_exit_codes(tmp_path, capsys):
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "add10.rasp").write_text(ADD10.read_text())
    path = tmp_path / "golden.json"
    assert golden.main(["--examples", str(examples), "--golden", str(path), "--update"]) == 0
    assert path.read_text().endswith("}\n")
    assert golden.main(["--examples", str(examples), "--golden", str(path)]) == 0
    data = json.loads(path.read_text())
    data["add10.rasp"]["nonzero_params"] -= 29
    path.write_text(golden.dumps(data))
    capsys.readouterr()
    assert golden.main(["--examples", str(examples), "--golden", str(path)]) == 1
    out = capsys.readouterr().out
    assert "add10.rasp: nonzero_params" in out and "(+29)" in out and golden.UPDATE_HINT in out


def test_the_documented_command_runs_the_tool_next_to_the_tests(tmp_path):
    # README: `python -m compiler.golden [--update]`; the writer itself lives in tests/golden.py.
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "add_lsb.rasp").write_text((ROOT / "examples" / "add_lsb.rasp").read_text())
    path = tmp_path / "golden.json"
    command = [sys.executable, "-m", "compiler.golden", "--examples", str(examples), "--golden", str(path)]
    run = lambda *extra: subprocess.run(command + list(extra), cwd=ROOT, capture_output=True, text=True)
    assert run("--update").returncode == 0 and "add_lsb.rasp" in path.read_text()
    data = json.loads(path.read_text())
    data["add_lsb.rasp"]["nonzero_params"] += 1
    path.write_text(golden.dumps(data))
    result = run()
    assert result.returncode == 1 and "add_lsb.rasp: nonzero_params" in result.stdout
