"""A model file written as safetensors: the weights as its tensors, the rest of the file as its metadata.

safetensors holds tensors and a mapping of text to text, nothing that runs when it is read. Every
field of the model file but state_dict (format, config, vocab, layout, the residual and weight
maps, provenance, program, meaning, stats) is one metadata entry, its value written as JSON. The
tensors are written as stored, so reading them back gives the same bits, and adderc reads such a
file wherever it reads model.pt (compiler.model.file.load_model tells the two apart by their bytes).
It is one of the two kinds of model file `adderc PROGRAM -o` writes, and `adderc export --to
safetensors` writes it from a model.pt.

The file is framed here, by the format's published rules (an 8-byte little-endian header length,
the header as JSON padded with spaces to 8 bytes, then the tensors' bytes back to back), not by
the safetensors library: the library keeps the metadata in a hash map and writes its entries in
a different order on every run, and compiling one program twice must write the same bytes. The
tests read every file written here back with the library itself.
"""
from __future__ import annotations

import ctypes
import json
import sys
from pathlib import Path

import torch

from dsl.errors import AdderError

STATE = "state_dict"  # the one field that is tensors, not metadata
DTYPE_NAMES = {torch.float32: "F32", torch.float64: "F64"}  # the dtypes a model's config allows


def metadata(payload: dict) -> dict[str, str]:
    """Every field but the tensors, each as JSON text (allow_nan=False: JSON has no NaN or infinity,
    and a file another reader cannot parse is no export)."""
    return {key: json.dumps(value, allow_nan=False) for key, value in payload.items() if key != STATE}


def _raw_bytes(tensor: torch.Tensor) -> bytes:
    """The tensor's numbers as stored, in memory order (little-endian on the machines checked below)."""
    tensor = tensor.detach().cpu().contiguous()
    return ctypes.string_at(tensor.data_ptr(), tensor.numel() * tensor.element_size()) if tensor.numel() else b""


def encode(payload: dict) -> bytes:
    """The whole safetensors file for a model file's payload; the same payload, the same bytes."""
    if sys.byteorder != "little":
        raise AdderError("writing safetensors needs a little-endian machine (the format stores little-endian numbers)")
    header: dict = {"__metadata__": metadata(payload)}
    chunks, offset = [], 0
    # in the state dict's order, which the reader takes from the offsets: what reads the weights in
    # order (explain's listing) lists them as from model.pt
    for name, tensor in payload[STATE].items():
        if tensor.dtype not in DTYPE_NAMES:
            raise AdderError(f"cannot write {name} as safetensors: dtype {tensor.dtype} is not float32 or float64")
        data = _raw_bytes(tensor)
        header[name] = {"dtype": DTYPE_NAMES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the tensors' data starts 8-byte aligned, as the library writes it
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def write(payload: dict, path) -> None:
    """Write the model file's payload to `path` in the safetensors format."""
    Path(path).write_bytes(encode(payload))


