"""Preconditions: `require a >= b` narrows the inputs a program is specified on. The generators the
verifier and the compiler's own checks draw from range only over inputs that meet it, the meaning
is checked against the answer field there alone, and examples/sub_ge.rasp uses it."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from compiler.api import compile_file, load_compiled, run_prompts
from compiler.check import inputs
from compiler.check.prove import prove
from compiler.check.verify import program_from_payload, tensor_batches
from compiler.cli import main
from compiler.model.file import load_model, save_model
from dsl.errors import AdderError
from dsl.resolve import load_program

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sub_ge.rasp"


def _program(tmp_path, requires: list[str], meaning="a - b", answer="diff[N]", width=4) -> Path:
    path = tmp_path / "p.rasp"
    path.write_text(f'const N = {width}\nlayout base 10, msb_first: "<bos>" a[N] "-" b[N] "=" => {answer} "<eos>"\n'
                    + "".join(f"require {r}\n" for r in requires)
                    + f"meaning diff = {meaning}\nlet value = digit(tokens)\noutput nearest_digit(value)\n")
    return path


def test_every_generated_input_meets_the_requirement(tmp_path):
    layout = load_program(_program(tmp_path, ["a >= b", "b % 2 == 0"])).layout
    edge = inputs.edge_cases(layout)
    strata = inputs.stratified(layout, 3, 5)
    random_inputs = next(inputs.random_batches(layout, 500, 7, 500))
    for operands in edge + strata + random_inputs:
        assert operands["a"] >= operands["b"] and operands["b"] % 2 == 0
    assert edge and strata and len(random_inputs) == 500
    # the tensor path the verifier uses for millions of inputs keeps the same rows only
    for operands, answer, ids in tensor_batches(layout, load_program(_program(tmp_path, ["a >= b"])).meaning,
                                                2000, 3, 512, "cpu"):
        assert bool((operands["a"] >= operands["b"]).all()) and bool((answer >= 0).all())
    without = load_program(_program(tmp_path, [], meaning="a - b + 10 ** N", answer="diff[N + 1]")).layout
    assert any(o["a"] < o["b"] for o in inputs.edge_cases(without))


def test_a_requirement_is_what_makes_an_unsigned_difference_fit(tmp_path):
    assert load_program(_program(tmp_path, ["a >= b"])).layout.requires[0].text == "a >= b"
    try:
        load_program(_program(tmp_path, []))
    except AdderError as err:
        assert "can be negative" in str(err)
    else:
        raise AssertionError("an unsigned a - b compiled without its requirement")


def test_a_rare_requirement_does_not_hang_the_random_inputs(tmp_path):
    layout = load_program(_program(tmp_path, ["a == b + 1"], width=10)).layout
    started = time.perf_counter()
    drawn = [o for batch in inputs.random_batches(layout, 200, 1, 100) for o in batch]
    assert time.perf_counter() - started < 30
    assert all(o["a"] == o["b"] + 1 for o in drawn) and len(drawn) < 200
    assert all(o["a"] == o["b"] + 1 for o in inputs.edge_cases(layout))


def test_sub_ge_runs_verifies_and_proves(tmp_path, capsys):
    path = tmp_path / "sub_ge.pt"
    ir, stats, digest = compile_file(EXAMPLE)
    save_model(path, ir, stats, digest)
    model, layout = load_compiled(ir), ir.program.layout
    prompts = [layout.prompt_tokens({"a": a, "b": b}) for a, b in ((5000, 1234), (1234, 1234), (9999999999, 0))]
    assert run_prompts(model, layout, prompts) == ["0000003766", "0000000000", "9999999999"]
    _, payload = load_model(path)
    program = program_from_payload(payload, None)
    for dtype in ("float64", "float32"):
        assert prove(payload, program, dtype).status == "proved"
    assert main(["verify", str(path), "--samples", "3000", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["requires"] == [{"condition": "a >= b", "at": "sub_ge.rasp:13"}]
    assert report["meaning"]["wrong"] == 0 and report["meaning"]["checked"] > 0
    assert all(c["wrong"] == 0 for c in report["checks"].values())


def test_run_says_when_a_prompt_is_outside_the_requirement(tmp_path, capsys):
    path = tmp_path / "sub_ge.pt"
    save_model(path, *compile_file(EXAMPLE))
    assert main(["run", str(path), "0000001234-0000005000=", "0000005000-0000001234="]) == 0
    captured = capsys.readouterr()
    assert "0000001234-0000005000= does not meet require a >= b (sub_ge.rasp:13)" in captured.err
    assert "0000005000-0000001234=" not in captured.err
    assert "0000003766" in captured.out


def test_a_model_of_another_program_keeps_its_own_requirement(tmp_path):
    # The requirement comes with the embedded program, not with the model file's layout.
    path = tmp_path / "sub_ge.pt"
    save_model(path, *compile_file(EXAMPLE))
    _, payload = load_model(path)
    assert "requires" not in payload["layout"]
    assert program_from_payload(payload, None).layout.requires[0].holds({"a": 3, "b": 3})
    assert not program_from_payload(payload, None).layout.admits({"a": 2, "b": 3})
    assert torch.equal(program_from_payload(payload, None).layout.admits_tensor(
        {"a": torch.tensor([1, 5]), "b": torch.tensor([2, 5])}), torch.tensor([False, True]))


def test_the_tutorials_decrement_does_what_the_tutorial_says(tmp_path, capsys):
    path = tmp_path / "dec.pt"
    ir, stats, digest = compile_file(ROOT / "docs" / "tutorial" / "decrement.rasp")
    save_model(path, ir, stats, digest)
    assert (ir.lowered[0]["n_layers"], stats["nonzero_params"]) == (1, 53)
    layout = ir.program.layout
    prompts = [layout.prompt_tokens({"a": a}) for a in (1300000000, 1)]
    assert run_prompts(load_compiled(ir), layout, prompts) == ["1299999999", "0000000000"]
    assert main(["verify", str(path), "--samples", "2000", "--prove"]) == 0
    assert "inputs: those with a >= 1 (decrement.rasp:7)" in capsys.readouterr().out
    # without is_digit the search passes over the "=": a model equal to its program, which
    # verify shows wrong against the meaning
    broken = tmp_path / "decrement.rasp"
    broken.write_text((ROOT / "docs" / "tutorial" / "decrement.rasp").read_text().replace(
        "value == 0 and is_digit(tokens)", "value == 0"))
    ir, stats, digest = compile_file(broken)
    assert run_prompts(load_compiled(ir), layout, prompts[:1]) == ["1300000000"]


def test_verify_cut_short_by_a_closed_pipe_does_not_pass(tmp_path):
    # `adderc verify model.pt | head -1`: the verdict never comes, so the status must not be 0.
    import subprocess
    import sys
    program = tmp_path / "wrong.rasp"
    program.write_text(EXAMPLE.read_text().replace("meaning diff = a - b", "meaning diff = a - b - 1")
                       .replace("require a >= b", "require a >= b + 1"))
    path = tmp_path / "wrong.pt"
    save_model(path, *compile_file(program))
    process = subprocess.Popen([sys.executable, "-c", "import sys; from compiler.cli import main; sys.exit(main())",
                                "verify", str(path), "--samples", "200000"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, cwd=ROOT)
    process.stdout.readline()
    process.stdout.close()
    assert process.wait(timeout=300) not in (0, 2)
