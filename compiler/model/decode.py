"""Greedy decoding for any compiled model: feed the prompt, append the argmax, repeat."""
from __future__ import annotations

import torch

from compiler.model.transformer import KVCache


@torch.no_grad()
def greedy(model, prompts: torch.Tensor, max_new_tokens: int, end_id: int | None = None) -> torch.Tensor:
    """Generate for a batch of equal-length prompts; returns the new tokens [batch, <= max_new_tokens].

    Generation stops early once every row has produced the end token; tokens after a row's end
    token are whatever the model wrote and should be cut by the caller (see `trim`).
    """
    cache = KVCache()
    feed = prompts
    generated = []
    for _ in range(max_new_tokens):
        if cache.length + feed.shape[1] > model.config["n_ctx"]:
            break
        logits = model(feed, cache, last=1)[:, -1, :]
        next_token = logits.argmax(dim=-1, keepdim=True)
        generated.append(next_token)
        feed = next_token
        if end_id is not None and bool((torch.cat(generated, dim=1) == end_id).any(dim=1).all()):
            break
    if not generated:
        return prompts.new_zeros((prompts.shape[0], 0))
    return torch.cat(generated, dim=1)


def trim(row: list[int], end_id: int | None) -> list[int]:
    """Cut a generated row at its end token (the end token itself is not returned)."""
    return row[: row.index(end_id)] if end_id is not None and end_id in row else row
