"""An MLP's function is realised the cheap way, whichever way the program phrases it: inputs the
others determine are computed, not read (compiler.ir.forms), and of several ridge decompositions
the block with the fewest nonzero weights is kept (compiler.passes.weights.ridges). Every model
still proves."""
from fractions import Fraction as F

import pytest

from compiler.api import compile_file
from compiler.check.prove import prove
from compiler.check.verify import program_from_payload
from compiler.ir.attrs import DEPENDENT, FRONTIER, LABEL, NODE, REALIZE
from compiler.ir.compile_ir import Affine
from compiler.ir.weights import MLPBlock
from compiler.model.file import load_model, save_model
from compiler.passes.weights.branches import Branch, branch_part, branches
from compiler.passes.weights.mlp import piecewise_linear_vectors
from compiler.passes.weights.ridges import Input, candidates, mixed_radix, ridge_and_rest

MAX_OF_TWO = """
const N = 1
layout base 10, msb_first: "<bos>" a[N] "," b[N] "=" => m[N] "<eos>"
meaning m = max(a, b)
let value = digit(tokens)
let x = shift(value, 3)
let y = shift(value, 1)
output "<eos>" if indices == end(m) else nearest_digit({digit})
"""

PHRASINGS = {
    "builtin": "max(x, y)",
    "conditional": "x if x >= y else y",
    "two_conditionals": "x if x > y else (y if y > x else x)",
    "boolean_arithmetic": "y + (x - y) * (x > y)",
    "difference_first": "x - (x - y) * (y > x)",
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = {}
    for name, digit in PHRASINGS.items():
        ir, stats, digest = compile_file(f"{name}.rasp", text=MAX_OF_TWO.replace("{digit}", digit))
        path = tmp_path_factory.mktemp(name) / "m.pt"
        save_model(path, ir, stats, digest)
        out[name] = (ir, stats, path)
    return out


def test_an_input_affine_in_the_others_is_computed_not_read(compiled):
    ir = compiled["boolean_arithmetic"][0]
    (mlp,) = [a for _, a in ir.graph.nodes(data=True) if a[REALIZE] == "mlp"]
    frontier = [ir.graph.nodes[f][LABEL] for f in mlp[FRONTIER]]
    assert frontier == ["x", "y"]
    assert [ir.graph.nodes[d][LABEL] for d in mlp[DEPENDENT]] == ["x - y"]


def test_equivalent_phrasings_of_max_compile_to_the_same_small_model(compiled):
    sizes = {name: stats["nonzero_params"] for name, (_, stats, _) in compiled.items()}
    # max(x, y) = y + relu(x - y): one ridge and one affine rest, a few units; a code over x and y
    # alone needs 33 units (169 nonzero), and reading x - y as a third input 649.
    assert max(sizes.values()) <= 60, sizes
    assert max(sizes.values()) <= 1.2 * min(sizes.values()), sizes


@pytest.mark.parametrize("name", sorted(PHRASINGS))
def test_every_phrasing_is_proved(compiled, name):
    _, payload = load_model(compiled[name][2])
    for dtype in ("float64", "float32"):
        proof = prove(payload, program_from_payload(payload, None), dtype)
        assert proof.status == "proved", (name, dtype, proof.reason)


def _grid(f, xs, ys):
    return {(F(x), F(y)): {0: F(f(x, y))} for x in xs for y in ys}


def _inputs():
    return [Input([F(v) for v in range(10)], Affine({0: 1})), Input([F(v) for v in range(10)], Affine({1: 1}))]


def test_a_ridge_with_an_affine_rest_is_found_exactly():
    grid = _grid(lambda x, y: max(x - y, 0) + 2 * y + 3, range(10), range(10))
    parts = ridge_and_rest(_inputs(), grid, (F(1), F(-1)))
    assert parts is not None
    # The parts add up to f at every combination.
    for point, want in grid.items():
        total = F(0)
        for part in parts:
            code = sum(c * x for c, x in zip((part.read.coeffs.get(0, 0), part.read.coeffs.get(1, 0)), point))
            total += part.table[code + part.read.bias].get(0, 0)
        assert total == want[0]


def test_a_function_of_no_single_form_is_no_ridge():
    grid = _grid(lambda x, y: x * y, range(10), range(10))
    assert ridge_and_rest(_inputs(), grid, (F(1), F(-1))) is None
    assert ridge_and_rest(_inputs(), grid, (F(1), F(1))) is None


def test_every_order_of_the_inputs_is_a_candidate():
    grid = _grid(lambda x, y: int(y >= 5), range(10), range(10))
    assert len(candidates(_inputs(), grid, [])) == 2  # x then y, and y then x
    units = {}
    for order in ((0, 1), (1, 0)):
        (part,) = mixed_radix(_inputs(), grid, order)
        units[order] = piecewise_linear_vectors(MLPBlock(0, "f"), part.read, part.table).units
    # x the fast digit of the code (factor 1), y the slow one: f steps up once along the code.
    # The other way f steps up and down again for every value of x.
    assert units[(0, 1)] == 2 and units[(1, 0)] == 38


# A choice among shifted copies by position flags: x if p else (y if r else z) over seven inputs
# is 80,000 combinations as a table; as arithmetic on its conditions, one unit per branch.
REVERSE_BY_CONDITIONALS = """
const N = 4
layout base 10, msb_first: "<bos>" a[N] "=" => r[N] "<eos>"
meaning r = a % 10 * 1000 + a // 10 % 10 * 100 + a // 100 % 10 * 10 + a // 1000
let value = digit(tokens)
const FIRST = start(r) - 1
let reversed = shift(value, 1) if indices == FIRST else
               (shift(value, 3) if indices == FIRST + 1 else
                (shift(value, 5) if indices == FIRST + 2 else shift(value, 7)))
output "<eos>" if indices == end(r) else nearest_digit(reversed)
"""


def test_a_choice_by_conditions_is_arithmetic_on_them(tmp_path):
    ir, stats, digest = compile_file("reverse.rasp", text=REVERSE_BY_CONDITIONALS)
    (mlp,) = [a for _, a in ir.graph.nodes(data=True) if a[REALIZE] == "mlp"]
    found = branches(ir.graph, mlp[NODE].id, mlp[FRONTIER])
    assert len(found) == 4 and sorted(len(b.path) for b in found) == [1, 2, 3, 3]
    # One unit per branch: relu(value - U * failed conditions - L + 1/2); the output bias takes the
    # 1/2 - L every combination adds back, since exactly one path holds at each.
    assert ir.lowered[0]["d_mlp"] == [len(found)]
    assert stats["nonzero_params"] <= 70 and stats["compile_seconds"] < 5, stats
    save_model(tmp_path / "m.pt", ir, stats, digest)
    _, payload = load_model(tmp_path / "m.pt")
    for dtype in ("float64", "float32"):
        proof = prove(payload, program_from_payload(payload, None), dtype)
        assert proof.status == "proved", (dtype, proof.reason)


def test_abranch_part_is_the_branch_where_its_path_holds_and_0_elsewhere():
    # Inputs: a flag p (codes 0/1) and a digit x. The branch "x where p" as one ridge.
    inputs = [Input([F(0), F(1)], Affine({0: 1})), Input([F(v) for v in range(10)], Affine({1: 1}))]
    part = branch_part(Branch(((0, True),), ((F(0), F(1)), F(0))), inputs, [(False, True), tuple(range(10))],
                        lambda value: {5: F(value)})
    for p in (0, 1):
        for x in range(10):
            code = part.read.coeffs[0] * p + part.read.coeffs[1] * x + part.read.bias
            assert part.table[code] == {5: F(x if p else 0)}
