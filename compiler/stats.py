"""Size figures for a compiled model: per layer, and dense versus nonzero parameter counts."""
from __future__ import annotations

import torch

from compiler.ir.maps import ResidualEntry, WeightEntry
from compiler.ir.weights import stored_mask
from compiler.model.structure import covered_entries, formulas as structure_formulas, holding, parameters_of


def _nonzero(tensor: torch.Tensor) -> int:
    return int(stored_mask(tensor).sum())


def breakdown(state: dict, weight_map: list[dict], residual_map: list[dict]) -> list[dict]:
    """Nonzero weights per program node and place: each head, each block of MLP units, and the
    embedding and unembedding columns of each stored value. Shows where the next cut could come."""
    rows = []
    for entry in map(WeightEntry.from_dict, weight_map):
        if entry.head is not None:
            h = entry.head
            n_heads = state[entry.block + ".W_Q"].shape[0]
            count = 0
            for name, t in state.items():
                if name.startswith(entry.block + ".") and not name.endswith("b_O"):
                    group = n_heads // t.shape[0]  # a key/value projection shared by a group of heads
                    count += _nonzero(t[h // group]) if h % group == 0 else 0  # counts for its first head
            where = f"{entry.block} head {h}"
        else:
            start, end = entry.units
            prefix = entry.block + "."
            count = (_nonzero(state[prefix + "W_in"][:, start:end]) + _nonzero(state[prefix + "b_in"][start:end])
                     + _nonzero(state[prefix + "W_out"][start:end]))
            where = f"{entry.block} units {start}-{end - 1}"
        rows.append({"where": where, "node": entry.node, "line": entry.line, "nonzero": count})
    # A dimension can hold several values over time (a value, a sum on top of it, then a value
    # updated in place): embeddings belong to what is embedded, the unembedding to what the
    # dimension holds last.
    entries = [ResidualEntry.from_dict(e) for e in residual_map]
    last_holder = {}
    for index, entry in sorted(enumerate(entries), key=lambda ie: (ie[1].sublayer, ie[0])):
        for d in entry.dims:
            last_holder[d] = index
    tied = "unembed.logit_scale" in state
    tables = [("embed.W_E", "token embedding"), ("pos_embed.W_pos", "positional table")]
    if not tied:
        tables.append(("unembed.W_U", "unembedding"))
    for name, label in tables:
        for index, entry in enumerate(entries):
            if name == "unembed.W_U":
                dims = [d for d in entry.dims if last_holder[d] == index]
            elif entry.written_by == "embed":
                dims = list(entry.dims)
            else:
                continue
            if not dims:
                continue
            tensor = state[name]
            count = _nonzero(tensor[dims, :] if name == "unembed.W_U" else tensor[:, dims])
            if count:
                rows.append({"where": label + (" = W_U (tied)" if tied and name == "embed.W_E" else ""),
                             "node": entry.node, "line": entry.line, "nonzero": count})
    if tied:
        rows.append({"where": "unembedding's logit scale", "node": "-", "line": 0,
                     "nonzero": _nonzero(state["unembed.logit_scale"])})
    mlp_biases = sum(_nonzero(t) for n, t in state.items() if n.endswith("mlp.b_out"))
    other = _nonzero(state["unembed.b_U"]) + mlp_biases
    if other:
        rows.append({"where": "output biases (b_U, MLP b_out)", "node": "-", "line": 0, "nonzero": other})
    return rows


POSITIONAL = ("pos_embed.W_pos", ".alibi_slope", ".alibi_curvature", ".alibi_center", ".window")


def parameter_counts(state: dict, structure: dict | None = None) -> dict:
    """The four size counts, by the rules public tiny-adder leaderboards use.

    A stored number is a nonzero, finite entry: which entries are zero is structure, and an
    infinite sink or window is a flag ("none"). The leaderboard counts leave out the encodings
    fixed by position alone: the positional table and each head's distance formula (ALiBi slope,
    curvature, centre, window). The nonzero counts take every stored number. The unique counts
    take each parameter once (AdderBoard: "unique parameters after tying"): storage already ties
    grouped key/value heads and a tied unembedding's one scale, and the file's structure
    (compiler.model.structure) ties equal entries of a tensor and writes vocabulary-indexed
    entries as a polynomial in the token's digit value; only formulas the weights satisfy count."""
    return counts_with(state, holding(structure, state))


def counts_with(state: dict, held: dict) -> dict:
    """parameter_counts with formulas already checked against `state` (compiler.model.structure.holding)."""
    positional = sum(_nonzero(t) for name, t in state.items() if name.endswith(POSITIONAL))
    nonzero = sum(_nonzero(t) for t in state.values())
    unique, unique_positional = nonzero, positional
    for formula in structure_formulas(held):
        # a formula never counts more than its entries would (a cubic through two entries)
        saved = max(0, len(covered_entries(formula)) - parameters_of(formula))
        unique -= saved
        if formula["tensor"].endswith(POSITIONAL):
            unique_positional -= saved
    return {"nonzero_params": nonzero, "nonzero_params_leaderboard": nonzero - positional,
            "unique_params": unique - unique_positional, "unique_params_strict": unique}


def model_stats(config: dict, state: dict, compile_seconds: float | None = None,
                structure: dict | None = None) -> dict:
    groups: dict[str, dict] = {}
    for name, tensor in state.items():
        group = "embed" if name.startswith(("embed.", "pos_embed.")) else \
                "unembed" if name.startswith("unembed.") else ".".join(name.split(".")[:3])
        entry = groups.setdefault(group, {"dense": 0, "nonzero": 0})
        entry["dense"] += tensor.numel()
        entry["nonzero"] += _nonzero(tensor)
    layers = []
    for l in range(config["n_layers"]):
        layers.append({
            "layer": l, "heads": config["n_heads"][l], "d_head": config["d_head"][l], "d_mlp": config["d_mlp"][l],
            "attn_nonzero": groups.get(f"blocks.{l}.attn", {}).get("nonzero", 0),
            "mlp_nonzero": groups.get(f"blocks.{l}.mlp", {}).get("nonzero", 0),
        })
    held = holding(structure, state)
    counts = counts_with(state, held)
    stats = {
        "layers": config["n_layers"], "d_model": config["d_model"], "d_vocab": config["d_vocab"],
        "n_ctx": config["n_ctx"], "dtype": config["dtype"],
        "dense_params": sum(g["dense"] for g in groups.values()),
        **counts,
        "embed_nonzero": groups.get("embed", {}).get("nonzero", 0),
        "unembed_nonzero": groups.get("unembed", {}).get("nonzero", 0),
        "tied_unembed": "unembed.logit_scale" in state,
        "ties": len(held["ties"]), "polynomials": len(held["polynomials"]),
        "per_layer": layers,
    }
    if compile_seconds is not None:
        stats["compile_seconds"] = round(compile_seconds, 3)
    return stats


def format_stats(stats: dict) -> str:
    lines = [f"layers {stats['layers']}, d_model {stats['d_model']}, vocab {stats['d_vocab']}, "
             f"context {stats['n_ctx']}, {stats['dtype']}"]
    lines.append(f"{'layer':>5} {'heads':>5} {'d_head':>6} {'d_mlp':>5} {'attn nz':>8} {'mlp nz':>7}")
    for layer in stats["per_layer"]:
        lines.append(f"{layer['layer']:>5} {layer['heads']:>5} {layer['d_head']:>6} {layer['d_mlp']:>5} "
                     f"{layer['attn_nonzero']:>8} {layer['mlp_nonzero']:>7}")
    lines.append(f"embeddings {stats['embed_nonzero']} nonzero, unembedding {stats['unembed_nonzero']} nonzero"
                 + (" (tied: W_U = logit_scale * W_E^T, the scale and b_U stored)" if stats.get("tied_unembed") else ""))
    lines.append(f"parameters: {stats['dense_params']} dense, {stats['nonzero_params']} nonzero "
                 f"({stats['nonzero_params_leaderboard']} without positional encodings)")
    lines.append(f"unique after tying: {stats['unique_params']} by the leaderboard's count (positional "
                 f"encodings free), {stats['unique_params_strict']} strict (positional encodings counted)")
    parts = [f"{n} {one if n == 1 else many}" for n, one, many in
             ((stats.get("ties", 0), "group of equal entries", "groups of equal entries"),
              (stats.get("polynomials", 0), "line as a polynomial in the digit's value",
               "lines as polynomials in the digit's value")) if n]
    if parts:
        lines.append(f"structure: {', '.join(parts)} (each counted by its parameters)")
    if stats.get("compile_seconds") is not None:
        lines.append(f"compiled in {stats['compile_seconds']:.2f} s")
    if stats.get("breakdown"):
        lines.append("where the nonzero weights go:")
        for row in sorted(stats["breakdown"], key=lambda r: -r["nonzero"]):
            lines.append(f"  {row['nonzero']:>6}  {row['where']:<26} {row['node']}"
                         + (f" (line {row['line']})" if row["line"] else ""))
    return "\n".join(lines)
