"""`adderc show`: pictures of a compiled model, PNG and SVG, drawn with matplotlib (the optional
extra "show"): the program graph, the residual layout, every layer's attention patterns and MLP
blocks, and the readout, each titled with the program names and source lines it comes from."""
from __future__ import annotations

from pathlib import Path

from dsl.layout import DIGIT_ALPHABET, Layout
from compiler.check.program import program_from_payload
from compiler.ir.maps import WeightEntry
from compiler.ir.slots import attention_slot
from compiler.show.attention import draw_attention
from compiler.show.common import figure_class, program_names, sample_states, sequence, states_of
from compiler.show.graph import draw_graph
from compiler.show.mlp import draw_mlp
from compiler.show.readout import draw_readout
from compiler.show.residual import draw_residual


def default_prompt(layout: Layout) -> list[str]:
    """A fixed example for any layout: the operands' digits counting up from 1 and down from
    base - 1 by field, so each digit value shows and (in an adder) carries ripple."""
    operands = {}
    for k, field in enumerate(layout.operands):
        digits = [(1 + i) % layout.base if k % 2 == 0 else (layout.base - 1 - i) % layout.base
                  for i in range(field.width)]
        operands[field.name] = layout.value_of([DIGIT_ALPHABET[d] for d in (
            digits if field.order == "msb_first" else digits[::-1])], field.order)
    return layout.prompt_tokens(operands)


def show(model, payload: dict, prompt_tokens: list[str] | None, folder: Path, model_name: str) -> list[Path]:
    """Draw every picture of the model into `folder`; the files written, in order."""
    figure_class()  # a missing matplotlib is refused before any work
    layout = Layout.from_dict(payload["layout"])
    program = program_from_payload(payload, None, model_name)
    names = program_names(payload)
    tokens = sequence(model, layout, prompt_tokens or default_prompt(layout))
    states = states_of(model, layout, tokens)
    samples = sample_states(model, layout, tokens[:layout.prompt_length])
    heads = [WeightEntry.from_dict(e) for e in payload["weight_map"] if "head" in e]
    written = draw_graph(program, payload, names, folder, model_name)
    written += draw_residual(payload, names, folder, model_name)
    for layer, block in enumerate(model.blocks):
        if block.attn is not None:
            own = {e.head: e for e in heads if e.block == f"blocks.{layer}.attn"}
            written += draw_attention(layer, block.attn, states[attention_slot(layer) - 1], tokens, own, names,
                                      folder, model_name, layout.prompt_length)
        if block.mlp is not None:
            written += draw_mlp(layer, model, payload, samples, names, folder, model_name)
    written += draw_readout(payload, samples, layout, names, program.output.id, folder, model_name)
    return written
