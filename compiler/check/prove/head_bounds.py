"""The worst output error of one attention head at one query, from the scores its keys may have:
one rule per head mode (mean, width, first or last, sum)."""
from __future__ import annotations

import math
from typing import NamedTuple

import sympy
import torch

from compiler.check.prove.state import CannotProve


class KeyOption(NamedTuple):
    """One combination of the values a key position may hold, as the head sees it."""
    selected: bool  # the program's selector picks this key for the query
    score: float  # its realised attention score
    score_error: float  # the most input errors can move that score
    value: torch.Tensor  # the value vector the head reads there
    exact: torch.Tensor  # the value vector it should read
    size: float = math.inf  # the largest |entry| of value (given once, read at every query)


class Selection(NamedTuple):
    """The score ranges of a mean or width head's keys at one query."""
    low: float  # the lowest score a selected key may have
    high: float  # the highest score a selected key may have
    unselected: float  # the highest score a key that is not selected may have
    always_selected: bool  # some key is selected whatever values it holds


def head_bound(mode, keys, sink, q, node, dv, out_scale):
    """Worst output error (in residual units) over every choice of key values at each position,
    and the smallest score gap the bound rests on. `keys` holds, per unmasked key position up to
    the query `q`, one KeyOption per combination of its values."""
    scale = float(out_scale.max())
    if mode == "sum":
        return _sum_bound(keys, sink, q, node, dv, scale)
    if mode not in _BOUNDS:
        raise CannotProve(f"no proof rule for {mode} heads")
    keys, sink = _fold_null_keys(keys, sink)
    V = max((o.size for opts in keys for o in opts), default=0.0) + float(dv.max())
    return _BOUNDS[mode](keys, sink, dv, V, scale)


def _selection(keys) -> Selection:
    selectable = [o for opts in keys for o in opts if o.selected]
    return Selection(low=min((o.score - o.score_error for o in selectable), default=math.inf),
                     high=max((o.score + o.score_error for o in selectable), default=-math.inf),
                     unselected=max(_top_unselected(keys), default=-math.inf),
                     always_selected=any(opts and all(o.selected for o in opts) for opts in keys))


def _top_unselected(keys) -> list[float]:
    """Per key position, the highest score it may have while not selected."""
    return [max((o.score + o.score_error for o in opts if not o.selected), default=-math.inf) for opts in keys]


def _weight_when_none_selected(keys, sink, selection, value_scale):
    """Nothing selected (possible unless some key is selected whatever values it holds): the sink
    must take the weight; what the keys take instead, times `value_scale`."""
    if selection.unselected == -math.inf or selection.always_selected:
        return 0.0
    return len(keys) * math.exp(min(selection.unselected - sink, 700)) * value_scale


def _nothing_selectable(empty, scale, dv, sink, selection):
    gap = math.inf if selection.unselected == -math.inf else sink - selection.unselected
    return empty * scale + float(dv.max()), gap


def _mean_bound(keys, sink, dv, V, scale):
    s = _selection(keys)
    empty = _weight_when_none_selected(keys, sink, s, V)
    if s.low == math.inf:
        return _nothing_selectable(empty, scale, dv, sink, s)
    # Selected keys at different positions share the weight: how unevenly is the spread. With
    # at most one position that can be selected (a line select), nothing shares it, and only
    # one of that position's combinations is there at a time.
    # Unevenly shared, the weights move the mean by at most the spread times half the range of
    # the selected values (the deviations from an even share add up to zero, so each value
    # counts from the middle of the range); the weight that leaks to other keys and the sink
    # moves it by twice the leak times the largest value.
    shared = sum(any(o.selected for o in opts) for opts in keys) > 1
    spread = math.exp(min(s.high - s.low, 700)) - 1 if shared else 0.0
    leak = len(keys) * math.exp(min(s.unselected - s.low, 700)) + math.exp(min(sink - s.low, 700))
    bound = spread * _selected_range(keys, dv) / 2 + 2 * leak * V + max(empty, 0)
    return bound * scale + float(dv.max()) * scale, min(s.low - s.unselected, s.low - sink)


def _selected_range(keys, dv) -> float:
    """The largest spread, over value dimensions, of the values selected keys may carry."""
    values = torch.stack([o.value for opts in keys for o in opts if o.selected])
    return float((values.amax(0) - values.amin(0)).max()) + 2 * float(dv.max())


def _width_bound(keys, sink, dv, V, scale):
    """A width head shares its weight with the sink exactly (1 / (width + 1) each), and every key
    offers 1: w selected keys whose scores sit t from the sink's give sigma(t + ln w) where
    w / (w + 1) is meant, off by at most |t| / 4 (the logistic's steepest slope) whatever w is."""
    s = _selection(keys)
    empty = _weight_when_none_selected(keys, sink, s, 1)
    if s.low == math.inf:
        return _nothing_selectable(empty, scale, dv, sink, s)
    shift = max(abs(s.high - sink), abs(s.low - sink))
    leak = len(keys) * math.exp(min(s.unselected - s.low, 700))
    bound = (shift / 4 + 2 * leak) * V + max(empty, 0)
    return bound * scale + float(dv.max()) * scale, s.low - s.unselected


def _first_bound(keys, sink, dv, V, scale):
    return _ordered_bound(keys, sink, dv, V, scale, list(range(len(keys))))


def _last_bound(keys, sink, dv, V, scale):
    return _ordered_bound(keys, sink, dv, V, scale, list(range(len(keys) - 1, -1, -1)))


def _ordered_bound(keys, sink, dv, V, scale, positions):
    """A head that takes the first selected key of `positions`: each possible winner must beat
    every key before it (which must then be unselected), every key after it and the sink. The
    rivals' weights are summed in log space, as prefix and suffix sums over `positions`, so a
    query costs its keys once, not once per possible winner."""
    inf = math.inf
    top_unselected = _top_unselected(keys)
    u_all = max(top_unselected, default=-inf)
    worst = len(keys) * math.exp(min(u_all - sink, 700)) * V  # nothing selected
    ordered = [keys[k] for k in positions]
    lows = [min((o.score - o.score_error for o in opts if o.selected), default=inf) for opts in ordered]
    if not any(low != inf for low in lows):
        return worst * scale + float(dv.max()) * scale, inf
    unselected = torch.tensor([top_unselected[k] for k in positions], dtype=torch.float64)
    # a key after the winner is a rival whether it is selected or not
    anything = torch.tensor([max((o.score + o.score_error for o in opts), default=-inf) for opts in ordered],
                            dtype=torch.float64)
    nothing = torch.tensor([-inf], dtype=torch.float64)
    before = torch.cat([nothing, torch.logcumsumexp(unselected, 0)[:-1]])
    after = torch.cat([torch.logcumsumexp(anything.flip(0), 0).flip(0)[1:], nothing])
    rivals = torch.logaddexp(torch.logaddexp(before, after), torch.tensor(sink, dtype=torch.float64)).tolist()
    gap = inf
    for low, logged in zip(lows, rivals):
        if low == inf:
            continue
        worst = max(worst, 2 * math.exp(min(logged - low, 700)) * V)
        gap = min(gap, low - sink)
    return worst * scale + float(dv.max()) * scale, gap


def _sum_bound(keys, sink, q, node, dv, scale):
    """A sum head weights the key c back by decay ** -c: each selected key's realised weight
    against that, each unselected key's whole weight, and the sink's share of the denominator."""
    total_error = 0.0
    for index, opts in enumerate(keys):
        k = q - len(keys) + 1 + index  # keys are the contiguous unmasked ones up to q
        worst_k = 0.0
        for o in opts:
            selected, score, err, exact = o.selected, o.score, o.score_error, o.exact
            weight = math.exp(min(score + err - sink, 700)) * scale
            if selected:
                decay = node.decay if node.decay is not None else 1
                want = float(1 / sympy.sympify(decay) ** (q - k))
                low = math.exp(min(score - err - sink, 700)) * scale
                deviation = max(abs(weight - want), abs(low - want)) * float(exact.abs().max())
                worst_k = max(worst_k, deviation + weight * float(dv.max()))
            else:
                worst_k = max(worst_k, weight * (o.size + float(dv.max())))
        total_error += worst_k
    # The sink's share of the denominator is 1 + mass: it shrinks the whole sum by that factor.
    mass = sum(max(math.exp(min(o.score + o.score_error - sink, 700)) for o in opts) for opts in keys)
    largest_sum = sum(max(math.exp(min(o.score + o.score_error - sink, 700)) * scale *
                          (o.size + float(dv.max())) for o in opts) for opts in keys)
    return total_error + mass * largest_sum, sink - max((o.score for opts in keys for o in opts), default=-math.inf)


_BOUNDS = {"mean": _mean_bound, "width": _width_bound, "first": _first_bound, "last": _last_bound}


def _fold_null_keys(keys, sink):
    """Keys never selected whose value vector is exactly zero act as sinks: the weight they take
    adds nothing to the output. Fold them into one sink logit (a lower bound on their share)."""
    null = [i for i, opts in enumerate(keys)
            if opts and all(not o.selected and o.size == 0 for o in opts)]
    if not null:
        return keys, sink
    logits = [sink] + [min(o.score - o.score_error for o in keys[i]) for i in null]
    top = max(logits)
    folded = top + math.log(sum(math.exp(l - top) for l in logits if l != -math.inf))
    return [[] if i in null else opts for i, opts in enumerate(keys)], folded
