"""What every sublayer check shares: the residual map read as values in dimensions, the exact
encoding of a value, the combinations of values a sublayer reads, and the error bounds proved so far."""
from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy
import sympy
import torch

from dsl.semantics import apply_op, num, value_from_inputs
from compiler.ir.attrs import AT_ZERO, NODE, PER_POSITION, POSITION_FEATURES, REALIZE, SOURCE, VALUES
from compiler.check.prove.naming import ProgramText
from compiler.ir.maps import ResidualEntry, number_of, value_encoders

MAX_COMBINATIONS = 200_000
# A sublayer that misses its exact value by this much (in residual units) is wrong there, not
# rounded: the same quarter of the smallest gap that bounds a head's leak and the verifier's
# decoded values. A smaller miss is carried as error.
MISS_LIMIT = 0.25


class CannotProve(Exception):
    pass


class Miss(Exception):
    """A check failed on the weights: a value missed on some combination of the values a sublayer
    reads, or a weight writes where it must not. Whether any input of the layout meets it is
    decided afterwards, by replaying inputs through the model."""


class DimWriter(NamedTuple):
    """One value written into a residual dimension."""
    nid: int
    helper: bool
    sublayer: int  # the sublayer that writes it
    replaces: bool  # it replaces what the dimension held (else it adds to it)


def feature_id(dim: int) -> int:
    """The id a positional column's dimension is known by where errors are kept per value (below
    every node id, which are whole numbers from 0)."""
    return -1 - dim


class ProofState(ProgramText):
    def __init__(self, ir, residual_map, weights, config, weight_map=()):
        self.ir, self.graph, self.weights, self.config = ir, ir.graph, weights, config
        self.weight_map = list(weight_map)
        self.layout = ir.program.layout
        self.base = self.layout.base
        self.n = self.layout.n_ctx
        self.d_model = config["d_model"]
        # A sum's dimension is proved term by term: each term is an entry of its own that adds
        # coefficient * (value - default) into the shared dimension.
        self.entries = {}
        for e in residual_map:
            if e.get("helper"):
                continue
            for term in e.get("sum_of", []):
                if not term.get("host"):  # a host is an entry of its own, written first
                    self.entries[term["id"]] = dict(term, dims=e["dims"], encoding="numerical", shared=True,
                                                    line=e["line"], column=e["column"])
            if "sum_of" not in e:
                self.entries[e["id"]] = e
        # A helper written by the embedding is a 0/1 column of W_pos a head reads for a term on
        # positions alone (compiler.ir.position_terms): no program value, but a fixed one at
        # each position. Where it holds 1 comes from compiling the program again, like the value
        # sets; check_embeddings holds the model's column to it.
        self.helpers = {e["id"]: e for e in residual_map if e.get("helper") and e["written_by"] != "embed"}
        self.features = self._position_features(residual_map)
        # How each value is written into its dimensions: the map's own rule (compiler.ir.maps), kept
        # apart from the compiler's reads, so that the proof checks the compiler instead of repeating it.
        self.encoders = value_encoders([ResidualEntry.from_dict(e) for e in residual_map])
        # Values add up in a dimension (the terms of a sum, on top of a host); a value an MLP
        # computes in place of its input (entry "updates") replaces what the dimension held.
        self.dim_owner: dict[int, list[DimWriter]] = {}
        for nid, e in list(self.entries.items()) + list(self.helpers.items()):
            for d in e["dims"]:
                self.dim_owner.setdefault(d, []).append(DimWriter(nid, bool(e.get("helper")), e["sublayer"],
                                                                  "updates" in e))
        for d in self.features:
            self.dim_owner.setdefault(d, []).append(DimWriter(feature_id(d), True, 0, False))
        self.error: dict[int, float] = {}  # node id -> bound on |stored - exact| per dimension
        self.helper_error: dict[int, float] = {}
        self.margins: dict[str, float] = {}
        self._encoded: dict = {}  # (node, value) -> its encoding, a residual vector
        # dimension -> the most it can hold (compiler.check.prove.rounding.written_magnitude)
        self.written_magnitudes: dict[int, float] = {}

    def _position_features(self, residual_map) -> dict[int, frozenset]:
        """dimension -> the positions its column of W_pos holds 1 at."""
        columns = {}
        for _, attrs in self.graph.nodes(data=True):
            for d, _, positions in attrs.get(POSITION_FEATURES, {}).values():
                columns[d] = frozenset(positions)
        named = {e["dims"][0] for e in residual_map if e.get("helper") and e["written_by"] == "embed"}
        if named != set(columns):
            raise CannotProve("the model file's positional columns are not the ones the program compiles to")
        return columns

    def position_vector(self, position) -> torch.Tensor:
        """The residual vector of the positional columns at a position."""
        x = torch.zeros(self.d_model, dtype=torch.float64)
        for d, positions in self.features.items():
            if position in positions:
                x[d] = 1.0
        return x

    def error_by_label(self):
        return {self.name(n): e for n, e in self.error.items()}

    # ----- values and their encodings
    def values(self, nid):
        return self.graph.nodes[nid][VALUES]

    def at_position(self, nid, position):
        attrs = self.graph.nodes[nid]
        if attrs[SOURCE] in ("position", "const"):
            return [attrs[PER_POSITION][position]]
        if position == 0 and AT_ZERO in attrs:  # the layout fixes position 0
            return [attrs[AT_ZERO]]
        return list(attrs[VALUES])

    def encode(self, nid, value, vector):
        """Write the exact encoding of `value` for stored node `nid` into a residual vector."""
        for dim, coefficient in self.encoders[nid](value).items():
            vector[dim] += float(coefficient)  # values sharing a dimension add up

    def value_of(self, nid, assignment, position=None):
        """A node's value from the values of the stored nodes it depends on (and, for values fixed
        by the position alone, from the position)."""
        if nid in assignment:
            return assignment[nid]
        attrs = self.graph.nodes[nid]
        if attrs[REALIZE] == "const":
            return attrs[VALUES][0]
        if attrs[SOURCE] == "position" and position is not None:
            return attrs[PER_POSITION][position]
        node = attrs[NODE]
        args = tuple(self.value_of(a.id, assignment, position) for a in node.args)
        return value_from_inputs(node, args, self.base)

    def values_over(self, nid, combos, position):
        """value_of for every combination at once, as (codes, table): combination i has the value
        table[codes[i]]. Each node's operation runs once per distinct tuple of argument values,
        not once per combination (many combinations share them)."""
        if nid in combos[0]:
            table = list(dict.fromkeys(c[nid] for c in combos))
            index = {v: i for i, v in enumerate(table)}
            return numpy.array([index[c[nid]] for c in combos]), table
        attrs = self.graph.nodes[nid]
        if attrs[REALIZE] == "const" or attrs[SOURCE] == "position":
            return numpy.zeros(len(combos), dtype=numpy.int64), [self.value_of(nid, {}, position)]
        node = attrs[NODE]
        args = [self.values_over(a.id, combos, position) for a in node.args]
        key = numpy.zeros(len(combos), dtype=numpy.int64)
        for codes, table in args:  # one mixed-radix number per tuple of argument values
            key = key * len(table) + codes
        distinct, inverse = numpy.unique(key, return_inverse=True)
        results = []
        for k in distinct.tolist():
            arg_values = []
            for codes, arg_table in reversed(args):
                k, code = divmod(k, len(arg_table))
                arg_values.append(arg_table[code])
            results.append(apply_op(node.op, tuple(reversed(arg_values)), self.base))
        table = list(dict.fromkeys(results))  # different arguments, same value: one entry
        position_of = {v: i for i, v in enumerate(table)}
        index = numpy.array([position_of[r] for r in results], dtype=numpy.int64)
        return index[inverse.reshape(-1)], table

    def vectors(self, stored, combos, position) -> torch.Tensor:
        """The residual vector of every combination: [len(combos), d_model]."""
        X = torch.zeros(len(combos), self.d_model, dtype=torch.float64)
        for s in stored:
            codes, table = self.values_over(s, combos, position)
            X += torch.stack([self.vector({s: v}) for v in table])[torch.from_numpy(codes)]
        return X

    def vector(self, assignment, helper_values=None):
        x = torch.zeros(self.d_model, dtype=torch.float64)
        for nid, value in assignment.items():
            key = (nid, value)
            if key not in self._encoded:
                self._encoded[key] = torch.zeros(self.d_model, dtype=torch.float64)
                self.encode(nid, value, self._encoded[key])
            x += self._encoded[key]
        for nid, value in (helper_values or {}).items():
            x[self.helpers[nid]["dims"][0]] = value
        return x

    # ----- what a sublayer reads
    def live_owners(self, d, at):
        """The values dimension d holds when read by the sublayer numbered `at`."""
        if d not in self.dim_owner:
            raise CannotProve(f"dimension {d} is read but belongs to no program value")
        written = [w for w in self.dim_owner[d] if w.sublayer < at]  # a sublayer reads before it writes
        replaced = max((w.sublayer for w in written if w.replaces), default=None)
        return [(w.nid, w.helper) for w in written if replaced is None or w.sublayer >= replaced]

    def owners(self, dims, at):
        owners = set()
        for d in dims:
            owners.update(self.live_owners(d, at))
        return owners

    def unread_sources(self, nid, stored):
        """The inputs `nid` is computed from that its sublayer does not read: where the exact value
        (values_over) would follow the arguments past every value in `stored` and reach a source or
        an aggregate. A sublayer may skip an input its value does not depend on at any position it
        is read (a branch no position takes), but the exact value is still computed from every
        input, so each must range over its values in the check, which then shows that the output
        does not depend on it. Values in `stored` are taken as they are, as values_over takes them;
        so combinations may pair values no input gives together, which can only fail a proof."""
        found, seen = set(), set(stored)
        todo = [a.id for a in self.graph.nodes[nid][NODE].args]
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            attrs = self.graph.nodes[n]
            if attrs[REALIZE] == "const" or attrs[SOURCE] == "position":
                continue
            args = getattr(attrs[NODE], "args", None)
            if args is None:
                found.add(n)
            else:
                todo.extend(a.id for a in args)
        return found

    def combos(self, stored, position, nid):
        """Every combination of the values of `stored` at a position, for the sublayer of `nid`."""
        lists = [self.at_position(s, position) for s in stored]
        count = math.prod(len(x) for x in lists)
        if count > MAX_COMBINATIONS:
            raise CannotProve(f"the sublayer for '{self.name(nid)}' reads {count:,} combinations of values at "
                              f"position {position}, more than the {MAX_COMBINATIONS:,} the proof tries"
                              f"{self.at(nid)}")
        return [dict(zip(stored, c)) for c in itertools.product(*lists)]

    def positions_for(self, stored):
        if any(self.graph.nodes[s][SOURCE] in ("position", "const") for s in stored):
            return range(self.n)
        # Any position but 0 stands for all: values range over their whole sets there (position 0
        # holds only what the layout's first token gives, a subset).
        return range(1, 2) if self.n > 1 else range(1)

    def answer_positions(self, stored):
        """The positions whose next-token prediction is read: the last prompt position onwards.
        Earlier positions predict nothing, so their output is never checked."""
        positions = range(self.layout.prompt_length - 1, self.n)
        if any(self.graph.nodes[s][SOURCE] in ("position", "const") for s in stored):
            return positions
        return [next((p for p in positions if p > 0), positions[0])]  # as in positions_for

    # ----- error bounds
    def input_error(self, dims_weights, at):
        """sum over read dims of |weight| * error bound of the value in that dim, read at `at`."""
        total = torch.zeros(dims_weights.shape[1:], dtype=torch.float64)
        for d in range(dims_weights.shape[0]):
            row = dims_weights[d].abs()
            if row.numel() == 0 or float(row.max()) == 0:  # no units read it (or none exist)
                continue
            for nid, helper in self.live_owners(d, at):  # the terms of a sum add their errors
                bound = self.helper_error.get(nid, 0.0) if helper else self.error.get(nid, 0.0)
                total = total + row * bound
        return total

    def error_column(self, width, at):
        column = torch.zeros(self.d_model, 1, dtype=torch.float64)
        for d in self.dim_owner:
            column[d, 0] = sum(self.helper_error.get(nid, 0.0) if helper else self.error.get(nid, 0.0)
                               for nid, helper in self.live_owners(d, at))
        return column.expand(self.d_model, width)

    def decoded(self, nid, written):
        """What a value's dimensions hold, read back as a value of it (for messages)."""
        entry = self.entries[nid]
        if entry.get("shared"):
            share = float(written[0]) / float(sympy.Rational(entry["coefficient"]))
            return f"{share + float(number_of(entry['default'])):.10g}"
        if entry["encoding"] == "numerical":
            offset = float(num(self.graph.nodes[nid][NODE].default)) if entry["written_by"] == "attention" else 0.0
            slope, bias = (float(number_of(t)) for t in entry.get("stored_as", ("1", "0")))
            return f"{float(written[0]) * slope + bias + offset:.10g}"
        return f"{entry['values'][int(written.argmax())]} (one-hot {vector_text(written)})"


def position_note(positions, position) -> str:
    """Names the position when the check ran position by position (else one stood for all)."""
    return f" at position {position}" if len(positions) > 1 else ""


def vector_text(vector) -> str:
    items = [f"{float(x):.4g}" for x in vector.reshape(-1)[:8]]
    return "[" + ", ".join(items) + (", ...]" if vector.numel() > 8 else "]")
