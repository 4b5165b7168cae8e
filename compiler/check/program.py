"""The program a model file is checked against, and whether it is the one the model came from."""
from __future__ import annotations

from dsl.errors import AdderError
from dsl.layout import Layout
from dsl.resolve import load_program, source_digest


def program_from_payload(payload: dict, program_path: str | None, model: str = "the model file"):
    """The program to check against: the given file, or the sources embedded in the model file,
    resolved in memory (a name from a model file never becomes a path). Either way its layout
    must be the model's: token ids and positions mean nothing to a model of another layout."""
    overrides = payload["program"]["overrides"]
    if program_path:
        program = load_program(program_path, overrides)
    else:
        sources = payload["program"]["sources"]
        try:
            program = load_program(payload["program"]["path"], overrides, embedded=sources)
        except AdderError as err:
            # Spans name embedded sources: quote them from the file, never from a disk file of that name.
            if err.span is not None and err.source is None:
                err.source = sources.get(err.span.file, "")
            err.notes.append(f"in the program embedded in {model}")
            raise
    _check_layout(program, Layout.from_dict(payload["layout"]), program_path, model)
    if same_program(program, payload):
        _check_node_ids(program, payload, model)
    return program


def _check_node_ids(program, payload, model):
    """The maps and the provenance name program values by node id; for the program they came from,
    each id must be one of its values, or the inside check and the proof would look up a value
    that is not there, and explain would name the wrong line."""
    ids = {node.id for node in program.nodes}
    named = [(f"residual_map[{i}]", e) for i, e in enumerate(payload["residual_map"])]
    named += [(f"residual_map[{i}].sum_of[{j}]", t) for i, e in enumerate(payload["residual_map"])
              for j, t in enumerate(e.get("sum_of", []))]
    named += [(f"weight_map[{i}]", e) for i, e in enumerate(payload["weight_map"])]
    named += [(f"provenance.nodes[{i}]", e) for i, e in enumerate(payload.get("provenance", {}).get("nodes", []))]
    for field, entry in named:
        for key in ("id", "also"):
            if key in entry and entry[key] not in ids:
                raise AdderError(f"{model}: {field}.{key}: {entry[key]} is not a value of the program it was "
                                 f"compiled from")


def _check_layout(program, layout, program_path, model):
    theirs, where = program.layout, program_path or f"the program embedded in {model}"
    if theirs == layout:
        return
    if theirs.n_ctx != layout.n_ctx:
        difference = f"its context is {theirs.n_ctx} positions, the model's {layout.n_ctx}"
    elif theirs.vocab != layout.vocab:
        difference = f"its vocabulary is {' '.join(theirs.vocab)}, the model's {' '.join(layout.vocab)}"
    else:
        difference = "its fields or digit order differ from the model's"
    raise AdderError(f"{where}: its layout is not the one {model} was compiled for: {difference}",
                     hint="verify a model against a program of the same layout, or compile this program")


def same_program(program, payload) -> bool:
    """Whether `program` (sources and constants) is the one the model file was compiled from."""
    constants = {k: int(v) for k, v in program.constants.items() if getattr(v, "is_integer", False)}
    embedded = {k: v for k, v in payload["program"]["constants"].items() if isinstance(v, int)}
    return source_digest(program) == payload["program"]["sha256"] and constants == embedded
