import functools
import random
from pathlib import Path

import pytest

from compiler.api import compile_file, load_compiled
from compiler.model.file import save_model


@pytest.fixture(autouse=True)
def no_progress_lines(monkeypatch):
    """Tests read what a command prints on standard error line by line; a progress line of a run
    slowed by a loaded machine would come first. Set in the environment, it holds for the commands
    tests start as processes too; tests/test_progress.py turns progress back on."""
    monkeypatch.setenv("ADDERC_PROGRESS", "0")


ROOT = Path(__file__).resolve().parent.parent
ADD10 = ROOT / "examples" / "add10.rasp"
SEED = 20261122  # fixed so every run checks the same random sums


EXAMPLES = ROOT / "examples"


def compiled(source, dtype="float64"):
    """compile_file's (ir, stats, digest); an example program is compiled once per test session
    (nothing mutates the IR), any other file every time."""
    path = Path(source).resolve()
    if path.parent == EXAMPLES:
        return _compiled_example(path, dtype)
    return compile_file(source, dtype=dtype)


@functools.lru_cache(maxsize=None)
def _compiled_example(path, dtype):
    return compile_file(path, dtype=dtype)


def saved_model(folder, source, name="m.pt", dtype="float64"):
    """A program compiled and written as a model file, as `adderc PROGRAM -o` would."""
    ir, stats, digest = compiled(source, dtype)
    path = folder / name
    save_model(path, ir, stats, digest)
    return path


@pytest.fixture(scope="session")
def add10_ir():
    ir, stats, _ = compile_file(ADD10)
    return ir


@pytest.fixture(scope="session", params=["float64", "float32"])
def add10_model(request):
    ir, stats, _ = compile_file(ADD10, dtype=request.param)
    return ir, load_compiled(ir)


def edge_pairs(n_digits: int) -> list[tuple[int, int]]:
    """Sums a carry can go wrong on: zeros, all nines, carries through long runs of 9s."""
    top = 10 ** n_digits - 1
    pairs = [(0, 0), (top, 1), (top, top), (int("1" * n_digits), int("8" * (n_digits - 1) + "9")),
             (5 * 10 ** (n_digits - 1), 5 * 10 ** (n_digits - 1)), (top, 0), (0, top)]
    rng = random.Random(SEED)
    for run in range(1, n_digits + 1):  # a carry born below a run of pair-sums equal to 9
        for _ in range(3):
            a = rng.randrange(10 ** n_digits)
            b = (10 ** run - 1 - a % 10 ** run) + (rng.randrange(10 ** n_digits) // 10 ** run) * 10 ** run
            low = rng.randrange(1, 10)
            pairs.append((a, (b + low) % 10 ** n_digits))
            pairs.append((a, b % 10 ** n_digits))
    return pairs


def random_pairs(n_digits: int, count: int, seed: int = SEED) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randrange(10 ** n_digits), rng.randrange(10 ** n_digits)) for _ in range(count)]
