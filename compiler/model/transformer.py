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

Which heads take which path is planned once from the weights (Attention.plan: on construction,
after load_state_dict and after .to()), never decided inside forward, so forward's control flow
depends on shapes alone and torch.export, torch.compile(fullgraph=True) and the ONNX exporter trace
it. Eager forward re-plans by itself when a planned parameter was edited in place; after an edit
through `.data`, or before tracing an edited model, call model.prepare().

Hook points (nn.Identity modules, TransformerLens names; a forward hook sees the value, and one
that returns a tensor replaces it, which is how ablation works):
  hook_embed                  [batch, positions, d_model]  token embeddings W_E[tokens]
  hook_pos_embed              [batch, positions, d_model]  position embeddings
  blocks.L.hook_resid_pre     [batch, positions, d_model]  residual stream before block L
  blocks.L.hook_resid_mid     [batch, positions, d_model]  after its attention
  blocks.L.hook_resid_post    [batch, positions, d_model]  after its MLP
  blocks.L.attn.hook_pattern  [batch, n_heads, queries, 1 + keys]  attention weights; column 0 is
                              the sink ("attend to nothing"), column 1 + j is key position j
  blocks.L.mlp.hook_post      [batch, positions, d_mlp]  hidden units after relu
With `last`, the final block's mid and post states (and its queries) are the last positions only.
A hook on hook_pattern makes that layer build every head's full pattern (the shared and windowed
shortcuts give it up), so it is slower, not different. Blocks without attention (or without an
MLP) have no attn (mlp) hooks.
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


class HeadGroup:
    """Heads that take one path through attention, planned once from the weights: whether their
    pattern is fixed by position alone (`shared`), the heads (a tuple, and the same as an index
    tensor), how far back their widest window reaches (None: no window), and their position terms
    as float64 [heads, 1, 1] tensors."""

    def __init__(self, attention: "Attention", heads: tuple[int, ...], shared: bool):
        self.heads, self.shared = heads, shared
        device = attention.sink.device
        self.index = torch.tensor(heads, dtype=torch.long, device=device)
        reach = float(attention.window[self.index].max())
        self.reach = None if reach == float("inf") else int(reach)
        self.sink, self.slope, self.curvature, self.center, self.window = (
            t[self.index, None, None].to(torch.float64) for t in
            (attention.sink, attention.alibi_slope, attention.alibi_curvature, attention.alibi_center,
             attention.window))


def _plan_after_loading(module, incompatible_keys):
    module.plan()


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
        # [batch, n_heads, queries, 1 + keys]; column 0 is the sink
        self.hook_pattern = nn.Identity()
        self.register_load_state_dict_post_hook(_plan_after_loading)
        self.plan()

    def _planned_from(self) -> tuple:
        """What the plan was made from: each parameter it reads, with its in-place edit count."""
        return tuple((id(t), t._version) for t in (self.W_Q, self.b_Q, self.W_K, self.b_K, self.sink,
                                                   self.alibi_slope, self.alibi_curvature, self.alibi_center,
                                                   self.window))

    @torch.no_grad()
    def plan(self) -> None:
        """Split the heads, once, into those with a pattern shared by the whole batch and the rest,
        so that forward has no branch on the weights' values (torch.export, torch.compile and
        ONNX need that). Run on construction, after load_state_dict and after .to(); after editing
        weights in place, call CompiledTransformer.prepare()."""
        if self.sink.is_meta:  # shapes without values (the schema's check): nothing to plan from
            self.groups, self.order, self.planned_from = (), None, None
            return
        content_free = self.content_free().tolist()
        groups = [HeadGroup(self, heads, shared) for shared in (True, False)
                  if (heads := tuple(h for h, free in enumerate(content_free) if free == shared))]
        self.groups = tuple(groups)
        order = [h for g in groups for h in g.heads]
        # where each head's output lands once the groups' outputs are concatenated (None: in place)
        self.order = None if order == sorted(order) else torch.tensor(
            sorted(range(len(order)), key=order.__getitem__), dtype=torch.long, device=self.sink.device)
        self.planned_from = self._planned_from()

    def _apply(self, fn, *args, **kwargs):
        # .to(), .double(), .cuda() make new tensors: the plan's copies must follow them
        module = super()._apply(fn, *args, **kwargs)
        self.plan()
        return module

    def _project(self, x, W, b):
        # One matmul for all heads: [B, T, d_model] @ [d_model, H*d_head] -> [B, H, T, d_head].
        H, d_model, d_head = W.shape
        flat = torch.addmm(b.reshape(H * d_head), x.reshape(-1, d_model), W.permute(1, 0, 2).reshape(d_model, H * d_head))
        return flat.view(x.shape[0], x.shape[1], H, d_head).transpose(1, 2)

    @staticmethod
    def position_scores(group: HeadGroup, T_q: int, key_start, T_k) -> torch.Tensor:
        """[len(heads), T_q, 1 + keys]: the score terms fixed by position alone, for the last T_q of
        T_k positions attending to keys key_start..T_k-1. Column 0 is the sink (a key whose value
        is 0); hidden keys score -inf. Always float64: slope * d + curvature * d * d grows with the
        distance, and differences of a few units between neighbouring keys must survive it."""
        device = group.sink.device
        distance = (torch.arange(key_start, T_k, device=device)[None, :]
                    - torch.arange(T_k - T_q, T_k, device=device)[:, None]).to(torch.float64)
        e = distance + group.center
        scores = group.slope * e + group.curvature * e * e
        scores = scores.masked_fill((distance > 0) | (-distance > group.window), float("-inf"))  # causal, and the window
        return torch.cat([group.sink.expand(-1, T_q, 1), scores], dim=-1)

    def content_free(self) -> torch.Tensor:
        """Per head: whether q.k is zero for every key (zero keys, or a zero query), so the attention
        pattern depends on positions alone and is shared by every sequence. A key bias alone is
        not enough: q.b_K is the same for every key but not for the sink, whose key is 0."""
        no_keys = ((self.W_K == 0).all(dim=(1, 2)) & (self.b_K == 0).all(dim=1)).repeat_interleave(self.group)
        zero_query = (self.W_Q == 0).all(dim=(1, 2)) & (self.b_Q == 0).all(dim=1)
        return no_keys | zero_query

    def _group_pattern(self, group: HeadGroup, x_q, k, key_start, T_q: int, T_k):
        """The group's attention weights over the sink and keys key_start..: [heads, T_q, 1 + keys]
        when shared (in float64), else [batch, heads, T_q, 1 + keys] at the model's precision."""
        bias = self.position_scores(group, T_q, key_start, T_k)
        if group.shared:
            return torch.softmax(bias, dim=-1)
        q = self._project(x_q, self.W_Q[group.index], self.b_Q[group.index])
        k_seen = torch.cat([k.new_zeros(k.shape[0], len(group.heads), 1, k.shape[3]),
                            k[:, group.index, key_start:]], dim=2)
        # Shifted by its largest finite entry per query, the position term fits the model's
        # precision before it meets the content term.
        top = bias.amax(dim=-1, keepdim=True)
        top = torch.where(top > float("-inf"), top, 0.0)  # never -inf (the own key is seen), but no -inf - -inf
        scores = torch.einsum("bhqd,bhkd->bhqk", q, k_seen) + (bias - top).to(q.dtype)
        return torch.softmax(scores, dim=-1)

    def _in_head_order(self, per_group: list[torch.Tensor]) -> torch.Tensor:
        """The groups' [batch, heads, ...] results as one tensor in the heads' own order."""
        joined = per_group[0] if len(per_group) == 1 else torch.cat(per_group, dim=1)
        return joined if self.order is None else joined.index_select(1, self.order)

    def forward(self, x, past=None, queries: int | None = None):
        """x: [batch, new positions, d_model]; past: keys and values of earlier positions, if any;
        queries: attend from the last `queries` new positions only (all when None).
        Returns the output at the attending positions, and the keys and values up to now (what
        incremental decoding keeps)."""
        if not torch.compiler.is_compiling() and self.planned_from != self._planned_from():
            self.plan()  # weights edited in place since the plan (a traced graph keeps its own)
        k, v = self._project(x, self.W_K, self.b_K), self._project(x, self.W_V, self.b_V)
        if self.group > 1:
            k, v = k.repeat_interleave(self.group, dim=1), v.repeat_interleave(self.group, dim=1)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        x_q = x if queries is None else x[:, x.shape[1] - queries:]
        B, T_q, T_k = x.shape[0], x_q.shape[1], k.shape[2]
        every_query = past is None and queries is None  # then no key is beyond every window
        if self.hook_pattern._forward_hooks or self.hook_pattern._forward_pre_hooks:
            z = self._hooked(x_q, k, v, B, T_q, T_k)
        else:
            z = self._in_head_order([self._group_output(g, x_q, k, v, B, T_q, T_k, every_query)
                                     for g in self.groups])
        return torch.einsum("bhte,hed->btd", z, self.W_O) + self.b_O, (k, v)

    def _group_output(self, group: HeadGroup, x_q, k, v, B, T_q, T_k, every_query: bool):
        # Keys further back than every window reaches are left out, not masked.
        key_start = 0 if every_query or group.reach is None else max(0, T_k - T_q - group.reach)
        pattern = self._group_pattern(group, x_q, k, key_start, T_q, T_k)
        # The sink is one more key, in front, whose value is 0.
        v_seen = torch.cat([v.new_zeros(B, len(group.heads), 1, v.shape[3]), v[:, group.index, key_start:]], dim=2)
        if group.shared:
            # A pattern fixed by position is one [T_q, keys] matrix for the whole batch, made in
            # float64 like its scores, then used at the model's precision.
            return torch.einsum("hqk,bhkd->bhqd", pattern.to(v_seen.dtype), v_seen)
        return torch.einsum("bhqk,bhkd->bhqd", pattern, v_seen)

    def _hooked(self, x_q, k, v, B, T_q, T_k):
        """With a hook on hook_pattern: every head's pattern over the sink and all keys, as one
        [batch, n_heads, T_q, 1 + T_k] tensor the hook may read or replace, then applied."""
        patterns = []
        for group in self.groups:
            pattern = self._group_pattern(group, x_q, k, 0, T_q, T_k).to(v.dtype)
            patterns.append(pattern.expand(B, *pattern.shape) if group.shared else pattern)
        pattern = self.hook_pattern(self._in_head_order(patterns))
        v_seen = torch.cat([v.new_zeros(B, v.shape[1], 1, v.shape[3]), v], dim=2)
        return torch.einsum("bhqk,bhkd->bhqd", pattern, v_seen)


class MLP(nn.Module):
    def __init__(self, d_model, d_mlp, dtype):
        super().__init__()
        p = lambda *shape: nn.Parameter(torch.zeros(*shape, dtype=dtype), requires_grad=False)
        self.W_in, self.b_in = p(d_model, d_mlp), p(d_mlp)
        self.W_out, self.b_out = p(d_mlp, d_model), p(d_model)
        self.hook_post = nn.Identity()  # [batch, positions, d_mlp]: the hidden units after relu

    def forward(self, x):
        hidden = torch.relu(torch.addmm(self.b_in, x.reshape(-1, x.shape[-1]), self.W_in))
        hidden = self.hook_post(hidden.view(*x.shape[:-1], -1))
        return torch.addmm(self.b_out, hidden.reshape(-1, hidden.shape[-1]), self.W_out).view(*x.shape[:-1], -1)


class Block(nn.Module):
    def __init__(self, d_model, n_heads, d_head, d_mlp, dtype, n_kv_heads=None):
        super().__init__()
        self.attn = Attention(n_heads, d_model, d_head, dtype, n_kv_heads) if n_heads else None
        self.mlp = MLP(d_model, d_mlp, dtype) if d_mlp else None
        # [batch, positions, d_model]: the residual stream before the block, after its attention,
        # and after its MLP (with `last`, the final block's mid and post hold those positions only)
        self.hook_resid_pre, self.hook_resid_mid, self.hook_resid_post = nn.Identity(), nn.Identity(), nn.Identity()


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
        self.hook_embed = nn.Identity()  # [batch, positions, d_model]: the token embeddings
        self.hook_pos_embed = nn.Identity()  # [batch, positions, d_model]: the position embeddings

    def prepare(self) -> "CompiledTransformer":
        """Plan attention again from the weights as they are now. Loading a state dict and .to()
        plan by themselves, and eager forward notices in-place edits of the parameters it plans
        from; edits through `.data`, or before torch.export / torch.compile trace the model, need
        this call."""
        for block in self.blocks:
            if block.attn is not None:
                block.attn.plan()
        return self

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
        token_part = self.hook_embed(self.embed.W_E[tokens])
        x = token_part + self.hook_pos_embed(self.pos_embed.W_pos[start:T].expand(tokens.shape[0], -1, -1))
        states = [x]
        for layer, block in enumerate(self.blocks):
            queries = last if layer == len(self.blocks) - 1 else None
            x = block.hook_resid_pre(x)
            if block.attn is not None:
                out, present = block.attn(x, cache.layers.get(layer) if cache is not None else None, queries)
                x = (x if queries is None else x[:, x.shape[1] - queries:]) + out
                if cache is not None:
                    cache.layers[layer] = present
            elif queries is not None:
                x = x[:, x.shape[1] - queries:]
            x = block.hook_resid_mid(x)
            states.append(x)
            if block.mlp is not None:
                x = x + block.mlp(x)
            x = block.hook_resid_post(x)
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
