"""The program graph: one box per program node the output needs, edges from what a node reads,
each box coloured by the sublayer that computes it (from the residual and weight maps: a value's
writer, a head's or MLP block's node). Nodes with no colour of their own (constants, selectors,
predicates) live in the weights of the nodes that use them."""
from __future__ import annotations

from pathlib import Path

import networkx as nx

from compiler.ir.attrs import LABEL, SPAN
from compiler.passes.build_graph import build_graph
from compiler.show.common import block_slot, legend_patch, new_figure, save, sublayer_colour, sublayer_name


def computing_sublayers(payload: dict) -> dict[int, int]:
    """node id -> the sublayer that computes it."""
    n_layers = payload["config"]["n_layers"]
    slots = {}
    for entry in payload["residual_map"]:
        if entry["written_by"] != "sum":
            slots.setdefault(entry["id"], entry["sublayer"])
        for term in entry.get("sum_of", []):
            slots.setdefault(term["id"], term["sublayer"])
        if entry["written_by"] == "sum":
            slots.setdefault(entry["id"], entry["sublayer"])  # a sum is complete once its last term is in
    for entry in payload["weight_map"]:
        slots[entry["id"]] = block_slot(entry["block"])
        if "also" in entry:
            slots[entry["also"]] = block_slot(entry["block"])
    tensors = payload.get("provenance", {}).get("tensors", {})
    for ids in (ids for name, rows in tensors.items() if name.startswith("unembed") for _, ids in rows):
        for nid in ids:
            slots.setdefault(nid, 2 * n_layers + 1)
    return slots


def _layered_positions(graph: nx.DiGraph) -> dict:
    """Top to bottom in reading order: a node sits one row below the lowest node it reads."""
    for row, generation in enumerate(nx.topological_generations(graph)):
        for nid in generation:
            graph.nodes[nid]["row"] = row
    # A node reading nothing (a constant, the tokens) sits just above its first reader, not at the
    # top, so its edges stay short.
    for nid in graph:
        if graph.in_degree(nid) == 0 and graph.out_degree(nid):
            graph.nodes[nid]["row"] = min(graph.nodes[user]["row"] for user in graph.successors(nid)) - 1
    positions = nx.multipartite_layout(graph, subset_key="row", align="horizontal", scale=1.0)
    return {nid: (x, -graph.nodes[nid]["row"]) for nid, (x, _) in positions.items()}


def _label(attrs) -> str:
    text = attrs[LABEL]
    text = text if len(text) <= 28 else text[:25] + "..."
    return f"{text}\nline {attrs[SPAN].line}"


def draw_graph(program, payload: dict, names, folder: Path, model_name: str) -> list[Path]:
    graph = build_graph(program).graph.copy()
    slots = computing_sublayers(payload)
    positions = _layered_positions(graph)
    widest = max(sum(1 for n in graph if graph.nodes[n]["row"] == r) for r in {graph.nodes[n]["row"] for n in graph})
    rows = 1 + max(graph.nodes[n]["row"] for n in graph)
    figure = new_figure(max(8.0, 2.0 * widest), max(5.0, 1.0 * rows + 1.5))
    axes = figure.add_subplot()
    axes.set_axis_off()
    # x spread so neighbouring boxes of one row do not overlap, whatever its width
    spread = {nid: (x * widest, y) for nid, (x, y) in positions.items()}
    for source, target in graph.edges:
        axes.annotate("", xy=spread[target], xytext=spread[source],
                      arrowprops={"arrowstyle": "-|>", "color": "#777777", "lw": 0.8,
                                  "shrinkA": 14, "shrinkB": 14})
    for nid, (x, y) in spread.items():
        axes.text(x, y, _label(graph.nodes[nid]), ha="center", va="center", fontsize=7.5,
                  bbox={"boxstyle": "round,pad=0.3", "fc": sublayer_colour(slots.get(nid)), "ec": "#444444",
                        "alpha": 0.9})
    xs = [x for x, _ in spread.values()]
    axes.set_xlim(min(xs) - 1.0, max(xs) + 1.0)
    axes.set_ylim(-rows + 0.5, 0.5)
    n_layers = payload["config"]["n_layers"]
    used = sorted({slots[n] for n in graph if n in slots})
    handles = [legend_patch(sublayer_colour(s), f"{s}: {sublayer_name(s, n_layers)}") for s in used]
    handles.append(legend_patch(sublayer_colour(None), "in the weights of its users"))
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
                title="computed by sublayer")
    output = program.output.id
    figure.suptitle(f"{model_name}: program graph of {payload['program']['path']}\n"
                    f"output: {names.title(output, graph.nodes[output][LABEL])}", fontsize=10)
    return save(figure, folder, "graph")

