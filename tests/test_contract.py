"""The passes' declarations (compiler.ir.contract) are true on every example program.

Each example runs through the pipeline on a graph whose node-attribute dicts record every read
and write, and an IR whose fields record every read, each under the pass running at the time.
A pass fails the contract when it reads an attribute or field it did not declare, or one no
earlier pass adds; writes one it did not declare; or declares one it never touches on any example.
"""
from __future__ import annotations

import contextlib
import dataclasses
import sys
from dataclasses import dataclass, field
from types import SimpleNamespace

import networkx as nx
import pytest

from compiler.golden import weights_sha256
from tests.golden import load, programs
from compiler.ir.attrs import DIMS, HELPER_DIM, VALUES
from compiler.ir.compile_ir import CompileIR
from compiler.ir.contract import EVERY_PASS_READS, IR_FIELDS, contract_of, static_problems
from compiler.pipeline import PASSES, PIPELINE
from compiler.passes.build_graph import build_graph
from dsl.resolve import load_program


@dataclass
class Seen:
    """What one pass did, over every example."""
    reads: set = field(default_factory=set)
    writes: set = field(default_factory=set)
    reads_ir: set = field(default_factory=set)
    sets_ir: set = field(default_factory=set)


class Recorder:
    def __init__(self):
        self.current: str | None = None
        self.paused = False
        self.seen: dict[str, Seen] = {}

    def _now(self) -> Seen | None:
        if self.current is None or self.paused:
            return None
        return self.seen.setdefault(self.current, Seen())

    def read(self, key):
        if (now := self._now()) is not None:
            now.reads.add(key)

    def write(self, key):
        if (now := self._now()) is not None:
            now.writes.add(key)

    def read_field(self, name):
        if (now := self._now()) is not None and name not in EVERY_PASS_READS:
            now.reads_ir.add(name)

    @contextlib.contextmanager
    def quiet(self):
        """Copies and set-up are not the pass reading or writing anything."""
        paused, self.paused = self.paused, True
        try:
            yield
        finally:
            self.paused = paused


RECORDER = Recorder()


class RecordingAttrs(dict):
    """A node's attributes that tell the recorder each key read or written."""

    def __getitem__(self, key):
        RECORDER.read(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        RECORDER.read(key)
        return super().get(key, default)

    def __contains__(self, key):
        RECORDER.read(key)
        return super().__contains__(key)

    def __iter__(self):  # a pass walking every attribute reads them all
        for key in super().keys():
            RECORDER.read(key)
        return super().__iter__()

    def keys(self):
        return list(iter(self))

    def items(self):
        return [(key, super(RecordingAttrs, self).__getitem__(key)) for key in self]

    def values(self):
        return [value for _, value in self.items()]

    def __setitem__(self, key, value):
        RECORDER.write(key)
        super().__setitem__(key, value)

    def __delitem__(self, key):
        RECORDER.write(key)
        super().__delitem__(key)

    def pop(self, key, *default):
        RECORDER.write(key)
        return super().pop(key, *default)

    def setdefault(self, key, default=None):
        RECORDER.read(key)
        if not super().__contains__(key):
            RECORDER.write(key)
        return super().setdefault(key, default)

    def update(self, *args, **kwargs):  # networkx's add_node and copy write through update
        for key in dict(*args, **kwargs):
            RECORDER.write(key)
        super().update(*args, **kwargs)


class RecordingGraph(nx.DiGraph):
    # networkx builds a copy with self.__class__() and this factory, so every pass's copy records too.
    node_attr_dict_factory = RecordingAttrs

    def copy(self, as_view=False):
        with RECORDER.quiet():
            return super().copy(as_view)


class RecordingIR(CompileIR):
    """The IR whose field reads are recorded; dataclasses.replace reading every field to build
    the next IR is not a pass reading them."""

    def __getattribute__(self, name):
        if name in IR_FIELDS and sys._getframe(1).f_globals.get("__name__") != "dataclasses":
            RECORDER.read_field(name)
        return super().__getattribute__(name)


def recorded_compile(program) -> CompileIR:
    """The pipeline of compiler.pipeline.compile_program, pass by pass under the recorder."""
    RECORDER.current = build_graph.__name__
    plain = build_graph(program, {"dtype": "float64", "overrides": {}})
    built = RECORDER.seen.setdefault(build_graph.__name__, Seen())
    built.writes.update(key for _, attrs in plain.graph.nodes(data=True) for key in attrs)
    empty = CompileIR(plain.program, plain.graph)
    built.sets_ir.update(name for name in IR_FIELDS - EVERY_PASS_READS
                         if getattr(plain, name) != getattr(empty, name))
    RECORDER.current = None
    graph = RecordingGraph()
    graph.add_nodes_from(plain.graph.nodes(data=True))
    graph.add_edges_from(plain.graph.edges(data=True))
    ir = RecordingIR(**{f.name: getattr(plain, f.name) for f in dataclasses.fields(plain)} | {"graph": graph})
    for compiler_pass in PASSES:
        before = {name: object.__getattribute__(ir, name) for name in IR_FIELDS}
        options = dict(before["options"])
        RECORDER.current = compiler_pass.__name__
        try:
            ir = compiler_pass(ir)
        finally:
            RECORDER.current = None
        seen = RECORDER.seen.setdefault(compiler_pass.__name__, Seen())
        seen.sets_ir |= {name for name in IR_FIELDS - EVERY_PASS_READS
                         if object.__getattribute__(ir, name) is not before[name]}
        if dict(object.__getattribute__(ir, "options")) != options:
            seen.sets_ir.add("options")
    return ir


def contract_violations(seen: dict[str, Seen], passes) -> list[str]:
    """Where what the passes did (over every example) and what they declare disagree. A declared
    read no example makes is allowed: error messages read labels and spans, and some paths (a
    sum read by a derived value, say) no example takes; a declared write must happen somewhere."""
    problems = []
    added: set = set()
    set_fields = set(EVERY_PASS_READS)
    for compiler_pass in passes:
        c = contract_of(compiler_pass)
        did = seen.get(c.name, Seen())
        for key in sorted(did.reads - c.reads - c.adds - c.rewrites, key=str):
            problems.append(f"{c.name} reads '{key}' but does not declare it")
        for key in sorted(did.reads - added - c.adds, key=str):
            problems.append(f"{c.name} reads '{key}', which no earlier pass adds")
        for key in sorted(did.writes - c.adds - c.rewrites, key=str):
            problems.append(f"{c.name} writes '{key}' but does not declare it")
        for key in sorted((c.adds | c.rewrites) - did.writes):
            problems.append(f"{c.name} declares it adds '{key}' but never writes it on any example")
        for name in sorted(did.reads_ir - c.reads_ir - c.sets_ir):
            problems.append(f"{c.name} reads ir.{name} but does not declare it")
        for name in sorted(did.reads_ir - set_fields - c.sets_ir):
            problems.append(f"{c.name} reads ir.{name}, which no earlier pass sets")
        for name in sorted(did.sets_ir - c.sets_ir):
            problems.append(f"{c.name} sets ir.{name} but does not declare it")
        for name in sorted(c.sets_ir - did.sets_ir):
            problems.append(f"{c.name} declares it sets ir.{name} but never does on any example")
        added |= c.adds
        set_fields |= c.sets_ir
    return problems


# What the examples leave out: a selector_width over tokens (a head and an MLP, a helper dimension).
EXTRA_PROGRAMS = {
    "width.rasp": 'layout base 10, msb_first: "<bos>" a[3] "+" b[3] "=" => sum[4] "<eos>"\n'
                  'let digits_so_far = selector_width(select(tokens, indices, k != "+" and k != "=" and k != "<bos>"))\n'
                  'output digit_token(digits_so_far % 10)\n',
}


@pytest.fixture(scope="module")
def seen() -> dict[str, Seen]:
    golden = load()
    RECORDER.seen = {}
    for path in programs():
        ir = recorded_compile(load_program(path))
        # The recording pipeline is the real one: the same weights as the golden figures.
        assert weights_sha256(ir.lowered[1]) == golden[path.name]["weights_sha256"], path.name
    for name, text in EXTRA_PROGRAMS.items():
        recorded_compile(load_program(name, text=text))
    return RECORDER.seen


def test_every_pass_does_what_it_declares(seen):
    assert contract_violations(seen, PIPELINE) == []


def test_every_declared_read_is_added_by_an_earlier_pass():
    assert static_problems(PIPELINE) == []


def _tampered(passes, name, **changes):
    """The pipeline with one pass's declaration changed: kind=(names taken out, names put in)."""
    tampered = []
    for compiler_pass in passes:
        c = contract_of(compiler_pass)
        if c.name == name:
            c = dataclasses.replace(c, **{kind: getattr(c, kind) - set(taken) | set(put)
                                          for kind, (taken, put) in changes.items()})
            compiler_pass = SimpleNamespace(contract=c)
        tampered.append(compiler_pass)
    return tampered


@pytest.mark.parametrize("name, changes, problem", [
    ("allocate", {"reads": ([VALUES], [])}, "allocate reads 'values' but does not declare it"),
    ("allocate", {"adds": ([DIMS], [])}, "allocate writes 'dims' but does not declare it"),
    ("prune", {"rewrites": ([HELPER_DIM], [])}, "prune writes 'helper_dim' but does not declare it"),
    ("schedule", {"adds": ([], [DIMS])}, "schedule declares it adds 'dims' but never writes it on any example"),
    ("lower", {"reads_ir": (["d_model"], [])}, "lower reads ir.d_model but does not declare it"),
    ("tie_unembedding", {"sets_ir": (["weights"], [])}, "tie_unembedding sets ir.weights but does not declare it"),
    ("schedule", {"sets_ir": ([], ["weights"])}, "schedule declares it sets ir.weights but never does on any example"),
])
def test_the_check_fails_on_an_untrue_declaration(seen, name, changes, problem):
    assert problem in contract_violations(seen, _tampered(PIPELINE, name, **changes))


def test_the_check_fails_on_a_read_before_its_add(seen):
    early = _tampered(PIPELINE, "share_sums", reads=([], [DIMS]))
    assert "share_sums reads 'dims', which no earlier pass adds" in static_problems(early)
    seen_early = dict(seen, share_sums=dataclasses.replace(seen["share_sums"], reads=seen["share_sums"].reads | {DIMS}))
    assert "share_sums reads 'dims', which no earlier pass adds" in contract_violations(seen_early, early)
