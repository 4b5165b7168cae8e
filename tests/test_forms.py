"""The corpus of equivalent phrasings (bench/forms/, measured by bench/forms.py) is truly equivalent.

Every phrasing of a group must state the same layout and meaning, and the interpreter must write
the same answer for each on the same inputs. Nothing is compiled here, to keep the test cheap: the
compiler's agreement with the interpreter is what `bench/forms.py --verify` checks.
"""
import random
from pathlib import Path

import pytest

from compiler.check.inputs import edge_cases
from dsl.resolve import load_program
from dsl.semantics import evaluate

FORMS = Path(__file__).resolve().parent.parent / "bench" / "forms"
GROUPS = sorted(folder.name for folder in FORMS.iterdir() if folder.is_dir())
EDGE_INPUTS = 10
RANDOM_INPUTS = 20
SEED = 20261122


def phrasings(group: str) -> list[Path]:
    return sorted((FORMS / group).glob("*.rasp"))


def chosen_inputs(layout) -> list[dict]:
    rng = random.Random(SEED)
    chosen = edge_cases(layout)[:EDGE_INPUTS]
    return chosen + [{f.name: rng.randrange(layout.base ** f.width) for f in layout.operands}
                     for _ in range(RANDOM_INPUTS)]


def test_the_corpus_has_enough_groups():
    assert len(GROUPS) >= 10
    for group in GROUPS:
        assert 2 <= len(phrasings(group)) <= 4, group


@pytest.mark.parametrize("group", GROUPS)
def test_every_phrasing_says_what_it_computes(group):
    for path in phrasings(group):
        assert path.read_text().startswith(f"# {group}: "), f"{path.name}: no header naming the group"


@pytest.mark.parametrize("group", GROUPS)
def test_the_phrasings_of_a_group_agree(group):
    programs = {path.name: load_program(path) for path in phrasings(group)}
    first = next(iter(programs.values()))
    layout = first.layout
    for name, program in programs.items():
        assert program.layout.to_dict() == layout.to_dict(), f"{name}: another layout"
        assert program.meaning is not None, f"{name}: no meaning"
        assert (program.meaning.field, program.meaning.text) == (first.meaning.field, first.meaning.text), \
            f"{name}: another meaning"
    start = layout.prompt_length - 1
    for operands in chosen_inputs(layout):
        sequence = layout.prompt_tokens(operands) + layout.answer_tokens(first.meaning.expected(operands))
        # Teacher forcing on the meaning's sequence: a phrasing that writes the same answer tokens
        # at every answer position writes the same answer when it decodes on its own.
        for name, program in programs.items():
            written = evaluate(program, sequence[:-1]).output[start:]
            assert written == sequence[start + 1:], f"{name} on {operands}: writes {written}"
