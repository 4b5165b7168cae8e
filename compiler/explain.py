"""`adderc explain`: every stored number of a model, with the program node it serves and its line.

One row per number `adderc stats` counts (nonzero and finite), in state-dict order, each naming
the nodes the model file's provenance gives it, quoted from the embedded source. A number serving
several nodes (an MLP output bias that sums blocks, a key/value projection a group of heads
shares, a tied embedding that is also the unembedding) names them all. A number with no
provenance (a weight edited after compiling) is still listed, as untraced.
"""
from __future__ import annotations

import re

from dsl.errors import AdderError
from compiler.ir.weights import stored_indices
from compiler.model.structure import flat_index, holding, token_of

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_QUOTE = 60  # characters of source text a row quotes


def _quote(sources: dict, node: dict) -> str:
    """The node's source text as written, from its span in the embedded source (its label where
    the span is not on one line the file has)."""
    lines = sources[node["file"]].splitlines()
    if not 1 <= node["line"] <= len(lines):
        return node["node"]
    line = lines[node["line"] - 1]
    end = node["end_column"] - 1 if node["end_line"] == node["line"] else len(line)
    text = line[max(node["column"] - 1, 0):end].strip()
    if node["end_line"] != node["line"]:
        text += " ..."
    if not text:
        return node["node"]
    return text if len(text) <= MAX_QUOTE else text[:MAX_QUOTE - 3] + "..."


def _described(sources: dict, node: dict) -> dict:
    return {"node": _quote(sources, node), "name": node["node"], "node_id": node["id"],
            "file": node["file"], "line": node["line"], "column": node["column"]}


def explain_rows(payload: dict) -> list[dict]:
    """One row per stored number of a validated model file (compiler.model.schema)."""
    sources = payload["program"]["sources"]
    provenance = payload["provenance"]
    nodes = {node["id"]: _described(sources, node) for node in provenance["nodes"]}
    traced = {name: {tuple(index): ids for index, ids in entries} for name, entries in provenance["tensors"].items()}
    untraced = {"node": "-", "name": "-", "node_id": None, "file": payload["program"]["path"], "line": 0,
                "column": 0}
    shared = _shared_parameters(payload)
    rows = []
    for name, tensor in payload["state_dict"].items():
        for index in stored_indices(tensor):
            served = [nodes[i] for i in traced.get(name, {}).get(index, ())] or [untraced]
            flat = flat_index(index, tensor.shape)
            rows.append({"tensor": name, "index": list(index), "value": tensor[index].item(),
                         **served[0], "nodes": served, "parameter": shared.get((name, flat))})
    return rows


def _shared_parameters(payload: dict) -> dict:
    """(tensor, flat index) -> the formula of the file's structure that fills it, where one holds:
    a tie (one parameter for its entries, a sign each) or a polynomial in the digit's value."""
    held = holding(payload.get("structure"), payload["state_dict"])
    shared = {}
    for k, tie in enumerate(held["ties"]):
        for flat, sign in tie["entries"]:
            shared[(tie["tensor"], flat)] = {"kind": "tie", "id": k, "sign": sign, "entries": len(tie["entries"])}
    for k, poly in enumerate(held["polynomials"]):
        shape = payload["state_dict"][poly["tensor"]].shape
        for flat in poly["entries"]:
            shared[(poly["tensor"], flat)] = {"kind": "polynomial", "id": k, "coefficients": list(poly["coefficients"]),
                                              "digit": token_of(poly["tensor"], flat, shape)}
    return shared


def _parameter_text(parameter: dict | None) -> str:
    if parameter is None:
        return ""
    if parameter["kind"] == "tie":
        return f"  [tie {parameter['id']}: one parameter for {parameter['entries']} entries]"
    text = ""
    for p, c in enumerate(parameter["coefficients"]):
        if c:
            term = _number(abs(c)) + ("" if p == 0 else "·d" if p == 1 else f"·d^{p}")
            text += (("-" if c < 0 else "") + term) if not text else (" - " if c < 0 else " + ") + term
    return f"  [polynomial {parameter['id']} at d = {parameter['digit']}: {text or '0'}]"


def rows_on_line(rows: list[dict], payload: dict, line: int) -> list[dict]:
    """The rows a line of the main program costs: those serving a node that starts on it."""
    path = payload["program"]["path"]
    lines = len(payload["program"]["sources"][path].splitlines())
    if not 1 <= line <= lines:
        raise AdderError(f"--line {line}: {path} has {lines} lines")
    return [row for row in rows if any(n["file"] == path and n["line"] == line for n in row["nodes"])]


def _where(row_node: dict) -> str:
    return f"{row_node['file']}:{row_node['line']}" if row_node["line"] else "-"


def _shown(node: dict) -> str:
    """A let-bound node as `name = expression`, any other as written."""
    if IDENTIFIER.fullmatch(node["name"]) and node["name"] != node["node"]:
        return f"{node['name']} = {node['node']}"
    return node["node"]


def _number(value: float) -> str:
    """The shortest text that reads back as the stored float, so a row quotes it exactly."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def format_rows(rows: list[dict]) -> list[str]:
    lines = [f"{'tensor':<30} {'index':<12} {'value':>22}  {'where':<18} node"]
    for row in rows:
        served = "; ".join(_shown(n) + ("" if n["line"] == row["line"] else f" ({_where(n)})")
                           for n in row["nodes"])
        index = "[" + ", ".join(map(str, row["index"])) + "]"
        lines.append(f"{row['tensor']:<30} {index:<12} {_number(row['value']):>22}  {_where(row):<18} {served}"
                     + _parameter_text(row.get("parameter")))
    return lines
