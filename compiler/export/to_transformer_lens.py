"""A compiled model as a TransformerLens model: `adderc export MODEL --to transformer-lens -o FILE`.

TransformerLens 4.x has no HookedTransformer any more (its package raises a migration error for
the name); a model built from scratch, without Hugging Face, is
`TransformerBridge.boot_native(TransformerBridgeConfig(...))`, whose native model is a plain
pre-norm transformer with TL's hook names. That is what `load` returns.

The exported file (one torch.save archive of plain data and tensors, loadable with
weights_only=True) holds:
- "tl_config": the TransformerBridgeConfig fields as JSON-able data: normalization_type None,
  act_fn "relu", positional_embedding_type "standard", attention_dir "causal",
  use_attn_scale False, and every layer padded to the widest one (n_heads, d_head, d_mlp);
- "state_dict": the weights in TransformerLens's names and shapes (embed.W_E, pos_embed.W_pos,
  blocks.L.attn.W_Q [n_heads, d_model, d_head], ..., unembed.W_U [d_model, d_vocab],
  unembed.b_U), with grouped key/value projections repeated per head and a tied unembedding
  written out in full (what compiler.model.transformer.per_head gives);
- "position_terms": what TransformerLens cannot express, per layer and head:
  blocks.L.attn.sink / alibi_slope / alibi_curvature / alibi_center / window;
- "vocab" and "adderc_model": the adderc model file's payload, from which `load` rebuilds
  (and checks) everything above.

Padding changes nothing: a padded head has zero weights, no sink (-inf), no position terms and no
window, so it attends uniformly to zero values; a padded MLP unit has zero weights and bias, and
relu(0) = 0.

Hooks `load` attaches (permanent, so `reset_hooks()` and `run_with_hooks` keep them):
- a torch forward hook on each blocks.L.attn.q and blocks.L.attn.k projection: keeps this
  forward's queries and keys [batch, pos, head, d_head], after any TL hook on hook_q / hook_k has
  edited them (it changes nothing);
- blocks.L.attn.hook_pattern (a permanent TL hook, so any hook a researcher adds there runs after
  it and sees adderc's pattern): replaces the bridge's pattern by adderc's, computed from those
  queries and keys exactly as compiler.model.transformer does: scores = q.k (no 1/sqrt(d_head))
  + slope*e + curvature*e*e (e = key_pos - query_pos + center), causal and window masks, and the
  sink as an extra key in front whose value is 0 and whose logit is `sink`. The pattern returned
  covers the real keys only, so a row sums to less than 1 where the sink took its share, and
  hook_z = pattern @ v is adderc's head output.
The bridge's own scores are discarded, which is why use_attn_scale does not matter here (the
native model divides by sqrt(d_head) even with use_attn_scale=False). In this release
hook_attn_scores is fired after the fact with the pattern, not the scores.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from dsl.errors import AdderError
from compiler.export.extras import needs
from compiler.model.schema import FORMAT as MODEL_FORMAT, check_archive, validate
from compiler.model.transformer import CompiledTransformer, per_head

FORMAT = "adderc-transformer-lens"
FORMAT_VERSION = 1
POSITION_TERMS = ("sink", "alibi_slope", "alibi_curvature", "alibi_center", "window")
# what a padded head has: no sink, no position term, no window
NEUTRAL = {"sink": -math.inf, "alibi_slope": 0.0, "alibi_curvature": 0.0, "alibi_center": 0.0, "window": math.inf}


def tl_config(config: dict) -> dict:
    """TransformerBridgeConfig fields for an adderc config, every layer padded to the widest."""
    return {
        "d_model": config["d_model"], "n_layers": config["n_layers"], "n_ctx": config["n_ctx"],
        "d_vocab": config["d_vocab"],
        # at least one (zero) head and unit: the native block always has an attention and an MLP
        "n_heads": max([1, *config["n_heads"]]), "d_head": max([1, *config["d_head"]]),
        "d_mlp": max([1, *config["d_mlp"]]),
        "act_fn": "relu", "normalization_type": None, "positional_embedding_type": "standard",
        "attention_dir": "causal", "use_attn_scale": False, "attn_only": False,
        "architecture": "TransformerLensNative", "init_weights": False, "dtype": config["dtype"],
    }


def _padded(tensor: torch.Tensor, shape: tuple, fill: float = 0.0) -> torch.Tensor:
    out = torch.full(shape, fill, dtype=tensor.dtype)
    out[tuple(slice(0, n) for n in tensor.shape)] = tensor
    return out


def tl_tensors(config: dict, state: dict) -> tuple[dict, dict]:
    """(state dict in TransformerLens names and padded shapes, position terms per head)."""
    cfg = tl_config(config)
    H, E, M, D = cfg["n_heads"], cfg["d_head"], cfg["d_mlp"], cfg["d_model"]
    state = per_head(state, config)
    dtype = state["embed.W_E"].dtype
    out = {"embed.W_E": state["embed.W_E"], "pos_embed.W_pos": state["pos_embed.W_pos"],
           "unembed.W_U": state["unembed.W_U"].contiguous(), "unembed.b_U": state["unembed.b_U"]}
    terms = {}
    for layer in range(config["n_layers"]):
        def get(name, shape, fill=0.0):  # a layer without heads or units has no tensors to pad
            key = f"blocks.{layer}.{name}"
            return _padded(state[key], shape, fill) if key in state else torch.full(shape, fill, dtype=dtype)
        a, m = f"blocks.{layer}.attn", f"blocks.{layer}.mlp"
        for name in ("W_Q", "W_K", "W_V"):
            out[f"{a}.{name}"] = get(f"attn.{name}", (H, D, E))
        for name in ("b_Q", "b_K", "b_V"):
            out[f"{a}.{name}"] = get(f"attn.{name}", (H, E))
        out[f"{a}.W_O"], out[f"{a}.b_O"] = get("attn.W_O", (H, E, D)), get("attn.b_O", (D,))
        out[f"{m}.W_in"], out[f"{m}.b_in"] = get("mlp.W_in", (D, M)), get("mlp.b_in", (M,))
        out[f"{m}.W_out"], out[f"{m}.b_out"] = get("mlp.W_out", (M, D)), get("mlp.b_out", (D,))
        for name in POSITION_TERMS:
            terms[f"{a}.{name}"] = get(f"attn.{name}", (H,), NEUTRAL[name])
    return out, terms


def export(model: CompiledTransformer, payload: dict, path) -> list[str]:
    config = payload["config"]
    state, terms = tl_tensors(config, payload["state_dict"])
    cfg = tl_config(config)
    torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, "tl_config": cfg, "state_dict": state,
                "position_terms": terms, "vocab": list(payload["vocab"]), "adderc_model": payload}, str(path))
    padded = [f"layer {i}: {h} heads of {e}, {m} MLP units" for i, (h, e, m) in
              enumerate(zip(config["n_heads"], config["d_head"], config["d_mlp"]))]
    return [f"TransformerLens: {cfg['n_layers']} layers of {cfg['n_heads']} heads of {cfg['d_head']} and "
            f"{cfg['d_mlp']} MLP units (padded from {'; '.join(padded)})",
            "load it with compiler.export.load_transformer_lens(PATH): a TransformerBridge with adderc's "
            "sinks and position terms hooked on hook_pattern"]


# ----- loading --------------------------------------------------------------------------------------

def _read(path: Path) -> dict:
    """The adderc model payload, from an adderc model file or from a file `export` wrote; every
    stored TransformerLens tensor must be what that payload gives."""
    if not path.exists():
        raise AdderError(f"cannot read {path}: no such file")
    if not path.is_file():
        raise AdderError(f"cannot read {path}: not a file")
    check_archive(path, str(path))
    try:
        data = torch.load(str(path), weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises many kinds for a corrupt or foreign file
        raise AdderError(f"{path}: not an adderc model or TransformerLens export "
                         f"(torch cannot load it: {type(err).__name__})") from None
    if isinstance(data, dict) and data.get("format") == MODEL_FORMAT:
        validate(data, str(path))
        return data
    if not (isinstance(data, dict) and data.get("format") == FORMAT):
        raise AdderError(f"{path}: not an adderc model or TransformerLens export (its format field is not "
                         f"{MODEL_FORMAT!r} or {FORMAT!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise AdderError(f"{path}: TransformerLens export version {data.get('format_version')!r}; "
                         f"this adderc reads version {FORMAT_VERSION}")
    payload = data.get("adderc_model")
    validate(payload, f"{path} (its adderc_model)")
    state, terms = tl_tensors(payload["config"], payload["state_dict"])
    expected = {"tl_config": tl_config(payload["config"]), "state_dict": state, "position_terms": terms}
    for field, want in expected.items():
        if not _same(data.get(field), want):
            raise AdderError(f"{path}: its {field} is not what its adderc_model gives",
                             hint="the file was changed after export; export it again")
    return payload


def _same(a, b) -> bool:
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in b)
    if isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
                and bool(torch.equal(a.nan_to_num(), b.nan_to_num())))
    return type(a) is type(b) and a == b


def load(path, device: str = "cpu"):
    """A TransformerBridge whose forward(token_ids) gives the compiled model's logits."""
    needs("transformer_lens", "export", "loading a model in TransformerLens")
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge.sources.native import boot
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    payload = _read(Path(path))
    config = payload["config"]
    fields = tl_config(config)
    dtype = getattr(torch, fields.pop("dtype"))
    cfg = TransformerBridgeConfig(**fields, dtype=dtype)
    bridge = boot(cfg, device=device, dtype=dtype, model_name="adderc")
    state, terms = tl_tensors(config, payload["state_dict"])
    bridge.load_state_dict(convert_tl_checkpoint(state, bridge.cfg), strict=True)
    bridge.eval()
    for layer in range(config["n_layers"]):
        _attach_position_hooks(bridge, layer, {name: terms[f"blocks.{layer}.attn.{name}"].to(device)
                                               for name in POSITION_TERMS})
    bridge.adderc = {"vocab": list(payload["vocab"]), "layout": payload["layout"], "config": config}
    return bridge


def position_scores(terms: dict, T: int) -> torch.Tensor:
    """[head, T, 1 + T], float64: the sink column, then slope*e + curvature*e*e for every key, with
    the causal mask and the window (compiler.model.transformer.Attention.position_scores)."""
    device = terms["sink"].device
    distance = (torch.arange(T, device=device)[None, :] - torch.arange(T, device=device)[:, None]).to(torch.float64)
    slope, curvature, center, window = (terms[n].to(torch.float64)[:, None, None] for n in POSITION_TERMS[1:])
    e = distance + center
    scores = (slope * e + curvature * e * e).masked_fill((distance > 0) | (-distance > window), float("-inf"))
    sink = terms["sink"].to(torch.float64)[:, None, None].expand(-1, T, 1)
    return torch.cat([sink, scores], dim=-1)


def adderc_pattern(q: torch.Tensor, k: torch.Tensor, terms: dict) -> torch.Tensor:
    """[batch, head, query, key]: adderc's attention over the real keys, from q and k
    [batch, pos, head, d_head]; the sink's share is what a row lacks of 1."""
    bias = position_scores(terms, q.shape[1])
    # shifted by its largest entry per query, as adderc does, before it meets the content term
    bias = (bias - bias.amax(dim=-1, keepdim=True).clamp(min=-1e300)).to(q.dtype)
    content = torch.einsum("bqhd,bkhd->bhqk", q, k)
    scores = torch.cat([content.new_zeros(*content.shape[:-1], 1), content], dim=-1) + bias
    return torch.softmax(scores, dim=-1)[..., 1:]


def _attach_position_hooks(bridge, layer: int, terms: dict) -> None:
    attn, seen = bridge.blocks[layer].attn, {}
    H, E = bridge.cfg.n_heads, bridge.cfg.d_head

    # A torch forward hook on the projection itself fires after every TL hook inside it, so a
    # researcher's edit of hook_q or hook_k reaches the pattern.
    def keep(key):
        def hook(module, inputs, output):
            seen[key] = output.view(*output.shape[:-1], H, E)
        return hook

    def pattern(tensor, hook):
        return adderc_pattern(seen.pop("q"), seen.pop("k"), terms).to(tensor.dtype)

    attn.q.register_forward_hook(keep("q"))
    attn.k.register_forward_hook(keep("k"))
    bridge.add_hook(f"blocks.{layer}.attn.hook_pattern", pattern, is_permanent=True)
