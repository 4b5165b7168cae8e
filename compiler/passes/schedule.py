"""Pass 4: place every computed value in a sublayer, as early as its inputs allow.

Sublayers are numbered as compiler.ir.slots says: 0 the embedding, 2l+1 the attention of layer l,
2l+2 its MLP, 2*n_layers+1 the unembedding.
Adds to nodes:
  ready (every node but fused ones): the sublayer after which the value can be read (-1 for
    constants, 0 for embeddings);
  slot, layer (attention, width and mlp nodes): where the value is computed;
  frontier, fused (mlp nodes): the readable values its MLP reads, and the fused functions it computes
    on the way (so chains of elementwise steps become one MLP);
  last_read (every node): the last sublayer that reads the value, None when nothing does.
Sets ir.n_layers. Depth is the longest chain of attention/MLP steps, which is the least possible.
"""
from __future__ import annotations

from dataclasses import replace

from compiler.ir.attrs import (
    DEPENDENT, ENCODING, FRONTIER, FUSED, LAST_READ, LAYER, NODE, READY, REALIZE, SLOT, VALUES,
)
from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR
from compiler.ir.forms import independent_inputs
from compiler.ir.slots import (
    EMBEDDING, first_attention_after, first_mlp_after, layer_of, mlp_slot, unembedding_slot
)


def mlp_frontier(graph, nid):
    """(the readable values an MLP for `nid` reads, the fused nodes it computes through, the
    readable values it computes from the others because they are affine in them)."""
    frontier, fused, stack = [], [], list(graph.predecessors(nid))
    while stack:
        pid = stack.pop()
        realize = graph.nodes[pid][REALIZE]
        if realize == "fused":
            if pid not in fused:
                fused.append(pid)
                stack.extend(graph.predecessors(pid))
        elif realize != "const" and pid not in frontier:
            frontier.append(pid)
    read, dependents = independent_inputs(graph, frontier)
    return read, sorted(fused), dependents


@compiler_pass(reads={REALIZE, ENCODING, VALUES, NODE}, adds={READY, SLOT, LAYER, FRONTIER, FUSED, DEPENDENT, LAST_READ}, sets_ir={"n_layers"})
def schedule(ir: CompileIR) -> CompileIR:
    graph = ir.graph.copy()
    readers: dict[int, list[int]] = {n: [] for n in graph.nodes}  # value -> sublayer-computed nodes reading it
    for nid in sorted(graph.nodes):
        attrs = graph.nodes[nid]
        realize = attrs[REALIZE]
        if realize == "const":
            attrs[READY] = -1
        elif realize in ("embed", "inline"):
            attrs[READY] = EMBEDDING
        elif realize in ("derived", "readout"):
            attrs[READY] = max(graph.nodes[p][READY] for p in graph.predecessors(nid))
        elif realize in ("attention", "width"):
            inputs = list(graph.predecessors(nid))
            earliest = max([graph.nodes[p][READY] for p in inputs] + [0])
            attrs[SLOT] = first_attention_after(earliest)
            # selector_width's MLP, in the head's own layer, turns w/(w+1) into w
            attrs[READY] = mlp_slot(layer_of(attrs[SLOT])) if realize == "width" else attrs[SLOT]
            for p in inputs:
                readers[p].append(nid)
        elif realize in ("mlp", "fused"):
            if realize == "fused":
                continue
            frontier, fused, dependents = mlp_frontier(graph, nid)
            attrs[FRONTIER], attrs[FUSED], attrs[DEPENDENT] = frontier, fused, dependents
            earliest = max([graph.nodes[p][READY] for p in frontier] + [0])
            attrs[SLOT] = first_mlp_after(earliest)
            attrs[READY] = attrs[SLOT]
            for p in frontier:
                readers[p].append(nid)
        if SLOT in attrs:
            attrs[LAYER] = layer_of(attrs[SLOT])
    n_layers = max([graph.nodes[n].get(LAYER, -1) for n in graph.nodes] + [-1]) + 1
    unembed_slot = unembedding_slot(n_layers)
    output = ir.program.output.id
    # A derived value is read wherever its readers read it, so its inputs are too.
    for nid in sorted(graph.nodes, reverse=True):
        attrs = graph.nodes[nid]
        slots = [graph.nodes[r][SLOT] for r in readers[nid]]
        for consumer in graph.successors(nid):
            if graph.nodes[consumer][REALIZE] == "derived":
                # a derived value that nothing reads (its reader folded it away) reads nothing
                if graph.nodes[consumer][LAST_READ] is not None:
                    slots.append(graph.nodes[consumer][LAST_READ])
            elif graph.nodes[consumer][REALIZE] == "readout":
                slots.append(unembed_slot)
        if nid == output:
            slots.append(unembed_slot)
        attrs[LAST_READ] = max(slots) if slots else None
    return replace(ir, graph=graph, n_layers=n_layers)
