"""AdderBoard submissions: the exported file, imported in a fresh Python that can reach torch and
the standard library only (not adderc), adds like the compiled model on the board's edge cases
and 2,000 pairs of its generator, declares the board's metadata with the parameter count of the
stated rule, and a model the board cannot rank is refused (exit 2)."""
import json
import subprocess
import sys

import pytest
import torch

from compiler.cli import main
from compiler.model.file import load_model
from tests.conftest import ADD10, ROOT, saved_model

EDGE = [(0, 0), (0, 1), (9_999_999_999, 0), (9_999_999_999, 1), (9_999_999_999, 9_999_999_999),
        (5_000_000_000, 5_000_000_000), (1_111_111_111, 8_888_888_889), (1_234_567_890, 9_876_543_210),
        (1, 9_999_999_999), (5_193_798_811, 1_806_201_129)]  # the last: a long carry run hand-built adders miss

# Run with -I (isolated: no current folder, no user site, no PYTHONPATH) from a folder holding only
# the submission, and with the import of anything named compiler or dsl made to fail.
CHECK = r"""
import builtins, importlib.util, json, random, sys
real_import = builtins.__import__
def guarded(name, *args, **kwargs):
    if name.split(".")[0] in ("compiler", "dsl", "tests"):
        raise ImportError("the submission must not need adderc: " + name)
    return real_import(name, *args, **kwargs)
builtins.__import__ = guarded
spec = importlib.util.spec_from_file_location("submission", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model, metadata = module.build_model()
rng = random.Random(2025)
pairs = json.loads(sys.argv[2]) + [(rng.randint(0, 9_999_999_999), rng.randint(0, 9_999_999_999)) for _ in range(2000)]
wrong = [(a, b, module.add(model, a, b)) for a, b in pairs]
wrong = [w for w in wrong if w[2] != w[0] + w[1]]
print(json.dumps({"metadata": metadata, "checked": len(pairs), "wrong": wrong[:5], "n_wrong": len(wrong),
                  "modules": sorted(m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("compiler", "dsl"))}))
"""


@pytest.fixture(scope="module", params=["float64", "float32"])
def submission(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"board-{request.param}")
    model_path = saved_model(folder, ADD10, "add10.pt", request.param)
    out = folder / "submission" / "add10_board.py"
    out.parent.mkdir()
    assert main(["export", str(model_path), "--to", "adderboard", "-o", str(out)]) == 0
    return model_path, out


def _positional(name: str) -> bool:
    return name == "pos_embed.W_pos" or name.rsplit(".", 1)[-1] in ("alibi_slope", "alibi_curvature",
                                                                    "alibi_center", "window")


def _independent_count(source: str) -> int:
    """The rule of the file's docstring, counted here from the numbers the file itself holds:
    WEIGHTS' entries that are neither zero nor infinite, one per tie of STRUCTURE, and each
    polynomial's nonzero coefficients, outside the positional table and the heads' distance formulas."""
    namespace = {"__name__": "submission"}
    exec(compile(source, "submission", "exec"), namespace)
    total = 0
    for name, (_, entries) in namespace["WEIGHTS"].items():
        total += 0 if _positional(name) else sum(
            float.fromhex(v) != 0 and abs(float.fromhex(v)) != float("inf") for _, v in entries)
    total += sum(not _positional(name) for name, _, _ in namespace["STRUCTURE"]["ties"])
    total += sum(float.fromhex(c) != 0 for _, coefficients, _ in namespace["STRUCTURE"]["polynomials"]
                 for c in coefficients)
    return total


def test_the_submission_adds_with_torch_alone(submission):
    model_path, out = submission
    result = subprocess.run([sys.executable, "-I", "-c", CHECK, str(out), json.dumps(EDGE)], cwd=out.parent,
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["checked"] == len(EDGE) + 2000 and report["n_wrong"] == 0, report["wrong"]
    assert report["modules"] == []
    metadata = report["metadata"]
    assert set(metadata) >= {"name", "author", "params", "architecture", "tricks"}
    assert isinstance(metadata["tricks"], list) and all(isinstance(t, str) for t in metadata["tricks"])
    assert metadata["params"] == _independent_count(out.read_text())


def test_the_submission_imports_only_torch_and_the_standard_library(submission):
    source = submission[1].read_text()
    imports = {line.split()[1].split(".")[0] for line in source.splitlines()
               if line.startswith(("import ", "from "))}
    assert imports <= {"math", "torch"}, imports


def test_the_submission_forward_matches_the_compiled_model(submission):
    """The file's own forward against compiler.model.transformer on random token sequences."""
    model_path, out = submission
    model, payload = load_model(model_path)
    namespace = {"__name__": "submission"}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    board_model, _ = namespace["build_model"]()
    for key, tensor in payload["state_dict"].items():  # every tensor, built from WEIGHTS and STRUCTURE, bit for bit
        parts = key.split(".")
        if key in ("embed.W_E", "pos_embed.W_pos"):
            built = getattr(board_model, parts[1])
        elif parts[0] == "blocks":
            built = getattr(getattr(board_model, parts[2])[int(parts[1])], parts[3])
        else:
            built = board_model.unembed[parts[1]]
        assert torch.equal(built, tensor), key
    tokens = torch.randint(0, payload["config"]["d_vocab"], (32, payload["config"]["n_ctx"]),
                           generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, got = model(tokens), board_model(tokens)
    assert got.dtype == expected.dtype
    tolerance = 1e-9 if payload["config"]["dtype"] == "float64" else 1e-3
    assert torch.allclose(got, expected, rtol=0, atol=tolerance * (1 + expected.abs().max()))
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


@pytest.mark.parametrize("program,reason", [("sub.rasp", "the board asks for a + b"),
                                            ("add3.rasp", "two operands of 10 digits"),
                                            ("add_hex.rasp", "base 16")])
def test_a_model_the_board_cannot_rank_is_refused(program, reason, tmp_path, capsys):
    model_path = saved_model(tmp_path, ROOT / "examples" / program)
    out = tmp_path / "board.py"
    capsys.readouterr()
    assert main(["export", str(model_path), "--to", "adderboard", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert reason in err and "Traceback" not in err, err
    assert not out.exists()
