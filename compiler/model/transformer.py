"""The emitted model: a plain decoder-only transformer, built from a config and a state dict.

forward(token_ids) -> logits; decoding lives in compiler.model.decode. No normalisation, causal
attention without 1/sqrt(d) scaling, and per-head options compiled programs need, each a formula
of the distance d = key position - query position: an "attend to nothing" sink logit (-inf for
heads without one), an ALiBi slope and curvature about a centre (score += slope*e + curvature*e*e
with e = d + center), and a sliding window (keys more than `window` positions back are masked;
inf for none). Layers may differ in head count, head width and MLP width. Weight names follow
TransformerLens (embed.W_E, blocks.0.attn.W_Q [n_heads, d_model, d_head], blocks.0.mlp.W_in
[d_model, d_mlp], unembed.W_U ...). With config["n_kv_heads"], consecutive heads share key and
value projections (grouped-query attention: W_K, b_K, W_V, b_V have n_kv_heads rows). With
config["tied_unembed"], the unembedding is the token embedding transposed times one stored
number, unembed.logit_scale (weight tying).

Two shortcuts keep checking millions of sums cheap without changing what is computed: a head
whose scores do not read the residual stream (compiled offset and window heads) has one attention
pattern shared by the whole batch, and `last` runs the final layer only where logits are wanted.
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
    def __init__(self, n_heads, d_model, d_head, dtype, n_kv_heads=None):
        super().__init__()
        p = lambda *shape: nn.Parameter(torch.zeros(*shape, dtype=dtype), requires_grad=False)
        # Grouped-query attention: consecutive groups of n_heads / n_kv_heads heads share one key
        # and value projection.
        kv = n_kv_heads or n_heads
        self.group = n_heads // kv
        self.W_Q, self.W_K, self.W_V = p(n_heads, d_model, d_head), p(kv, d_model, d_head), p(kv, d_model, d_head)
        self.b_Q, self.b_K, self.b_V = p(n_heads, d_head), p(kv, d_head), p(kv, d_head)
        self.W_O, self.b_O = p(n_heads, d_head, d_model), p(d_model)
        self.sink = p(n_heads)  # -inf: no sink
        self.alibi_slope = p(n_heads)
        self.alibi_curvature = p(n_heads)
        self.alibi_center = p(n_heads)
        self.window = p(n_heads)  # inf: no window

    def _project(self, x, W, b):
        # One matmul for all heads: [B, T, d_model] @ [d_model, H*d_head] -> [B, H, T, d_head].
        H, d_model, d_head = W.shape
        flat = torch.addmm(b.reshape(H * d_head), x.reshape(-1, d_model), W.permute(1, 0, 2).reshape(d_model, H * d_head))
        return flat.view(x.shape[0], x.shape[1], H, d_head).transpose(1, 2)

    def position_scores(self, heads, T_q: int, keys: range) -> torch.Tensor:
        """[len(heads), T_q, 1 + len(keys)]: the score terms fixed by position alone, for the last
        T_q positions attending to `keys`. Column 0 is the sink (a key whose value is 0); hidden
        keys score -inf. Always float64: slope * d + curvature * d * d grows with the distance,
        and differences of a few units between neighbouring keys must survive it."""
        device = self.sink.device
        distance = (torch.arange(keys.start, keys.stop, device=device)[None, :]
                    - torch.arange(keys.stop - T_q, keys.stop, device=device)[:, None]).to(torch.float64)
        slope, curvature, center, window = (t[heads, None, None].to(torch.float64) for t in
                                            (self.alibi_slope, self.alibi_curvature, self.alibi_center, self.window))
        e = distance + center
        scores = slope * e + curvature * e * e
        scores = scores.masked_fill((distance > 0) | (-distance > window), float("-inf"))  # causal, and the window
        return torch.cat([self.sink[heads, None, None].to(torch.float64).expand(-1, T_q, 1), scores], dim=-1)

    def content_free(self) -> torch.Tensor:
        """Per head: whether q.k is zero for every key (zero keys, or a zero query), so the attention
        pattern depends on positions alone and is shared by every sequence. A key bias alone is
        not enough: q.b_K is the same for every key but not for the sink, whose key is 0."""
        no_keys = ((self.W_K == 0).all(dim=(1, 2)) & (self.b_K == 0).all(dim=1)).repeat_interleave(self.group)
        zero_query = (self.W_Q == 0).all(dim=(1, 2)) & (self.b_Q == 0).all(dim=1)
        return no_keys | zero_query

    def forward(self, x, past=None, queries: int | None = None):
        """x: [batch, new positions, d_model]; past: keys and values of earlier positions, if any;
        queries: attend from the last `queries` new positions only (all when None).
        Returns the output at the attending positions, and the keys and values up to now (what
        incremental decoding keeps)."""
        k, v = self._project(x, self.W_K, self.b_K), self._project(x, self.W_V, self.b_V)
        if self.group > 1:
            k, v = k.repeat_interleave(self.group, dim=1), v.repeat_interleave(self.group, dim=1)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        x_q = x if queries is None else x[:, x.shape[1] - queries:]
        B, T_q, T_k = x.shape[0], x_q.shape[1], k.shape[2]
        z = x.new_empty(B, self.W_Q.shape[0], T_q, v.shape[3])
        content_free = self.content_free()
        for heads in (content_free.nonzero()[:, 0], (~content_free).nonzero()[:, 0]):
            if not len(heads):
                continue
            # Keys further back than every window reaches are left out, not masked.
            reach = float(self.window[heads].max())
            keys = range(0 if reach == float("inf") else max(0, T_k - T_q - int(reach)), T_k)
            bias = self.position_scores(heads, T_q, keys)
            # The sink is one more key, in front, whose value is 0.
            zero = k.new_zeros(B, len(heads), 1, k.shape[3])
            v_seen = torch.cat([zero, v[:, heads, keys.start:]], dim=2)
            if bool(content_free[heads[0]]):
                # A pattern fixed by position is one [T_q, keys] matrix for the whole batch, made in
                # float64 like its scores, then used at the model's precision.
                pattern = torch.softmax(bias, dim=-1).to(v_seen.dtype)
                z[:, heads] = torch.einsum("hqk,bhkd->bhqd", pattern, v_seen)
            else:
                q = self._project(x_q, self.W_Q[heads], self.b_Q[heads])
                k_seen = torch.cat([zero, k[:, heads, keys.start:]], dim=2)
                # Shifted by its largest finite entry per query, the position term fits the model's
                # precision before it meets the content term.
                top = bias.amax(dim=-1, keepdim=True).clamp(min=-1e300)  # the query's own key is never masked
                bias = (bias - top).to(q.dtype)
                scores = torch.einsum("bhqd,bhkd->bhqk", q, k_seen) + bias
                z[:, heads] = torch.einsum("bhqk,bhkd->bhqd", torch.softmax(scores, dim=-1), v_seen)
        return torch.einsum("bhte,hed->btd", z, self.W_O) + self.b_O, (k, v)


class MLP(nn.Module):
    def __init__(self, d_model, d_mlp, dtype):
        super().__init__()
        p = lambda *shape: nn.Parameter(torch.zeros(*shape, dtype=dtype), requires_grad=False)
        self.W_in, self.b_in = p(d_model, d_mlp), p(d_mlp)
        self.W_out, self.b_out = p(d_mlp, d_model), p(d_model)

    def forward(self, x):
        hidden = torch.relu(torch.addmm(self.b_in, x.reshape(-1, x.shape[-1]), self.W_in))
        return torch.addmm(self.b_out, hidden, self.W_out).view(*x.shape[:-1], -1)


class Block(nn.Module):
    def __init__(self, d_model, n_heads, d_head, d_mlp, dtype, n_kv_heads=None):
        super().__init__()
        self.attn = Attention(n_heads, d_model, d_head, dtype, n_kv_heads) if n_heads else None
        self.mlp = MLP(d_model, d_mlp, dtype) if d_mlp else None


class Unembed(nn.Module):
    def __init__(self, d_model, d_vocab, dtype, tied: bool):
        super().__init__()
        p = lambda *shape: nn.Parameter(torch.zeros(*shape, dtype=dtype), requires_grad=False)
        if tied:  # W_U = logit_scale * W_E^T: weight tying, with a scale
            self.logit_scale = p(())
        else:
            self.W_U = p(d_model, d_vocab)
        self.b_U = p(d_vocab)


def per_head(state: dict, config: dict) -> dict:
    """The state dict with every head's own key and value weights (grouped ones repeated) and
    W_U written out: what a per-head reading of the weights (the proof) wants."""
    out = dict(state)
    for layer, (heads, kv) in enumerate(zip(config["n_heads"], config.get("n_kv_heads", config["n_heads"]))):
        if heads and kv != heads:
            for name in ("W_K", "b_K", "W_V", "b_V"):
                key = f"blocks.{layer}.attn.{name}"
                out[key] = state[key].repeat_interleave(heads // kv, dim=0)
    out["unembed.W_U"] = unembedding_matrix(state)
    return out


def unembedding_matrix(state: dict) -> torch.Tensor:
    """W_U [d_model, d_vocab] from a state dict, tied or not."""
    if "unembed.W_U" in state:
        return state["unembed.W_U"]
    return state["embed.W_E"].T * state["unembed.logit_scale"]


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
        kv = config.get("n_kv_heads", config["n_heads"])
        self.blocks = nn.ModuleList(Block(d_model, h, e, m, dtype, g) for h, e, m, g in
                                    zip(config["n_heads"], config["d_head"], config["d_mlp"], kv))
        self.unembed = Unembed(d_model, config["d_vocab"], dtype, config.get("tied_unembed", False))

    def residuals(self, tokens: torch.Tensor, cache: "KVCache | None" = None,
                  last: int | None = None) -> list[torch.Tensor]:
        """The residual stream after the embedding and after every sublayer (index = sublayer number).

        With a `cache`, `tokens` continue the sequence the cache has seen, and the cache keeps each
        layer's keys and values, so decoding need not recompute earlier positions. With `last`, the
        final layer runs at the last `last` positions only (earlier layers still run everywhere,
        as later keys read them), and so do the states it adds.
        """
        start = cache.length if cache is not None else 0
        T = start + tokens.shape[1]
        if T > self.config["n_ctx"]:
            raise ValueError(f"sequence of {T} tokens is longer than the model's context of {self.config['n_ctx']}")
        x = self.embed.W_E[tokens] + self.pos_embed.W_pos[start:T]
        states = [x]
        for layer, block in enumerate(self.blocks):
            queries = last if layer == len(self.blocks) - 1 else None
            if block.attn is not None:
                out, present = block.attn(x, cache.layers.get(layer) if cache is not None else None, queries)
                x = (x if queries is None else x[:, x.shape[1] - queries:]) + out
                if cache is not None:
                    cache.layers[layer] = present
            elif queries is not None:
                x = x[:, x.shape[1] - queries:]
            states.append(x)
            if block.mlp is not None:
                x = x + block.mlp(x)
            states.append(x)
        if cache is not None:
            cache.length = T
        return states

    def forward(self, tokens: torch.Tensor, cache: "KVCache | None" = None, last: int | None = None) -> torch.Tensor:
        """Logits [batch, positions, vocab]; with `last`, for the last `last` positions only."""
        x = self.residuals(tokens, cache, last)[-1]
        if last is not None:  # a model with no layers has had nothing to cut
            x = x[:, x.shape[1] - last:]
        W_U = self.embed.W_E.T * self.unembed.logit_scale if self.config.get("tied_unembed") else self.unembed.W_U
        return x @ W_U + self.unembed.b_U
