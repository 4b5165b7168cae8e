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

from functools import lru_cache
from typing import NamedTuple

from dsl.semantics import eval_predicate


class PositionSplit(NamedTuple):
    """A term on positions as a conjunction of parts; None for a part that is always true."""
    query_truth: dict | None  # value of the query side -> whether such a query selects anything
    key_truth: dict | None  # value of the key side -> whether such a key is ever selected
    relative: tuple | None  # ("offset", c), ("window", w) or ("ends", w): the distance part


@lru_cache(maxsize=256)
def split_positions(predicate, keys: tuple, queries: tuple, base: int) -> PositionSplit | None:
    """The cheapest split of `predicate` over the positions' key and query values (`keys[p]` and
    `queries[p]` are the values at position p), or None when no split reproduces it on every
    pair of positions (key at or before the query)."""
    n = len(keys)
    holds = [[bool(eval_predicate(predicate, keys[k], queries[q], base)) for k in range(q + 1)]
             for q in range(n)]
    selecting = [any(row) for row in holds]
    selected = [any(holds[q][k] for q in range(k, n)) for k in range(n)]
    if not any(selecting):
        return None
    best = None
    # Fewer parts first: each one-sided part is one more term (its indicator is read by the head).
    for query_part in (None, selecting):
        for key_part in (None, selected):
            query_truth, key_truth = _by_value(queries, query_part), _by_value(keys, key_part)
            if query_truth is False or key_truth is False:
                continue
            relative = _distance_part(holds, query_part, key_part)
            if relative is False or (query_part is key_part is relative is None):
                continue
            cost = (query_part is not None) + (key_part is not None) + (relative is not None and
                                                                         relative[0] != "window")
            if best is None or cost < best[0]:
                best = (cost, PositionSplit(query_truth, key_truth, relative))
    return best[1] if best else None


def _by_value(values: tuple, truth: list | None):
    """The part as a function of the side's value (None: no part), or False when two positions
    holding the same value need different answers (the head reads the value, not the position)."""
    if truth is None:
        return None
    out = {}
    for value, t in zip(values, truth):
        if out.setdefault(value, t) != t:
            return False
    return out


def _distance_part(holds, query_part, key_part):
    """What the distance q - k must satisfy where both one-sided parts hold: None (nothing),
    ("offset", c), ("window", w), ("ends", w), or False when no such condition fits."""
    needed, forbidden = set(), set()
    for q, row in enumerate(holds):
        for k, held in enumerate(row):
            if held:
                needed.add(q - k)
            elif (query_part is None or query_part[q]) and (key_part is None or key_part[k]):
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
