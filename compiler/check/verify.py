"""Check a compiled model against its program: outputs, values inside, and margins.

Evidence, all in one report:
  outputs   every answer position, teacher-forced (one pass checks every position: if every earlier
            token is right, the next argmax is what greedy decoding writes) and by real greedy
            generation on a subset; inputs are exhaustive when the layout's input space is small,
            else edge cases, carry-structure strata and seeded random samples;
  inside    on a subset, every stored program value decoded from the residual stream right after
            the sublayer that writes it, against the sympy interpreter; the first divergence is
            named by program node, source line, layer, position and input;
  margins   the smallest gap between the right token's logit and the runner-up, and the largest
            error of a decoded value, in float64 and float32.
The program's own meaning (`meaning sum = a + b`) is checked against its semantics on the subset.

The verdict has three values, each with its exit status: every check holds (0); a mismatch, shown
on a concrete input (1); nothing wrong found, but the proof asked for could not be completed (4).
Each line of the report is handed to `emit` as soon as its check completes, so a run cut short
keeps what it found.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import torch

from dsl.layout import SIGN_TOKENS
from dsl.meaning import Unsupported, magnitude_bound
from dsl.semantics import EvaluationError, evaluate
from compiler.api import run_prompts
from compiler.check import inputs
from compiler.check.program import program_from_payload, same_program
from compiler.check.prove import prove as prove_model
from compiler.progress import Progress
from compiler.check.replay import (counterexample, expected_answer, expected_function, model_in, sequences,
                                   teacher_forced, teacher_forced_ids)
from compiler.check.stored import exact_stored, same_value, stored_values
from compiler.ir.maps import ResidualEntry
from compiler.ir.slots import layer_of

EXHAUSTIVE_LIMIT = 200_000
HOLDS, MISMATCH, UNPROVED = "holds", "mismatch", "could not prove"
EXIT_CODES = {HOLDS: 0, MISMATCH: 1, UNPROVED: 4}
RESULT_TEXT = {HOLDS: "every check holds", MISMATCH: "MISMATCH", UNPROVED: "could not prove (no mismatch found)"}
SHOWN_COUNTEREXAMPLES = 5


@dataclass
class Report:
    seed: int
    checks: dict = field(default_factory=dict)  # name -> {"checked", "wrong", ...}
    counterexamples: list = field(default_factory=list)
    inside: dict = field(default_factory=dict)
    margins: dict = field(default_factory=dict)
    meaning: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    proof: dict = field(default_factory=dict)  # dtype -> Proof.to_dict(), with --prove
    requires: list = field(default_factory=list)  # the program's `require`s: [{"condition", "at"}]
    overrides: dict = field(default_factory=dict)  # the -D values the model was compiled with

    @property
    def status(self) -> str:
        """HOLDS, MISMATCH (some concrete input shows the model or the program wrong) or UNPROVED."""
        if (any(c["wrong"] for c in self.checks.values()) or self.inside.get("divergence")
                or self.meaning.get("wrong", 0) or any(p["status"] == "counterexample" for p in self.proof.values())):
            return MISMATCH
        if any(p["status"] != "proved" for p in self.proof.values()):
            return UNPROVED
        return HOLDS

    @property
    def ok(self) -> bool:
        return self.status == HOLDS

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict:
        return {"ok": self.ok, "status": self.status, "result": RESULT_TEXT[self.status],
                "exit_code": self.exit_code, "seed": self.seed, "checks": self.checks,
                "counterexamples": self.counterexamples, "inside": self.inside, "margins": self.margins,
                "meaning": self.meaning, "timings": self.timings, "proof": self.proof,
                "requires": self.requires, "overrides": self.overrides}


def _record_undefined(report, entry, undefined, dtype, source):
    entry["checked"] += len(undefined)
    entry["wrong"] += len(undefined)
    for operands, why in undefined[: max(0, 20 - len(report.counterexamples))]:
        report.counterexamples.append({"dtype": dtype, "source": source, "operands": operands,
                                       "expected": f"no answer ({why})", "got": "-"})


INT64_SAFE = 2 ** 62


def tensor_batches(layout, meaning, count: int, seed: int, batch: int, device: str):
    """Seeded random operands, their expected answers and whole token-id sequences, built with
    tensor operations on `device`; None when int64 cannot hold the arithmetic exactly."""
    if meaning is None:
        return None
    bounds = {f.name: layout.base ** f.width - 1 for f in layout.operands}
    bound = magnitude_bound(meaning.expression, bounds, meaning.constants)
    if bound is None or bound >= INT64_SAFE or layout.base ** layout.answer.width >= INT64_SAFE:
        return None
    for requirement in layout.requires:
        size = magnitude_bound(requirement.expression, bounds, requirement.constants)
        if size is None or size >= INT64_SAFE:
            return None
    try:
        zeros = {name: torch.zeros(1, dtype=torch.long) for name in bounds}
        meaning.expected_tensor(zeros)
        layout.admits_tensor(zeros)
    except (Unsupported, TypeError, RuntimeError):
        return None

    def generate():
        generator = torch.Generator(device=device).manual_seed(seed)
        left, attempts = count, inputs.REJECTION_LIMIT * count
        while left > 0 and attempts > 0:
            n = min(batch, left)
            operands = {name: torch.randint(0, top + 1, (n,), generator=generator, device=device)
                        for name, top in bounds.items()}
            attempts -= n
            admitted = layout.admits_tensor(operands)
            if admitted is not None:  # a `require`: only the inputs that meet it
                admitted = admitted.expand(n)
                operands = {name: values[admitted] for name, values in operands.items()}
                n = int(admitted.sum())
                if not n:
                    continue
            left -= n
            answer = torch.as_tensor(meaning.expected_tensor(operands), device=device).expand(n)
            yield operands, answer, _assemble(layout, operands, answer, n, device)
    return generate()


def _assemble(layout, operands, answer, n, device):
    """Token ids for whole sequences; digits are the first tokens of the vocabulary."""
    columns = []
    for index, item in enumerate(layout.items):
        if item[0] == "literal":
            columns.append(torch.full((n, 1), layout.vocab.index(item[1]), device=device))
            continue
        value = answer if index >= layout.answer_index else operands[item[1]]
        if layout.item_signed(item):
            plus, minus = (layout.vocab.index(t) for t in SIGN_TOKENS)
            columns.append(torch.where(value < 0, minus, plus)[:, None])
            value = value.abs()
        value = value.clamp(min=0)  # answers that do not fit are caught by the range check below
        digits = [torch.div(value, layout.base ** i, rounding_mode="floor") % layout.base for i in range(item[2])]
        if layout.item_order(item) == "msb_first":
            digits = digits[::-1]
        columns.append(torch.stack(digits, dim=1))
    return torch.cat(columns, dim=1)


def _input_sets(layout, samples, per_stratum, seed):
    """The named input sets the outputs are checked on, each a maker of batches."""
    if inputs.input_space_size(layout) <= EXHAUSTIVE_LIMIT:
        return [("exhaustive", lambda: iter([list(inputs.exhaustive(layout))]))]
    sets = [("edge cases", lambda: iter([inputs.edge_cases(layout)]))]
    if len(layout.operands) >= 2:
        sets.append(("carry strata", lambda: iter([inputs.stratified(layout, per_stratum, seed)])))
    if samples:
        sets.append((f"random (seed {seed})", lambda: inputs.random_batches(layout, samples, seed, 8192)))
    return sets


def verify(payload: dict, program=None, *, samples: int = 1_000_000, seed: int = 20261122,
           per_stratum: int = 20, inside_count: int = 300, greedy_count: int = 2000,
           device: str = "cpu", progress: bool = True, prove: bool = False, emit=None) -> Report:
    """The report on a model. `emit`, if given, receives each line of the summary (all but the
    heading) as soon as the check behind it completes."""
    emit = emit or (lambda line: None)
    program = program or program_from_payload(payload, None)
    # Stored values are matched to program nodes by id, which only holds for the compiled program.
    compiled_from_it = same_program(program, payload)
    layout = program.layout
    report = Report(seed, overrides=dict(payload["program"].get("overrides", {})))
    expected_fn = expected_function(program, layout)
    size = inputs.input_space_size(layout)
    sets = _input_sets(layout, samples, per_stratum, seed)
    fast_random = samples and size > EXHAUSTIVE_LIMIT and \
        tensor_batches(layout, program.meaning, 1, seed, 1, device) is not None
    report.requires = [{"condition": r.text, "at": r.where} for r in layout.requires]
    if report.requires:
        emit(_requires_line(report.requires))
    _check_meaning(program, layout, report, seed)
    if report.meaning.get("stated"):
        emit(_meaning_line(report.meaning))

    for dtype in ("float64", "float32"):
        model = model_in(payload, dtype, device)
        started = time.perf_counter()
        smallest_gap = float("inf")
        for name, make in sets:
            key, before = f"{dtype} {name}", len(report.counterexamples)
            entry = report.checks.setdefault(key, {"checked": 0, "wrong": 0})
            total = size if name == "exhaustive" else (samples if name.startswith("random") else None)
            bar = Progress(key, total or 0, progress)
            if name.startswith("random") and fast_random:
                gap = _random_on_tensors(model, layout, program.meaning, samples, seed, device, entry, report,
                                         dtype, name, bar)
            else:
                gap = _check_batches(model, layout, make, expected_fn, entry, report, dtype, name, bar, device)
            smallest_gap = min(smallest_gap, gap)
            bar.close()
            _emit_check(report, key, before, emit)
        report.margins[f"{dtype} smallest logit gap"] = smallest_gap
        before = len(report.counterexamples)
        _greedy(model, layout, expected_fn, report, dtype, seed, greedy_count, device)
        _emit_check(report, f"{dtype} greedy generation", before, emit)
        if compiled_from_it:
            _inside(model, payload, program, report, dtype, seed, inside_count, expected_fn, device)
        else:
            report.inside["skipped"] = "the program differs from the one this model was compiled from"
        report.timings[f"{dtype} seconds"] = round(time.perf_counter() - started, 2)
        checked = sum(c["checked"] for k, c in report.checks.items() if k.startswith(dtype) and "greedy" not in k)
        report.timings[f"{dtype} sums per second"] = round(checked / max(report.timings[f"{dtype} seconds"], 1e-9))
    report.margins["float32 safe"] = (all(c["wrong"] == 0 for k, c in report.checks.items() if k.startswith("float32"))
                                      and report.margins.get("float32 smallest logit gap", 0) > 0
                                      and not report.inside.get("divergence"))
    for line in [_inside_line(report.inside)] + _margin_lines(report.margins):
        emit(line)
    if prove:
        for dtype in ("float64", "float32"):
            report.proof[dtype] = prove_model(payload, program, dtype, seed, progress).to_dict()
            emit(_proof_line(dtype, report.proof[dtype]))
    emit(_result_line(report))
    return report


def _check_batches(model, layout, make, expected_fn, entry, report, dtype, name, bar, device):
    """Teacher-forced outputs on every batch of one input set; returns the smallest logit gap."""
    smallest_gap = float("inf")
    for batch in make():
        for start in range(0, len(batch), 8192):
            chunk, rows, answers, undefined = sequences(layout, batch[start:start + 8192], expected_fn)
            _record_undefined(report, entry, undefined, dtype, name)
            bar.advance(len(undefined))
            if not rows:
                continue
            wrong, gap = teacher_forced(model, layout, rows, device)
            smallest_gap = min(smallest_gap, float(gap.min()))
            entry["checked"] += len(chunk)
            entry["wrong"] += int(wrong.sum())
            for i in wrong.nonzero()[:, 0].tolist():
                if len(report.counterexamples) < 20:
                    report.counterexamples.append(counterexample(model, layout, chunk[i], answers[i],
                                                                  dtype, name, device))
            bar.advance(len(chunk))
    return smallest_gap


def _emit_check(report, key, before, emit):
    """A check's line and the counterexamples it found, tagged with it so summary() places them alike."""
    for c in report.counterexamples[before:]:
        c["check"] = key
    for line in _check_lines(report, key):
        emit(line)


def _random_on_tensors(model, layout, meaning, samples, seed, device, entry, report, dtype, name, bar):
    # A GPU wants big batches; two CPU cores are fastest while a batch stays in cache.
    batch = 1 << 17 if str(device).startswith("cuda") else 2048
    smallest_gap = float("inf")
    top = layout.base ** layout.answer.width
    for operands, answer, ids in tensor_batches(layout, meaning, samples, seed, batch, device):
        fits = (answer.abs() < top) if layout.answer.signed else (answer >= 0) & (answer < top)
        wrong, gap = teacher_forced_ids(model, layout, ids)
        wrong = wrong | ~fits.cpu()
        smallest_gap = min(smallest_gap, float(gap.min()))
        entry["checked"] += len(answer)
        entry["wrong"] += int(wrong.sum())
        for i in wrong.nonzero()[:, 0].tolist()[: max(0, 20 - len(report.counterexamples))]:
            values = {k: int(v[i]) for k, v in operands.items()}
            report.counterexamples.append(counterexample(model, layout, values, int(answer[i]), dtype, name, device)
                                          if bool(fits[i]) else {"dtype": dtype, "source": name, "operands": values,
                                                                 "expected": f"{int(answer[i])} (does not fit)",
                                                                 "got": "-"})
        bar.advance(len(answer))
    return smallest_gap


def _check_meaning(program, layout, report, seed):
    """The program's semantics against its stated meaning, on edge cases, strata and a sample."""
    if program.meaning is None:
        report.meaning = {"stated": False}
        return
    candidates = inputs.edge_cases(layout)
    if len(layout.operands) >= 2:
        candidates += inputs.stratified(layout, 2, seed)
    candidates += next(inputs.random_batches(layout, 200, seed + 1, 200), [])
    wrong, first = 0, None
    for operands in candidates:
        expected, answer_tokens, why = expected_answer(layout, program.meaning.expected, operands)
        if why is not None:
            wrong += 1
            first = first or {"operands": operands, "why": f"the meaning gives no answer that fits: {why}"}
            continue
        full = layout.prompt_tokens(operands) + answer_tokens
        try:
            got = evaluate(program, full[:-1]).output[layout.prompt_length - 1:]
        except EvaluationError as err:
            wrong += 1
            first = first or {"operands": operands, "why": str(err)}
            continue
        if got != full[layout.prompt_length:]:
            wrong += 1
            first = first or {"operands": operands, "why": f"program writes {''.join(got)}, meaning says "
                                                          f"{''.join(full[layout.prompt_length:])}"}
    report.meaning = {"stated": True, "expression": f"{program.meaning.field} = {program.meaning.text}",
                      "checked": len(candidates), "wrong": wrong, "first": first}


def _greedy(model, layout, expected_fn, report, dtype, seed, count, device):
    batch = inputs.edge_cases(layout)[:count]
    if count > len(batch):
        batch += next(inputs.random_batches(layout, count - len(batch), seed + 2, count), [])
    prompts = [layout.prompt_tokens(o) for o in batch]
    answers = run_prompts(model, layout, prompts)
    entry = {"checked": len(batch), "wrong": 0}
    for operands, got in zip(batch, answers):
        _, tokens, why = expected_answer(layout, expected_fn, operands)
        want = layout.written_answer(tokens) if why is None else f"no answer ({why})"
        if got != want:
            entry["wrong"] += 1
            if len(report.counterexamples) < 20:
                report.counterexamples.append({"dtype": dtype, "source": "greedy", "operands": operands,
                                               "expected": want, "got": got})
    report.checks[f"{dtype} greedy generation"] = entry


def _inside(model, payload, program, report, dtype, seed, count, expected_fn, device):
    """Every stored value at every position, decoded, against the interpreter."""
    layout = program.layout
    residual_map = payload["residual_map"]
    batch = inputs.edge_cases(layout)
    if len(layout.operands) >= 2:
        batch += inputs.stratified(layout, 1, seed)
    batch = batch[:count]
    if len(batch) < count:
        batch += next(inputs.random_batches(layout, count - len(batch), seed + 3, count), [])
    batch, rows, _, _ = sequences(layout, batch, expected_fn)  # undefined inputs are reported elsewhere
    rows = [r[:-1] for r in rows]
    if not rows:
        return
    index = {t: i for i, t in enumerate(layout.vocab)}
    ids = torch.tensor([[index[t] for t in r] for r in rows], device=device)
    with torch.no_grad():
        states = [s.cpu() for s in model.residuals(ids)]
    largest_error, smallest_categorical = 0.0, float("inf")
    divergence = report.inside.get("divergence")
    order = sorted((e for e in residual_map if not e.get("helper")), key=lambda e: (e["sublayer"], e["dims"][0]))
    typed = {e["id"]: ResidualEntry.from_dict(e) for e in order}
    for row, (operands, tokens) in enumerate(zip(batch, rows)):
        try:
            reference = evaluate(program, tokens)
        except EvaluationError as err:
            # The program has no value on a sequence its meaning writes: a divergence to report
            # at the value that has none, not a crash of the verifier.
            divergence = divergence or _undefined_divergence(program, err, dtype, operands)
            continue
        decoded = stored_values(typed.values(), states, row)
        for entry in order:
            want, got = exact_stored(typed[entry["id"]], reference.values), decoded[entry["id"]]
            if want is None:
                continue
            for position, (w, g) in enumerate(zip(want, got)):
                if entry["encoding"] == "numerical":
                    error = abs(g - float(w))
                    largest_error = max(largest_error, error)
                    bad = error > 0.25  # decisions downstream tolerate a quarter of the smallest gap
                else:
                    block = states[entry["sublayer"]][row, position, entry["dims"]]
                    top = torch.topk(block, min(2, len(entry["dims"]))).values
                    if len(top) > 1:
                        smallest_categorical = min(smallest_categorical, float(top[0] - top[1]))
                    bad = not same_value(typed[entry["id"]], g, w)
                if bad and divergence is None:
                    divergence = {"dtype": dtype, "node": _value_name(program, entry), "line": entry["line"],
                                  "column": entry["column"], "sublayer": entry["sublayer"],
                                  "layer": layer_of(entry["sublayer"]) if entry["sublayer"] else "embedding",
                                  "position": position, "operands": operands, "expected": str(w), "got": str(g)}
    report.inside.setdefault("checked_inputs", 0)
    report.inside["checked_inputs"] += len(batch)
    report.inside["divergence"] = divergence
    report.margins[f"{dtype} largest value error"] = largest_error
    if smallest_categorical != float("inf"):
        report.margins[f"{dtype} smallest one-hot margin"] = smallest_categorical


def _undefined_divergence(program, err, dtype, operands) -> dict:
    node = err.node
    span = node.span if node is not None else None
    label = next(iter(node.names), None) if node is not None and node.names else None
    return {"dtype": dtype, "node": label or (node.label if node is not None else "the output"),
            "line": span.line if span else "-", "column": span.column if span else "-", "sublayer": "-",
            "layer": "-", "position": "-", "operands": operands, "expected": f"a value ({err})", "got": "-"}


def _value_name(program, entry) -> str:
    """A stored value as its reader knows it: the model file's label, or, where that is an
    internal id (an expression written over several lines), its source text."""
    if not re.search(r"#\d+", entry["node"]):
        return entry["node"]
    node = next((n for n in program.nodes if n.id == entry["id"]), None)
    lines = program.sources.get(node.span.file, "").splitlines() if node is not None else []
    if not 1 <= entry["line"] <= len(lines):
        return f"the value at line {entry['line']}"
    text = lines[entry["line"] - 1][entry["column"] - 1:].strip()
    return text if len(text) <= 48 else text[:45] + "..."


def heading(program_path: str, seed: int) -> str:
    return f"verify {program_path} (seed {seed})"


def summary(report: Report, program_path: str) -> str:
    """The whole report, in the order verify() emits its lines."""
    lines = [heading(program_path, report.seed)]
    if report.requires:
        lines.append(_requires_line(report.requires))
    if report.meaning.get("stated"):
        lines.append(_meaning_line(report.meaning))
    for name in report.checks:
        lines += _check_lines(report, name)
    lines += [_inside_line(report.inside)] + _margin_lines(report.margins)
    lines += [_proof_line(dtype, proof) for dtype, proof in report.proof.items()]
    lines.append(_result_line(report))
    return "\n".join(lines)


def _requires_line(requires) -> str:
    conditions = " and ".join(f"{r['condition']} ({r['at']})" for r in requires)
    return f"  inputs: those with {conditions}; on the others the program is unspecified"


def _meaning_line(m) -> str:
    return (f"  program vs its meaning {m['expression']}: {m['checked'] - m['wrong']}/{m['checked']} agree"
            + (f"; first disagreement {m['first']}" if m["first"] else ""))


def _check_lines(report, name) -> list[str]:
    c = report.checks[name]
    lines = [f"  {name:<34} {c['checked'] - c['wrong']:>9,}/{c['checked']:,} right"
             + ("  (no input drawn meets the requirements)" if not c["checked"] and report.requires else "")]
    for c in report.counterexamples[:SHOWN_COUNTEREXAMPLES]:
        if c.get("check") == name:
            lines.append(f"  counterexample [{c['dtype']}, {c['source']}]: {c['operands']} -> {c['got']}, "
                         f"expected {c['expected']}"
                         + (f", carries {c['carry_pattern']}" if c.get("carry_pattern") else ""))
    return lines


def _inside_line(inside) -> str:
    if inside.get("skipped"):
        return f"  inside: skipped, {inside['skipped']}"
    if inside.get("divergence"):
        d = inside["divergence"]
        return (f"  inside: first divergence at '{d['node']}' (line {d['line']}, layer {d['layer']}, "
                f"position {d['position']}) on {d['operands']} [{d['dtype']}]: expected {d['expected']}, "
                f"got {d['got']}")
    return (f"  inside: every stored value matches the interpreter on {inside.get('checked_inputs', 0)} "
            f"inputs (both dtypes)")


def _margin_lines(margins) -> list[str]:
    return [f"  {name:<34} {value:.6g}" if isinstance(value, float) else f"  {name:<34} {value}"
            for name, value in margins.items()]


def _proof_line(dtype, proof) -> str:
    status = proof["status"] + (f": {proof['reason']}" if proof["reason"] else "")
    if proof["status"] == "proved":
        status += (f" for every input of the layout ({proof['seconds']:.1f} s; largest proven value error "
                   f"{max(proof['errors'].values(), default=0):.3g}, logit margin "
                   f"{proof['margins'].get('smallest logit margin after errors', float('nan')):.3g})")
    return f"  proof ({dtype} weights): {status}"


def _result_line(report) -> str:
    return "  result: " + RESULT_TEXT[report.status]
