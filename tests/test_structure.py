"""Structured weights (compiler.model.structure): the compiler ties equal entries of a tensor and
stores vocabulary lines as polynomials in the digit's value; the counts take each parameter once;
a declaration is checked against the weights (one that does not hold is not counted), and a
malformed one is refused with the field named (exit 2)."""
import copy
import json
from fractions import Fraction

import pytest
import torch

from compiler.api import compile_file
from compiler.cli import main
from compiler.model.file import load_model
from compiler.model.structure import holding, polynomial_value
from compiler.passes.structure import fit_polynomial
from compiler.stats import parameter_counts
from tests.conftest import ADD10, ROOT, saved_model

LSB = ROOT / "examples" / "add_lsb.rasp"


@pytest.fixture(scope="module")
def lsb(tmp_path_factory):
    path = saved_model(tmp_path_factory.mktemp("structure"), LSB, "lsb.pt")
    return path, torch.load(path, weights_only=True)


def _counts(payload):
    return parameter_counts(payload["state_dict"], payload["structure"])


def test_fit_finds_the_lowest_degree_exactly():
    points = [(c, Fraction(-c * c) + Fraction(c, 10) + Fraction(19, 5)) for c in (0, 1, 3, 4, 9)]
    assert fit_polynomial(points) == [Fraction(19, 5), Fraction(1, 10), Fraction(-1)]
    assert fit_polynomial([(d, Fraction(3 * d)) for d in range(1, 10)]) == [0, 3]
    assert fit_polynomial([(d, Fraction(7)) for d in range(4)]) == [7]
    assert fit_polynomial([(d, Fraction(2 ** d)) for d in range(10)]) is None  # no cubic is 2^d at ten points


def test_horner_is_the_defined_evaluation():
    assert polynomial_value([3.8, 0.1, -1.0], 2) == ((-1.0 * 2 + 0.1) * 2 + 3.8)
    assert polynomial_value([0.0, 1.0], 7) == 7.0


def test_add_lsb_readout_and_embedding_are_polynomials(lsb):
    _, payload = lsb
    polys = {p["tensor"]: p["coefficients"] for p in payload["structure"]["polynomials"]}
    # the program's nearest_digit readout: candidate c scores -c^2 + c/10 + 19/5 plus its slope term
    assert polys["unembed.b_U"] == [3.8, 0.1, -1.0]
    assert polys["embed.W_E"] == [0.0, 1.0]  # value = digit(tokens): e(d) = d
    held = holding(payload["structure"], payload["state_dict"])
    assert held == payload["structure"]  # every declared formula holds on the weights as stored
    counts = _counts(payload)
    assert (counts["nonzero_params"], counts["unique_params"], counts["unique_params_strict"]) == (34, 11, 15)


def test_counts_by_hand_on_add_lsb(lsb):
    """Every stored number once, less what the formulas fill, plus their parameters."""
    _, payload = lsb
    structure = payload["structure"]
    filled = sum(len(f["entries"]) for f in structure["ties"] + structure["polynomials"])
    params = len(structure["ties"]) + sum(sum(1 for c in p["coefficients"] if c) for p in structure["polynomials"])
    assert _counts(payload)["unique_params_strict"] == _counts(payload)["nonzero_params"] - filled + params


def test_add10_board_count_falls_to_29():
    ir, stats, _ = compile_file(ADD10)
    assert stats["nonzero_params_leaderboard"] == 62
    assert stats["unique_params"] == 29 and stats["unique_params_strict"] == 36


def test_an_edited_weight_is_counted_entry_by_entry(lsb, tmp_path):
    _, payload = lsb
    edited = copy.deepcopy(payload)
    W_out = edited["state_dict"]["blocks.0.mlp.W_out"].clone()
    W_out.view(-1)[0] = 201.0  # the hinge pair was +-200: the tie no longer holds
    edited["state_dict"]["blocks.0.mlp.W_out"] = W_out
    b_U = edited["state_dict"]["unembed.b_U"].clone()
    b_U[5] += 1.0  # nor does the readout's polynomial
    edited["state_dict"]["unembed.b_U"] = b_U
    before, after = _counts(payload), _counts(edited)
    assert after["unique_params_strict"] == before["unique_params_strict"] + 1 + (9 - 3)
    path = tmp_path / "edited.pt"
    torch.save(edited, path)
    model, loaded = load_model(path)  # a false claim is not a fault of the file: it is not counted
    assert _counts(loaded) == after


def _mutated(payload, edit):
    p = copy.deepcopy(payload)
    edit(p["structure"])
    return p


HOSTILE = {
    "unknown tensor": (lambda s: s["ties"][0].__setitem__("tensor", "blocks.9.attn.W_O"), "structure.ties[0].tensor"),
    "index past the tensor": (lambda s: s["ties"][0]["entries"][0].__setitem__(0, 10 ** 6), "structure.ties[0].entries[0]"),
    "negative index": (lambda s: s["ties"][0]["entries"][0].__setitem__(0, -1), "structure.ties[0].entries[0]"),
    "sign 2": (lambda s: s["ties"][0]["entries"][0].__setitem__(1, 2), "structure.ties[0].entries[0]"),
    "sign True": (lambda s: s["ties"][0]["entries"][0].__setitem__(1, True), "structure.ties[0].entries[0]"),
    "sign a tensor": (lambda s: s["ties"][0]["entries"][0].__setitem__(1, torch.tensor(-1, dtype=torch.bfloat16)),
                      "structure.ties[0].entries[0]"),
    "sign two values": (lambda s: s["ties"][0]["entries"][0].__setitem__(1, torch.tensor([1, 1])),
                        "structure.ties[0].entries[0]"),
    "sign 1.0": (lambda s: s["ties"][0]["entries"][0].__setitem__(1, 1.0), "structure.ties[0].entries[0]"),
    "coefficient past float": (lambda s: s["polynomials"][0]["coefficients"].__setitem__(0, 10 ** 400),
                               "structure.polynomials[0].coefficients"),
    "coefficient a tensor": (lambda s: s["polynomials"][0]["coefficients"].__setitem__(0, torch.tensor(3.8)),
                             "structure.polynomials[0].coefficients"),
    "one entry": (lambda s: s["ties"][0].__setitem__("entries", s["ties"][0]["entries"][:1]), "structure.ties[0].entries"),
    "entry named twice": (lambda s: s["polynomials"][0]["entries"].append(s["polynomials"][0]["entries"][0]),
                          "structure.polynomials[0].entries[9]"),
    "entry in two formulas": (lambda s: s["ties"].append(copy.deepcopy(s["ties"][0])), "structure.ties[5].entries[0]"),
    "polynomial on a head": (lambda s: s["polynomials"][0].__setitem__("tensor", "blocks.0.attn.W_O"),
                             "structure.polynomials[0].tensor"),
    "polynomial over a non-digit token": (lambda s: s["polynomials"][0]["entries"].append(11),
                                          "structure.polynomials[0].entries[9]"),
    "too many coefficients": (lambda s: s["polynomials"][0].__setitem__("coefficients", [1.0] * 5),
                              "structure.polynomials[0].coefficients"),
    "infinite coefficient": (lambda s: s["polynomials"][0].__setitem__("coefficients", [float("inf")]),
                             "structure.polynomials[0].coefficients"),
    "text coefficient": (lambda s: s["polynomials"][0].__setitem__("coefficients", ["1"]),
                         "structure.polynomials[0].coefficients"),
    "unknown key": (lambda s: s.__setitem__("sums", []), "structure.sums"),
    "ties not a list": (lambda s: s.__setitem__("ties", {}), "structure.ties"),
    "huge entry list": (lambda s: s["ties"][0].__setitem__("entries", [[0, 1]] * 100_000), "structure.ties[0].entries"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_malformed_structure_is_refused(lsb, tmp_path, capsys, case):
    edit, field = HOSTILE[case]
    path = tmp_path / "bad.pt"
    torch.save(_mutated(lsb[1], edit), path)
    assert main(["stats", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and field in err and "Traceback" not in err


def test_a_file_without_structure_counts_every_stored_number(lsb):
    _, payload = lsb
    counts = parameter_counts(payload["state_dict"])
    assert counts["unique_params"] == counts["nonzero_params_leaderboard"] == 28


def test_stats_reports_the_structure(lsb, capsys):
    path, _ = lsb
    assert main(["stats", str(path)]) == 0
    out = capsys.readouterr().out
    assert "11 by the leaderboard's count" in out and "5 groups of equal entries, 2 lines as polynomials" in out
    assert main(["stats", str(path), "--json"]) == 0


def test_a_float32_model_has_the_same_structure():
    """The polynomial's one float64 evaluation, rounded to float32, is what a float32 model stores."""
    ir, stats, _ = compile_file(LSB, dtype="float32")
    assert (stats["unique_params"], stats["unique_params_strict"]) == (11, 15)
    assert holding(ir.structure, ir.lowered[1]) == ir.structure
    assert ir.lowered[1]["unembed.b_U"].dtype == torch.float32


def test_explain_names_the_formula_behind_each_number(lsb, capsys):
    path, payload = lsb
    assert main(["explain", str(path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    structure = payload["structure"]
    filled = sum(len(f["entries"]) for f in structure["ties"] + structure["polynomials"])
    assert sum(r["parameter"] is not None for r in rows) == filled
    b_U = [r for r in rows if r["tensor"] == "unembed.b_U"]
    assert all(r["parameter"]["kind"] == "polynomial" and r["parameter"]["digit"] == r["index"][0] for r in b_U)
    assert main(["explain", str(path)]) == 0
    text = capsys.readouterr().out
    assert "3.8 + 0.1·d - 1·d^2]" in text and "[tie 0: one parameter for 2 entries]" in text
