"""The emitted model: a plain decoder-only transformer, built from a config and a state dict.

forward(token_ids) -> logits; decoding lives in compiler.generate. No normalisation, causal
attention without 1/sqrt(d) scaling, and per-head options compiled programs need, each a formula
of the distance d = key position - query position: an "attend to nothing" sink logit (-inf for
heads without one), an ALiBi slope and curvature (score += slope*d + curvature*d*d), and a
sliding window (keys more than `window` positions back are masked; inf for none). Layers may differ in head count, head width and MLP
width. Weight names follow TransformerLens (embed.W_E, blocks.0.attn.W_Q [n_heads, d_model,
d_head], blocks.0.mlp.W_in [d_model, d_mlp], unembed.W_U ...).
"""
from __future__ import annotations

import torch
from torch import nn


class Embed(nn.Module):
    def __init__(self, d_vocab, d_model, dtype):
        super().__init__()
        self.W_E = nn.Parameter(torch.zeros(d_vocab, d_model, dtype=dtype), requires_grad=False)


class PosEmbed(nn.Module):
    def __init__(self, n_ctx, d_model, dtype):
        super().__init__()
        self.W_pos = nn.Parameter(torch.zeros(n_ctx, d_model, dtype=dtype), requires_grad=False)


class Attention(nn.Module):
    def __init__(self, n_heads, d_model, d_head, dtype):
        super().__init__()
        p = lambda *shape: nn.Parameter(torch.zeros(*shape, dtype=dtype), requires_grad=False)
        self.W_Q, self.W_K, self.W_V = p(n_heads, d_model, d_head), p(n_heads, d_model, d_head), p(n_heads, d_model, d_head)
        self.b_Q, self.b_K, self.b_V = p(n_heads, d_head), p(n_heads, d_head), p(n_heads, d_head)
        self.W_O, self.b_O = p(n_heads, d_head, d_model), p(d_model)
        self.sink = p(n_heads)  # -inf: no sink
        self.alibi_slope = p(n_heads)
        self.alibi_curvature = p(n_heads)
        self.window = p(n_heads)  # inf: no window

    def _project(self, x, W, b):
        # One matmul for all heads: [B, T, d_model] @ [d_model, H*d_head] -> [B, H, T, d_head].
        H, d_model, d_head = W.shape
        flat = x @ W.permute(1, 0, 2).reshape(d_model, H * d_head) + b.reshape(H * d_head)
        return flat.view(x.shape[0], x.shape[1], H, d_head).transpose(1, 2)

    def forward(self, x, past=None):
        """x: [batch, new positions, d_model]; past: keys and values of earlier positions, if any.
        Returns the output and the keys and values up to now (what incremental decoding keeps)."""
        q, k, v = self._project(x, self.W_Q, self.b_Q), self._project(x, self.W_K, self.b_K), \
            self._project(x, self.W_V, self.b_V)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        T_q, T_k = q.shape[2], k.shape[2]
        query_position = torch.arange(T_k - T_q, T_k, device=x.device)
        key_position = torch.arange(T_k, device=x.device)
        distance = (key_position[None, :] - query_position[:, None]).to(x.dtype)
        scores = q @ k.transpose(-1, -2) + self.alibi_slope[None, :, None, None] * distance \
            + self.alibi_curvature[None, :, None, None] * distance * distance
        hidden = (distance > 0) | (-distance > self.window[None, :, None, None])  # causal, and the window
        scores = scores.masked_fill(hidden, float("-inf"))
        # softmax over the keys and the sink slot (logit `sink`, value 0), without materialising it
        sink = self.sink[None, :, None, None]
        top = torch.maximum(scores.amax(dim=-1, keepdim=True), sink)
        weights = torch.exp(scores - top)
        weights = weights / (weights.sum(dim=-1, keepdim=True) + torch.exp(sink - top))
        z = weights @ v
        return torch.einsum("bhte,hed->btd", z, self.W_O) + self.b_O, (k, v)


class MLP(nn.Module):
    def __init__(self, d_model, d_mlp, dtype):
        super().__init__()
        p = lambda *shape: nn.Parameter(torch.zeros(*shape, dtype=dtype), requires_grad=False)
        self.W_in, self.b_in = p(d_model, d_mlp), p(d_mlp)
        self.W_out, self.b_out = p(d_mlp, d_model), p(d_model)

    def forward(self, x):
        return torch.relu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out


class Block(nn.Module):
    def __init__(self, d_model, n_heads, d_head, d_mlp, dtype):
        super().__init__()
        self.attn = Attention(n_heads, d_model, d_head, dtype) if n_heads else None
        self.mlp = MLP(d_model, d_mlp, dtype) if d_mlp else None


class Unembed(nn.Module):
    def __init__(self, d_model, d_vocab, dtype):
        super().__init__()
        self.W_U = nn.Parameter(torch.zeros(d_model, d_vocab, dtype=dtype), requires_grad=False)
        self.b_U = nn.Parameter(torch.zeros(d_vocab, dtype=dtype), requires_grad=False)


class KVCache:
    """Keys and values of the positions seen so far, per layer, for incremental decoding."""

    def __init__(self):
        self.length = 0
        self.layers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}


class CompiledTransformer(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        dtype = getattr(torch, config["dtype"])
        d_model = config["d_model"]
        self.embed = Embed(config["d_vocab"], d_model, dtype)
        self.pos_embed = PosEmbed(config["n_ctx"], d_model, dtype)
        self.blocks = nn.ModuleList(Block(d_model, h, e, m, dtype) for h, e, m in
                                    zip(config["n_heads"], config["d_head"], config["d_mlp"]))
        self.unembed = Unembed(d_model, config["d_vocab"], dtype)

    def residuals(self, tokens: torch.Tensor, cache: "KVCache | None" = None) -> list[torch.Tensor]:
        """The residual stream after the embedding and after every sublayer (index = sublayer number).

        With a `cache`, `tokens` continue the sequence the cache has seen, and the cache keeps each
        layer's keys and values, so decoding need not recompute earlier positions.
        """
        start = cache.length if cache is not None else 0
        T = start + tokens.shape[1]
        if T > self.config["n_ctx"]:
            raise ValueError(f"sequence of {T} tokens is longer than the model's context of {self.config['n_ctx']}")
        x = self.embed.W_E[tokens] + self.pos_embed.W_pos[start:T]
        states = [x]
        for layer, block in enumerate(self.blocks):
            if block.attn is not None:
                out, present = block.attn(x, cache.layers.get(layer) if cache is not None else None)
                x = x + out
                if cache is not None:
                    cache.layers[layer] = present
            states.append(x)
            if block.mlp is not None:
                x = x + block.mlp(x)
            states.append(x)
        if cache is not None:
            cache.length = T
        return states

    def forward(self, tokens: torch.Tensor, cache: "KVCache | None" = None) -> torch.Tensor:
        x = self.residuals(tokens, cache)[-1]
        return x @ self.unembed.W_U + self.unembed.b_U
