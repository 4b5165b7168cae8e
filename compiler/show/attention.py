"""The attention pattern of every head of one layer on the example sequence: queries down, keys
across, the sink (the "attend to nothing" key, whose value is 0) as column 0. The pattern is
the one the layer's forward pass attends with, read off its hook_pattern (tests/test_show.py
checks that it reproduces the layer's output)."""
from __future__ import annotations

from pathlib import Path

import torch

from compiler.show.common import new_figure, save


def attention_patterns(attention, x: torch.Tensor) -> torch.Tensor:
    """[heads, positions, 1 + positions]: every head's attention weights on one sequence x
    [positions, d_model], the sink first, as the layer's forward computes them: read off its
    hook_pattern, so the picture cannot drift from the model."""
    seen = []
    handle = attention.hook_pattern.register_forward_hook(lambda module, inputs, output: seen.append(output))
    try:
        with torch.no_grad():
            attention(x[None])
    finally:
        handle.remove()
    return seen[0][0].to(torch.float64)


def head_output(attention, x: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """The layer's output [positions, d_model] from the patterns: what its forward must give."""
    x = x[None].to(torch.float64)
    v = attention._project(x, attention.W_V.double(), attention.b_V.double())[0]
    v = v.repeat_interleave(attention.group, dim=0)
    v_seen = torch.cat([v.new_zeros(v.shape[0], 1, v.shape[2]), v], dim=1)
    z = torch.einsum("hqk,hkd->hqd", pattern, v_seen)
    return torch.einsum("hqd,hde->qe", z, attention.W_O.double()) + attention.b_O.double()


def _head_title(entry, names) -> str:
    if entry is None:
        return "serves no program value"
    text = f"{entry.mode}: " + names.title(entry.id, entry.node)
    if entry.also is not None:
        text += f"\nand {names.title(entry.also)}"
    return text


def draw_attention(layer: int, attention, x: torch.Tensor, tokens: list[str], heads: dict, names,
                   folder: Path, model_name: str, prompt_length: int) -> list[Path]:
    """heads: head index -> its weight map entry."""
    pattern = attention_patterns(attention, x).numpy()
    count, positions = pattern.shape[0], pattern.shape[1]
    side = max(4.5, 0.2 * positions + 1.5)
    columns = min(count, 2)
    rows = -(-count // columns)
    figure = new_figure(side * columns + 1.0, (side + 0.8) * rows + 0.6)
    key_labels = ["sink"] + [f"{t} {i}" for i, t in enumerate(tokens)]
    query_labels = [f"{i} {t}" for i, t in enumerate(tokens)]
    image = None
    for head in range(count):
        axes = figure.add_subplot(rows, columns, head + 1)
        image = axes.imshow(pattern[head], cmap="Blues", vmin=0.0, vmax=1.0, aspect="equal",
                            interpolation="nearest")
        axes.axvline(0.5, color="#c44e52", linewidth=1.0)  # the sink column stands apart
        axes.axhline(prompt_length - 1.5, color="#888888", linewidth=0.6, linestyle="--")
        axes.set_xticks(range(positions + 1), key_labels, rotation=90, fontsize=6)
        axes.set_yticks(range(positions), query_labels, fontsize=6)
        axes.get_xticklabels()[0].set_color("#c44e52")
        axes.set_xlabel("key (token, position); column 0: the sink", fontsize=8)
        axes.set_ylabel("query (position, token)", fontsize=8)
        axes.set_title(f"head {head}, " + _head_title(heads.get(head), names), fontsize=8, loc="left", wrap=True)
    figure.colorbar(image, ax=figure.axes, shrink=0.6, label="attention weight")
    figure.suptitle(f"{model_name}: attention of layer {layer} on {''.join(tokens[1:prompt_length])}"
                    f"\nthen the answer as the model wrote it; below the dashed line: the queries that write the answer", fontsize=10)
    return save(figure, folder, f"attention-layer{layer}")
