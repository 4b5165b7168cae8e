import re

import pytest

from compiler.check.inputs import (carry_pattern, edge_cases, exhaustive, input_space_size,
                                    random_batches, stratified, stratified_labeled)
from dsl.layout import Layout
from dsl.resolve import load_program
from tests.conftest import ADD10

SEED = 20261122


def adder_layout(base: int, width: int, width_b: int | None = None, order: str = "msb_first") -> Layout:
    width_b = width if width_b is None else width_b
    items = (("literal", "<bos>"), ("field", "a", width), ("literal", "+"), ("field", "b", width_b),
             ("literal", "="), ("field", "sum", max(width, width_b) + 1), ("literal", "<eos>"))
    return Layout(base, order, items, 5)


def in_range(layout: Layout, operands: dict) -> bool:
    return (set(operands) == {f.name for f in layout.operands} and
            all(0 <= operands[f.name] < layout.base ** f.width for f in layout.operands))


def expected_pattern(base: int, width: int, a: int, b: int) -> str:
    out = []
    for place in range(width):
        s = a // base ** place % base + b // base ** place % base
        out.append("g" if s >= base else "p" if s == base - 1 else "k")
    return "".join(reversed(out))


# ----- size and exhaustive -------------------------------------------------------------------------

def test_input_space_size():
    assert input_space_size(adder_layout(10, 2)) == 10 ** 4
    assert input_space_size(adder_layout(2, 3, 5)) == 2 ** 8
    assert input_space_size(load_program(ADD10).layout) == 10 ** 20


def test_exhaustive_covers_a_two_digit_space_once():
    layout = adder_layout(10, 2)
    seen = [(d["a"], d["b"]) for d in exhaustive(layout)]
    assert len(seen) == input_space_size(layout) == len(set(seen))
    assert set(seen) == {(a, b) for a in range(100) for b in range(100)}
    assert seen[:3] == [(0, 0), (0, 1), (0, 2)]  # fixed order: first operand slowest
    assert seen == [(d["a"], d["b"]) for d in exhaustive(layout)]


# ----- edge cases ----------------------------------------------------------------------------------

@pytest.mark.parametrize("base,width,width_b", [(10, 10, 10), (2, 1, 1), (2, 8, 3), (16, 5, 5), (10, 1, 4)])
def test_edge_cases_in_range_unique_deterministic(base, width, width_b):
    layout = adder_layout(base, width, width_b)
    cases = edge_cases(layout)
    assert cases and all(in_range(layout, c) for c in cases)
    keys = [tuple(sorted(c.items())) for c in cases]
    assert len(keys) == len(set(keys))
    assert cases == edge_cases(layout)


def test_edge_cases_hold_the_classic_cases():
    layout = load_program(ADD10).layout
    pairs = {(c["a"], c["b"]) for c in edge_cases(layout)}
    top = 10 ** 10 - 1
    for pair in [(0, 0), (top, top), (top, 1), (1, top), (top, 0), (int("9090909090"), int("0909090909"))]:
        assert pair in pairs
    for place in range(10):  # a lone digit at each place, against zero and against all nines
        assert (10 ** place, top) in pairs and (0, 9 * 10 ** place) in pairs


def test_edge_cases_with_three_operands_stay_small():
    items = (("literal", "<bos>"), ("field", "a", 40), ("literal", "+"), ("field", "b", 40),
             ("literal", "+"), ("field", "c", 40), ("literal", "="), ("field", "sum", 42), ("literal", "<eos>"))
    layout = Layout(10, "msb_first", items, 7)
    cases = edge_cases(layout)
    assert 0 < len(cases) < 2000 and all(in_range(layout, c) for c in cases)


# ----- stratified ----------------------------------------------------------------------------------

def test_stratified_covers_every_carry_stratum_with_the_claimed_structure():
    layout = load_program(ADD10).layout
    width, per = 10, 3
    labeled = stratified_labeled(layout, per, SEED)
    counts: dict[tuple, int] = {}
    for label, operands in labeled:
        assert in_range(layout, operands)
        counts[label] = counts.get(label, 0) + 1
        pattern = carry_pattern(layout, operands)
        assert pattern == expected_pattern(10, width, operands["a"], operands["b"])
        by_place = pattern[::-1]  # index = place
        if label[0] == "carry":
            _, s, length = label
            chain = "g" + "p" * (length - 1) + ("k" if s + length < width else "")
            assert by_place[s:s + len(chain)] == chain, (label, operands, pattern)
        elif label[0] == "nocarry":
            length = label[1]
            assert "g" not in pattern
            if length:
                assert re.search(r"(^|k)" + "p" * length + "(k|$)", by_place), (label, pattern)
        else:
            _, s, length, variant = label
            if variant in ("max+1", "1+max"):
                assert by_place[s:s + length] == "g" + "p" * (length - 1)
                assert set(by_place[:s] + by_place[s + length:]) <= {"k"}
            elif variant == "max+0":
                assert by_place[s:s + length] == "p" * length
    strata = {(s, length) for s in range(width) for length in range(1, width - s + 1)}
    carry = {label[1:]: n for label, n in counts.items() if label[0] == "carry"}
    assert set(carry) == strata and len(strata) == 55
    assert set(carry.values()) == {per}  # equally represented
    assert {label[1] for label in counts if label[0] == "nocarry"} == set(range(width + 1))
    assert {label[1:3] for label in counts if label[0] == "run"} == strata


def test_nocarry_inputs_really_carry_nothing():
    layout = load_program(ADD10).layout
    for label, operands in stratified_labeled(layout, 2, SEED):
        if label[0] == "nocarry":
            a, b = operands["a"], operands["b"]
            assert all(a // 10 ** p % 10 + b // 10 ** p % 10 < 10 for p in range(10))


def test_stratified_is_deterministic_from_the_seed():
    layout = load_program(ADD10).layout
    assert stratified(layout, 2, SEED) == stratified(layout, 2, SEED)
    assert stratified(layout, 2, SEED) != stratified(layout, 2, SEED + 1)


@pytest.mark.parametrize("base", [2, 16])
def test_stratified_other_bases(base):
    width = 12
    layout = adder_layout(base, width)
    labeled = stratified_labeled(layout, 2, SEED)
    carry = {}
    for label, operands in labeled:
        assert in_range(layout, operands)
        if label[0] == "carry":
            _, s, length = label
            chain = "g" + "p" * (length - 1) + ("k" if s + length < width else "")
            assert carry_pattern(layout, operands)[::-1][s:s + len(chain)] == chain
            carry[(s, length)] = carry.get((s, length), 0) + 1
    assert set(carry) == {(s, n) for s in range(width) for n in range(1, width - s + 1)}


def test_stratified_tiny_and_wide_layouts():
    # width 1 in base 2: the space has 4 inputs, strata still come out without looping forever
    tiny = adder_layout(2, 1)
    labeled = stratified_labeled(tiny, 5, SEED)
    assert {label for label, _ in labeled if label[0] == "carry"} == {("carry", 0, 1)}
    assert all(in_range(tiny, c) for _, c in labeled)
    # width 100: the count is O(width^2 * per_stratum)
    wide = adder_layout(16, 100)
    cases = stratified(wide, 1, SEED)
    strata = 100 * 101 // 2
    assert strata <= len(cases) <= strata * 5 + 101
    assert all(in_range(wide, c) for c in cases[::97])


def test_stratified_unequal_widths_and_single_operand():
    layout = adder_layout(10, 6, 3)
    labeled = stratified_labeled(layout, 2, SEED)
    assert all(in_range(layout, c) for _, c in labeled)
    carry_starts = {label[1] for label, _ in labeled if label[0] == "carry"}
    assert carry_starts == {0, 1, 2}  # b has no digit above place 2, so nothing generates there
    one = Layout(10, "msb_first", (("literal", "<bos>"), ("field", "a", 4), ("literal", "="),
                                   ("field", "out", 4), ("literal", "<eos>")), 3)
    assert stratified(one, 3, SEED) == []
    assert carry_pattern(one, {"a": 9000}) == "pkkk"


# ----- random --------------------------------------------------------------------------------------

def test_random_batches_reproducible_and_batch_independent():
    layout = adder_layout(16, 7, 5)
    batches = list(random_batches(layout, 1000, SEED, batch=300))
    assert [len(b) for b in batches] == [300, 300, 300, 100]
    flat = [x for b in batches for x in b]
    assert flat == [x for b in random_batches(layout, 1000, SEED) for x in b]
    assert all(in_range(layout, x) for x in flat)
    assert flat != [x for b in random_batches(layout, 1000, SEED + 1) for x in b]
    assert len({(x["a"], x["b"]) for x in flat}) > 990
    assert list(random_batches(layout, 0, SEED)) == []


def test_carry_pattern():
    layout = adder_layout(10, 4)
    assert carry_pattern(layout, {"a": 1955, "b": 45}) == "kppg"
    assert carry_pattern(layout, {"a": 9999, "b": 1}) == "pppg"
    assert carry_pattern(adder_layout(2, 3), {"a": 0b101, "b": 0b011}) == "ppg"
