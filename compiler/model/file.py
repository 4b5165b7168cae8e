"""model.pt: plain tensors and plain data only, loadable with torch.load(weights_only=True).

It carries everything needed without the program file: config, vocabulary, layout, residual and
weight maps, the provenance of every stored number (the program nodes it serves), the program's
sources (named relative to their common folder) with their sha256, and the compiler version. It
carries no timings, so compiling one program twice writes the same bytes.

A model file is data from anyone: it is bounded before loading and checked whole against one
schema (compiler.model.schema) before any of it is used, and no name in it becomes a path.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from dsl.errors import AdderError
from compiler.ir.attrs import LABEL, SPAN
from compiler import __version__
from compiler.model.transformer import CompiledTransformer
from compiler.model.schema import FORMAT, FORMAT_VERSION, check_archive, plain_name, validate

TIMING_KEYS = ("compile_seconds",)  # they differ from run to run: never in the file


def embedded_names(paths) -> dict[str, str]:
    """Each source's name in the file: its path relative to the folder holding them all, so an
    import's relative path finds it among the embedded sources again."""
    paths = list(paths)
    folder = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    names = {p: os.path.relpath(os.path.abspath(p), folder).replace(os.sep, "/") for p in paths}
    for path, name in names.items():
        if not plain_name(name):
            raise AdderError(f"cannot embed {path} in a model file: its name {name!r} is not a plain file name",
                             hint="rename it with letters, digits, '-', '_' and '.'")
    return names


def provenance_data(ir, names: dict[str, str]) -> dict:
    """ir.provenance as plain data: the program nodes it names, each with its place in the embedded
    sources (line 0 where a node has no place there), and per tensor [[index, [node ids]], ...]."""
    program = ir.program
    used = sorted({n for table in ir.provenance.values() for ids in table.values() for n in ids})
    nodes = []
    for nid in used:
        attrs = ir.graph.nodes[nid]
        span = attrs[SPAN]
        placed = span.file in names
        nodes.append({"id": nid, "node": attrs[LABEL], "file": names.get(span.file, names[program.path]),
                      "line": span.line if placed else 0, "column": span.column if placed else 0,
                      "end_line": (span.end_line or span.line) if placed else 0,
                      "end_column": (span.end_column or span.column) if placed else 0})
    tensors = {name: [[list(index), list(ids)] for index, ids in sorted(table.items())]
               for name, table in ir.provenance.items() if table}
    return {"nodes": nodes, "tensors": tensors}


def save_model(path: str | Path, ir, stats: dict, digest: str) -> None:
    config, state = ir.lowered
    program = ir.program
    names = embedded_names(program.sources)
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "compiler_version": __version__,
        "config": config, "state_dict": {k: v.contiguous() for k, v in state.items()},
        "vocab": list(program.layout.vocab), "layout": program.layout.to_dict(),
        "residual_map": ir.residual_map, "weight_map": ir.weight_map,
        "provenance": provenance_data(ir, names),
        "program": {"path": names[program.path], "source": program.source, "sha256": digest,
                    "sources": {names[p]: text for p, text in program.sources.items()},
                    "overrides": dict(ir.options.get("overrides", {})),
                    "constants": {k: (int(v) if getattr(v, "is_integer", False) else str(v))
                                  for k, v in program.constants.items()}},
        "meaning": ({"field": program.meaning.field, "expression": program.meaning.text}
                    if program.meaning else None),
        "stats": {k: v for k, v in stats.items() if k not in TIMING_KEYS},
    }
    torch.save(payload, str(path))


def load_model(path: str | Path):
    """(model, payload), or an AdderError naming the file and the field that is wrong with it."""
    path = Path(path)
    if not path.exists():
        raise AdderError(f"cannot read model file {path}: no such file")
    if not path.is_file():
        raise AdderError(f"cannot read model file {path}: not a file")
    check_archive(path, str(path))
    try:
        payload = torch.load(str(path), weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises many kinds for a corrupt or foreign file
        raise AdderError(f"{path}: not an adderc model (torch cannot load it: {type(err).__name__})") from None
    validate(payload, str(path))
    # Checked against the config above, the weights fit: a failure here is adderc's own bug.
    model = CompiledTransformer(payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload
