"""What the command line, the tests and the benchmarks share: compile a file, run prompts."""
from __future__ import annotations

import time

import torch

from dsl.resolve import load_program, source_digest
from compiler.model.decode import greedy, trim
from compiler.model.transformer import CompiledTransformer
from compiler.pipeline import PASSES, compile_program
from compiler.progress import Progress
from compiler.stats import model_stats


def compile_file(path, overrides=None, dtype="float64", text=None, progress: bool = False):
    """(ir, stats, sha256 of the sources) for a program file."""
    started = time.perf_counter()
    program = load_program(path, overrides, text)
    with Progress(f"compile {program.path}: passes", len(PASSES), progress) as bar:
        ir = compile_program(program, {"dtype": dtype, "overrides": dict(overrides or {})}, bar.advance)
    seconds = time.perf_counter() - started  # parsing and every pass, as a user waits for them
    config, state = ir.lowered
    return ir, model_stats(config, state, seconds, ir.structure), source_digest(program)


def load_compiled(ir):
    """The torch module for a compiled IR."""
    config, state = ir.lowered
    model = CompiledTransformer(config)
    model.load_state_dict(state)
    return model.eval()


def run_prompts(model, layout, prompts: list[list[str]], batch_size: int = 4096, progress: bool = False) -> list[str]:
    """Greedy continuations (without the end token) for prompts given as token lists."""
    vocab = layout.vocab
    end_id = vocab.index(layout.end_token) if layout.end_token else None
    max_new = layout.sequence_length - layout.prompt_length
    results = []
    bar = Progress("run: prompts", len(prompts), progress)
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        ids = torch.tensor([[vocab.index(t) for t in p] for p in chunk], dtype=torch.long)
        generated = greedy(model, ids, max_new, end_id).tolist()
        results.extend("".join(vocab[i] for i in trim(row, end_id)) for row in generated)
        bar.advance(len(chunk))
    bar.close()
    return results
