"""The one numbering of sublayers: 0 is the embedding, 2l+1 the attention of layer l, 2l+2 its MLP,
and 2*n_layers+1 the unembedding. The residual stream after sublayer s is what sublayer s+1 reads
(compiler.model.transformer.residuals returns it at index s), so a value written at s is ready at s.
"""
from __future__ import annotations

EMBEDDING = 0


def attention_slot(layer: int) -> int:
    return 2 * layer + 1


def mlp_slot(layer: int) -> int:
    return 2 * layer + 2


def unembedding_slot(n_layers: int) -> int:
    return 2 * n_layers + 1


def last_sublayer(n_layers: int) -> int:
    """The last sublayer that writes into the residual stream (the MLP of the last layer)."""
    return 2 * n_layers


def layer_of(slot: int) -> int:
    """The layer an attention or MLP sublayer belongs to."""
    return (slot - 1) // 2


def first_attention_after(ready: int) -> int:
    """The earliest attention sublayer that reads what is ready after sublayer `ready`."""
    return attention_slot((ready + 1) // 2)


def first_mlp_after(ready: int) -> int:
    """The earliest MLP sublayer that reads what is ready after sublayer `ready` (an MLP reads
    what the attention of its own layer wrote)."""
    return mlp_slot(ready // 2)
