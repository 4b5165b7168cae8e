"""The TransformerLens export: a compiled model loaded in TransformerLens (TL 4.x's native
TransformerBridge, with adderc's sinks and position terms hooked on hook_pattern) gives adderc's
logits on every position, generates the right answers, caches the usual hooks, and the worked
example of docs/transformer_lens.md prints what the page says it prints."""
import contextlib
import io
import json
import re

import pytest
import torch

pytest.importorskip("transformer_lens")

from compiler.api import load_compiled
from compiler.check.inputs import random_batches
from compiler.cli import main
from compiler.export import load_transformer_lens
from compiler.export.to_transformer_lens import FORMAT, export
from compiler.model.file import load_model
from dsl.errors import AdderError
from tests.conftest import ROOT, SEED, compiled, saved_model

EXAMPLES = ROOT / "examples"
# Every example compiles in a few seconds (the slowest, add_lsb and add3, in about 7 s on a loaded
# machine), so none is left out; a slow one would be named here with its reason.
SLOW: dict[str, str] = {}
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.rasp") if p.stem not in SLOW)
DOC = ROOT / "docs" / "transformer_lens.md"
PROMPTS = 64
GENERATED = 300


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """name -> (adderc model file, exported TransformerLens file), float64."""
    folder = tmp_path_factory.mktemp("tl")
    out = {}
    for name in NAMES:
        model_path = saved_model(folder, EXAMPLES / f"{name}.rasp", name=f"{name}.pt")
        model, payload = load_model(model_path)
        export(model, payload, folder / f"{name}.tl.pt")
        out[name] = (model_path, folder / f"{name}.tl.pt")
    return out


@pytest.fixture(scope="session")
def bridges(files):
    """name -> {"model file": bridge, "export": bridge}: both ways of loading."""
    return {name: {"model file": load_transformer_lens(model_path), "export": load_transformer_lens(tl_path)}
            for name, (model_path, tl_path) in files.items()}


def full_sequences(name: str, count: int, seed: int = SEED):
    """(token ids [count, n_ctx] of whole sequences, prompt + right answer, less the last token
    which is never fed; the operands), from the program's meaning."""
    program = compiled(EXAMPLES / f"{name}.rasp")[0].program
    layout, meaning = program.layout, program.meaning
    operands = next(random_batches(layout, count, seed))
    rows = [layout.prompt_tokens(o) + layout.answer_tokens(meaning.expected(o)) for o in operands]
    ids = torch.tensor([[layout.vocab.index(t) for t in row[:layout.n_ctx]] for row in rows])
    return ids, operands


def tl_greedy(bridge, prompts: torch.Tensor, steps: int, fwd_hooks=()) -> torch.Tensor:
    """Greedy decoding with TransformerLens's forward alone (no KV cache): the new tokens."""
    ids = prompts
    with bridge.hooks(fwd_hooks=list(fwd_hooks)):
        for _ in range(steps):
            ids = torch.cat([ids, bridge(ids)[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return ids[:, prompts.shape[1]:]


@pytest.mark.parametrize("how", ["model file", "export"])
@pytest.mark.parametrize("name", NAMES)
def test_logits_match_adderc_on_every_position(name, how, bridges):
    ir = compiled(EXAMPLES / f"{name}.rasp")[0]
    model = load_compiled(ir)
    ids, _ = full_sequences(name, PROMPTS)
    with torch.no_grad():
        want, got = model(ids), bridges[name][how](ids)
    assert got.dtype == torch.float64 and got.shape == want.shape
    assert (got - want).abs().max().item() <= 1e-9


def test_the_examples_exercise_padding_sinks_windows_and_grouped_keys(files):
    """The equality above means something only if the examples have what TL cannot express."""
    configs = {name: torch.load(str(tl), weights_only=True) for name, (_, tl) in files.items()}
    original = [c["adderc_model"]["config"] for c in configs.values()]
    assert any(len(set(c["n_heads"])) > 1 or len(set(c["d_head"])) > 1 for c in original)  # padded heads
    assert any(0 in c["d_mlp"] for c in original) and any(0 in c["n_heads"] for c in original)
    assert any(c.get("n_kv_heads", c["n_heads"]) != c["n_heads"] for c in original)  # grouped keys
    assert any(c.get("tied_unembed") for c in original)
    terms = [t for c in configs.values() for k, t in c["position_terms"].items()]
    assert any(torch.isfinite(t).any() and t.abs().max() > 0 for t in terms)
    sinks = torch.cat([t for c in configs.values() for k, t in c["position_terms"].items() if k.endswith(".sink")])
    windows = torch.cat([t for c in configs.values() for k, t in c["position_terms"].items() if k.endswith(".window")])
    assert torch.isfinite(sinks).any() and torch.isfinite(windows).any()


@pytest.mark.parametrize("name", ["add10", "add_lsb", "sub", "add_hex"])
def test_greedy_generation_gives_the_right_answers(name, bridges):
    ir = compiled(EXAMPLES / f"{name}.rasp")[0]
    layout, meaning = ir.program.layout, ir.program.meaning
    ids, operands = full_sequences(name, GENERATED, seed=SEED + 1)
    answer = layout.sequence_length - layout.prompt_length
    got = tl_greedy(bridges[name]["export"], ids[:, :layout.prompt_length], answer).tolist()
    want = [[layout.vocab.index(t) for t in layout.answer_tokens(meaning.expected(o))] for o in operands]
    assert got == want


def test_run_with_cache_has_the_usual_hooks_with_their_shapes(bridges):
    bridge = bridges["add10"]["export"]
    cfg = bridge.cfg
    ids, _ = full_sequences("add10", 3)
    logits, cache = bridge.run_with_cache(ids)
    B, T = ids.shape
    assert logits.shape == (B, T, cfg.d_vocab)
    for layer in range(cfg.n_layers):
        attn = f"blocks.{layer}.attn"
        assert cache[f"{attn}.hook_pattern"].shape == (B, cfg.n_heads, T, T)
        for name in ("hook_q", "hook_k", "hook_v", "hook_z"):
            assert cache[f"{attn}.{name}"].shape == (B, T, cfg.n_heads, cfg.d_head)
        for name in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out"):
            assert cache[f"blocks.{layer}.{name}"].shape == (B, T, cfg.d_model)
        assert cache[f"blocks.{layer}.mlp.hook_post"].shape == (B, T, cfg.d_mlp)
        pattern = cache[f"{attn}.hook_pattern"]
        # adderc's pattern, not the bridge's: causal, and a row lacks what the sink took
        assert (pattern.triu(diagonal=1) == 0).all()
        assert (pattern.sum(-1) <= 1 + 1e-12).all()
    # in add10 the "=" after b always stops the carry search, so its sink never wins; in sub the
    # sink (-20) of layer 1's head 1 takes most of some rows, and the pattern shows it
    ids_sub, _ = full_sequences("sub", 8)
    _, cache_sub = bridges["sub"]["export"].run_with_cache(ids_sub)
    assert (cache_sub["blocks.1.attn.hook_pattern"][:, 1].sum(-1) < 0.5).any()
    # the residual stream after the last layer is what adderc's model computes
    model = load_compiled(compiled(EXAMPLES / "add10.rasp")[0])
    assert (cache[f"blocks.{cfg.n_layers - 1}.hook_resid_post"] - model.residuals(ids)[-1]).abs().max() <= 1e-9


def test_hooks_a_researcher_adds_run_after_adderc_and_go_away(bridges):
    bridge = bridges["add10"]["export"]
    ids, _ = full_sequences("add10", 8)
    before = bridge(ids)
    zero_pattern = ("blocks.1.attn.hook_pattern", lambda p, hook: p * 0)
    changed = bridge.run_with_hooks(ids, fwd_hooks=[zero_pattern])
    assert (changed - before).abs().max() > 1
    bridge.reset_hooks()  # temporary hooks go; adderc's are permanent
    assert (bridge(ids) - before).abs().max() == 0
    # an edit of the queries reaches adderc's pattern: the carry head's query bias (630) gone
    no_query = ("blocks.1.attn.hook_q", lambda q, hook: q * 0)
    _, cache = bridge.run_with_cache(ids)
    with bridge.hooks(fwd_hooks=[no_query]):
        _, edited = bridge.run_with_cache(ids)
    assert (edited["blocks.1.attn.hook_pattern"] - cache["blocks.1.attn.hook_pattern"]).abs().max() > 0.1
    assert (bridge(ids) - before).abs().max() == 0


def test_ablating_the_carry_head_breaks_carries_only(bridges):
    """The doc's claim, measured another way: zeroing the carry head's pattern (not its z)."""
    bridge = bridges["add10"]["export"]
    cases = {"no carry": [(1234, 4321), (0, 0), (5_000_000_000, 4_999_999_999)],
             "carry": [(1234567890, 9876543210), (9_999_999_999, 1), (5, 5)]}
    layout = compiled(EXAMPLES / "add10.rasp")[0].program.layout

    def sums(pairs, hooks=()):
        prompts = torch.tensor([[layout.vocab.index(t) for t in layout.prompt_tokens({"a": a, "b": b})]
                                for a, b in pairs])
        rows = tl_greedy(bridge, prompts, 11, hooks).tolist()
        return [layout.value_of([layout.vocab[i] for i in row]) for row in rows]

    def no_carry_head(pattern, hook):
        pattern[:, 0] = 0
        return pattern
    ablate = [("blocks.1.attn.hook_pattern", no_carry_head)]
    for kind, pairs in cases.items():
        assert sums(pairs) == [a + b for a, b in pairs]
        broken = [s != a + b for s, (a, b) in zip(sums(pairs, ablate), pairs)]
        assert not any(broken) if kind == "no carry" else all(broken)


def _doc_blocks():
    text = DOC.read_text(encoding="utf-8")
    return {m.group(1).strip(): m.group(2) for m in re.finditer(r"^```([^\n]*)\n(.*?)^```[ \t]*$", text, re.S | re.M)}


def test_the_docs_worked_example_prints_what_the_page_says(tmp_path, monkeypatch):
    """The page's code, run as written on a freshly compiled add10, prints the numbers it quotes."""
    blocks = _doc_blocks()
    code, quoted = blocks["python ablate_carry.py"], blocks["text ablate_carry.py output"]
    saved_model(tmp_path, EXAMPLES / "add10.rasp", name="add10.pt")
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(DOC), "exec"), {"__name__": "__main__"})
    assert printed.getvalue() == quoted
    # and the claims themselves: carry-free sums survive the ablation, sums with a carry do not
    numbers = [float(x) for x in re.findall(r"([\d.]+)%", quoted)]
    no_carry_before, no_carry_after, carry_before, carry_after = numbers[:4]
    assert no_carry_before == no_carry_after == 100.0 and carry_before == 100.0 and carry_after < 10.0


def test_cli_export_writes_a_file_tl_loads(files, tmp_path, capsys):
    model_path, _ = files["add10"]
    out = tmp_path / "add10.tl.pt"
    assert main(["export", str(model_path), "--to", "transformer-lens", "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert torch.load(str(out), weights_only=True)["format"] == FORMAT
    assert main(["export", str(model_path), "--to", "transformer-lens", "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "transformer-lens" and report["output"] == str(out) and report["notes"]
    ids, _ = full_sequences("add10", 4)
    model, _ = load_model(model_path)
    assert (load_transformer_lens(out)(ids) - model(ids)).abs().max() <= 1e-9


def test_bad_paths_are_adder_errors(files, tmp_path, capsys):
    with pytest.raises(AdderError, match="no such file"):
        load_transformer_lens(tmp_path / "missing.pt")
    with pytest.raises(AdderError, match="not a file"):
        load_transformer_lens(tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(AdderError):
        load_transformer_lens(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "something else"}, str(foreign))
    with pytest.raises(AdderError, match="not an adderc model or TransformerLens export"):
        load_transformer_lens(foreign)
    assert main(["export", str(tmp_path / "missing.pt"), "--to", "transformer-lens",
                 "-o", str(tmp_path / "x.tl.pt")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_changed_export_is_refused(files, tmp_path):
    _, tl_path = files["add10"]
    data = torch.load(str(tl_path), weights_only=True)
    data["state_dict"]["blocks.1.attn.W_Q"] = data["state_dict"]["blocks.1.attn.W_Q"] + 1
    changed = tmp_path / "changed.tl.pt"
    torch.save(data, str(changed))
    with pytest.raises(AdderError, match="state_dict is not what its adderc_model gives"):
        load_transformer_lens(changed)
