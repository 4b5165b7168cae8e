"""Operand assignments for checking an adder on many inputs.

Every generator here returns assignments as dicts `{field name: value}` over a layout's operand
fields (in layout order), and every one is deterministic: the same layout and seed give the same
inputs in the same order, so a failure found once can be found again.

Places are counted from the least significant digit: place 0 is the units digit. For the first two
operands a place is said to

    generate  ('g')  when its digit pair sums to `base` or more (a carry leaves it whatever comes in),
    propagate ('p')  when the pair sums to exactly `base - 1` (it passes on the carry it receives),
    kill      ('k')  when the pair sums to less than `base - 1` (no carry leaves it).

An operand narrower than another has digit 0 at the places it lacks.
"""
from __future__ import annotations

import itertools
import random
from typing import Iterator

from dsl.layout import DIGIT_ALPHABET, Field, Layout

Assignment = dict[str, int]


# ----- sizes and the whole space -------------------------------------------------------------------

# Random draws per input wanted before giving up on a `require` that few inputs meet.
REJECTION_LIMIT = 100


def input_space_size(layout: Layout) -> int:
    """How many operand assignments the layout admits: the product of base**width over operands."""
    size = 1
    for field in layout.operands:
        size *= layout.base ** field.width
    return size


def exhaustive(layout: Layout) -> Iterator[Assignment]:
    """Every assignment, the first operand varying slowest and the last fastest.

    The caller decides whether the space is small enough (see `input_space_size`)."""
    fields = layout.operands
    names = [f.name for f in fields]
    ranges = [range(layout.base ** f.width) for f in fields]
    for values in itertools.product(*ranges):
        operands = dict(zip(names, values))
        if layout.admits(operands):  # a program's `require` leaves the rest unspecified
            yield operands


# ----- edge cases ----------------------------------------------------------------------------------

def _top(layout: Layout, field: Field) -> int:
    return layout.base ** field.width - 1


def _alternating(base: int, width: int, first: int, second: int) -> int:
    """Digits `first` at even places and `second` at odd places (place 0 the units digit)."""
    value = 0
    for place in range(width):
        value += (first if place % 2 == 0 else second) * base ** place
    return value


def _core_values(layout: Layout, field: Field) -> list[int]:
    base, width, top = layout.base, field.width, _top(layout, field)
    values = [0, 1, top, top - 1, base ** (width - 1),
              _alternating(base, width, base - 1, 0), _alternating(base, width, 0, base - 1),
              _alternating(base, width, base // 2, (base - 1) // 2)]
    return _unique(v for v in values if 0 <= v <= top)


def _unique(items) -> list:
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def edge_cases(layout: Layout) -> list[Assignment]:
    """Hand-picked inputs carries go wrong on, deduplicated, in a fixed order.

    Per operand the core values are: 0, 1, max (base**w - 1), max - 1, a lone top digit 1,
    digits alternating max/0 both ways, and digits alternating base//2 / (base-1)//2 (every place
    a propagate when added to itself shifted). These are combined across operands (the full
    cross product when it has at most 4096 entries; otherwise each operand's values against the
    others all zero and all max). Then, for every operand and every place, a single nonzero digit
    there (1 and base-1) against the other operands all zero and all max -- `max + base**p` is the
    carry that must run from place p to the top."""
    fields = layout.operands
    names = [f.name for f in fields]
    cores = [_core_values(layout, f) for f in fields]
    tops = [_top(layout, f) for f in fields]
    rows: list[tuple[int, ...]] = []

    product_size = 1
    for core in cores:
        product_size *= len(core)
    if product_size <= 4096:
        rows.extend(itertools.product(*cores))
    else:
        for i, core in enumerate(cores):
            for value in core:
                for fill in ("zero", "max"):
                    rows.append(tuple(value if j == i else (0 if fill == "zero" else tops[j])
                                      for j in range(len(fields))))

    base = layout.base
    for i, field in enumerate(fields):
        for place in range(field.width):
            for digit in _unique((1, base - 1)):
                value = digit * base ** place
                for fill in ("zero", "max"):
                    rows.append(tuple(value if j == i else (0 if fill == "zero" else tops[j])
                                      for j in range(len(fields))))
    return [operands for row in _unique(rows) if layout.admits(operands := dict(zip(names, row)))]


# ----- carry structure -----------------------------------------------------------------------------

def _pair_fields(layout: Layout) -> tuple[Field, Field | None]:
    ops = layout.operands
    return ops[0], (ops[1] if len(ops) > 1 else None)


def carry_width(layout: Layout) -> int:
    """Number of places the carry analysis covers: the wider of the first two operands."""
    first, second = _pair_fields(layout)
    return max(first.width, second.width if second else 0)


def carry_pattern(layout: Layout, operands: Assignment) -> str:
    """The first two operands' places as 'g'/'p'/'k', most significant place first.

    With a single operand the missing one counts as 0."""
    first, second = _pair_fields(layout)
    base, width = layout.base, carry_width(layout)
    a = operands[first.name]
    b = operands[second.name] if second else 0
    out = []
    for place in range(width - 1, -1, -1):
        total = a // base ** place % base + b // base ** place % base
        out.append("g" if total >= base else "p" if total == base - 1 else "k")
    return "".join(out)


class _Pairs:
    """Digit pairs (da, db) of each carry class, for the digit ranges a place allows."""

    def __init__(self, base: int):
        self.base = base
        self._cache: dict[tuple[str, int, int], list[tuple[int, int]]] = {}

    def of(self, kind: str, range_a: int, range_b: int) -> list[tuple[int, int]]:
        key = (kind, range_a, range_b)
        if key not in self._cache:
            base = self.base
            tests = {"g": lambda s: s >= base, "p": lambda s: s == base - 1, "k": lambda s: s < base - 1,
                     "n": lambda s: s < base}  # "n": anything but generate
            test = tests[kind]
            self._cache[key] = [(x, y) for x in range(range_a) for y in range(range_b) if test(x + y)]
        return self._cache[key]


def _ranges(layout: Layout, first: Field, second: Field, place: int) -> tuple[int, int]:
    base = layout.base
    return (base if place < first.width else 1), (base if place < second.width else 1)


def _overwrite(value: int, base: int, low: int, digits: list[int]) -> int:
    """`value` with its digits at places low, low+1, ... replaced by `digits` (least significant first)."""
    lo, hi = base ** low, base ** (low + len(digits))
    block = int("".join(DIGIT_ALPHABET[d] for d in reversed(digits)), base) if digits else 0
    return value - (value % hi - value % lo) + block * lo


def stratified_labeled(layout: Layout, per_stratum: int, seed: int) -> list[tuple[tuple, Assignment]]:
    """Inputs stratified by the carry structure of the first two operands, with their stratum.

    W is the wider of the two operands' widths. The strata, in this order:

    ("carry", s, L) for 0 <= s < W and 1 <= L <= W - s: place s generates, places s+1 .. s+L-1
        propagate, and place s+L kills (when s+L < W; else the carry runs off the top into the
        answer's extra digit). Other places are random. `per_stratum` inputs each.
    ("nocarry", L) for 0 <= L <= W: no place generates, so no carry at all; a maximal run of L
        propagating places sits at a random start (L = 0: no forced run). `per_stratum` inputs each.
    ("run", s, L, variant) for the same (s, L) as "carry": one input each, built from runs of
        (base-1)s and 0s around the boundaries: "max+1" (a = base-1 at places s..s+L-1, zeros
        elsewhere; b = 1 at place s), "1+max" (the same, a and b swapped), "max+0" (the same run
        with b = 0: a run of propagates with no carry), and "hole" (a = base-1 everywhere except
        zeros at s..s+L-1; b = 1 at place 0).

    Digits outside the structured places, and operands after the first two, are drawn from
    random.Random(seed). Within a stratum duplicate inputs are dropped (only tiny spaces have
    them), so a stratum can hold fewer than `per_stratum` inputs; a stratum the operand widths
    make impossible (a generate where one operand has no digit) is left out. Layouts with fewer
    than two operands have no carry structure, and per_stratum <= 0 asks for none: the result is
    then empty.

    Size: W(W+1)/2 * (per_stratum + up to 4) + (W+1) * per_stratum.
    """
    ops = layout.operands
    if len(ops) < 2 or per_stratum <= 0:
        return []
    first, second = ops[0], ops[1]
    others = ops[2:]
    base, width = layout.base, carry_width(layout)
    top_a, top_b = base ** first.width, base ** second.width
    rng = random.Random(seed)
    pairs = _Pairs(base)
    out: list[tuple[tuple, Assignment]] = []
    ranges_at = [_ranges(layout, first, second, place) for place in range(width)]

    def assignment(a: int, b: int) -> Assignment:
        result = {first.name: a, second.name: b}
        for field in others:
            result[field.name] = rng.randrange(base ** field.width)
        return result

    def structured(kinds: list[str], low: int, a: int, b: int) -> tuple[int, int] | None:
        """Overwrite places low.. with random pairs of the given kinds; None when impossible."""
        chosen: list[tuple[int, int]] = []
        start = 0
        while start < len(kinds):  # one draw per run of places with the same kind and digit ranges
            key = (kinds[start], ranges_at[low + start])
            stop = start + 1
            while stop < len(kinds) and kinds[stop] == key[0] and ranges_at[low + stop] == key[1]:
                stop += 1
            choices = pairs.of(key[0], *key[1])
            if not choices:
                return None
            chosen.extend(rng.choices(choices, k=stop - start))
            start = stop
        return (_overwrite(a, base, low, [x for x, _ in chosen]),
                _overwrite(b, base, low, [y for _, y in chosen]))

    def fill(label: tuple, make) -> None:
        seen = set()
        for _ in range(per_stratum * 4):
            if len(seen) >= per_stratum:
                break
            made = make()
            if made is None:
                return
            if made in seen:
                continue
            seen.add(made)
            out.append((label, assignment(*made)))

    # carry chains
    for s in range(width):
        for length in range(1, width - s + 1):
            kinds = ["g"] + ["p"] * (length - 1) + (["k"] if s + length < width else [])
            fill(("carry", s, length),
                 lambda kinds=kinds, s=s: structured(kinds, s, rng.randrange(top_a), rng.randrange(top_b)))

    # no carry at all
    for length in range(width + 1):
        def make(length=length):
            s = rng.randrange(width - length + 1)
            kinds = [("p" if s <= place < s + length else
                      "k" if place in (s - 1, s + length) else "n") for place in range(width)]
            return structured(kinds, 0, 0, 0)
        fill(("nocarry", length), make)

    out += [(label, assignment(a, b)) for label, a, b in _runs(base, width, top_a, top_b)]
    return [(label, operands) for label, operands in out if layout.admits(operands)]


def _runs(base: int, width: int, top_a: int, top_b: int):
    """The "run" strata of stratified_labeled: (label, a, b) built from runs of (base-1)s and 0s."""
    all_max = base ** width - 1
    for s in range(width):
        for length in range(1, width - s + 1):
            run = (base ** length - 1) * base ** s
            one = base ** s
            variants = [("max+1", run, one), ("1+max", one, run), ("max+0", run, 0),
                        ("hole", all_max - run, 1)]
            seen = set()
            for name, a, b in variants:
                if a >= top_a or b >= top_b or (a, b) in seen:
                    continue
                seen.add((a, b))
                yield ("run", s, length, name), a, b


def stratified(layout: Layout, per_stratum: int, seed: int) -> list[Assignment]:
    """The inputs of `stratified_labeled`, without their strata."""
    return [operands for _, operands in stratified_labeled(layout, per_stratum, seed)]


# ----- uniform random ------------------------------------------------------------------------------

def random_batches(layout: Layout, count: int, seed: int, batch: int = 65536) -> Iterator[list[Assignment]]:
    """`count` uniform random assignments from random.Random(seed), in lists of at most `batch`.

    Each assignment draws its operands in layout order, so the sequence of assignments depends
    only on the seed, not on the batch size."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    rng = random.Random(seed)
    fields = [(f.name, layout.base ** f.width) for f in layout.operands]
    draw = lambda: {name: rng.randrange(top) for name, top in fields}
    left = count
    if not layout.requires:
        while left > 0:
            size = min(batch, left)
            yield [draw() for _ in range(size)]
            left -= size
        return
    # A program's `require`: draws that do not meet it are dropped. Where few do, give up after
    # REJECTION_LIMIT draws per input wanted: fewer inputs come back, and the caller reports
    # how many it checked.
    attempts = REJECTION_LIMIT * count
    while left > 0 and attempts > 0:
        kept = []
        while len(kept) < min(batch, left) and attempts > 0:
            attempts -= 1
            operands = draw()
            if layout.admits(operands):
                kept.append(operands)
        if kept:
            yield kept
        left -= len(kept)
