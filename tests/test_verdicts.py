"""Verdicts that can be believed: a counterexample is an input the model really gets wrong, a
proof that cannot be completed says so (exit 4), messages name program values by their source,
and every line is out as soon as its check is done."""
import json
import re

import pytest
import torch

from compiler.api import compile_file, run_prompts
from compiler.cli import main
from compiler.model.file import load_model, save_model
from compiler.check.prove import prove
from compiler.check.prove.checker import Checker
from compiler.check.prove.state import Miss
from compiler.check.verify import EXIT_CODES, Report, heading, program_from_payload, summary, verify
from tests.conftest import ADD10, saved_model, ROOT

PROGRAMS = ROOT / "tests" / "programs"
INTERNAL_ID = re.compile(r"#\d+")


@pytest.fixture(scope="module")
def add10_path(tmp_path_factory):
    return saved_model(tmp_path_factory.mktemp("verdicts"), ADD10)


def _broken_add10(add10_path, tmp_path):
    """add10 with the MLP unit writing `generates` doubled: carries go wrong on real inputs."""
    _, payload = load_model(add10_path)
    entry = next(e for e in payload["residual_map"] if e["node"] == "generates")
    W_out = payload["state_dict"]["blocks.0.mlp.W_out"]
    unit = int(W_out[:, entry["dims"][0]].nonzero()[0, 0])
    W_out[unit, entry["dims"][0]] *= 2
    path = tmp_path / "broken.pt"
    torch.save(payload, path)
    return path


def test_a_corrupted_weight_gives_a_counterexample_that_replays_wrong(add10_path, tmp_path, capsys):
    broken = _broken_add10(add10_path, tmp_path)
    report_path = tmp_path / "r.json"
    code = main(["verify", str(broken), "--samples", "200", "--per-stratum", "1", "--prove",
                 "--json", str(report_path)])
    out = capsys.readouterr().out
    assert code == 1 and "result: MISMATCH" in out
    report = json.loads(report_path.read_text())
    assert report["status"] == "mismatch" and report["exit_code"] == 1
    proof = report["proof"]["float64"]
    assert proof["status"] == "counterexample" and "model writes" in proof["reason"]
    assert not INTERNAL_ID.search(out)
    # The counterexample is an input of the layout: replayed through the broken model it is wrong.
    found = proof["counterexample"]
    model, payload = load_model(broken)
    program = program_from_payload(payload, None)
    layout = program.layout
    written = run_prompts(model, layout, [layout.prompt_tokens(found["operands"])])[0]
    right = layout.written_answer(layout.answer_tokens(sum(found["operands"].values())))
    assert written == found["got"] and right == found["expected"] and written != right


def test_add10_is_proved_and_exits_0(add10_path, tmp_path, capsys):
    report_path = tmp_path / "r.json"
    assert main(["verify", str(add10_path), "--samples", "200", "--per-stratum", "1", "--prove",
                 "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("proved for every input of the layout") == 2 and "result: every check holds" in out
    report = json.loads(report_path.read_text())
    assert report["status"] == "holds" and report["exit_code"] == 0 and report["ok"]


@pytest.mark.parametrize("name, overrides, dtype", [
    # P = A * B in one MLP, read at every position: at the "*" no answer is predicted, and its
    # combinations there (B still its default) must not be checked at the unembedding.
    # Its proof takes minutes (one MLP of 19,558 units): run with `pytest -m slow`.
    pytest.param("mul2.rasp", {}, "float64", marks=pytest.mark.slow),
    # Thirds from a mean over three keys, rounded in float32: small misses on combinations that
    # cannot occur together, carried as error rather than called counterexamples.
    ("add4.rasp", {"N": 2}, "float32"),
])
def test_the_fixture_programs_get_no_false_counterexample(tmp_path, name, overrides, dtype):
    ir, stats, digest = compile_file(PROGRAMS / name, overrides, dtype)
    save_model(tmp_path / "m.pt", ir, stats, digest)
    payload = load_model(tmp_path / "m.pt")[1]
    proof = prove(payload, program_from_payload(payload, None), dtype)
    assert proof.status in ("proved", "could not prove"), proof.reason
    assert not INTERNAL_ID.search(proof.reason)
    if proof.status == "could not prove":
        assert f"{name}:" in proof.reason


def test_could_not_prove_exits_4_and_says_so(add10_path, tmp_path, capsys, monkeypatch):
    # A proof check that fails where no replayed input is wrong: the verdict is "could not prove".
    def no_luck(self, progress=None):
        raise Miss("the MLP for 'generates' gives 1 where 0 was expected, on above=9, here=0")
    monkeypatch.setattr(Checker, "run", no_luck)
    report_path = tmp_path / "r.json"
    code = main(["verify", str(add10_path), "--samples", "100", "--per-stratum", "1", "--prove",
                 "--json", str(report_path)])
    out = capsys.readouterr().out
    assert code == 4, out
    assert "result: could not prove (no mismatch found)" in out and "MISMATCH" not in out
    assert "counterexample" not in out
    report = json.loads(report_path.read_text())
    assert report["status"] == "could not prove" and report["exit_code"] == 4 and not report["ok"]
    assert report["proof"]["float64"]["status"] == "could not prove"
    assert "no input replayed through the model was answered wrong" in report["proof"]["float64"]["reason"]


@pytest.mark.parametrize("proof, mismatch, status", [
    ({"float64": {"status": "proved"}}, False, "holds"),
    ({"float64": {"status": "could not prove"}}, False, "could not prove"),
    ({"float64": {"status": "counterexample"}}, False, "mismatch"),
    ({"float64": {"status": "could not prove"}}, True, "mismatch"),
    ({}, False, "holds"),
])
def test_the_verdict_and_its_exit_code(proof, mismatch, status):
    report = Report(1, checks={"float64 edge cases": {"checked": 3, "wrong": int(mismatch)}}, proof=proof)
    assert report.status == status and report.to_dict()["exit_code"] == report.exit_code == EXIT_CODES[status]
    assert report.to_dict()["result"] in {"holds": "every check holds", "mismatch": "MISMATCH",
                                          "could not prove": "could not prove (no mismatch found)"}[status]


def test_lines_are_emitted_as_checks_complete_in_the_summary_layout(add10_path, tmp_path):
    broken = _broken_add10(add10_path, tmp_path)
    _, payload = load_model(broken)
    emitted = []
    report = verify(payload, None, samples=300, per_stratum=1, inside_count=20, greedy_count=50,
                    progress=False, emit=emitted.append)
    assert [heading("x", report.seed)] + emitted == summary(report, "x").splitlines()
    # A counterexample follows the line of the check that found it.
    first = next(i for i, line in enumerate(emitted) if "counterexample [" in line)
    assert "right" in emitted[first - 1] and emitted[-1] == "  result: MISMATCH"


def test_a_run_cut_short_keeps_what_it_printed(add10_path, capsys, monkeypatch):
    import compiler.check.verify as verifying

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(verifying, "_greedy", interrupted)
    assert main(["verify", str(add10_path), "--samples", "100", "--per-stratum", "1"]) == 130
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("verify ") and any(line.startswith("  float64 edge cases") for line in out)
