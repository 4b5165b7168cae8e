"""Pass 4: place every computed value in a sublayer, as early as its inputs allow.

Sublayers are numbered: 0 is the embedding, 2l+1 the attention of layer l, 2l+2 its MLP.
Adds to nodes:
  ready: the sublayer after which the value can be read (-1 for constants, 0 for embeddings);
  slot, layer (attention and mlp nodes): where the value is computed;
  frontier, fused (mlp nodes): the readable values its MLP reads, and the fused functions it computes
    on the way (so chains of elementwise steps become one MLP);
  last_read: the last sublayer that reads the value (the unembedding counts as 2*n_layers+1).
Sets ir.n_layers. Depth is the longest chain of attention/MLP steps, which is the least possible.
"""
from __future__ import annotations

from dataclasses import replace

from compiler.ir.compile_ir import CompileIR


def mlp_frontier(graph, nid):
    """The readable values an MLP for `nid` reads, and the fused nodes it computes through."""
    frontier, fused, stack = [], [], list(graph.predecessors(nid))
    while stack:
        pid = stack.pop()
        realize = graph.nodes[pid]["realize"]
        if realize == "fused":
            if pid not in fused:
                fused.append(pid)
                stack.extend(graph.predecessors(pid))
        elif realize != "const" and pid not in frontier:
            frontier.append(pid)
    return sorted(frontier), sorted(fused)


def schedule(ir: CompileIR) -> CompileIR:
    graph = ir.graph.copy()
    readers: dict[int, list[int]] = {n: [] for n in graph.nodes}  # value -> sublayer-computed nodes reading it
    for nid in sorted(graph.nodes):
        attrs = graph.nodes[nid]
        realize = attrs["realize"]
        if realize == "const":
            attrs["ready"] = -1
        elif realize in ("embed", "inline"):
            attrs["ready"] = 0
        elif realize in ("derived", "readout"):
            attrs["ready"] = max(graph.nodes[p]["ready"] for p in graph.predecessors(nid))
        elif realize in ("attention", "width"):
            inputs = list(graph.predecessors(nid))
            earliest = max([graph.nodes[p]["ready"] for p in inputs] + [0])
            attrs["slot"] = earliest + 1 if earliest % 2 == 0 else earliest + 2
            attrs["ready"] = attrs["slot"] + (1 if realize == "width" else 0)
            for p in inputs:
                readers[p].append(nid)
        elif realize in ("mlp", "fused"):
            if realize == "fused":
                continue
            frontier, fused = mlp_frontier(graph, nid)
            attrs["frontier"], attrs["fused"] = frontier, fused
            earliest = max([graph.nodes[p]["ready"] for p in frontier] + [0])
            attrs["slot"] = earliest + 2 if earliest % 2 == 0 else earliest + 1
            attrs["ready"] = attrs["slot"]
            for p in frontier:
                readers[p].append(nid)
        if "slot" in attrs:
            attrs["layer"] = (attrs["slot"] - 1) // 2
    n_layers = max([graph.nodes[n].get("layer", -1) for n in graph.nodes] + [-1]) + 1
    unembed_slot = 2 * n_layers + 1
    output = ir.program.output.id
    # A derived value is read wherever its readers read it, so its inputs are too.
    for nid in sorted(graph.nodes, reverse=True):
        attrs = graph.nodes[nid]
        slots = [graph.nodes[r]["slot"] for r in readers[nid]]
        for consumer in graph.successors(nid):
            if graph.nodes[consumer]["realize"] == "derived":
                # a derived value that nothing reads (its reader folded it away) reads nothing
                if graph.nodes[consumer]["last_read"] is not None:
                    slots.append(graph.nodes[consumer]["last_read"])
            elif graph.nodes[consumer]["realize"] == "readout":
                slots.append(unembed_slot)
        if nid == output:
            slots.append(unembed_slot)
        attrs["last_read"] = max(slots) if slots else None
    return replace(ir, graph=graph, n_layers=n_layers)
