"""The head rules against brute force on random keys: the ordered rule's log-space prefix and
suffix sums equal summing each winner's rivals one by one, and every rule but the sum rule gives
the same bound when a position's unselected options are replaced by their two extremes (what
the prover does to keep a query's cost to its selected keys)."""
import math
import random

import pytest
import torch

from compiler.check.prove.head_bounds import KeyOption, head_bound


def _random_keys(rng, positions, options, values=(0, 1)):
    keys = []
    for _ in range(positions):
        opts = []
        for _ in range(rng.randint(1, options)):
            value = torch.tensor([float(rng.choice(values))], dtype=torch.float64)
            opts.append(KeyOption(rng.random() < 0.3, rng.uniform(-30, 30), rng.uniform(0, 0.5), value, value,
                                  float(value.abs().max())))
        keys.append(opts)
    return keys


def _summarised(keys):
    out = []
    for opts in keys:
        kept = [o for o in opts if o.selected]
        others = [o for o in opts if not o.selected]
        if others:
            size = max(o.size for o in others)
            high = max(o.score + o.score_error for o in others)
            low = min(o.score - o.score_error for o in others)
            kept += [KeyOption(False, high, 0.0, others[0].value, others[0].exact, size),
                     KeyOption(False, low, 0.0, others[0].value, others[0].exact, size)]
        out.append(kept)
    return out


def _ordered_by_hand(keys, sink, V, order):
    """Each possible winner's rivals summed one by one."""
    top_unselected = [max((o.score + o.score_error for o in opts if not o.selected), default=-math.inf)
                      for opts in keys]
    worst = len(keys) * math.exp(min(max(top_unselected) - sink, 700)) * V
    for rank, winner in enumerate(order):
        selected = [o for o in keys[winner] if o.selected]
        if not selected:
            continue
        low = min(o.score - o.score_error for o in selected)
        rivals = sum(math.exp(top_unselected[k] - low) for k in order[:rank])
        rivals += sum(math.exp(max(o.score + o.score_error for o in keys[k]) - low) for k in order[rank + 1:])
        worst = max(worst, 2 * (rivals + math.exp(sink - low)) * V)
    return worst


class _Node:
    decay = None


@pytest.mark.parametrize("seed", range(40))
def test_the_ordered_rule_sums_every_winners_rivals(seed):
    rng = random.Random(seed)
    # values of 1 only: a never-selected key of value 0 is folded into the sink first
    keys = _random_keys(rng, rng.randint(1, 12), 4, values=(1,))
    sink = rng.uniform(-40, 0)
    dv = torch.zeros(1, dtype=torch.float64)
    V = max(o.size for opts in keys for o in opts)
    for mode, order in (("first", list(range(len(keys)))), ("last", list(range(len(keys)))[::-1])):
        bound, _ = head_bound(mode, keys, sink, len(keys) - 1, _Node(), dv, torch.ones(1, dtype=torch.float64))
        assert bound == pytest.approx(_ordered_by_hand(keys, sink, V, order), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("mode", ["mean", "width", "first", "last"])
def test_two_extremes_stand_for_a_positions_unselected_options(seed, mode):
    rng = random.Random(seed)
    keys = _random_keys(rng, rng.randint(1, 12), 6)
    sink = rng.choice([-math.inf, rng.uniform(-40, 0)])
    dv = torch.full((1,), 1e-9, dtype=torch.float64)
    scale = torch.ones(1, dtype=torch.float64)
    full = head_bound(mode, keys, sink, len(keys) - 1, _Node(), dv, scale)
    assert head_bound(mode, _summarised(keys), sink, len(keys) - 1, _Node(), dv, scale) == \
        pytest.approx(full, rel=1e-12)
