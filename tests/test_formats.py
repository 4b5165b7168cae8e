"""Formats people use: a field's own digit order (operands most significant digit first, the sum
least significant first, as most trained tiny adders write it). The example compiles, answers the
prompts of its header through the command line, is verified and proved in both dtypes, exports to
an AdderBoard submission that adds, and older model files without per-field orders still load."""
import json
import subprocess
import sys

import pytest

from compiler.cli import main
import torch

from compiler.model.file import load_model
from dsl.layout import Layout
from tests.conftest import ADD10, ROOT
from tests.test_export_adderboard import CHECK, EDGE

REVERSED = ROOT / "examples" / "add10_reversed.rasp"


@pytest.fixture(scope="module")
def reversed_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("reversed") / "add10_reversed.pt"
    assert main([str(REVERSED), "-o", str(path)]) == 0
    return path


def test_the_sum_is_written_lowest_digit_first(reversed_model, capsys):
    capsys.readouterr()
    prompts = ["0000000005+0000000007=", "9999999999+0000000001=", "1234567890+9876543210="]
    assert main(["run", str(reversed_model), *prompts]) == 0
    assert capsys.readouterr().out.split() == ["21000000000", "00000000001", "00111111111"]
    assert main(["run", str(reversed_model), "--operands", "5", "7"]) == 0
    assert capsys.readouterr().out.split() == ["21000000000"]


def test_the_layout_keeps_each_fields_order(reversed_model):
    layout = Layout.from_dict(load_model(reversed_model)[1]["layout"])
    assert [f.order for f in layout.fields.values()] == ["msb_first", "msb_first", "lsb_first"]
    assert layout.mixed_orders
    assert layout.prompt_tokens({"a": 5, "b": 7})[1:] == list("0000000005+0000000007=")
    assert layout.answer_tokens(12) == list("21000000000") + ["<eos>"]


def test_verify_proves_it_in_both_dtypes(reversed_model, capsys):
    code = main(["verify", str(reversed_model), "--prove", "--samples", "3000"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("proved for every input of the layout") == 2, out


def test_a_wider_sum_follows_the_meaning(tmp_path, capsys):
    """-D N=... changes every width; the meaning `sum = a + b` needs no change."""
    path = tmp_path / "r20.pt"
    assert main([str(REVERSED), "-D", "N=20", "-o", str(path)]) == 0
    capsys.readouterr()
    assert main(["run", str(path), "--operands", str(10 ** 20 - 1), "1"]) == 0
    assert capsys.readouterr().out.split() == ["0" * 20 + "1"]
    assert main(["verify", str(path), "--samples", "2000"]) == 0


def test_the_adderboard_submission_reads_the_sum_backwards(reversed_model, tmp_path):
    out = tmp_path / "submission" / "board.py"
    out.parent.mkdir()
    assert main(["export", str(reversed_model), "--to", "adderboard", "-o", str(out)]) == 0
    result = subprocess.run([sys.executable, "-I", "-c", CHECK, str(out), json.dumps(EDGE)], cwd=out.parent,
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n_wrong"] == 0, report["wrong"]


def test_a_field_that_repeats_the_default_order_changes_nothing(tmp_path):
    same = tmp_path / "same.rasp"
    same.write_text(ADD10.read_text().replace('sum[N + 1] "<eos>"', 'sum[N + 1, msb_first] "<eos>"'))
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    assert main([str(ADD10), "-o", str(a)]) == 0 and main([str(same), "-o", str(b)]) == 0
    assert load_model(a)[1]["layout"] == load_model(b)[1]["layout"]


def test_a_model_file_with_an_unknown_field_order_is_refused(reversed_model, tmp_path, capsys):
    model, payload = load_model(reversed_model)
    payload["layout"]["items"][-2][3] = "middle_first"
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    capsys.readouterr()
    assert main(["run", str(bad), "0000000005+0000000007="]) == 2
    assert "is not msb_first or lsb_first" in capsys.readouterr().err
