"""The one schema a model file must meet before any of it is used: a model file is untrusted data.

A file from someone else is checked whole, field by field, before a model is built from it or a
program is read out of it: every key's type, every size against a bound, every tensor's name,
shape, dtype and values against the config, the layout and the residual and weight maps against
the config and against each other, the provenance of the stored numbers against the tensors and
the embedded sources, and the embedded program's names and digest. A failure is one line naming
the file and the field, e.g. `model.pt: config.n_layers: -1 is not a non-negative whole number`
or `model.pt: program.sha256: does not match the embedded sources`.

The bounds are generous, far above what the compiler emits (the largest examples have 3 layers,
d_model 132 and contexts under 100; a 1,000-digit adder has a context near 3,000), and exist so
that a file cannot make adderc allocate or loop without limit. They are the MAX_ constants below;
the archive itself (torch.save writes a zip) is bounded before torch.load inflates any of it: at
most MAX_ENTRIES entries and MAX_UNCOMPRESSED bytes once uncompressed.
"""
from __future__ import annotations

import math
import re
import reprlib
import zipfile
from pathlib import Path

import torch

from dsl.errors import AdderError
from dsl.layout import DIGIT_ALPHABET, DIGIT_ORDERS, SIGNED, Layout, build_layout
from dsl.limits import MAX_POSITIONS
from dsl.resolve import sources_digest
from compiler.ir.maps import (HEAD_KEYS, HEAD_OPTIONAL_KEYS, RESIDUAL_KEYS, RESIDUAL_OPTIONAL_KEYS, SUM_TERM_KEYS,
                               SUM_TERM_OPTIONAL_KEYS, UNITS_KEYS)
from compiler.ir.slots import last_sublayer
from compiler.model.structure import MAX_DEGREE, VOCAB_INDEXED, token_of
from compiler.model.transformer import CompiledTransformer

MAX_UNCOMPRESSED = 512 * 2 ** 20  # bytes: the largest example model takes 1.8 MB
MAX_ENTRIES = 16_384  # torch.save writes one entry per tensor, and a few more
MAX_LAYERS = 256
MAX_D_MODEL = 1 << 16
MAX_HEADS = 1024  # per layer
MAX_D_HEAD = 1 << 16
MAX_D_MLP = 1 << 20
MAX_CONTEXT = MAX_POSITIONS  # the compiler's own bound: no program has a longer sequence
MAX_VOCAB = 1024  # tokens
MAX_TOKEN = 64  # characters in one token
MAX_TEXT = 10_000  # characters in a label or a value written as text
MAX_NUMBER_DIGITS = 4000  # digits of a number in a map, within Python's int-from-text limit
MAX_SOURCES = 256  # embedded program files
MAX_INT_BITS = 63  # consts and overrides: int64
MAX_LINE = 10 ** 9
MAX_PROVENANCE_NODES = 1 << 16  # program nodes a provenance names (a program has at most a few thousand)

FORMAT = "adderc-model"
FORMAT_VERSION = 4  # 2: ALiBi centres, grouped key/value projections, tied unembeddings; 3: provenance;
# 4: structure (ties and polynomials, compiler.model.structure)
# Files this adderc reads: a version-2 file is the same model without provenance, so models kept
# under regression tests still run and verify; only `explain` needs the provenance.
READ_VERSIONS = (2, 3, 4)
TOP_KEYS = {"format": str, "format_version": int, "compiler_version": str, "config": dict, "state_dict": dict,
            "vocab": list, "layout": dict, "residual_map": list, "weight_map": list, "provenance": dict,
            "program": dict,
            "meaning": (dict, type(None)), "stats": dict, "structure": dict}
CONFIG_KEYS = {"n_layers", "d_model", "d_vocab", "n_ctx", "n_heads", "d_head", "d_mlp", "act_fn", "dtype"}
CONFIG_OPTIONAL = {"n_kv_heads", "tied_unembed"}
DTYPES = {"float32": torch.float32, "float64": torch.float64}
NUMBER = re.compile(r"-?\d+(\.\d+)?(/\d+)?")
# Characters a file name part may not hold: separators, a drive's colon, and control characters.
NOT_IN_NAME = re.compile(r"[\\:\x00-\x1f\x7f]")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Per-head distance formulas may hold one infinity each: "no sink" and "no window".
ALLOWED_INFINITY = {"sink": -math.inf, "window": math.inf}


class _Fields:
    """Type and bound checks that fail with the file's name and the field's path."""

    def __init__(self, name: str):
        self.name = name

    def fail(self, field: str, problem: str):
        raise AdderError(f"{self.name}: {field}: {problem}")

    def of_type(self, value, kind, field: str, what: str):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(field, f"{_show(value)} is not {what}")
        return value

    def whole(self, value, field: str, low: int = 0, high: int | None = None, beyond: str | None = None):
        """An int (not a bool) from low to high; `beyond` says what lies past high when the bound is
        the model's own (a dimension, a layer), not a limit of this reader."""
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            self.fail(field, f"{_show(value)} is not a {'positive' if low > 0 else 'non-negative'} whole number")
        if high is not None and value > high:
            self.fail(field, f"{value} is {beyond}" if beyond else
                      f"{value} is more than this adderc reads (at most {high:,})")
        return value

    def text(self, value, field: str, limit: int = MAX_TEXT, empty: bool = False):
        self.of_type(value, str, field, "text")
        if len(value) > limit:
            self.fail(field, f"text of {len(value):,} characters, more than {limit:,}")
        if not value and not empty:
            self.fail(field, "is empty")
        return value

    def number(self, value, field: str):
        """A number as the residual map writes it: an integer, a decimal or a fraction (or a boolean)."""
        self.text(value, field, MAX_NUMBER_DIGITS)
        if value not in ("True", "False") and not NUMBER.fullmatch(value):
            self.fail(field, f"{_show(value)} is not a number")
        return value

    def keys(self, value: dict, field: str, required, optional=()):
        self.of_type(value, dict, field, "a mapping")
        for key in value:
            if not isinstance(key, str) or (key not in required and key not in optional):
                self.fail(f"{field}.{key}" if isinstance(key, str) else field, f"unknown key {_show(key)}")
        missing = [k for k in required if k not in value]
        if missing:
            self.fail(f"{field}.{missing[0]}", "is missing")
        return value

    def int_list(self, value, field: str, length: int, high: int):
        self.of_type(value, list, field, "a list")
        if len(value) != length:
            self.fail(field, f"has {len(value)} entries for {length} layer(s)")
        return [self.whole(v, f"{field}[{i}]", 0, high) for i, v in enumerate(value)]


def check_archive(path: Path, name: str):
    """Bound what torch.load would inflate, from the zip's directory alone, before it inflates any."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError):
        raise AdderError(f"{name}: not an adderc model (not the zip archive torch.save writes; a "
                         f"truncated file, or one from an older torch.save, is not read)") from None
    except OSError as err:
        raise AdderError(f"cannot read model file {name}: {err.strerror or err}") from None
    if len(entries) > MAX_ENTRIES:
        raise AdderError(f"{name}: archive: {len(entries):,} entries, more than this adderc reads ({MAX_ENTRIES:,})")
    size = sum(entry.file_size for entry in entries)
    if size > MAX_UNCOMPRESSED:
        raise AdderError(f"{name}: archive: {size:,} bytes uncompressed, more than this adderc reads "
                         f"({MAX_UNCOMPRESSED:,})")


def _is_zero(number: str) -> bool:
    if number in ("True", "False"):
        return number == "False"
    return not any(c in "123456789" for c in number.split("/")[0])


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 40
_SHORT.maxlist = _SHORT.maxdict = 8


def _show(value) -> str:
    """A value from the file as a message quotes it: short, however large the value."""
    text = _SHORT.repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(payload, name: str) -> Layout:
    """Check a loaded payload whole; the layout it describes, or an AdderError on the first flaw."""
    check = _Fields(name)
    check.of_type(payload, dict, "file", "a mapping of fields")
    if payload.get("format") != FORMAT:
        check.fail("format", "not an adderc model")
    version = payload.get("format_version")
    check.whole(version, "format_version")
    if version not in READ_VERSIONS:
        check.fail("format_version", f"version {version}; this adderc reads versions "
                                     f"{', '.join(map(str, READ_VERSIONS))}")
    required = [k for k in TOP_KEYS if k != "stats" and (k != "provenance" or version >= 3)
                and (k != "structure" or version >= 4)]
    check.keys(payload, "file", required, ["stats"])
    for key, kind in TOP_KEYS.items():
        if key in payload:
            check.of_type(payload[key], kind, key, {dict: "a mapping", list: "a list", str: "text",
                                                    int: "a whole number"}.get(kind, "a mapping or None"))
    check.text(payload["compiler_version"], "compiler_version", MAX_TOKEN)
    config = _config(check, payload["config"])
    layout = _layout(check, payload["layout"], payload["vocab"], config)
    _state(check, payload["state_dict"], config)
    _residual_map(check, payload["residual_map"], config)
    _weight_map(check, payload["weight_map"], config)
    _program(check, payload["program"])
    if "provenance" in payload:
        _provenance(check, payload["provenance"], payload["state_dict"], payload["program"]["sources"])
    _meaning(check, payload["meaning"], layout)
    if "structure" in payload:
        _structure(check, payload["structure"], payload["state_dict"], layout.base)
    _stats(check, payload.get("stats", {}))
    return layout


def _config(check: _Fields, config: dict) -> dict:
    check.keys(config, "config", sorted(CONFIG_KEYS), sorted(CONFIG_OPTIONAL))
    layers = check.whole(config["n_layers"], "config.n_layers", 0, MAX_LAYERS)
    check.whole(config["d_model"], "config.d_model", 0, MAX_D_MODEL)  # 0: a constant output reads nothing
    check.whole(config["d_vocab"], "config.d_vocab", 1, MAX_VOCAB)
    check.whole(config["n_ctx"], "config.n_ctx", 1, MAX_CONTEXT)
    heads = check.int_list(config["n_heads"], "config.n_heads", layers, MAX_HEADS)
    d_head = check.int_list(config["d_head"], "config.d_head", layers, MAX_D_HEAD)
    check.int_list(config["d_mlp"], "config.d_mlp", layers, MAX_D_MLP)
    kv = check.int_list(config.get("n_kv_heads", heads), "config.n_kv_heads", layers, MAX_HEADS)
    for layer, (h, width, groups) in enumerate(zip(heads, d_head, kv)):
        if h and not width:
            check.fail(f"config.d_head[{layer}]", f"0, but layer {layer} has {h} head(s)")
        if h and (not groups or h % groups):
            check.fail(f"config.n_kv_heads[{layer}]", f"{groups} key/value groups do not divide {h} heads")
        if not h and groups:
            check.fail(f"config.n_kv_heads[{layer}]", f"{groups} key/value groups for a layer with no heads")
    if config["act_fn"] != "relu":
        check.fail("config.act_fn", f"{_show(config['act_fn'])}; this adderc builds relu MLPs only")
    if config["dtype"] not in DTYPES:
        check.fail("config.dtype", f"{_show(config['dtype'])} is not float32 or float64")
    check.of_type(config.get("tied_unembed", False), bool, "config.tied_unembed", "true or false")
    return config


def _layout(check: _Fields, data: dict, vocab: list, config: dict) -> Layout:
    """The layout, rebuilt by the same rules a layout declaration is checked by."""
    check.keys(data, "layout", ["base", "order", "answer_index", "items"])
    base = check.whole(data["base"], "layout.base", 2, len(DIGIT_ALPHABET))
    if data["order"] not in DIGIT_ORDERS:
        check.fail("layout.order", f"{_show(data['order'])} is not msb_first or lsb_first")
    items = check.of_type(data["items"], list, "layout.items", "a list")
    if not 2 <= len(items) <= MAX_VOCAB + MAX_CONTEXT:
        check.fail("layout.items", f"{len(items)} items")
    answer_index = check.whole(data["answer_index"], "layout.answer_index", 1, len(items) - 1,
                               f"past the layout's {len(items)} items")
    parts = []
    for i, item in enumerate(items):
        field = f"layout.items[{i}]"
        check.of_type(item, list, field, "a list")
        if len(item) == 2 and item[0] == "literal":
            parts.append(("literal", None, check.text(item[1], field, MAX_TOKEN)))
        elif len(item) in (3, 4, 5) and item[0] == "field":
            if not isinstance(item[1], str) or not IDENTIFIER.fullmatch(item[1]) or len(item[1]) > MAX_TOKEN:
                check.fail(field, f"{_show(item[1])} is not a field name")
            # A fourth entry is the field's own digit order; files written before it existed have none.
            if len(item) >= 4 and item[3] not in DIGIT_ORDERS:
                check.fail(field + " order", f"{_show(item[3])} is not msb_first or lsb_first")
            # A fifth says the field is a signed answer (build_layout checks that it is the answer).
            if len(item) == 5 and item[4] != SIGNED:
                check.fail(field + " sign", f"{_show(item[4])} is not \"signed\"")
            parts.append(("field", None, item[1], check.whole(item[2], field + " width", 1, MAX_CONTEXT),
                          *item[3:]))
        else:
            check.fail(field, f"{_show(item)} is not [\"literal\", token] or [\"field\", name, width(, order(, \"signed\"))]")
    try:
        layout = build_layout(base, data["order"], parts[:answer_index], parts[answer_index:], None, None)
    except AdderError as err:
        check.fail("layout", err.message)
    if layout.n_ctx > MAX_CONTEXT:
        check.fail("layout", f"a context of {layout.n_ctx:,} positions, more than {MAX_CONTEXT:,}")
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab) or vocab != layout.vocab:
        check.fail("vocab", f"{_show(vocab)} is not the layout's vocabulary {_show(layout.vocab)}")
    if config["d_vocab"] != len(vocab):
        check.fail("config.d_vocab", f"{config['d_vocab']}, but the vocabulary has {len(vocab)} tokens")
    if config["n_ctx"] != layout.n_ctx:
        check.fail("config.n_ctx", f"{config['n_ctx']}, but the layout's context is {layout.n_ctx}")
    return layout


def _state(check: _Fields, state: dict, config: dict):
    """Every weight the config's model has, of its shape and dtype, with finite values."""
    with torch.device("meta"):  # the shapes the model would allocate, without allocating them
        expected = {k: tuple(v.shape) for k, v in CompiledTransformer(config).state_dict().items()}
    for key in state:
        if key not in expected:
            check.fail(f"state_dict.{key}" if isinstance(key, str) else "state_dict",
                       "not a weight of a model with this config")
    missing = [k for k in expected if k not in state]
    if missing:
        check.fail(f"state_dict.{missing[0]}", "is missing")
    dtype = DTYPES[config["dtype"]]
    for key, shape in expected.items():
        tensor, field = state[key], f"state_dict.{key}"
        if type(tensor) is not torch.Tensor or tensor.layout != torch.strided or tensor.is_quantized:
            check.fail(field, f"a {type(tensor).__name__}, not a dense tensor")
        if tensor.dtype != dtype:
            check.fail(field, f"dtype {str(tensor.dtype).removeprefix('torch.')}, but config.dtype is {config['dtype']}")
        if tuple(tensor.shape) != shape:
            check.fail(field, f"shape {list(tensor.shape)}, but the config gives {list(shape)}")
        allowed = ALLOWED_INFINITY.get(key.rsplit(".", 1)[-1])
        values = tensor.masked_fill(tensor == allowed, 0) if allowed is not None else tensor
        if not bool(torch.isfinite(values).all()):
            check.fail(field, "holds NaN or infinite values" + (f" (only {allowed} is allowed)" if allowed else ""))
        if key.endswith(".window") and bool((tensor < 0).any()):
            check.fail(field, "a negative window")


def _residual_map(check: _Fields, entries: list, config: dict):
    d_model, sublayers = config["d_model"], last_sublayer(config["n_layers"])
    for i, entry in enumerate(entries):
        field = f"residual_map[{i}]"
        check.keys(entry, field, RESIDUAL_KEYS, RESIDUAL_OPTIONAL_KEYS)
        _node_fields(check, entry, field)
        check.whole(entry["sublayer"], field + ".sublayer", 0, sublayers, f"past the model's {sublayers} sublayers")
        check.text(entry["written_by"], field + ".written_by", MAX_TOKEN)
        dims = check.of_type(entry["dims"], list, field + ".dims", "a list")
        if not dims or len(set(dims)) != len(dims):
            check.fail(field + ".dims", f"{_show(dims)} is not a list of distinct dimensions")
        for d in dims:
            check.whole(d, field + ".dims", 0, d_model - 1, f"past the model's {d_model} dimensions")
        check.of_type(entry.get("helper", False), bool, field + ".helper", "true or false")
        if entry.get("updates") is not None:
            check.text(entry["updates"], field + ".updates")
        if entry["encoding"] == "numerical":
            if len(dims) != 1:
                check.fail(field + ".dims", "a numerical value has one dimension")
            if "default" in entry:
                check.number(entry["default"], field + ".default")
            stored_as = entry.get("stored_as", ["1", "0"])
            if not isinstance(stored_as, list) or len(stored_as) != 2:
                check.fail(field + ".stored_as", f"{_show(stored_as)} is not [slope, bias]")
            for part in stored_as:
                check.number(part, field + ".stored_as")
            if _is_zero(stored_as[0]):
                check.fail(field + ".stored_as", "a slope of 0")
        elif entry["encoding"] == "categorical":
            values = check.of_type(entry.get("values"), list, field + ".values", "a list")
            if len(values) != len(dims):
                check.fail(field + ".values", f"{len(values)} values for {len(dims)} dimensions")
            unread = check.of_type(entry.get("unread_values", []), list, field + ".unread_values", "a list")
            for value in values + unread:
                check.text(value, field + ".values", empty=True)
            if "default" in entry:
                check.text(entry["default"], field + ".default", empty=True)
        else:
            check.fail(field + ".encoding", f"{_show(entry['encoding'])} is not numerical or categorical")
        for j, term in enumerate(check.of_type(entry.get("sum_of", []), list, field + ".sum_of", "a list")):
            where = f"{field}.sum_of[{j}]"
            check.keys(term, where, SUM_TERM_KEYS, SUM_TERM_OPTIONAL_KEYS)
            check.whole(term["id"], where + ".id")
            check.text(term["node"], where + ".node")
            check.number(term["coefficient"], where + ".coefficient")
            check.number(term["default"], where + ".default")
            check.text(term["written_by"], where + ".written_by", MAX_TOKEN)
            check.whole(term["sublayer"], where + ".sublayer", 0, sublayers, f"past the model's {sublayers} sublayers")
            check.of_type(term.get("host", False), bool, where + ".host", "true or false")


def _node_fields(check: _Fields, entry: dict, field: str):
    """What ties a map entry to its program node: a label, an id, a line and a column."""
    check.text(entry["node"], field + ".node")
    check.whole(entry["id"], field + ".id")
    check.whole(entry["line"], field + ".line", 0, MAX_LINE)
    check.whole(entry["column"], field + ".column", 0, MAX_LINE)


def _weight_map(check: _Fields, entries: list, config: dict):
    for i, entry in enumerate(entries):
        field = f"weight_map[{i}]"
        check.of_type(entry, dict, field, "a mapping")
        block = entry.get("block")
        match = re.fullmatch(r"blocks\.(\d{1,4})\.(attn|mlp)", block) if isinstance(block, str) else None
        if match is None or int(match[1]) >= config["n_layers"]:
            check.fail(field + ".block", f"{_show(block)} is not a block of this model")
        layer, kind = int(match[1]), match[2]
        if kind == "attn":
            check.keys(entry, field, HEAD_KEYS, HEAD_OPTIONAL_KEYS)
            check.whole(entry["head"], field + ".head", 0, config["n_heads"][layer] - 1,
                        f"past layer {layer}'s {config['n_heads'][layer]} heads")
            check.text(entry["mode"], field + ".mode", MAX_TOKEN)
            if "also" in entry:
                check.whole(entry["also"], field + ".also")
        else:
            check.keys(entry, field, UNITS_KEYS)
            units = entry["units"]
            if (not isinstance(units, list) or len(units) != 2
                    or any(not isinstance(u, int) or isinstance(u, bool) for u in units)
                    or not 0 <= units[0] < units[1] <= config["d_mlp"][layer]):
                check.fail(field + ".units", f"{_show(units)} is not a range of layer {layer}'s "
                                             f"{config['d_mlp'][layer]} units")
        _node_fields(check, entry, field)


def _provenance(check: _Fields, provenance: dict, state: dict, sources: dict):
    """The program nodes behind the stored numbers: each node placed in an embedded source, each
    entry an index inside its tensor naming known nodes. It need not cover every nonzero weight (a
    weight edited after compiling has none), and an entry may name a weight that is now zero."""
    check.keys(provenance, "provenance", ["nodes", "tensors"])
    nodes = check.of_type(provenance["nodes"], list, "provenance.nodes", "a list")
    if len(nodes) > MAX_PROVENANCE_NODES:
        check.fail("provenance.nodes", f"{len(nodes):,} nodes, more than this adderc reads ({MAX_PROVENANCE_NODES:,})")
    known = set()
    for i, node in enumerate(nodes):
        field = f"provenance.nodes[{i}]"
        check.keys(node, field, ["id", "node", "file", "line", "column", "end_line", "end_column"])
        if check.whole(node["id"], field + ".id") in known:
            check.fail(field + ".id", f"{node['id']} is listed twice")
        known.add(node["id"])
        check.text(node["node"], field + ".node")
        if not isinstance(node["file"], str) or node["file"] not in sources:
            check.fail(field + ".file", f"{_show(node['file'])} is not an embedded source")
        lines = sources[node["file"]].count("\n") + 1
        check.whole(node["line"], field + ".line", 0, lines, f"past the {lines} lines of {node['file']}")
        check.whole(node["end_line"], field + ".end_line", node["line"], lines, f"past the {lines} lines of {node['file']}")
        for key in ("column", "end_column"):
            check.whole(node[key], f"{field}.{key}", 0, MAX_LINE)
    tensors = check.of_type(provenance["tensors"], dict, "provenance.tensors", "a mapping")
    for name, entries in tensors.items():
        if not isinstance(name, str) or name not in state:
            check.fail("provenance.tensors", f"{_show(name)} is not a weight of this model")
        _traced_tensor(check, f"provenance.tensors.{name}", entries, tuple(state[name].shape), known)


def _structure(check: _Fields, structure: dict, state: dict, base: int):
    """Ties and polynomials of the form compiler.model.structure describes: known tensors, indices
    inside them, each entry named once, a polynomial only over digit tokens of a vocabulary-indexed
    tensor. Whether the weights satisfy them is not a fault of the file: only those that hold count."""
    check.keys(structure, "structure", ["ties", "polynomials"])
    named = set()

    def entry_index(value, field: str, tensor: str) -> int:
        index = check.whole(value, field, 0, state[tensor].numel() - 1, f"past the {state[tensor].numel():,} "
                                                                        f"numbers of {tensor}")
        if (tensor, index) in named:
            check.fail(field, f"{tensor}[{index}] is named by two formulas (or twice in one)")
        named.add((tensor, index))
        return index

    def tensor_of(formula, field: str, kinds=None) -> str:
        name = formula["tensor"]
        if not isinstance(name, str) or name not in state:
            check.fail(field + ".tensor", f"{_show(name)} is not a weight of this model")
        if kinds is not None and name not in kinds:
            check.fail(field + ".tensor", f"{name} is not indexed by the vocabulary ({', '.join(kinds)} are)")
        entries = check.of_type(formula["entries"], list, field + ".entries", "a list")
        if not 2 <= len(entries) <= state[name].numel():
            check.fail(field + ".entries", f"{len(entries):,} entries; a formula names 2 to {state[name].numel():,}")
        return name

    for i, tie in enumerate(check.of_type(structure["ties"], list, "structure.ties", "a list")):
        field = f"structure.ties[{i}]"
        check.keys(tie, field, ["tensor", "entries"])
        name = tensor_of(tie, field)
        for j, entry in enumerate(tie["entries"]):
            # type() is int: a tensor or a bool equal to 1 is not a sign (torch.load admits tensors anywhere)
            if not isinstance(entry, list) or len(entry) != 2 or type(entry[1]) is not int or entry[1] not in (1, -1):
                check.fail(f"{field}.entries[{j}]", f"{_show(entry)} is not [index, 1 or -1]")
            entry_index(entry[0], f"{field}.entries[{j}]", name)
    for i, poly in enumerate(check.of_type(structure["polynomials"], list, "structure.polynomials", "a list")):
        field = f"structure.polynomials[{i}]"
        check.keys(poly, field, ["tensor", "entries", "coefficients"])
        name = tensor_of(poly, field, VOCAB_INDEXED)
        coefficients = check.of_type(poly["coefficients"], list, field + ".coefficients", "a list")
        if not 1 <= len(coefficients) <= MAX_DEGREE + 1 or not all(
                (type(c) is float and math.isfinite(c)) or (type(c) is int and abs(c) < 2 ** 1000) for c in coefficients):
            check.fail(field + ".coefficients", f"{_show(coefficients)} is not 1 to {MAX_DEGREE + 1} finite numbers")
        for j, value in enumerate(poly["entries"]):
            index = entry_index(value, f"{field}.entries[{j}]", name)
            if token_of(name, index, state[name].shape) >= base:
                check.fail(f"{field}.entries[{j}]", f"{name}[{index}] is not indexed by a digit token")


def _traced_tensor(check: _Fields, field: str, entries, shape: tuple, known: set):
    check.of_type(entries, list, field, "a list")
    size = math.prod(shape)
    if len(entries) > size:
        check.fail(field, f"{len(entries):,} entries for a tensor of {size:,} numbers")
    seen = set()
    for j, entry in enumerate(entries):
        where = f"{field}[{j}]"
        if not isinstance(entry, list) or len(entry) != 2 or not all(isinstance(part, list) for part in entry):
            check.fail(where, f"{_show(entry)} is not [index, node ids]")
        index, ids = entry
        if len(index) != len(shape) or any(not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < n
                                           for k, n in zip(index, shape)):
            check.fail(where, f"{_show(index)} is not an index of a tensor of shape {list(shape)}")
        if tuple(index) in seen:
            check.fail(where, f"{_show(index)} is traced twice")
        seen.add(tuple(index))
        if not ids or len(ids) > len(known):
            check.fail(where, f"{_show(ids)} is not a list of program nodes")
        for node_id in ids:
            if type(node_id) is not int or node_id not in known:
                check.fail(where, f"{_show(node_id)} is not a node of provenance.nodes")
        if len(set(ids)) != len(ids):
            check.fail(where, f"{_show(ids)} names a node twice")


def plain_name(name) -> bool:
    """A relative file name made of plain parts: not absolute, no `..`, no `.` or empty part, no
    drive, backslash or control character. Names from a model file are only ever keys among its
    sources, never paths, but a name that could mean a place elsewhere is refused all the same."""
    return (isinstance(name, str) and 0 < len(name) <= 1024 and ".." not in name and not NOT_IN_NAME.search(name)
            and all(part not in ("", ".") and len(part) <= 255 for part in name.split("/")))


def _program(check: _Fields, program: dict):
    check.keys(program, "program", ["path", "source", "sha256", "sources", "overrides", "constants"])
    sources = check.of_type(program["sources"], dict, "program.sources", "a mapping")
    if not 1 <= len(sources) <= MAX_SOURCES:
        check.fail("program.sources", f"{len(sources)} files")
    for name, text in sources.items():
        if not plain_name(name):
            check.fail("program.sources", f"{_show(name)} is not a plain relative file name")
        check.of_type(text, str, f"program.sources[{name!r}]", "text")
        try:
            text.encode()
        except UnicodeEncodeError:
            check.fail(f"program.sources[{name!r}]", "is not valid Unicode text")
    path = program["path"]
    if not plain_name(path):
        check.fail("program.path", f"{_show(path)} is not a plain relative file name")
    if next(iter(sources)) != path:
        check.fail("program.path", f"{_show(path)} is not the first embedded source")
    if program["source"] != sources[path]:
        check.fail("program.source", f"differs from the embedded source of {path}")
    digest = program["sha256"]
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        check.fail("program.sha256", f"{_show(digest)} is not a sha256 digest")
    if digest != sources_digest(sources.values()):
        check.fail("program.sha256", "does not match the embedded sources: they were changed after compiling")
    for key in ("overrides", "constants"):
        values = check.of_type(program[key], dict, f"program.{key}", "a mapping")
        for name, value in values.items():
            where = f"program.{key}.{name}"
            if not isinstance(name, str) or not IDENTIFIER.fullmatch(name) or len(name) > MAX_TOKEN:
                check.fail(f"program.{key}", f"{_show(name)} is not a name")
            if key == "constants" and isinstance(value, str):
                check.text(value, where)
                continue
            check.of_type(value, int, where, "a whole number")
            if value.bit_length() > MAX_INT_BITS:
                check.fail(where, f"a number of {value.bit_length()} bits, more than {MAX_INT_BITS}")


def _meaning(check: _Fields, meaning, layout: Layout):
    if meaning is None:
        return
    check.keys(meaning, "meaning", ["field", "expression"])
    if meaning["field"] != layout.answer.name:
        check.fail("meaning.field", f"{_show(meaning['field'])} is not the layout's answer field")
    check.text(meaning["expression"], "meaning.expression")


def _stats(check: _Fields, stats: dict):
    """Size figures as compiled; read for nothing but a compile time an older file may carry."""
    seconds = stats.get("compile_seconds")
    if seconds is not None and (not isinstance(seconds, (int, float)) or isinstance(seconds, bool)
                                or not 0 <= seconds < math.inf):
        check.fail("stats.compile_seconds", f"{_show(seconds)} is not a number of seconds")
