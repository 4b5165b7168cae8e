"""The residual layout: one row per residual dimension, one column per sublayer, each cell naming
the program value the dimension holds right after that sublayer (payload["residual_map"]), coloured
by the sublayer that wrote it. A one-hot value spans the rows of its dimensions."""
from __future__ import annotations

from pathlib import Path

from compiler.export.extras import needs
from compiler.show.common import holder, new_figure, residual_entries, save, sublayer_colour, sublayer_name


def _runs(entries, d_model: int, after: int):
    """(first dim, last dim, entry) for each run of consecutive dims one entry holds after `after`."""
    runs = []
    for dim in range(d_model):
        entry = holder(entries, dim, after)
        if entry is None:
            continue
        if runs and runs[-1][2] is entry and runs[-1][1] == dim - 1:
            runs[-1] = (runs[-1][0], dim, entry)
        else:
            runs.append((dim, dim, entry))
    return runs


def _cell_text(entry, width: int) -> str:
    name = entry.node if len(entry.node) <= width else entry.node[:width - 3] + "..."
    return f"{name}\nline {entry.line}" if entry.line else name


def draw_residual(payload: dict, names, folder: Path, model_name: str) -> list[Path]:
    entries = residual_entries(payload)
    n_layers, d_model = payload["config"]["n_layers"], payload["config"]["d_model"]
    columns = list(range(2 * n_layers + 1))
    row_height = 0.55 if d_model <= 24 else 0.16
    figure = new_figure(1.6 + 2.1 * len(columns), 1.6 + row_height * max(d_model, 1))
    axes = figure.add_subplot()
    for column in columns:
        for first, last, entry in _runs(entries, d_model, column):
            fresh = entry.sublayer == column  # written by this very sublayer: drawn solid
            axes.add_patch(_rectangle(column, first, last, entry, fresh))
            if last - first + 1 >= 1 and (d_model <= 24 or last > first):
                axes.text(column, (first + last) / 2, _cell_text(entry, 22), ha="center", va="center",
                          fontsize=7 if d_model <= 24 else 6, fontweight="bold" if fresh else "normal")
    axes.set_xlim(-0.5, len(columns) - 0.5)
    axes.set_ylim(d_model - 0.5, -0.5)
    axes.set_xticks(columns, [f"{s}\n{sublayer_name(s, n_layers)}" for s in columns], fontsize=8)
    axes.xaxis.tick_top()
    step = 1 if d_model <= 40 else 8
    axes.set_yticks(range(0, d_model, step))
    axes.set_ylabel("residual dimension")
    figure.suptitle(f"{model_name}: residual layout of {payload['program']['path']} (d_model {d_model})\n"
                    "which program value each dimension holds after each sublayer; bold: written there",
                    fontsize=10)
    return save(figure, folder, "residual")


def _rectangle(column: int, first: int, last: int, entry, fresh: bool):
    Rectangle = needs("matplotlib.patches", "show", "adderc show").Rectangle
    return Rectangle((column - 0.48, first - 0.48), 0.96, last - first + 0.96, facecolor=sublayer_colour(entry.sublayer),
                     alpha=0.85 if fresh else 0.35, edgecolor="#444444", linewidth=0.6)
