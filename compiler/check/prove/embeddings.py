"""Embeddings must write each value exactly; no bias or embedding column may write into the
dimensions of values it does not write."""
from __future__ import annotations

import torch

from dsl.semantics import value_from_inputs
from compiler.ir.attrs import LAYER, NODE, PER_POSITION, REALIZE, SOURCE
from compiler.check.prove.state import MISS_LIMIT, Miss, ProofState, feature_id


def check_write_hygiene(state: ProofState):
    """Biases and embedding columns may touch only the dimensions of the values they write."""
    def owned(kinds, layer=None):
        dims = set()
        for nid, entry in list(state.entries.items()) + list(state.helpers.items()):
            attrs = state.graph.nodes[nid]
            if attrs[REALIZE] in kinds and (layer is None or attrs.get(LAYER) == layer):
                dims |= set(entry["dims"])
        return dims
    embedded = owned({"embed"}) | set(state.features)
    for name in ("embed.W_E", "pos_embed.W_pos"):
        used = set((state.weights[name].abs().sum(0) > 0).nonzero()[:, 0].tolist())
        if used - embedded:
            raise Miss(f"{name} writes into dimensions of values that are not embedded")
    for layer in range(state.config["n_layers"]):
        for name, kinds in ((f"blocks.{layer}.attn.b_O", {"attention", "width"}),
                            (f"blocks.{layer}.mlp.b_out", {"mlp", "width"})):
            if name in state.weights:
                used = set((state.weights[name] != 0).nonzero()[:, 0].tolist())
                if used - owned(kinds, layer):
                    raise Miss(f"{name} writes into dimensions of values other sublayers own")


def check_embeddings(state: ProofState):
    W_E, W_pos = state.weights["embed.W_E"], state.weights["pos_embed.W_pos"]
    for nid, entry in state.entries.items():
        attrs = state.graph.nodes[nid]
        if attrs[REALIZE] != "embed":
            continue
        dims = entry["dims"]
        rows = range(state.n) if attrs[SOURCE] == "position" else range(len(state.layout.vocab))
        table = W_pos if attrs[SOURCE] == "position" else W_E
        other = W_E if attrs[SOURCE] == "position" else W_pos
        if float(other[:, dims].abs().max()) != 0:
            raise Miss(f"'{state.name(nid)}' is embedded by both the token and the position table"
                       f"{state.at(nid)}")
        worst = 0.0  # a weight rounded in its dtype: carried as error
        for row in rows:
            if attrs[SOURCE] == "position":
                value, what = attrs[PER_POSITION][row], f"position {row}"
            else:
                value, what = _token_value(state, nid, state.layout.vocab[row]), f"token {state.layout.vocab[row]!r}"
            want = torch.zeros(state.d_model, dtype=torch.float64)
            state.encode(nid, value, want)
            miss = float((table[row, dims] - want[dims]).abs().max())
            if miss >= MISS_LIMIT:
                raise Miss(f"the embedding of '{state.name(nid)}' for {what} is off by {miss:.3g} "
                           f"(it should encode {value}){state.at(nid)}")
            worst = max(worst, miss)
        state.error[nid] = worst
    _check_position_features(state)


def _check_position_features(state: ProofState):
    """Each positional column a head reads holds 1 at its positions and 0 elsewhere."""
    W_E, W_pos = state.weights["embed.W_E"], state.weights["pos_embed.W_pos"]
    for d, positions in state.features.items():
        if float(W_E[:, d].abs().max()) != 0:
            raise Miss(f"the token table writes into positional column {d}")
        want = torch.tensor([1.0 if p in positions else 0.0 for p in range(state.n)], dtype=torch.float64)
        miss = float((W_pos[:state.n, d] - want).abs().max())
        if miss >= MISS_LIMIT:
            raise Miss(f"positional column {d} is off by {miss:.3g}")
        state.helper_error[feature_id(d)] = miss


def _token_value(state: ProofState, nid, token):
    node = state.graph.nodes[nid][NODE]
    return _evaluate_token_only(state.graph, node, token, state.base)


def _evaluate_token_only(graph, node, token, base):
    """A token-only value for one token (its inputs are tokens and constants)."""
    args = tuple(_evaluate_token_only(graph, a, token, base) for a in node.inputs())
    return value_from_inputs(node, args, base, token=token)
