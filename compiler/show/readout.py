"""The readout: the logit of each output token against each value the unembedding reads, the
others held where the answer positions of the example inputs most often have them. The strip
along the bottom names the token the model writes (the largest logit) over the range."""
from __future__ import annotations

from pathlib import Path

import torch

from compiler.ir.slots import last_sublayer
from compiler.model.transformer import unembedding_matrix
from compiler.show.common import as_numbers, new_figure, reading, residual_entries, save

POINTS = 801


def _typical(observed: torch.Tensor) -> torch.Tensor:
    """The most common state row of the answer positions."""
    rows, counts = torch.unique(observed, dim=0, return_counts=True)
    return rows[int(counts.argmax())]


def _sweep(entry, observed: torch.Tensor, typical: torch.Tensor) -> torch.Tensor:
    column = observed[:, entry.dims[0]]
    low, high = float(column.min()), float(column.max())
    margin = max(0.1 * (high - low), 0.5)
    grid = typical.repeat(POINTS, 1)
    grid[:, entry.dims[0]] = torch.linspace(low - margin, high + margin, POINTS, dtype=torch.float64)
    return grid


def _winner_strip(axes, xs, logits, vocab):
    """Where each token has the largest logit, as labelled spans under the lines."""
    winners = logits.argmax(dim=1).tolist()
    start = 0
    bottom, top = axes.get_ylim()
    height = 0.06 * (top - bottom)
    for i in range(1, len(winners) + 1):
        if i == len(winners) or winners[i] != winners[start]:
            axes.axvspan(xs[start], xs[i - 1], ymin=0, ymax=0.06, color=f"C{winners[start] % 10}", alpha=0.35)
            axes.text((xs[start] + xs[i - 1]) / 2, bottom + height / 2, vocab[winners[start]], ha="center",
                      va="center", fontsize=7)
            start = i


def draw_readout(payload: dict, states, layout, names, output_id: int, folder: Path, model_name: str) -> list[Path]:
    state = payload["state_dict"]
    W_U, b_U = unembedding_matrix(state).double(), state["unembed.b_U"].double()
    vocab = payload["vocab"]
    n_layers = payload["config"]["n_layers"]
    read = reading(residual_entries(payload), (W_U != 0).any(dim=1).nonzero()[:, 0].tolist(), last_sublayer(n_layers))
    answer = slice(layout.prompt_length - 1, None)
    final = states[last_sublayer(n_layers)][:, answer]
    observed = final.reshape(-1, final.shape[-1]).double()
    typical = _typical(observed)
    shown = [t for t in range(len(vocab)) if bool((W_U[:, t] != 0).any()) or float(b_U[t]) != 0]
    figure = new_figure(max(6.0, 5.5 * max(len(read), 1)), 5.0)
    for i, entry in enumerate(read):
        axes = figure.add_subplot(1, len(read), i + 1)
        grid = _sweep(entry, observed, typical)
        logits = grid @ W_U + b_U
        xs = as_numbers(entry, grid)
        for t in shown:
            axes.plot(xs, logits[:, t].numpy(), color=f"C{t % 10}", linestyle="-" if t < 10 else "--",
                      linewidth=1.2, label=repr(vocab[t]))
        held = [e for e in read if e is not entry]
        axes.set_xlabel(f"{entry.node} (read, {names.where(entry.id)})", fontsize=8)
        axes.set_ylabel("logit", fontsize=8)
        held_text = ", ".join(f"{e.node} = {as_numbers(e, typical[None])[0]:g}" for e in held)
        axes.set_title(names.short(entry.id, entry.node) + (f"\nheld: {held_text}" if held else ""),
                       fontsize=8, loc="left")
        axes.grid(alpha=0.3)
        _winner_strip(axes, xs, logits, vocab)
        axes.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="token")
    figure.suptitle(f"{model_name}: readout, logit of each token\noutput: {names.title(output_id)}", fontsize=10)
    return save(figure, folder, "readout")
