"""Pass 9: remove everything that carries nothing.

Drops exactly-zero weights; residual dimensions that are never both written and read (their
writes or reads are dead); heads that write nothing; hidden units whose output is unused, and
units whose input is constant (folded into the output bias: relu of a constant is a constant).
Renumbers dimensions, head dimensions and units compactly, and updates the residual map and the
graph's dims, helper_dim and position_features to the new numbering (the only one from here on).
"""
from __future__ import annotations

from dataclasses import replace

import sympy

from compiler.ir.attrs import DIMS, HELPER_DIM, POSITION_FEATURES
from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR
from compiler.ir.maps import ResidualEntry
from compiler.ir.weights import Head, LayerWeights, MLPBlock, Weights


def _nonzero(table: dict) -> dict:
    return {k: v for k, v in table.items() if v != 0}


@compiler_pass(reads={DIMS, HELPER_DIM, POSITION_FEATURES}, rewrites={DIMS, HELPER_DIM, POSITION_FEATURES}, reads_ir={"weights", "residual_map"},
               sets_ir={"weights", "d_model", "residual_map"})
def prune(ir: CompileIR) -> CompileIR:
    w = ir.weights
    written, read = set(), set()
    for (_, d) in list(w.W_E) + list(w.W_pos):
        written.add(d)
    for (d, _) in w.W_U:
        read.add(d)
    for layer in w.layers:
        for head in layer.heads:
            written |= {d for (_, d), v in head.W_O.items() if v != 0}
            for table in (head.W_Q, head.W_K, head.W_V):
                read |= {d for (d, _), v in table.items() if v != 0}
        for mlp in layer.mlps:
            written |= {d for (_, d), v in mlp.W_out.items() if v != 0} | {d for d, v in mlp.b_out.items() if v != 0}
            read |= {d for (d, _), v in mlp.W_in.items() if v != 0}
    live = sorted(written & read)
    new_index = {d: i for i, d in enumerate(live)}

    def remap_rows(table):  # keys (dim, x)
        return {(new_index[d], x): v for (d, x), v in table.items() if d in new_index and v != 0}

    def remap_cols(table):  # keys (x, dim)
        return {(x, new_index[d]): v for (x, d), v in table.items() if d in new_index and v != 0}

    pruned = Weights(W_E=remap_cols(w.W_E), W_pos=remap_cols(w.W_pos), W_U=remap_rows(w.W_U),
                     b_U=_nonzero(w.b_U))
    _remap_provenance(w, pruned, new_index)
    for layer in w.layers:
        out = LayerWeights()
        for head in layer.heads:
            h = _prune_head(head, remap_rows, remap_cols)
            if h is not None:
                out.heads.append(h)
        for mlp in layer.mlps:
            m = _prune_mlp(mlp, new_index, remap_rows, remap_cols)
            if m is not None:
                out.mlps.append(m)
        pruned.layers.append(out)

    residual_map = []
    for entry in ir.residual_map:
        left = _pruned_entry(ResidualEntry.from_dict(entry), new_index)
        if left.dims:
            residual_map.append(left.to_dict())
    return replace(ir, graph=_renumbered_graph(ir.graph, new_index), weights=pruned, d_model=len(live),
                   residual_map=residual_map)


def _renumbered_graph(graph, new_index):
    """The graph in the pruned numbering, so that graph, maps and weights name a dimension alike.
    A node whose dimensions were all dropped is no longer stored and loses its dims; a categorical
    node keeps the dimensions of the values something reads, in order (the residual map lists
    the others as unread_values)."""
    graph = graph.copy()
    for _, attrs in graph.nodes(data=True):
        if DIMS in attrs:
            kept = [new_index[d] for d in attrs[DIMS] if d in new_index]
            if kept:
                attrs[DIMS] = kept
            else:
                del attrs[DIMS]
        if HELPER_DIM in attrs:
            if attrs[HELPER_DIM] in new_index:
                attrs[HELPER_DIM] = new_index[attrs[HELPER_DIM]]
            else:
                del attrs[HELPER_DIM]
        if POSITION_FEATURES in attrs:
            kept = {part: (new_index[d], complemented, column)
                    for part, (d, complemented, column) in attrs[POSITION_FEATURES].items() if d in new_index}
            if kept:
                attrs[POSITION_FEATURES] = kept
            else:
                del attrs[POSITION_FEATURES]
    return graph


def _remap_provenance(w: Weights, pruned: Weights, new_index: dict):
    """Each kept entry's provenance under its new index: embeddings are (row, dim), W_U (dim, token)."""
    moved = {"W_E": lambda k: (k[0], new_index.get(k[1])), "W_pos": lambda k: (k[0], new_index.get(k[1])),
             "W_U": lambda k: (new_index.get(k[0]), k[1]), "b_U": lambda k: k}
    for name, move in moved.items():
        kept = getattr(pruned, name)
        for index, node_ids in w.provenance[name].items():
            if move(index) in kept:  # a pruned dimension maps to None, which no kept entry has
                pruned.trace(name, move(index), node_ids)


def _pruned_entry(entry: ResidualEntry, new_index: dict) -> ResidualEntry:
    """The entry over the dimensions that are left, renumbered; a categorical value's values
    whose dimensions went are kept as unread_values: nothing reads them."""
    kept = [i for i, d in enumerate(entry.dims) if d in new_index]
    dims = tuple(new_index[entry.dims[i]] for i in kept)
    if entry.values is None:
        return replace(entry, dims=dims)
    dropped = tuple(v for i, v in enumerate(entry.values) if i not in kept)
    return replace(entry, dims=dims, values=tuple(entry.values[i] for i in kept),
                   unread_values=entry.unread_values + dropped)


def _compact(indices):
    return {old: new for new, old in enumerate(sorted(indices))}


def _prune_head(head: Head, remap_rows, remap_cols) -> Head | None:
    W_O = remap_cols(head.W_O)
    if not W_O:
        return None
    W_Q, W_K, W_V = remap_rows(head.W_Q), remap_rows(head.W_K), remap_rows(head.W_V)
    b_Q, b_K, b_V = _nonzero(head.b_Q), _nonzero(head.b_K), _nonzero(head.b_V)
    # A score dimension matters only when both its query and key sides can be nonzero.
    q_side = {e for (_, e) in W_Q} | set(b_Q)
    k_side = {e for (_, e) in W_K} | set(b_K)
    qk = _compact(q_side & k_side)
    v = _compact({e for (e, _) in W_O})
    pick = lambda table, keep, at: {tuple(keep[i] if j == at else i for j, i in enumerate(k)): val
                                    for k, val in table.items() if k[at] in keep}
    return Head(head.node, head.label, head.mode,
                W_Q=pick(W_Q, qk, 1), b_Q={qk[e]: x for e, x in b_Q.items() if e in qk},
                W_K=pick(W_K, qk, 1), b_K={qk[e]: x for e, x in b_K.items() if e in qk},
                W_V=pick(W_V, v, 1), b_V={v[e]: x for e, x in b_V.items() if e in v},
                W_O=pick(W_O, v, 0), sink=head.sink, slope=head.slope, curvature=head.curvature, center=head.center,
                window=head.window, constants=head.constants)


def _prune_mlp(mlp: MLPBlock, new_index, remap_rows, remap_cols) -> MLPBlock | None:
    W_in, W_out = remap_rows(mlp.W_in), remap_cols(mlp.W_out)
    b_out = {new_index[d]: v for d, v in mlp.b_out.items() if d in new_index and v != 0}
    used_out = {u for (u, _) in W_out}
    reads_input = {u for (_, u) in W_in}
    # A unit reading nothing outputs the constant relu(b_in): fold it into the output bias.
    for u in used_out - reads_input:
        activation = sympy.Max(0, mlp.b_in.get(u, 0))
        for (unit, d), v in W_out.items():
            if unit == u:
                b_out[d] = b_out.get(d, 0) + activation * v
    keep = _compact(used_out & reads_input)
    b_out = _nonzero(b_out)
    if not keep and not b_out:
        return None
    return MLPBlock(mlp.node, mlp.label, len(keep),
                    W_in={(d, keep[u]): v for (d, u), v in W_in.items() if u in keep},
                    b_in={keep[u]: v for u, v in mlp.b_in.items() if u in keep and v != 0},
                    W_out={(keep[u], d): v for (u, d), v in W_out.items() if u in keep},
                    b_out=b_out)
