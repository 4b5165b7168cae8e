"""A model as an AdderBoard submission: one Python file with build_model() -> (model, metadata) and
add(model, a, b) -> int, the format of the public 10-digit addition leaderboard (its verify.py
imports the file, runs 10 edge cases and 10,000 pairs from random.Random(2025)).

The file needs torch and the standard library only. It holds its own small forward pass, the
maths of compiler.model.transformer for every config the compiler emits (no normalisation,
unscaled attention with per-head sink, ALiBi slope and curvature about a centre, window, grouped
key/value heads, relu MLPs, a tied or untied unembedding), and a greedy decoding loop outside the
model. The weights are inline: each tensor's shape and its nonzero entries, every number written
with float.hex, so the submission's weights are the compiled model's, bit for bit.

Only a model the board can rank fits: base 10, two operand fields of 10 digits, and a meaning of
their sum; any other is refused with the reason.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from dsl.errors import AdderError
from dsl.layout import SIGNED
from compiler import __version__
from compiler.model.structure import covered_entries, formulas, holding
from compiler.stats import counts_with

BOARD_WIDTH = 10  # the board's operands: integers in [0, 9,999,999,999]


def board_params(state: dict, held: dict) -> tuple[int, int]:
    """(the board's count, the strict count) with the formulas that hold (compiler.model.structure
    .holding), by compiler.stats.counts_with: the board ranks
    by unique parameters after tying with fixed positional encodings free (the positional table
    and each head's distance formula, which adderc compiles from positions alone); the strict
    count keeps them. Zeros and the infinite "no sink"/"no window" entries are structure."""
    counts = counts_with(state, held)
    return counts["unique_params"], counts["unique_params_strict"]


def _refuse(why: str):
    raise AdderError(f"cannot write an AdderBoard submission: {why}",
                     hint="the board ranks adders of two 10-digit numbers, e.g. examples/add10.rasp")


def board_layout(payload: dict) -> dict:
    """The parts of the layout a submission needs, or an AdderError saying why the board cannot
    rank this model."""
    layout = payload["layout"]
    items, answer_index = layout["items"], layout["answer_index"]
    if layout["base"] != 10:
        _refuse(f"the model works in base {layout['base']}, the board in base 10")
    operands = [item for item in items[:answer_index] if item[0] == "field"]
    if len(operands) != 2 or any(item[2] != BOARD_WIDTH for item in operands):
        shown = ", ".join(f"{item[1]} of {item[2]} digits" for item in operands)
        _refuse(f"the board's inputs are two operands of {BOARD_WIDTH} digits; this model's are: {shown}")
    answer = items[answer_index]
    names = [item[1] for item in operands]
    meaning = payload.get("meaning") or {}
    expression = re.sub(r"\s+", "", meaning.get("expression", ""))
    if expression not in (f"{names[0]}+{names[1]}", f"{names[1]}+{names[0]}"):
        _refuse(f"the board asks for a + b; this model's answer {answer[1]} means "
                f"{meaning.get('expression', 'nothing declared')!r}")
    if len(answer) > 4 and answer[4] == SIGNED:
        _refuse(f"the answer field {answer[1]} is signed; the board's add() returns the digits of a sum, no sign")
    if answer[2] < BOARD_WIDTH + 1:
        _refuse(f"the answer field {answer[1]} has {answer[2]} digits; a sum of two 10-digit numbers needs 11")
    vocab = payload["vocab"]
    # Each field is written in its own digit order (sum[N + 1, lsb_first] after msb_first operands).
    order = lambda item: (item[3] if len(item) > 3 else layout["order"]) == "msb_first"
    prompt = [["literal", vocab.index(item[1])] if item[0] == "literal" else ["field", names.index(item[1]), order(item)]
              for item in items[:answer_index]]
    return {"prompt": prompt, "answer_width": answer[2], "msb_first": order(answer),
            "digit_ids": [vocab.index(str(d)) for d in range(10)]}


def sparse_weights(state: dict, structure: dict) -> dict:
    """name -> (shape, [[flat index, float.hex], ...]) for every nonzero entry no formula of
    `structure` fills."""
    filled = {(f["tensor"], i) for f in formulas(structure) for i in covered_entries(f)}
    out = {}
    for name, tensor in state.items():
        flat = tensor.detach().reshape(-1).to(torch.float64)
        entries = [[i, float(flat[i]).hex()] for i in (flat != 0).nonzero()[:, 0].tolist() if (name, i) not in filled]
        out[name] = [list(tensor.shape), entries]
    return out


def structure_data(state: dict, structure: dict) -> dict:
    """The formulas that hold, each with its parameters written out (float.hex): a tie's one
    magnitude, a polynomial's coefficients."""
    ties = []
    for tie in structure["ties"]:
        first, sign = tie["entries"][0]
        magnitude = float(state[tie["tensor"]].reshape(-1)[first]) * sign
        ties.append([tie["tensor"], magnitude.hex(), [list(e) for e in tie["entries"]]])
    polynomials = [[p["tensor"], [float(c).hex() for c in p["coefficients"]], list(p["entries"])]
                   for p in structure["polynomials"]]
    return {"ties": ties, "polynomials": polynomials}


def _architecture(config: dict, params: int, strict: int) -> str:
    layers = ", ".join(f"L{i}: {h} head(s) of {e}, mlp {m}" for i, (h, e, m) in
                       enumerate(zip(config["n_heads"], config["d_head"], config["d_mlp"])))
    return (f"{config['n_layers']}L decoder, d={config['d_model']} ({layers}), vocab {config['d_vocab']}, "
            f"{config['dtype']}; {params} parameters with positional encodings free, {strict} counting "
            f"the positional constants too")


def submission_source(payload: dict) -> tuple[str, int, int]:
    """(the submission file's text, the board's count, the strict count)."""
    board = board_layout(payload)
    config, state = payload["config"], payload["state_dict"]
    structure = holding(payload.get("structure"), state)
    params, strict = board_params(state, structure)
    program = payload["program"]
    tricks = ["compiled, not trained: adderc turns a RASP-like program into exact weights",
              "scalar digit encodings", "attention sink and ALiBi-style position terms",
              "two-hinge ReLU carries", f"answer {'most' if board['msb_first'] else 'least'} significant digit first"]
    if config.get("tied_unembed"):
        tricks.append("tied unembedding (W_U = scale * W_E^T)")
    if config.get("n_kv_heads", config["n_heads"]) != config["n_heads"]:
        tricks.append("grouped key/value heads")
    if structure["ties"]:
        tricks.append("equal weights tied (one parameter, a sign per entry)")
    if structure["polynomials"]:
        tricks.append("digit embedding and readout as polynomials in the digit's value")
    metadata = {"name": f"adderc {Path(program['path']).stem}", "author": "adderc (symbolic weight compiler)",
                "params": params, "architecture": _architecture(config, params, strict), "tricks": tricks}
    return TEMPLATE.format(
        program=program["path"], sha=program["sha256"], version=__version__, params=params,
        strict=strict, metadata=repr(metadata), config=repr(config), board=repr(board),
        weights=repr(sparse_weights(state, structure)), structure=repr(structure_data(state, structure))), params, strict


def export(model, payload: dict, path) -> list[str]:
    source, params, strict = submission_source(payload)
    Path(path).write_text(source, encoding="utf-8")
    return [f"an AdderBoard submission: build_model() and add(model, a, b), torch only, "
            f"{params} parameters by the board's count ({strict} with the positional constants counted too; see the "
            f"file's docstring)",
            f"check it with the board's own script: python verify.py {Path(path).name}"]


TEMPLATE = '''"""AdderBoard submission written by adderc {version} from {program} (sha256 {sha}).

The weights are compiled from a program, not trained. Parameter count: {params}, as the board
asks: unique parameters after tying, fixed positional encodings free. Every stored number the
forward reads counts once, less structure and less the encodings fixed by position alone: zeros
are structure (which entries are zero is free), and so are the infinite sink and window entries,
which mean "no sink" and "no window"; tied weights are stored once (grouped key/value heads, a
tied unembedding's one scale, and STRUCTURE's ties: entries of one tensor equal up to sign, one
magnitude each); a vocabulary line in STRUCTURE's polynomials counts its nonzero coefficients
(entry of digit d = c0 + c1*d + c2*d^2 ..., by Horner's rule in float64, then rounded to the
dtype); the positional table W_pos and each head's ALiBi-style slope, curvature, centre and
window are compiled from positions alone and left out. The strict count, which keeps them, is
{strict}. WEIGHTS and STRUCTURE hold exactly those numbers (float.hex, bit-exact) with each
tensor's shape; the tensors are built from them.

The forward is a plain decoder: token and position embeddings, per layer an unscaled causal
attention (per head a sink logit for attending to nothing, slope*e + curvature*e*e with e =
key - query + centre, and a window) and a relu MLP, each added to the residual stream, then the
unembedding. add() formats the prompt, decodes greedily (the loop outside the model) and reads
the answer's digits. Needs torch and the standard library only.
"""
import math

import torch
from torch import nn

METADATA = {metadata}
CONFIG = {config}
BOARD = {board}
# name -> [shape, [[flat index, float.hex(value)], ...]] for the nonzero entries STRUCTURE does not fill
WEIGHTS = {weights}
# ties: [name, float.hex(magnitude), [[flat index, sign], ...]];
# polynomials: [name, [float.hex(c0), float.hex(c1), ...], [flat index, ...]] over digit tokens
STRUCTURE = {structure}


def _token(name, flat, shape):
    return flat // shape[1] if name == "embed.W_E" else flat % shape[1] if name == "unembed.W_U" else flat


def _horner(coefficients, x):
    value = 0.0
    for c in reversed(coefficients):
        value = value * float(x) + c
    return value


def _tensor(name, shape, entries, dtype):
    flat = torch.zeros(math.prod(shape), dtype=torch.float64)
    for index, value in entries:
        flat[index] = float.fromhex(value)
    for tensor, magnitude, tied in STRUCTURE["ties"]:
        for index, sign in tied if tensor == name else ():
            flat[index] = sign * float.fromhex(magnitude)
    for tensor, coefficients, filled in STRUCTURE["polynomials"]:
        for index in filled if tensor == name else ():
            flat[index] = _horner([float.fromhex(c) for c in coefficients], BOARD["digit_ids"].index(_token(name, index, shape)))
    return flat.reshape(shape).to(dtype)


class Attention(nn.Module):
    def __init__(self, weights, dtype):
        super().__init__()
        for name, value in weights.items():
            setattr(self, name, nn.Parameter(value, requires_grad=False))
        self.group = self.W_Q.shape[0] // self.W_K.shape[0]

    def forward(self, x):
        T = x.shape[1]
        q = torch.einsum("btm,hmd->bhtd", x, self.W_Q) + self.b_Q[None, :, None]
        k = torch.einsum("btm,hmd->bhtd", x, self.W_K) + self.b_K[None, :, None]
        v = torch.einsum("btm,hmd->bhtd", x, self.W_V) + self.b_V[None, :, None]
        k, v = k.repeat_interleave(self.group, dim=1), v.repeat_interleave(self.group, dim=1)
        # position terms in float64 (they grow with the distance), the sink as key 0 whose value is 0
        distance = (torch.arange(T)[None, :] - torch.arange(T)[:, None]).to(torch.float64)
        h = lambda t: t.to(torch.float64)[:, None, None]
        e = distance + h(self.alibi_center)
        bias = h(self.alibi_slope) * e + h(self.alibi_curvature) * e * e
        bias = bias.masked_fill((distance > 0) | (-distance > h(self.window)), float("-inf"))
        bias = torch.cat([h(self.sink).expand(-1, T, 1), bias], dim=-1)
        zero = k.new_zeros(k.shape[0], k.shape[1], 1, k.shape[3])
        k, v = torch.cat([zero, k], dim=2), torch.cat([zero, v], dim=2)
        no_keys = ((self.W_K == 0).all(dim=(1, 2)) & (self.b_K == 0).all(dim=1)).repeat_interleave(self.group)
        fixed = no_keys | ((self.W_Q == 0).all(dim=(1, 2)) & (self.b_Q == 0).all(dim=1))
        z = []
        for head in range(q.shape[1]):
            if fixed[head]:  # scores of positions alone: one pattern, made in float64
                pattern = torch.softmax(bias[head], dim=-1).to(v.dtype)[None]
            else:  # shifted by the largest position term per query, then at the model's precision
                shifted = (bias[head] - bias[head].amax(dim=-1, keepdim=True)).to(q.dtype)
                pattern = torch.softmax(q[:, head] @ k[:, head].transpose(1, 2) + shifted, dim=-1)
            z.append(pattern @ v[:, head])
        return torch.einsum("bhte,hem->btm", torch.stack(z, dim=1), self.W_O) + self.b_O


class MLP(nn.Module):
    def __init__(self, weights):
        super().__init__()
        for name, value in weights.items():
            setattr(self, name, nn.Parameter(value, requires_grad=False))

    def forward(self, x):
        return torch.relu(x @ self.W_in + self.b_in) @ self.W_out + self.b_out


class Adder(nn.Module):
    def __init__(self, config, weights):
        super().__init__()
        dtype = getattr(torch, config["dtype"])
        w = {{name: _tensor(name, shape, entries, dtype) for name, (shape, entries) in weights.items()}}
        part = lambda prefix: {{n[len(prefix):]: t for n, t in w.items() if n.startswith(prefix)}}
        self.W_E = nn.Parameter(w["embed.W_E"], requires_grad=False)
        self.W_pos = nn.Parameter(w["pos_embed.W_pos"], requires_grad=False)
        self.attn = nn.ModuleList(Attention(part(f"blocks.{{i}}.attn."), dtype) if config["n_heads"][i] else None
                                  for i in range(config["n_layers"]))
        self.mlp = nn.ModuleList(MLP(part(f"blocks.{{i}}.mlp.")) if config["d_mlp"][i] else None
                                 for i in range(config["n_layers"]))
        self.unembed = nn.ParameterDict({{n: nn.Parameter(t, requires_grad=False) for n, t in part("unembed.").items()}})

    def forward(self, tokens):
        """tokens [batch, T] -> logits [batch, T, vocab]"""
        x = self.W_E[tokens] + self.W_pos[: tokens.shape[1]]
        for attn, mlp in zip(self.attn, self.mlp):
            if attn is not None:
                x = x + attn(x)
            if mlp is not None:
                x = x + mlp(x)
        W_U = self.W_E.T * self.unembed["logit_scale"] if "logit_scale" in self.unembed else self.unembed["W_U"]
        return x @ W_U + self.unembed["b_U"]


def build_model():
    model = Adder(CONFIG, WEIGHTS)
    model.eval()
    return model, dict(METADATA)


def _digits(value, width, msb_first):
    digits = [(value // 10 ** i) % 10 for i in range(width)]  # least significant first
    return digits[::-1] if msb_first else digits


@torch.no_grad()
def add(model, a: int, b: int) -> int:
    ids = BOARD["digit_ids"]
    tokens = []
    for kind, what, *msb_first in BOARD["prompt"]:  # a field: its operand and its digit order
        tokens.extend([what] if kind == "literal" else [ids[d] for d in _digits((a, b)[what], 10, msb_first[0])])
    sequence = torch.tensor([tokens])
    for _ in range(BOARD["answer_width"]):  # greedy decoding, one token at a time
        next_token = model(sequence)[0, -1].argmax()
        sequence = torch.cat([sequence, next_token.view(1, 1)], dim=1)
    answer = sequence[0, len(tokens):].tolist()
    if not all(t in ids for t in answer):
        return -1  # the model wrote something that is not a digit
    digits = [ids.index(t) for t in answer]
    digits = digits if BOARD["msb_first"] else digits[::-1]
    return int("".join(map(str, digits)))
'''
