"""model.pt: plain tensors and plain data only, loadable with torch.load(weights_only=True).

The same payload may be written as safetensors instead (a name ending .safetensors; see
compiler.export.to_safetensors): load_model tells the two kinds apart by the file's first bytes,
never by its name, and checks a safetensors file's own framing (header size, JSON, each tensor's
dtype, shape and place in the data) before the payload it holds meets the same schema.

It carries everything needed without the program file: config, vocabulary, layout, residual and
weight maps, the provenance of every stored number (the program nodes it serves), the program's
sources (named relative to their common folder) with their sha256, and the compiler version. It
carries no timings, so compiling one program twice writes the same bytes.

A model file is data from anyone: it is bounded before loading and checked whole against one
schema (compiler.model.schema) before any of it is used, and no name in it becomes a path.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from dsl.errors import AdderError
from compiler.ir.attrs import LABEL, SPAN
from compiler import __version__
from compiler.model.safetensors_file import write as write_safetensors
from compiler.model.structure import empty as empty_structure
from compiler.model.transformer import CompiledTransformer
from compiler.model.schema import FORMAT, FORMAT_VERSION, MAX_UNCOMPRESSED, check_archive, plain_name, validate

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


SAFETENSORS_SUFFIX = ".safetensors"
# The header holds every field but the weights as JSON: add10's takes 11 kB, and a 1,000-digit
# adder's provenance stays well under this bound, which a hostile length cannot pass.
MAX_SAFETENSORS_HEADER = 16 * 2 ** 20
SAFETENSORS_DTYPES = {"F32": torch.float32, "F64": torch.float64}  # what a model's config.dtype allows
TORCH_ZIP_MAGIC = b"PK\x03\x04"


def kind_for_name(path: str | Path) -> str:
    """The kind of file `adderc PROGRAM -o path` writes: safetensors for a name ending
    .safetensors, the torch archive (model.pt) otherwise."""
    return "safetensors" if Path(path).suffix.lower() == SAFETENSORS_SUFFIX else "torch"


def save_model(path: str | Path, ir, stats: dict, digest: str, kind: str | None = None) -> None:
    """Write the compiled model to `path` as `kind` ("torch" or "safetensors"; default: by the
    name, see kind_for_name)."""
    payload = model_payload(ir, stats, digest)
    if (kind or kind_for_name(path)) == "safetensors":
        write_safetensors(payload, path)
    else:
        torch.save(payload, str(path))


def model_payload(ir, stats: dict, digest: str) -> dict:
    """Everything a model file holds, as plain data and tensors."""
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
        "structure": ir.structure if ir.structure is not None else empty_structure(),
        "stats": {k: v for k, v in stats.items() if k not in TIMING_KEYS},
    }
    return payload


def load_model(path: str | Path):
    """(model, payload), or an AdderError naming the file and the field that is wrong with it."""
    path = Path(path)
    if not path.exists():
        raise AdderError(f"cannot read model file {path}: no such file")
    if not path.is_file():
        raise AdderError(f"cannot read model file {path}: not a file")
    if _starts_like_safetensors(path):
        payload = read_safetensors(path, str(path))
    else:
        payload = _read_torch(path)
    validate(payload, str(path))
    # Checked against the config above, the weights fit: a failure here is adderc's own bug.
    model = CompiledTransformer(payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload


def _read_torch(path: Path) -> dict:
    check_archive(path, str(path))
    try:
        # given a file, not a name: torch.load reads a name ending .safetensors as safetensors, and
        # the kind here is the bytes' (a torch archive), not the name's
        with open(path, "rb") as f:
            return torch.load(f, weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises many kinds for a corrupt or foreign file
        raise AdderError(f"{path}: not an adderc model (torch cannot load it: {type(err).__name__})") from None


def _starts_like_safetensors(path: Path) -> bool:
    """A safetensors file opens with its header's length (8 bytes) and then the header's '{'; a
    torch archive opens with a zip entry. Anything else goes to the zip reader, which says so."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as err:
        raise AdderError(f"cannot read model file {path}: {err.strerror or err}") from None
    return not head.startswith(TORCH_ZIP_MAGIC) and len(head) == 9 and head[8:9] == b"{"


class _Framing:
    """Failures of a safetensors file's own structure, named after the file and the part."""

    def __init__(self, name: str):
        self.name = name

    def fail(self, part: str, problem: str):
        raise AdderError(f"{self.name}: safetensors {part}: {problem}")


def _strict_json(text: str, framing: _Framing, part: str):
    """JSON with no repeated key (which one would win is the reader's choice) and no NaN or
    infinity (not JSON); deep nesting or a huge number is a failure, not a crash."""
    def pairs(items):
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            framing.fail(part, f"the key {next(k for k in keys if keys.count(k) > 1)!r} is repeated")
        return dict(items)

    def constant(word):
        framing.fail(part, f"{word} is not JSON")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError) as err:
        framing.fail(part, f"not JSON ({type(err).__name__}: {str(err)[:80]})")


def read_safetensors(path: Path, name: str) -> dict:
    """The payload a safetensors model file holds: its tensors as state_dict, each metadata entry
    parsed as JSON. Only its framing is checked here; the payload still meets schema.validate."""
    framing = _Framing(name)
    size = path.stat().st_size
    if size > MAX_UNCOMPRESSED:
        framing.fail("file", f"{size:,} bytes, more than this adderc reads ({MAX_UNCOMPRESSED:,})")
    with open(path, "rb") as f:
        header_size = int.from_bytes(f.read(8), "little")
        if header_size > MAX_SAFETENSORS_HEADER:
            framing.fail("header", f"{header_size:,} bytes, more than this adderc reads ({MAX_SAFETENSORS_HEADER:,})")
        if 8 + header_size > size:
            framing.fail("header", f"{header_size:,} bytes, but the file ends {size - 8:,} bytes after the length: "
                                   "truncated")
        raw = f.read(header_size)
        data = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        framing.fail("header", "not UTF-8 text")
    header = _strict_json(text, framing, "header")
    if not isinstance(header, dict):
        framing.fail("header", "not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        framing.fail("__metadata__", "not a mapping of text to text")
    if "state_dict" in metadata:
        framing.fail("__metadata__.state_dict", "the weights are the file's tensors, not metadata")
    payload = {key: _strict_json(value, framing, f"__metadata__.{key}") for key, value in metadata.items()}
    payload["state_dict"] = _tensors(header, data, framing)
    return payload


def _tensors(header: dict, data: bytes, framing: _Framing) -> dict:
    """Each tensor the header names, checked to lie in the data, the tensors together covering it
    once over (the format's rule: no overlap, no gap, nothing after)."""
    if sys.byteorder != "little":  # safetensors is little-endian; torch.frombuffer reads native order
        framing.fail("data", "this machine is big-endian; adderc reads safetensors on little-endian machines only")
    spans = []
    for key, entry in header.items():
        part = f"tensor {key[:60]!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            framing.fail(part, "not {dtype, shape, data_offsets}")
        dtype = SAFETENSORS_DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        if dtype is None:
            framing.fail(part, f"dtype {str(entry['dtype'])[:20]!r}; an adderc model holds F32 or F64")
        shape, offsets = entry["shape"], entry["data_offsets"]
        if (not isinstance(shape, list) or len(shape) > 8
                or not all(type(n) is int and 0 <= n <= len(data) for n in shape)):
            framing.fail(part, f"shape {str(shape)[:40]} is not a list of sizes")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(n) is int for n in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= len(data)):
            framing.fail(part, f"data_offsets {str(offsets)[:40]} do not lie in the {len(data):,} bytes of data")
        numel = 1
        for n in shape:
            numel *= n
        itemsize = dtype.itemsize
        if offsets[1] - offsets[0] != numel * itemsize:
            framing.fail(part, f"{offsets[1] - offsets[0]:,} bytes of data for shape {shape} of {entry['dtype']}")
        spans.append((offsets[0], offsets[1], key, dtype, shape))
    end = 0
    tensors = {}
    for begin, stop, key, dtype, shape in sorted(spans, key=lambda s: (s[0], s[1])):
        if begin != end:
            framing.fail(f"tensor {key[:60]!r}", "overlaps another tensor's data" if begin < end
                         else f"leaves bytes {end:,} to {begin:,} of the data unused")
        end = stop
        chunk = bytearray(data[begin:stop])
        tensors[key] = (torch.frombuffer(chunk, dtype=dtype).reshape(shape) if chunk
                        else torch.zeros(shape, dtype=dtype))
    if end != len(data):
        framing.fail("data", f"{len(data) - end:,} bytes after the last tensor")
    return tensors
