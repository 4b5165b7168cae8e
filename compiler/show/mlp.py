"""Each MLP block of one layer as the piecewise-linear function its ReLU units compute: above, the
program value the block writes against the value it reads (a curve over a range of the read
value, dots where the model really met it on the example inputs); below, each hidden unit's
activation. A block reading several values is drawn against the one taking the most values, one
curve per value of the others that the inputs showed (at most MAX_SERIES)."""
from __future__ import annotations

from pathlib import Path

import torch

from compiler.ir.maps import number_of
from compiler.ir.slots import mlp_slot
from compiler.show.common import as_numbers, new_figure, reading, residual_entries, save, weight_entries

MAX_SERIES = 4
MAX_NAMED_UNITS = 16
POINTS = 801


def _block_output(mlp, units, state: torch.Tensor, out_dims) -> torch.Tensor:
    """The state after the block's own units (and the output bias on its dimensions) are added."""
    start, end = units
    hidden = torch.relu(state @ mlp.W_in[:, start:end].double() + mlp.b_in[start:end].double())
    added = hidden @ mlp.W_out[start:end].double()
    mask = torch.zeros(state.shape[-1], dtype=torch.float64)
    mask[list(out_dims)] = 1.0
    return state + added + mlp.b_out.double() * mask, hidden


def _coordinates(primary, observed: torch.Tensor) -> torch.Tensor:
    """A grid of states [POINTS, d_model] sweeping the primary value's first dimension over the
    range the inputs showed, widened by a quarter each side so the kinks show."""
    column = observed[:, primary.dims[0]]
    low, high = float(column.min()), float(column.max())
    margin = max(0.25 * (high - low), 0.5)
    grid = torch.zeros(POINTS, observed.shape[1], dtype=torch.float64)
    grid[:, primary.dims[0]] = torch.linspace(low - margin, high + margin, POINTS, dtype=torch.float64)
    return grid


def curve_series(read, primary, observed: torch.Tensor):
    """(label, the others' coordinates) for combinations of the other read values the inputs
    showed: distinct by value, not by raw coordinates (a numerical dimension that nothing wrote
    holds rounding noise such as 1e-296, which would fill every series with "0"), and spread over
    the combinations in value order so the curves show the range, at most MAX_SERIES of them."""
    others = [e for e in read if e is not primary]
    if not others:
        return [("", None)]
    decoded = list(zip(*(as_numbers(e, observed) for e in others)))
    first_row = {}
    for row, values in enumerate(decoded):
        first_row.setdefault(tuple(round(v, 6) for v in values), row)
    distinct = sorted(first_row)
    if len(distinct) > MAX_SERIES:
        step = (len(distinct) - 1) / (MAX_SERIES - 1)
        distinct = [distinct[round(i * step)] for i in range(MAX_SERIES)]
    return [(", ".join(f"{e.node} = {v:g}" for e, v in zip(others, values)), observed[first_row[values]])
            for values in distinct]


def _writes(entries, node_id: int):
    """(dims, values written) for a block's node: its own entry, or its share of a sum's
    dimension, read back as the term's value from the change the block makes there."""
    own = next((e for e in entries if e.id == node_id and e.sum_of is None), None)
    if own is not None:
        return own.dims, lambda before, after: as_numbers(own, after)
    entry = next(e for e in entries if e.sum_of and any(t.id == node_id for t in e.sum_of))
    term = entry.term(node_id)
    coefficient, default = float(number_of(term.coefficient)), float(number_of(term.default))
    dim = entry.dims[0]
    return entry.dims, lambda before, after: ((after[:, dim] - before[:, dim]) / coefficient + default).tolist()


def _draw_block(top, bottom, mlp, entry, read, writes, observed, names):
    dims, written = writes
    # A legend naming hundreds of units would cover the figure; past a few, the title's range says which.
    named_units = entry.units[1] - entry.units[0] <= MAX_NAMED_UNITS
    primary = max(read, key=lambda e: len(torch.unique(observed[:, list(e.dims)], dim=0)))
    for n, (label, fixed) in enumerate(curve_series(read, primary, observed)):
        grid = _coordinates(primary, observed)
        if fixed is not None:
            others = [d for d in range(grid.shape[1]) if d != primary.dims[0]]
            grid[:, others] = fixed[others]
        after, hidden = _block_output(mlp, entry.units, grid, dims)
        xs = as_numbers(primary, grid)
        top.plot(xs, written(grid, after), linewidth=1.8, label=label or "the block's function")
        for unit in range(hidden.shape[1]):
            bottom.plot(xs, hidden[:, unit].numpy(), linewidth=1.0, linestyle=("-", "--", ":", "-.")[n % 4],
                        label=f"unit {entry.units[0] + unit}" if n == 0 and named_units else None)
    after, _ = _block_output(mlp, entry.units, observed, dims)
    top.scatter(as_numbers(primary, observed), written(observed, after), s=14, color="black", zorder=3,
                label="met on the example inputs")
    top.set_ylabel(f"{entry.node} (written)", fontsize=8)
    top.set_title(names.title(entry.id, entry.node) + f"\nunits {entry.units[0]}-{entry.units[1] - 1}", fontsize=8,
                  loc="left")
    top.legend(fontsize=6, loc="best")
    top.grid(alpha=0.3)
    bottom.set_xlabel(f"{primary.node} (read, {names.where(primary.id)})", fontsize=8)
    bottom.set_ylabel("ReLU activation", fontsize=8)
    if named_units:
        bottom.legend(fontsize=6, loc="upper left", ncol=2)
    bottom.grid(alpha=0.3)


def draw_mlp(layer: int, model, payload: dict, states, names, folder: Path, model_name: str) -> list[Path]:
    mlp = model.blocks[layer].mlp
    slot = mlp_slot(layer)
    entries = residual_entries(payload)
    blocks = [e for e in weight_entries(payload) if e.block == f"blocks.{layer}.mlp"]
    observed = states[slot - 1].reshape(-1, states[slot - 1].shape[-1]).double()
    figure = new_figure(max(5.5, 5.0 * len(blocks)), 7.5)
    grid = figure.add_gridspec(2, len(blocks), height_ratios=(3, 2))
    for i, entry in enumerate(blocks):
        start, end = entry.units
        dims = (mlp.W_in[:, start:end] != 0).any(dim=1).nonzero()[:, 0].tolist()
        read = reading(entries, dims, slot - 1)
        top = figure.add_subplot(grid[0, i])
        bottom = figure.add_subplot(grid[1, i], sharex=top)
        if not read:
            top.set_title(names.title(entry.id, entry.node) + "\nreads nothing: a constant", fontsize=8)
            continue
        _draw_block(top, bottom, mlp, entry, read, _writes(entries, entry.id), observed, names)
    figure.suptitle(f"{model_name}: the MLP of layer {layer}, block by block", fontsize=10)
    return save(figure, folder, f"mlp-layer{layer}")
