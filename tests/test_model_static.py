"""The emitted model is exportable as it is: its forward branches on shapes only (the head plan is
made when weights load), so torch.export and torch.compile(fullgraph=True) trace it; its hook
points see and replace values; prepare() re-plans after an in-place edit."""
import pytest
import torch

from compiler.api import load_compiled
from compiler.model.transformer import KVCache
from tests.conftest import EXAMPLES, compiled
from tests.test_model import _ids, textbook_logits


def _model(name, dtype="float64"):
    ir, _, _ = compiled(EXAMPLES / f"{name}.rasp", dtype)
    return ir.program.layout, load_compiled(ir)


@pytest.mark.parametrize("name", ["add10", "add_lsb", "sub"])
def test_torch_export_with_dynamic_batch_and_seq(name):
    layout, model = _model(name)
    n_ctx = model.config["n_ctx"]
    ids = _ids(layout, 8, seed=1)
    dims = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("seq", max=n_ctx)},)
    program = torch.export.export(model, (ids,), dynamic_shapes=dims)
    with torch.no_grad():
        for batch, seq in ((1, 1), (3, n_ctx // 2), (20, n_ctx)):
            other = _ids(layout, batch, seed=batch)[:, :seq]
            assert torch.equal(program.module()(other), model(other))
        assert torch.allclose(program.module()(ids), textbook_logits(model, ids), atol=1e-9, rtol=0)


def test_torch_compile_fullgraph():
    layout, model = _model("add10", "float32")
    compiled_model = torch.compile(model, fullgraph=True, dynamic=True)
    ids = _ids(layout, 16, seed=2)
    with torch.no_grad():
        assert torch.allclose(compiled_model(ids), model(ids), atol=1e-4, rtol=0)
        assert torch.equal(compiled_model(ids).argmax(-1), model(ids).argmax(-1))


HOOKS = ["hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid",
         "blocks.0.hook_resid_post", "blocks.0.attn.hook_pattern", "blocks.1.mlp.hook_post"]


def test_hooks_see_the_values_with_their_shapes():
    layout, model = _model("add10")
    ids = _ids(layout, 4, seed=3)
    seen = {}
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(lambda m, i, out, name=name: seen.setdefault(name, out))
               for name in HOOKS]
    with torch.no_grad():
        hooked = model(ids)
        states = model.residuals(ids)
    for handle in handles:
        handle.remove()
    B, T = ids.shape
    attn, mlp = model.blocks[0].attn, model.blocks[1].mlp
    assert torch.equal(seen["hook_embed"], model.embed.W_E[ids])
    assert torch.equal(seen["hook_pos_embed"], model.pos_embed.W_pos[:T].expand(B, -1, -1))
    assert torch.equal(seen["blocks.0.hook_resid_pre"], states[0])
    assert torch.equal(seen["blocks.0.hook_resid_mid"], states[1])
    assert torch.equal(seen["blocks.0.hook_resid_post"], states[2])
    pattern = seen["blocks.0.attn.hook_pattern"]
    assert pattern.shape == (B, attn.W_Q.shape[0], T, 1 + T)
    assert torch.allclose(pattern.sum(-1), torch.ones(()).double())
    assert bool((pattern[..., 1:].triu(diagonal=2) == 0).all())  # causal: no later key
    hidden = torch.relu(states[3] @ mlp.W_in + mlp.b_in)  # block 1 after its attention
    assert torch.allclose(seen["blocks.1.mlp.hook_post"], hidden, atol=1e-9, rtol=0)
    # building the full pattern for the hook changes no logit
    with torch.no_grad():
        assert torch.allclose(hooked, model(ids), atol=1e-9, rtol=0)


def test_a_hook_that_returns_a_tensor_ablates():
    layout, model = _model("add10")
    ids = _ids(layout, 8, seed=4)
    with torch.no_grad():
        clean = model(ids)
    modules = dict(model.named_modules())
    for name in HOOKS:
        handle = modules[name].register_forward_hook(lambda m, i, out: torch.zeros_like(out))
        with torch.no_grad():
            ablated = model(ids)
        handle.remove()
        assert not torch.allclose(ablated, clean), name
    # an attention pattern all on the sink: the layer adds b_O alone
    attn = model.blocks[0].attn
    sink_only = lambda m, i, out: torch.zeros_like(out).index_fill(-1, torch.tensor([0]), 1.0)
    seen = {}
    handles = [attn.hook_pattern.register_forward_hook(sink_only),
               model.blocks[0].hook_resid_mid.register_forward_hook(lambda m, i, out: seen.setdefault("mid", out)),
               model.blocks[0].hook_resid_pre.register_forward_hook(lambda m, i, out: seen.setdefault("pre", out))]
    with torch.no_grad():
        model(ids)
    for handle in handles:
        handle.remove()
    assert torch.allclose(seen["mid"], seen["pre"] + attn.b_O, atol=1e-12, rtol=0)


def test_prepare_replans_after_an_edit_through_data():
    layout, model = _model("add10")
    attention = model.blocks[0].attn
    assert all(group.shared for group in attention.groups)
    ids = _ids(layout, 16, seed=5)
    # .data edits are invisible to the version counters eager forward checks: prepare() is needed
    attention.W_K.data[0, 0, 0] = 3.0
    attention.W_Q.data[0, 0, 0] = 2.0
    model.prepare()
    assert not any(group.shared for group in attention.groups)
    with torch.no_grad():
        assert torch.allclose(model(ids), textbook_logits(model, ids), atol=1e-9, rtol=0)
    # and an export after prepare() keeps the new plan
    program = torch.export.export(model, (ids,))
    with torch.no_grad():
        assert torch.equal(program.module()(ids), model(ids))


def test_an_in_place_edit_is_noticed_by_eager_forward():
    layout, model = _model("add_lsb")
    ids = _ids(layout, 16, seed=6)
    with torch.no_grad():
        model.blocks[0].attn.W_K[0, 0, 0] = 3.0
        model.blocks[0].attn.W_Q[0, 0, 0] = 2.0
        assert torch.allclose(model(ids), textbook_logits(model, ids), atol=1e-9, rtol=0)


@pytest.mark.parametrize("name", ["add10", "add_lsb", "sub", "compare"])
def test_logits_equal_the_reference_with_last_and_the_cache(name):
    layout, model = _model(name)
    ids = _ids(layout, 32, seed=7)
    with torch.no_grad():
        want = textbook_logits(model, ids)
        assert torch.allclose(model(ids), want, atol=1e-9, rtol=0)
        w = layout.answer.width
        assert torch.allclose(model(ids, last=w), want[:, -w:], atol=1e-9, rtol=0)
        cache, steps, split = KVCache(), [], ids.shape[1] // 2
        steps.append(model(ids[:, :split], cache))
        for t in range(split, ids.shape[1]):
            steps.append(model(ids[:, t:t + 1], cache, last=1))
        assert torch.allclose(torch.cat(steps, dim=1), want, atol=1e-9, rtol=0)


def test_to_another_dtype_replans():
    layout, model = _model("add10")
    model = load_compiled(compiled(EXAMPLES / "add10.rasp")[0]).float()
    ids = _ids(layout, 8, seed=8)
    assert all(g.index.dtype == torch.long and g.slope.dtype == torch.float64 for g in model.blocks[0].attn.groups)
    with torch.no_grad():
        assert model(ids).dtype == torch.float32
