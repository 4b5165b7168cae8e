"""`adderc export --to safetensors`: the model file as safetensors (compiler.model.safetensors_file
frames it; `adderc PROGRAM -o model.safetensors` writes the same bytes)."""
from __future__ import annotations

from pathlib import Path

from compiler.model.safetensors_file import STATE, write


def export(model, payload: dict, path) -> list[str]:
    write(payload, path)
    count = len(payload[STATE])
    numbers = sum(t.numel() for t in payload[STATE].values())
    return [f"{count} tensors ({numbers:,} numbers, {payload['config']['dtype']}) and "
            f"{len(payload) - 1} metadata fields as JSON",
            f"adderc run/stats/verify/explain read {Path(path).name} as they read model.pt"]
