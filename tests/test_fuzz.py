"""A bounded, seeded fuzzing slice, and tests that the oracle it relies on can fail.

The slice (random programs plus mutants of the shipped ones, each in a worker with a timeout)
must give no internal error, no hang and no mismatch. `bench/fuzz.py` runs the same checks for
long campaigns.
"""
from __future__ import annotations

from pathlib import Path


from compiler import pipeline
from compiler.api import load_compiled
from dsl.resolve import load_program
from tests.fuzz import oracle
from tests.fuzz.generate import random_program
from tests.fuzz.mutate import corpus, mutants
from tests.fuzz.runner import Task, generated_tasks, mutant_tasks, run_tasks, summarize

ROOT = Path(__file__).resolve().parent.parent
SLICE_SEED = 20261122
SLICE_PROGRAMS, SLICE_MUTANTS = 60, 40

PAIR_SUM = """
layout base 10, msb_first: "<bos>" a[1] "+" b[1] "=" => s[2] "<eos>"
let value = digit(tokens)
let total = shift(value, 2) + value
output "<eos>" if indices == end(s) else nearest_digit(total // 10 if indices == 3 else total % 10)
"""


def _slice_failures():
    tasks = [*generated_tasks(SLICE_PROGRAMS, SLICE_SEED), *mutant_tasks(corpus(ROOT), SLICE_MUTANTS, SLICE_SEED)]
    return summarize(run_tasks(tasks, jobs=2, timeout=60))


def test_fuzz_slice_finds_nothing_wrong():
    result = _slice_failures()
    counts = result["counts"]
    assert counts["tried"] == SLICE_PROGRAMS + SLICE_MUTANTS
    # a generator that stopped producing valid programs would make this slice vacuous
    assert counts["compiled"] >= SLICE_PROGRAMS // 2, counts
    lines = [f"{outcome.kind}: {task.name}: {outcome.message}\n{task.text}" for task, outcome in result["failures"]]
    assert not lines, f"{counts}\n" + "\n\n".join(lines)


def test_generator_and_mutants_are_reproducible():
    assert random_program(7) == random_program(7)
    assert random_program(7) != random_program(8)
    text = (ROOT / "examples" / "add3.rasp").read_text()
    assert list(mutants(text, 3, 5)) == list(mutants(text, 3, 5))


def test_generated_programs_are_mostly_valid():
    """Most generated programs must parse and type-check, or the fuzzer only tests the parser."""
    valid = 0
    for seed in range(40):
        try:
            load_program(f"gen_{seed}.rasp", None, random_program(seed))
            valid += 1
        except Exception:  # noqa: BLE001 - counted, not raised: any failure here is the generator's
            pass
    assert valid >= 32


def test_oracle_accepts_a_right_model():
    outcome = oracle.check(PAIR_SUM, "pair.rasp", dtypes=("float64", "float32"))
    assert outcome.kind == "compiled", outcome
    assert outcome.inputs == 100  # every input of the layout


def test_oracle_reports_a_corrupted_weight(monkeypatch):
    program = load_program("pair.rasp", None, PAIR_SUM)
    model = load_compiled(pipeline.compile_program(program, {"dtype": "float64"}))
    inputs = oracle.choose_inputs(program.layout, 500, 0, 0)
    assert oracle.first_mismatch(model, program, inputs) is None
    with_bias = model.unembed.b_U.detach().clone()
    model.unembed.b_U.data[program.layout.vocab.index("7")] += 50.0
    problem = oracle.first_mismatch(model, program, inputs)
    assert problem is not None and "the model '7'" in problem[0]
    model.unembed.b_U.data.copy_(with_bias)

    def corrupted(ir):  # the same corruption, where check builds its model
        built = load_compiled(ir)
        built.unembed.b_U.data[0] += 50.0
        return built
    monkeypatch.setattr(oracle, "load_compiled", corrupted)
    outcome = oracle.check(PAIR_SUM, "pair.rasp")
    assert outcome.kind == "mismatch" and outcome.failed, outcome


def test_oracle_counts_a_crashing_pass_as_internal(monkeypatch):
    def broken(ir):
        raise KeyError("a node the pass did not expect")
    monkeypatch.setattr(pipeline, "PASSES", [broken, *pipeline.PASSES])
    outcome = oracle.check(PAIR_SUM, "pair.rasp")
    assert outcome.kind == "internal" and outcome.failed
    assert "KeyError" in outcome.message and "broken" in outcome.detail


def test_oracle_sorts_errors_by_location():
    located = oracle.check(PAIR_SUM.replace("shift(value, 2)", "shift(value, -2)"), "pair.rasp")
    assert located.kind == "located" and "ahead" in located.message
    unlocated = oracle.check(PAIR_SUM, "pair.rasp", overrides={"NOPE": 1})
    assert unlocated.kind == "unlocated" and not unlocated.failed


def test_runner_kills_a_check_past_its_timeout():
    """A check longer than the timeout is a hang, its worker is replaced, and the run goes on."""
    tasks = [Task(f"t{i}", PAIR_SUM, "pair.rasp", ("float64",)) for i in range(2)]
    result = summarize(run_tasks(tasks, jobs=1, timeout=0.01))
    assert result["counts"]["hang"] == 2 and len(result["failures"]) == 2
