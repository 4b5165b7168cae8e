"""The emitted model's shortcuts (shared position-only patterns, keys beyond every window left
out, `last`, the KV cache) compute what the textbook formula computes, head by head."""
import pytest
import torch

from compiler.api import compile_file, load_compiled
from compiler.model.decode import greedy
from compiler.model.transformer import KVCache
from tests.conftest import ROOT


def textbook_logits(model, ids):
    """Every head on every query and key, scores = q.k + slope*e + curvature*e^2 (e = d + center), masked, with the
    sink as one more softmax term whose value is zero. Head h reads key and value projection
    h // group (grouped-query attention); a tied unembedding is logit_scale * W_E^T."""
    T = ids.shape[1]
    x = model.embed.W_E[ids] + model.pos_embed.W_pos[:T]
    d = (torch.arange(T)[None, :] - torch.arange(T)[:, None]).to(x.dtype)
    for block in model.blocks:
        a = block.attn
        if a is not None:
            out = a.b_O.expand_as(x).clone()
            group = a.W_Q.shape[0] // a.W_K.shape[0]
            for h in range(a.W_Q.shape[0]):
                q = x @ a.W_Q[h] + a.b_Q[h]
                k, v = (x @ W[h // group] + b[h // group] for W, b in ((a.W_K, a.b_K), (a.W_V, a.b_V)))
                e = d + a.alibi_center[h]
                scores = q @ k.transpose(-1, -2) + a.alibi_slope[h] * e + a.alibi_curvature[h] * e * e
                scores = scores.masked_fill((d > 0) | (-d > a.window[h]), float("-inf"))
                sink = a.sink[h].expand(*scores.shape[:-1], 1)
                weights = torch.softmax(torch.cat([scores, sink], dim=-1), dim=-1)[..., :-1]
                out = out + (weights @ v) @ a.W_O[h]
            x = x + out
        if block.mlp is not None:
            m = block.mlp
            x = x + torch.relu(x @ m.W_in + m.b_in) @ m.W_out + m.b_out
    tied = hasattr(model.unembed, "logit_scale")
    W_U = model.embed.W_E.T * model.unembed.logit_scale if tied else model.unembed.W_U
    return x @ W_U + model.unembed.b_U


def _ids(layout, count, seed):
    generator = torch.Generator().manual_seed(seed)
    digits = torch.randint(0, layout.base, (count, layout.prompt_length), generator=generator)
    prompt = [layout.vocab.index(t) for t in layout.prompt_tokens({f.name: 0 for f in layout.operands})]
    ids = torch.tensor(prompt).repeat(count, 1)
    is_digit = ids < layout.base  # digits are the first tokens of the vocabulary
    ids[is_digit] = digits[is_digit]
    # the answer half: arbitrary digits, so heads also see sequences no right model would write
    answer = torch.randint(0, layout.base, (count, layout.answer.width), generator=generator)
    return torch.cat([ids, answer], dim=1)[:, :layout.n_ctx]  # the last answer token is never fed back


@pytest.mark.parametrize("name", ["add10", "add_lsb", "sub", "compare", "mul_digit"])
def test_forward_equals_the_textbook_formula(name):
    ir, _, _ = compile_file(ROOT / "examples" / f"{name}.rasp")
    model = load_compiled(ir)
    ids = _ids(ir.program.layout, 64, seed=len(name))
    with torch.no_grad():
        want = textbook_logits(model, ids)
        assert torch.allclose(model(ids), want, atol=1e-9, rtol=0)
        last = ir.program.layout.answer.width
        assert torch.allclose(model(ids, last=last), want[:, -last:], atol=1e-9, rtol=0)


def test_a_head_that_starts_reading_content_leaves_the_shared_pattern():
    # A corrupted key weight makes a position-only head depend on the tokens; the shortcut must
    # notice, or a verifier would miss exactly the corruption it is meant to catch.
    ir, _, _ = compile_file(ROOT / "examples" / "add10.rasp")
    model = load_compiled(ir)
    attention = model.blocks[0].attn
    assert bool(attention.content_free().all())
    with torch.no_grad():
        attention.W_K[0, 0, 0] = 3.0
        attention.W_Q[0, 0, 0] = 2.0
    assert not bool(attention.content_free().any())
    ids = _ids(ir.program.layout, 32, seed=1)
    with torch.no_grad():
        assert torch.allclose(model(ids), textbook_logits(model, ids), atol=1e-9, rtol=0)


def test_incremental_decoding_with_a_cache_equals_one_pass():
    ir, _, _ = compile_file(ROOT / "examples" / "add10.rasp")
    model = load_compiled(ir)
    ids = _ids(ir.program.layout, 8, seed=2)
    cache, steps = KVCache(), []
    with torch.no_grad():
        steps.append(model(ids[:, :20], cache))
        for t in range(20, ids.shape[1]):
            steps.append(model(ids[:, t:t + 1], cache, last=1))
        assert torch.allclose(torch.cat(steps, dim=1), textbook_logits(model, ids), atol=1e-9, rtol=0)
    layout = ir.program.layout
    prompt = [layout.vocab.index(t) for t in layout.prompt_tokens({"a": 9999999999, "b": 1})]
    assert "".join(layout.vocab[i] for i in greedy(model, torch.tensor([prompt]), layout.answer.width)[0].tolist()) == "10000000000"
