"""A select term on positions alone, split into parts a head expresses without a table.

A term comparing keys with queries whose two sides are functions of the position alone selects a
fixed pattern of (query, key) positions, known at compile time. A table over the two sides'
one-hots costs a weight per selected pair of values, and makes both sides one-hot. Often the
pattern is a conjunction of three simpler conditions instead:

- one on the query alone (`q >= start(b)`): the queries that select anything;
- one on the key alone (`k <= end(b)`, or a place number that is never below the query's): the
  keys that are ever selected;
- one on the distance q - k: exactly c back (an offset), at most w back (a window), or the two
  ends of a window, 0 and w back (a convex parabola under the window's mask).

Then each one-sided part is an indicator of that side's value (read through its encoding, so a
side stays numerical when the indicator is affine in it) and the distance part costs a constant
or two of the head's ALiBi terms. The split is checked on every pair of positions before it is
used, so it holds exactly or is not used; nothing here depends on how the program wrote the term
(a `k < q` on place numbers that are affine functions of the position splits the same way as the
distance comparison it amounts to).
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple

from dsl.semantics import eval_predicate


class PositionSplit(NamedTuple):
    """A term on positions as a conjunction of parts; None for a part that is always true."""
    query_positions: frozenset | None  # the queries that select anything
    key_positions: frozenset | None  # the keys that are ever selected
    relative: tuple | None  # ("offset", c), ("window", w) or ("ends", w): the distance part


def feature_column(positions, n_ctx: int) -> tuple[tuple, bool]:
    """The W_pos column that holds [position in positions]: the positions it is 1 at, and whether
    the head reads it complemented (1 - column). The smaller set is stored: a column costs a
    weight per position it is 1 at, the complement only a bias."""
    inside = tuple(sorted(positions))
    outside = tuple(p for p in range(n_ctx) if p not in set(inside))
    return (outside, True) if len(outside) < len(inside) else (inside, False)


@lru_cache(maxsize=256)
def pattern(predicate, keys: tuple, queries: tuple, base: int) -> tuple:
    """holds[q][k] for every key k at or before the query q."""
    return tuple(tuple(bool(eval_predicate(predicate, keys[k], queries[q], base)) for k in range(q + 1))
                 for q in range(len(keys)))


@lru_cache(maxsize=256)
def split_positions(predicate, keys: tuple, queries: tuple, base: int) -> PositionSplit | None:
    """The cheapest split of `predicate` over the positions' key and query values (`keys[p]` and
    `queries[p]` are the values at position p), or None when no split reproduces it on every
    pair of positions (key at or before the query)."""
    holds = pattern(predicate, keys, queries, base)
    n = len(keys)
    selecting = frozenset(q for q in range(n) if any(holds[q]))
    selected = frozenset(k for k in range(n) if any(holds[q][k] for q in range(k, n)))
    if not selecting:
        return None
    best = None
    # Fewer parts first: each one-sided part is one more term (a column of W_pos the head reads).
    for query_part in (None, selecting):
        for key_part in (None, selected):
            relative = _distance_part(holds, query_part, key_part)
            if relative is False or (query_part is key_part is relative is None):
                continue
            cost = (query_part is not None) + (key_part is not None) + (relative is not None and
                                                                         relative[0] != "window")
            if best is None or cost < best[0]:
                best = (cost, PositionSplit(query_part, key_part, relative))
    return best[1] if best else None


def part_range(holds, split: PositionSplit, role: str, other) -> tuple[frozenset, frozenset]:
    """The sets one part may hold with the other part's set `other` (None: every position) and the
    distance part fixed: (the positions it must hold, the positions it may hold). Any set between
    the two reproduces the term, so a head can read a column another head reads already."""
    n = len(holds)
    required = split.query_positions if role == "q" else split.key_positions
    allowed = set()
    for p in range(n):
        pairs = [(p, k) for k in range(p + 1)] if role == "q" else [(q, p) for q in range(p, n)]
        if all(holds[q][k] or not _distance_holds(split.relative, q - k) or
               (other is not None and (k if role == "q" else q) not in other) for q, k in pairs):
            allowed.add(p)
    return required, frozenset(allowed) | required


def _distance_holds(relative, d: int) -> bool:
    if relative is None:
        return True
    kind, c = relative
    return d == c if kind == "offset" else (d <= c if kind == "window" else d in (0, c))


def _distance_part(holds, query_part, key_part):
    """What the distance q - k must satisfy where both one-sided parts hold: None (nothing),
    ("offset", c), ("window", w), ("ends", w), or False when no such condition fits."""
    needed, forbidden = set(), set()
    for q, row in enumerate(holds):
        for k, held in enumerate(row):
            if held:
                needed.add(q - k)
            elif (query_part is None or q in query_part) and (key_part is None or k in key_part):
                forbidden.add(q - k)
    if needed & forbidden:
        return False
    if not forbidden:
        return None
    if len(needed) == 1:
        return ("offset", next(iter(needed)))
    reach = max(needed)
    if all(d > reach for d in forbidden):
        return ("window", reach)
    if needed == {0, reach} and reach >= 2:
        return ("ends", reach)
    return False


class AffineMatch(NamedTuple):
    """A term on positions that selects one key per selecting query, on an affine line: the
    query q reads the key alpha*q + beta (a reversal: alpha = -1). None for the query part when
    every query selects."""
    alpha: Fraction
    beta: Fraction
    query_positions: frozenset | None


@lru_cache(maxsize=256)
def affine_match(predicate, keys: tuple, queries: tuple, base: int) -> AffineMatch | None:
    """The line k = alpha*q + beta that `predicate` selects on (over the positions' key and query
    values, as split_positions), or None when some selecting query selects other than one key or
    the keys do not lie on one line. Such a term is not a function of q - k alone (split_positions
    refuses k + q == c), but a score quadratic in the positions, -s*(k - alpha*q - beta)^2, peaks at
    exactly that key: one column of positions and a few query and key weights instead of a
    one-hot match. Checked on every pair of positions, so it holds exactly or is None."""
    return _line_of(pattern(predicate, keys, queries, base))


def _line_of(holds) -> AffineMatch | None:
    chosen = {}
    for q, row in enumerate(holds):
        selected = [k for k, held in enumerate(row) if held]
        if len(selected) > 1:
            return None
        if selected:
            chosen[q] = selected[0]
    if not chosen:
        return None
    (q0, k0), *rest = sorted(chosen.items())
    alpha = Fraction(rest[0][1] - k0, rest[0][0] - q0) if rest else Fraction(0)
    beta = k0 - alpha * q0
    if any(k != alpha * q + beta for q, k in chosen.items()):
        return None
    selecting = frozenset(chosen)
    return AffineMatch(alpha, beta, None if len(selecting) == len(holds) else selecting)
