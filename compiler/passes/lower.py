"""Pass 11: exact sympy weights become dense torch tensors (float64 unless asked otherwise).

Sets ir.lowered = (config, state_dict): the config is plain data (layer shapes, dtype), the
state dict maps TransformerLens-style names to tensors. Sets ir.weight_map: which head and which
hidden units serve which program node (with its source line), so every weight can be traced.
"""
from __future__ import annotations

import math
from dataclasses import replace

import sympy
import torch

from compiler.ir.attrs import LABEL, PAIRED_WITH, SPAN
from compiler.ir.contract import compiler_pass
from compiler.ir.compile_ir import CompileIR


def to_float(value) -> float:
    return float(sympy.N(value, 40))


def _dense(shape, entries, dtype, transform=lambda k: k):
    tensor = torch.zeros(*shape, dtype=torch.float64)
    for key, value in entries.items():
        tensor[transform(key)] = to_float(value)
    return tensor.to(dtype)


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


@compiler_pass(reads={LABEL, SPAN, PAIRED_WITH}, reads_ir={"options", "weights", "d_model", "n_layers"},
               sets_ir={"lowered", "weight_map"})
def lower(ir: CompileIR) -> CompileIR:
    w = ir.weights
    dtype_name = ir.options.get("dtype", "float64")
    dtype = getattr(torch, dtype_name)
    layout = ir.program.layout
    d_model, d_vocab, n_ctx = ir.d_model, len(layout.vocab), layout.n_ctx
    config = {"n_layers": ir.n_layers, "d_model": d_model, "d_vocab": d_vocab, "n_ctx": n_ctx,
              "n_heads": [], "d_head": [], "d_mlp": [], "act_fn": "relu", "dtype": dtype_name}
    state = {"embed.W_E": _dense((d_vocab, d_model), w.W_E, dtype),
             "pos_embed.W_pos": _dense((n_ctx, d_model), w.W_pos, dtype)}
    weight_map = []

    def serves(node_id):
        attrs = ir.graph.nodes[node_id]
        served = {"node": attrs[LABEL], "id": node_id, "line": attrs[SPAN].line, "column": attrs[SPAN].column}
        if PAIRED_WITH in attrs:  # one head for two shifts (compiler.passes.pair_heads)
            partner = attrs[PAIRED_WITH][0]
            served["node"] += " and " + ir.graph.nodes[partner][LABEL]
            served["also"] = partner
        return served

    for l, layer in enumerate(w.layers):
        heads, group = _kv_groups(layer.heads)
        config.setdefault("n_kv_heads", []).append(len(heads) // group if heads else 0)
        for index, head in enumerate(heads):
            weight_map.append({"block": f"blocks.{l}.attn", "head": index, "mode": head.mode,
                               **serves(head.node)})
        d_head = max([1] + [1 + max([k[1] for k in list(h.W_Q) + list(h.W_K) + list(h.W_V)] +
                                    list(h.b_Q) + list(h.b_K) + list(h.b_V) + [k[0] for k in h.W_O])
                            for h in heads])
        config["n_heads"].append(len(heads))
        config["d_head"].append(d_head if heads else 0)
        prefix = f"blocks.{l}.attn."
        if heads:
            H = len(heads)
            for name in ("W_Q", "W_K", "W_V"):
                stored = heads if name == "W_Q" else heads[::group]  # one key/value projection per group
                state[prefix + name] = torch.stack([_dense((d_model, d_head), getattr(h, name), dtype) for h in stored])
            for name in ("b_Q", "b_K", "b_V"):
                stored = heads if name == "b_Q" else heads[::group]
                state[prefix + name] = torch.stack([_dense((d_head,), getattr(h, name), dtype, lambda k: (k,))
                                                    for h in stored])
            state[prefix + "W_O"] = torch.stack([_dense((d_head, d_model), h.W_O, dtype) for h in heads])
            state[prefix + "b_O"] = torch.zeros(d_model, dtype=dtype)
            state[prefix + "sink"] = torch.tensor([to_float(h.sink) if h.sink is not None else float("-inf")
                                                   for h in heads], dtype=dtype)
            state[prefix + "alibi_slope"] = torch.tensor([to_float(h.slope) for h in heads], dtype=dtype)
            state[prefix + "alibi_curvature"] = torch.tensor([to_float(h.curvature) for h in heads], dtype=dtype)
            state[prefix + "alibi_center"] = torch.tensor([to_float(h.center) for h in heads], dtype=dtype)
            state[prefix + "window"] = torch.tensor([float(h.window) if h.window is not None else float("inf")
                                                     for h in heads], dtype=dtype)
            assert state[prefix + "W_Q"].shape == (H, d_model, d_head)
        units = sum(m.units for m in layer.mlps)
        bias_only = any(m.b_out for m in layer.mlps)
        d_mlp = units if units else (1 if bias_only else 0)
        config["d_mlp"].append(d_mlp)
        if d_mlp:
            W_in, b_in, W_out, b_out = {}, {}, {}, {}
            offset = 0
            for m in layer.mlps:
                weight_map.append({"block": f"blocks.{l}.mlp", "units": [offset, offset + m.units],
                                   **serves(m.node)})
                W_in.update({(d, u + offset): v for (d, u), v in m.W_in.items()})
                b_in.update({(u + offset,): v for u, v in m.b_in.items()})
                W_out.update({(u + offset, d): v for (u, d), v in m.W_out.items()})
                for d, v in m.b_out.items():
                    b_out[(d,)] = b_out.get((d,), 0) + v
                offset += m.units
            prefix = f"blocks.{l}.mlp."
            state[prefix + "W_in"] = _dense((d_model, d_mlp), W_in, dtype)
            state[prefix + "b_in"] = _dense((d_mlp,), b_in, dtype)
            state[prefix + "W_out"] = _dense((d_mlp, d_model), W_out, dtype)
            state[prefix + "b_out"] = _dense((d_model,), b_out, dtype)
    if w.tied_scale is not None:
        config["tied_unembed"] = True
        state["unembed.logit_scale"] = torch.tensor(to_float(w.tied_scale), dtype=dtype)
    else:
        state["unembed.W_U"] = _dense((d_model, d_vocab), w.W_U, dtype)
    state["unembed.b_U"] = _dense((d_vocab,), w.b_U, dtype, lambda k: (k,))
    return replace(ir, lowered=(config, state), weight_map=weight_map)
