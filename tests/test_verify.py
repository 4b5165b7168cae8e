"""The verifier: a correct model passes; a corrupted or subtly wrong one is caught and located."""
import json

import pytest
import torch

from compiler.cli import main
from compiler.model.file import load_model
from compiler.check.testing import assert_model_matches_program
from compiler.check.verify import verify
from tests.conftest import ADD10, saved_model


@pytest.fixture(scope="module")
def good_model(tmp_path_factory):
    return saved_model(tmp_path_factory.mktemp("verify"), ADD10)


def test_a_correct_model_passes_and_reports_margins(good_model, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    assert main(["verify", str(good_model), "--samples", "3000", "--per-stratum", "2",
                 "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "every check holds" in out and "float32 safe" in out
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["seed"] == 20261122 and report["meaning"]["wrong"] == 0
    assert report["margins"]["float32 safe"] is True
    assert report["margins"]["float64 smallest logit gap"] > 0.5
    assert report["inside"]["divergence"] is None and report["inside"]["checked_inputs"] > 0


def test_one_corrupted_weight_is_located(good_model, tmp_path, capsys):
    _, payload = load_model(good_model)
    entry = next(e for e in payload["residual_map"] if e["node"] == "generates")
    # The MLP unit writing `generates` now writes twice as much.
    W_out = payload["state_dict"]["blocks.0.mlp.W_out"]
    unit = int(W_out[:, entry["dims"][0]].nonzero()[0, 0])
    W_out[unit, entry["dims"][0]] *= 2
    broken = tmp_path / "broken.pt"
    torch.save(payload, broken)
    assert main(["verify", str(broken), "--samples", "2000", "--per-stratum", "1"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out
    assert "first divergence at 'generates' (line 20, layer 0" in out


BUGGY = ADD10.read_text().replace(
    "let below = select(indices, indices, q - k < LOOKBACK)",
    "let below = select(indices, indices, q - k < LOOKBACK and q - k >= LOOKBACK - 6)")


def test_a_rare_carry_bug_is_caught_by_strata_when_random_sampling_misses_it(tmp_path):
    assert BUGGY != ADD10.read_text()
    buggy = tmp_path / "buggy.rasp"
    buggy.write_text(BUGGY)  # looks only 6 places down for the carry: wrong behind 6+ nines
    path = saved_model(tmp_path, buggy, "buggy.pt")
    _, payload = load_model(path)
    from dsl.resolve import load_program
    reference = load_program(ADD10)
    random_only = verify(payload, reference, samples=20000, per_stratum=0, progress=False)
    assert all(c["wrong"] == 0 for k, c in random_only.checks.items() if "random" in k)
    with_strata = verify(payload, reference, samples=2000, per_stratum=2, progress=False)
    assert not with_strata.ok
    assert with_strata.checks["float64 carry strata"]["wrong"] > 0
    pattern = next(c for c in with_strata.counterexamples if c["source"] == "carry strata")["carry_pattern"]
    assert "pppppp" in pattern  # the carry had to cross six or more places summing to 9
    # Checked against its own embedded source, the buggy program contradicts its stated meaning.
    assert verify(payload, None, samples=0, per_stratum=1, progress=False).meaning["wrong"] > 0


def test_pytest_helper(good_model):
    report = assert_model_matches_program(good_model, ADD10, samples=1000, max_nonzero=2000, max_layers=2)
    assert report["ok"]
    with pytest.raises(AssertionError, match="grew past its bounds: nonzero_params"):
        assert_model_matches_program(good_model, samples=200, max_nonzero=10)


def test_verify_an_outside_adder(tmp_path, capsys):
    adder = tmp_path / "lossy.py"
    adder.write_text("def build_model():\n    return None\n\n"
                     "def add(model, a, b):\n    return (a + b) % 10**10\n")  # drops the top carry
    assert main(["verify", str(ADD10), "--callable", str(adder), "--samples", "500", "--per-stratum", "1"]) == 1
    assert "MISMATCH" in capsys.readouterr().out
    good = tmp_path / "good.py"
    good.write_text("def build_model():\n    return None\n\ndef add(model, a, b):\n    return a + b\n")
    assert main(["verify", str(ADD10), "--callable", str(good), "--samples", "500", "--per-stratum", "1"]) == 0


def test_a_meaning_without_an_answer_is_a_reported_mismatch(tmp_path, capsys):
    program = tmp_path / "div.rasp"
    program.write_text('layout base 10, msb_first: "<bos>" a[1] "+" b[1] "=" => s[2] "<eos>"\n'
                       'meaning s = a // b\noutput "0"\n')  # b = 0 has no answer
    model = saved_model(tmp_path, program, "div.pt")
    assert main(["verify", str(model), "--samples", "0"]) == 1
    out = capsys.readouterr().out
    assert "divides by zero" in out and "internal error" not in out


def test_the_report_names_the_overrides_the_model_was_compiled_with(tmp_path, capsys):
    model = tmp_path / "narrow.pt"
    assert main(["compile", str(ADD10), "-D", "N=3", "-o", str(model)]) == 0
    capsys.readouterr()
    report_path = tmp_path / "report.json"
    assert main(["verify", str(model), "--samples", "200", "--json", str(report_path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "(embedded add10.rasp, -D N=3)" in first
    assert json.loads(report_path.read_text())["overrides"] == {"N": 3}
    assert main(["verify", str(good_model_path(tmp_path)), "--samples", "50", "--json", str(report_path)]) == 0
    assert json.loads(report_path.read_text())["overrides"] == {}


def good_model_path(folder):
    return saved_model(folder, ADD10, name="plain.pt")
