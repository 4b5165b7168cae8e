"""What every picture of `adderc show` shares: the matplotlib figure (Agg, imported only when a
picture is drawn), the program names and source lines titles quote, the residual map's entries,
and the model's residual stream on the example sequence."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from compiler.explain import explain_rows
from compiler.export.extras import needs
from compiler.ir.maps import ResidualEntry, WeightEntry, number_of
from compiler.model.decode import greedy, trim

# One colour per sublayer kind, shades by layer: a reader matches a node to the sublayer at a glance.
PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c",
           "#ccb974", "#64b5cd")
NO_SUBLAYER = "#d9d9d9"
# SVG text kept as text (searchable, titles checkable), and no date or random ids: the same model
# draws the same bytes.
RC = {"svg.fonttype": "none", "svg.hashsalt": "adderc", "font.size": 9}
METADATA = {"svg": {"Date": None}, "png": {"Software": None}}


def figure_class():
    """matplotlib's Figure, on the non-interactive Agg backend; a missing matplotlib is an AdderError."""
    matplotlib = needs("matplotlib", "show", "adderc show")
    matplotlib.use("Agg")
    return needs("matplotlib.figure", "show", "adderc show").Figure


def save(figure, folder: Path, stem: str) -> list[Path]:
    """The figure as STEM.png and STEM.svg in `folder`."""
    matplotlib = needs("matplotlib", "show", "adderc show")
    paths = []
    with matplotlib.rc_context(RC):
        for suffix in ("png", "svg"):
            path = folder / f"{stem}.{suffix}"
            figure.savefig(path, format=suffix, dpi=120, metadata=METADATA[suffix], bbox_inches="tight")
            paths.append(path)
    return paths


def new_figure(width: float, height: float):
    matplotlib = needs("matplotlib", "show", "adderc show")
    with matplotlib.rc_context(RC):
        return figure_class()(figsize=(width, height), layout="constrained")


def sublayer_name(slot: int, n_layers: int) -> str:
    if slot == 0:
        return "embedding"
    if slot == 2 * n_layers + 1:
        return "unembedding"
    return f"layer {(slot - 1) // 2} {'attention' if slot % 2 else 'MLP'}"


def sublayer_colour(slot: int | None) -> str:
    return NO_SUBLAYER if slot is None else PALETTE[slot % len(PALETTE)]


def block_slot(block: str) -> int:
    """The sublayer number of a weight map block, e.g. blocks.1.mlp -> 4."""
    _, layer, kind = block.split(".")
    return 2 * int(layer) + (1 if kind == "attn" else 2)


@dataclass
class Names:
    """Program names and source lines, for titles: node id -> (name, file, line, source line)."""

    path: str
    sources: dict
    nodes: dict

    def source_line(self, file: str, line: int) -> str:
        lines = self.sources.get(file, "").splitlines()
        return lines[line - 1].strip() if 1 <= line <= len(lines) else ""

    def where(self, node_id: int) -> str:
        name, file, line = self.nodes.get(node_id, ("?", self.path, 0))
        return f"{file}:{line}" if line else file

    def short(self, node_id: int, label: str | None = None) -> str:
        """`name (file:line)`, for a panel whose figure title quotes the line already."""
        name, file, line = self.nodes.get(node_id, (label or "?", self.path, 0))
        return f"{label or name} ({file}:{line})" if line else (label or name)

    def title(self, node_id: int, label: str | None = None) -> str:
        """`name  (file:line: the line as written)`, the line cut to fit a title."""
        name, file, line = self.nodes.get(node_id, (label or "?", self.path, 0))
        text = self.source_line(file, line)
        if len(text) > 70:
            text = text[:67] + "..."
        return f"{label or name}  ({file}:{line}: {text})" if line else (label or name)


def program_names(payload: dict) -> Names:
    """Every node the maps or the provenance name. explain's rows name the nodes that own stored
    numbers (with their file); the residual and weight maps add the rest, in the main file."""
    path = payload["program"]["path"]
    nodes = {}
    for entry in payload["residual_map"] + payload["weight_map"]:
        nodes.setdefault(entry["id"], (entry["node"], path, entry["line"]))
        for term in entry.get("sum_of", []):
            nodes.setdefault(term["id"], (term["node"], path, 0))
    if "provenance" in payload:
        for row in explain_rows(payload):
            for node in row["nodes"]:
                if node["node_id"] is not None:
                    nodes[node["node_id"]] = (node["name"], node["file"], node["line"])
    return Names(path, payload["program"]["sources"], nodes)


def residual_entries(payload: dict) -> list[ResidualEntry]:
    return [ResidualEntry.from_dict(e) for e in payload["residual_map"]]


def weight_entries(payload: dict) -> list[WeightEntry]:
    return [WeightEntry.from_dict(e) for e in payload["weight_map"]]


def holder(entries: list[ResidualEntry], dim: int, after: int) -> ResidualEntry | None:
    """The entry whose value dimension `dim` holds right after sublayer `after` (the latest writer)."""
    writers = [e for e in entries if dim in e.dims and e.sublayer <= after]
    own = [e for e in writers if not e.helper] or writers
    return max(own, key=lambda e: e.sublayer, default=None)


def reading(entries: list[ResidualEntry], dims, after: int) -> list[ResidualEntry]:
    """The entries a weight reading `dims` right after sublayer `after` reads, one each, in order."""
    found = []
    for dim in sorted(dims):
        entry = holder(entries, dim, after)
        if entry is not None and entry not in found:
            found.append(entry)
    return found


def sequences(model, layout, prompts: list[list[str]]) -> list[list[str]]:
    """Each prompt and the answer the model writes after it (with its end token), cut to the
    model's context. The prompts of a layout all have one length, so they run as one batch."""
    vocab = layout.vocab
    end_id = vocab.index(layout.end_token) if layout.end_token else None
    ids = torch.tensor([[vocab.index(t) for t in p] for p in prompts])
    with torch.no_grad():
        written = greedy(model, ids, layout.sequence_length - layout.prompt_length, end_id).tolist()
    rows = []
    for prompt, row in zip(prompts, written):
        answer = trim(row, end_id) + ([end_id] if end_id is not None and end_id in row else [])
        rows.append((prompt + [vocab[i] for i in answer])[: model.config["n_ctx"]])
    return rows


def sequence(model, layout, prompt: list[str]) -> list[str]:
    return sequences(model, layout, [prompt])[0]


def states_of(model, layout, tokens: list[str]) -> list[torch.Tensor]:
    """The residual stream [positions, d_model] after each sublayer, on one sequence."""
    ids = torch.tensor([[layout.vocab.index(t) for t in tokens]])
    with torch.no_grad():
        return [s[0] for s in model.residuals(ids)]


def sample_states(model, layout, prompt: list[str], count: int = 48, seed: int = 20261122):
    """The residual streams of the example sequence and of `count` seeded random inputs, each
    finished by the model's own answer: [sequences, positions, d_model] per sublayer. What the
    pictures mark as the values a sublayer really meets."""
    generator = torch.Generator().manual_seed(seed)
    prompts = [prompt]
    for _ in range(count):
        operands = {f.name: int(torch.randint(layout.base ** min(f.width, 18), (1,), generator=generator))
                    for f in layout.operands}
        prompts.append(layout.prompt_tokens(operands))
    rows = sequences(model, layout, prompts)
    width = min(len(r) for r in rows)
    ids = torch.tensor([[layout.vocab.index(t) for t in r[:width]] for r in rows])
    with torch.no_grad():
        return model.residuals(ids)


def legend_patch(colour: str, label: str):
    return needs("matplotlib.patches", "show", "adderc show").Patch(facecolor=colour, edgecolor="#444444",
                                                                     label=label)


def as_numbers(entry, state: torch.Tensor) -> list[float]:
    """The values the entry's dims hold, as numbers: a one-hot's value index when its values are not
    numbers. A sum's dimension holds its terms' shares, coefficient * (value - default); a picture
    labelled with the sum must show the sum itself, so the defaults' part is added back (mul_digit's
    `gen_at - stop_at`, with gen_at's default -1, read one too high before)."""
    decoded = entry.decode_all(state)
    if entry.sum_of is not None:
        offset = float(sum(number_of(t.coefficient) * number_of(t.default) for t in entry.sum_of))
        return [float(x) + offset for x in decoded]
    numbers = []
    for value in decoded:
        try:
            numbers.append(float(value))
        except (TypeError, ValueError):
            numbers.append(float(entry.values.index(value)) if entry.values and value in entry.values else float("nan"))
    return numbers
