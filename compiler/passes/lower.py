"""Pass 11: exact sympy weights become dense torch tensors (float64 unless asked otherwise).

Sets ir.lowered = (config, state_dict): the config is plain data (layer shapes, dtype), the
state dict maps TransformerLens-style names to tensors. Sets ir.weight_map: which head and which
hidden units serve which program node (with its source line). Sets ir.provenance: for every
nonzero stored number, {tensor name: {index: program node ids}}, at the dense index it has in the
state dict (heads in their grouped order, units at their offset in the layer), so every stored
number can be traced to the nodes it serves.
"""
from __future__ import annotations

import math
from dataclasses import replace

import sympy
import torch

from compiler.ir.attrs import LABEL, PAIRED_WITH, SPAN
from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR
from compiler.ir.maps import WeightEntry
from compiler.ir.weights import NodeIds, Weights, stored_indices


def to_float(value) -> float:
    return float(sympy.N(value, 40))


def _dense(shape, entries, dtype, transform=lambda k: k):
    tensor = torch.zeros(*shape, dtype=torch.float64)
    for key, value in entries.items():
        tensor[transform(key)] = to_float(value)
    return tensor.to(dtype)


def _union(*node_ids: NodeIds) -> NodeIds:
    return tuple(sorted({n for ids in node_ids for n in ids}))


class _State:
    """The state dict as it is built, and the provenance of each number stored in it."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.tensors: dict[str, torch.Tensor] = {}
        self.provenance: dict[str, dict[tuple, NodeIds]] = {}

    def store(self, name: str, tensor: torch.Tensor, origin):
        """Keep `tensor` under `name`; origin(index) names the nodes each stored number serves."""
        self.tensors[name] = tensor
        traced = {}
        for index in stored_indices(tensor):
            traced[index] = origin(index)
            # Every nonzero weight was written for some node: one without is a bug in a pass.
            assert traced[index], f"{name}{list(index)} serves no program node"
        self.provenance[name] = traced


def _kv_groups(heads):
    """(heads reordered, group size): heads whose key and value weights are equal share one
    projection (grouped-query attention). Groups are consecutive and of equal size, so the size
    is the largest that divides every class of equal heads; 1 means no sharing."""
    classes: dict = {}
    for head in heads:
        key = tuple(tuple(sorted(getattr(head, name).items())) for name in ("W_K", "b_K", "W_V", "b_V"))
        classes.setdefault(key, []).append(head)
    group = math.gcd(*[len(c) for c in classes.values()]) if heads else 1
    return [h for c in classes.values() for h in c], group


def _served(ir: CompileIR, node_id: int) -> dict:
    attrs = ir.graph.nodes[node_id]
    served = {"node": attrs[LABEL], "id": node_id, "line": attrs[SPAN].line, "column": attrs[SPAN].column}
    if PAIRED_WITH in attrs:  # one head for two shifts (compiler.passes.pair_heads)
        partner = attrs[PAIRED_WITH][0]
        served["node"] += " and " + ir.graph.nodes[partner][LABEL]
        served["also"] = partner
    return served


def _served_ids(served: dict) -> NodeIds:
    return _union((served["id"],), (served["also"],) if "also" in served else ())


@compiler_pass(reads={LABEL, SPAN, PAIRED_WITH}, reads_ir={"options", "weights", "d_model", "n_layers"},
               sets_ir={"lowered", "weight_map", "provenance"})
def lower(ir: CompileIR) -> CompileIR:
    w = ir.weights
    dtype_name = ir.options.get("dtype", "float64")
    state = _State(getattr(torch, dtype_name))
    layout = ir.program.layout
    d_model, d_vocab, n_ctx = ir.d_model, len(layout.vocab), layout.n_ctx
    config = {"n_layers": ir.n_layers, "d_model": d_model, "d_vocab": d_vocab, "n_ctx": n_ctx,
              "n_heads": [], "d_head": [], "d_mlp": [], "act_fn": "relu", "dtype": dtype_name}
    tied_to = w.provenance["W_U"] if w.tied_scale is not None else {}
    state.store("embed.W_E", _dense((d_vocab, d_model), w.W_E, state.dtype),
                lambda i: _union(w.provenance["W_E"].get(i, ()), tied_to.get((i[1], i[0]), ())))
    state.store("pos_embed.W_pos", _dense((n_ctx, d_model), w.W_pos, state.dtype),
                lambda i: w.provenance["W_pos"].get(i, ()))
    weight_map = []
    for l, layer in enumerate(w.layers):
        weight_map += _lower_attention(ir, state, config, l, layer.heads)
        weight_map += _lower_mlp(ir, state, config, l, layer.mlps)
    _lower_unembedding(state, config, w)
    return replace(ir, lowered=(config, state.tensors), weight_map=weight_map, provenance=state.provenance)


def _lower_attention(ir: CompileIR, state: _State, config: dict, l: int, layer_heads) -> list[dict]:
    heads, group = _kv_groups(layer_heads)
    dtype, d_model = state.dtype, config["d_model"]
    config.setdefault("n_kv_heads", []).append(len(heads) // group if heads else 0)
    served = [_served(ir, head.node) for head in heads]
    weight_map = [WeightEntry(block=f"blocks.{l}.attn", head=index, mode=head.mode, **entry).to_dict()
                  for index, (head, entry) in enumerate(zip(heads, served))]
    d_head = max([1] + [1 + max([k[1] for k in list(h.W_Q) + list(h.W_K) + list(h.W_V)] +
                                list(h.b_Q) + list(h.b_K) + list(h.b_V) + [k[0] for k in h.W_O])
                        for h in heads])
    config["n_heads"].append(len(heads))
    config["d_head"].append(d_head if heads else 0)
    if not heads:
        return weight_map
    prefix = f"blocks.{l}.attn."
    head_ids = [_served_ids(entry) for entry in served]
    # A key/value projection stored once for a group of heads serves every head in the group.
    group_ids = [_union(*head_ids[g * group:(g + 1) * group]) for g in range(len(heads) // group)]
    by_head, by_group = (lambda i: head_ids[i[0]]), (lambda i: group_ids[i[0]])
    for name in ("W_Q", "W_K", "W_V"):
        stored = heads if name == "W_Q" else heads[::group]
        state.store(prefix + name, torch.stack([_dense((d_model, d_head), getattr(h, name), dtype) for h in stored]),
                    by_head if name == "W_Q" else by_group)
    for name in ("b_Q", "b_K", "b_V"):
        stored = heads if name == "b_Q" else heads[::group]
        state.store(prefix + name, torch.stack([_dense((d_head,), getattr(h, name), dtype, lambda k: (k,))
                                                for h in stored]), by_head if name == "b_Q" else by_group)
    state.store(prefix + "W_O", torch.stack([_dense((d_head, d_model), h.W_O, dtype) for h in heads]), by_head)
    state.store(prefix + "b_O", torch.zeros(d_model, dtype=dtype), lambda i: ())
    per_head = {
        "sink": [to_float(h.sink) if h.sink is not None else float("-inf") for h in heads],
        "alibi_slope": [to_float(h.slope) for h in heads],
        "alibi_curvature": [to_float(h.curvature) for h in heads],
        "alibi_center": [to_float(h.center) for h in heads],
        "window": [float(h.window) if h.window is not None else float("inf") for h in heads],
    }
    for name, values in per_head.items():
        state.store(prefix + name, torch.tensor(values, dtype=dtype), by_head)
    return weight_map


def _lower_mlp(ir: CompileIR, state: _State, config: dict, l: int, mlps) -> list[dict]:
    units = sum(m.units for m in mlps)
    bias_only = any(m.b_out for m in mlps)
    d_mlp = units if units else (1 if bias_only else 0)
    config["d_mlp"].append(d_mlp)
    if not d_mlp:
        return []
    weight_map = []
    W_in, b_in, W_out, b_out = {}, {}, {}, {}
    unit_ids: list[NodeIds] = []  # the nodes each unit of the layer serves, by its offset
    b_out_ids: dict[tuple, NodeIds] = {}  # an output bias sums the blocks writing that dimension
    offset = 0
    for m in mlps:
        served = _served(ir, m.node)
        if m.units:  # a block of output biases alone (a function constant where it is read) has no range
            weight_map.append(WeightEntry(block=f"blocks.{l}.mlp", units=(offset, offset + m.units),
                                          **served).to_dict())
        unit_ids += [_served_ids(served)] * m.units
        W_in.update({(d, u + offset): v for (d, u), v in m.W_in.items()})
        b_in.update({(u + offset,): v for u, v in m.b_in.items()})
        W_out.update({(u + offset, d): v for (u, d), v in m.W_out.items()})
        for d, v in m.b_out.items():
            b_out[(d,)] = b_out.get((d,), 0) + v
            if v != 0:
                b_out_ids[(d,)] = _union(b_out_ids.get((d,), ()), _served_ids(served))
        offset += m.units
    prefix, dtype, d_model = f"blocks.{l}.mlp.", state.dtype, config["d_model"]
    state.store(prefix + "W_in", _dense((d_model, d_mlp), W_in, dtype), lambda i: unit_ids[i[1]])
    state.store(prefix + "b_in", _dense((d_mlp,), b_in, dtype), lambda i: unit_ids[i[0]])
    state.store(prefix + "W_out", _dense((d_mlp, d_model), W_out, dtype), lambda i: unit_ids[i[0]])
    state.store(prefix + "b_out", _dense((d_model,), b_out, dtype), lambda i: b_out_ids.get(i, ()))
    return weight_map


def _lower_unembedding(state: _State, config: dict, w: Weights):
    d_model, d_vocab, dtype = config["d_model"], config["d_vocab"], state.dtype
    if w.tied_scale is not None:
        config["tied_unembed"] = True
        # The one scale stands for every W_U entry: it serves whatever they served.
        scale_ids = _union(*w.provenance["W_U"].values())
        state.store("unembed.logit_scale", torch.tensor(to_float(w.tied_scale), dtype=dtype), lambda i: scale_ids)
    else:
        state.store("unembed.W_U", _dense((d_model, d_vocab), w.W_U, dtype), lambda i: w.provenance["W_U"].get(i, ()))
    state.store("unembed.b_U", _dense((d_vocab,), w.b_U, dtype, lambda k: (k,)),
                lambda i: w.provenance["b_U"].get(i[0], ()))
