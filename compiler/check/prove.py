"""A proof that a compiled model equals its program on every input of the layout.

The argument runs sublayer by sublayer over the model's own weights. Each stored program value
lives in known residual dimensions, and every value set is finite (the compiler computed it
exactly). So each sublayer can be checked on every combination of the values it reads.
Positional values are fixed by the position; every other value ranges over its whole set, and
tokens range over the whole vocabulary at every position.

Each check also carries an error bound forward:

- embeddings must write each value exactly;
- an attention head's realised scores must separate the selected keys from the others (and
  from the sink), which bounds the weight it leaks, and so the error of its output;
- an MLP must give the exact value at every input combination, and its ReLUs must not change
  state under the input error bound, so its output error is the Jacobian times that bound
  (zero on the flat runs of the functions the compiler builds);
- the unembedding must give the right token a logit margin larger than the error can erase.

Because the checks cover every token sequence, not only correct ones, greedy generation is
covered by induction: if every earlier answer token is right, the next one is too.

Arithmetic is treated as exact over the stored weights. Float rounding of the weights shows up as
small misses of a sublayer's exact value; those are carried forward as part of its error bound, and
the checks downstream decide whether the margins absorb them.

A check that fails is not yet a counterexample: combinations are taken value by value, and many
cannot occur together for any input. So a failure is replayed: the verifier's inputs run through
the model, and only an input on which the model really writes a wrong answer makes the verdict
"counterexample"; otherwise it is "could not prove", naming the check and the program line.
"""
from __future__ import annotations

import itertools
import math
import re
import time
from dataclasses import dataclass, field

import numpy
import sympy
import torch

from dsl.errors import display_path
from dsl.semantics import apply_op, eval_predicate, num
from compiler.ir.attrs import (
    AT_ZERO, LABEL, LAYER, NODE, PAIRED_INTO, PAIRED_WITH, PER_POSITION, REALIZE, SLOT, SOURCE,
    SPAN, VALUES,
)
from compiler.passes.encodings import head_mode, predicate_roles
from compiler.check.stored import number_of
from compiler.model.transformer import per_head, unembedding_matrix
from compiler.check.verify import first_wrong_input, same_program
from compiler.ir.slots import mlp_slot, unembedding_slot

MAX_COMBINATIONS = 200_000
# A sublayer that misses its exact value by this much (in residual units) is wrong there, not
# rounded: the same quarter of the smallest gap that bounds a head's leak and the verifier's
# decoded values. A smaller miss is carried as error.
MISS_LIMIT = 0.25
_INTERNAL_ID = re.compile(r"#\d+")


class CannotProve(Exception):
    pass


class _Miss(Exception):
    """A check failed on the weights: a value missed on some combination of the values a sublayer
    reads, or a weight writes where it must not. Whether any input of the layout meets it is
    decided afterwards, by replaying inputs through the model."""


@dataclass
class Proof:
    status: str  # "proved", "counterexample", "could not prove"
    reason: str = ""
    dtype: str = "float64"
    errors: dict = field(default_factory=dict)  # value name -> proven bound on its stored error
    margins: dict = field(default_factory=dict)
    seconds: float = 0.0
    counterexample: dict | None = None  # the input replayed through the model, what it wrote, what was right

    def to_dict(self):
        return {"status": self.status, "reason": self.reason, "dtype": self.dtype, "errors": self.errors,
                "margins": self.margins, "seconds": round(self.seconds, 2), "counterexample": self.counterexample}


def prove(payload: dict, program, dtype: str = "float64", seed: int = 20261122) -> Proof:
    from compiler.pipeline import compile_program
    started = time.perf_counter()
    if not same_program(program, payload):
        return Proof("could not prove", "the model was compiled from a different program, so its residual map "
                                        "does not describe this program's values", dtype)
    # The compiler's knowledge (value sets, what each value is computed by) comes from compiling the
    # program again; every check below runs on the model file's own weights.
    ir = compile_program(program, {"dtype": "float64", "overrides": payload["program"].get("overrides", {}),
                                   "self_check": False})
    weights = {k: v.to(getattr(torch, dtype)).to(torch.float64)
               for k, v in per_head(payload["state_dict"], payload["config"]).items()}
    try:
        checker = _Checker(ir, payload["residual_map"], weights, payload["config"], payload.get("weight_map", []))
        checker.run()
    except CannotProve as err:
        return Proof("could not prove", str(err), dtype, seconds=time.perf_counter() - started)
    except _Miss as miss:
        return _replayed(payload, program, dtype, seed, str(miss), started)
    return Proof("proved", "", dtype, {k: float(v) for k, v in checker.error_by_label().items()},
                 checker.margins, time.perf_counter() - started)


def _replayed(payload, program, dtype, seed, miss: str, started) -> Proof:
    """The verdict on a failed check: a counterexample only for an input the model really gets wrong."""
    found = first_wrong_input(payload, program, dtype, seed=seed)
    seconds = time.perf_counter() - started
    if found is None:
        return Proof("could not prove", f"{miss}; no input replayed through the model was answered wrong, "
                                        f"so this may be a combination no input produces", dtype, seconds=seconds)
    layout = program.layout
    prompt = "".join(layout.prompt_tokens(found["operands"])[1:])
    operands = ", ".join(f"{k}={v}" for k, v in found["operands"].items())
    return Proof("counterexample", f"{prompt} ({operands}): the model writes {found['got']}, expected "
                                   f"{found['expected']}; the failed check: {miss}", dtype, seconds=seconds,
                 counterexample=found)


class _Checker:
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
        self.helpers = {e["id"]: e for e in residual_map if e.get("helper")}
        # dim -> [(node id, helper?, sublayer that writes it, replaces what was there?)]. Values
        # add up in a dimension (the terms of a sum, on top of a host); a value an MLP computes
        # in place of its input (entry "updates") replaces what the dimension held.
        self.dim_owner: dict[int, list] = {}
        for nid, e in list(self.entries.items()) + list(self.helpers.items()):
            for d in e["dims"]:
                self.dim_owner.setdefault(d, []).append((nid, bool(e.get("helper")), e["sublayer"], "updates" in e))
        self.error: dict[int, float] = {}  # node id -> bound on |stored - exact| per dimension
        self.helper_error: dict[int, float] = {}
        self.margins: dict[str, float] = {}
        self._encoded: dict = {}  # (node, value) -> its encoding, a residual vector

    def error_by_label(self):
        return {self.name(n): e for n, e in self.error.items()}

    # ----- naming program values in messages
    def name(self, nid):
        """A value as its reader knows it: its let name or its source text, never an internal id."""
        attrs = self.graph.nodes[nid]
        if not _INTERNAL_ID.search(attrs[LABEL]):
            return attrs[LABEL]
        text = self._source_line(attrs[SPAN])
        start = attrs[SPAN].column - 1
        text = text[start:].strip() if text else ""
        return (text if len(text) <= 48 else text[:45] + "...") or attrs[NODE].kind

    def at(self, nid):
        """Where a value is written in the program, for the end of a message."""
        span = self.graph.nodes[nid][SPAN]
        text = " ".join(self._source_line(span).split())
        text = text if len(text) <= 72 else text[:69] + "..."
        return f", at `{text}` ({display_path(span.file)}:{span.line})"

    def _source_line(self, span):
        lines = self.ir.program.sources.get(span.file, "").splitlines()
        return lines[span.line - 1] if 1 <= span.line <= len(lines) else ""

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
        entry = self.entries[nid]
        if entry.get("shared"):
            share = sympy.Rational(entry["coefficient"]) * (num(value) - number_of(entry["default"]))
            vector[entry["dims"][0]] += float(share)
        elif entry["encoding"] == "numerical":
            offset = num(self.graph.nodes[nid][NODE].default) if entry["written_by"] == "attention" else 0
            slope, bias = (number_of(t) for t in entry.get("stored_as", ("1", "0")))
            vector[entry["dims"][0]] += float((num(value) - offset - bias) / slope)  # values sharing it add up
        else:
            text = str(value)
            if text in entry["values"]:
                vector[entry["dims"][entry["values"].index(text)]] = 1.0

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
        return apply_op(node.op, args, self.base)

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

    def live_owners(self, d, at):
        """The values dimension d holds when read by the sublayer numbered `at`."""
        if d not in self.dim_owner:
            raise CannotProve(f"dimension {d} is read but belongs to no program value")
        written = [o for o in self.dim_owner[d] if o[2] < at]  # a sublayer reads before it writes
        replaced = max((o[2] for o in written if o[3]), default=None)
        return [(nid, helper) for nid, helper, sublayer, _ in written if replaced is None or sublayer >= replaced]

    def owners(self, dims, at):
        owners = set()
        for d in dims:
            owners.update(self.live_owners(d, at))
        return owners

    def combos(self, stored, position, nid):
        """Every combination of the values of `stored` at a position, for the sublayer of `nid`."""
        lists = [self.at_position(s, position) for s in stored]
        count = math.prod(len(x) for x in lists)
        if count > MAX_COMBINATIONS:
            raise CannotProve(f"the sublayer for '{self.name(nid)}' reads {count:,} combinations of values at "
                              f"position {position}, more than the {MAX_COMBINATIONS:,} the proof tries"
                              f"{self.at(nid)}")
        return [dict(zip(stored, c)) for c in itertools.product(*lists)]

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

    def input_error(self, dims_weights, at):
        """sum over read dims of |weight| * error bound of the value in that dim, read at `at`."""
        total = torch.zeros(dims_weights.shape[1:], dtype=torch.float64)
        for d in range(dims_weights.shape[0]):
            row = dims_weights[d].abs()
            if float(row.max()) == 0:
                continue
            for nid, helper in self.live_owners(d, at):  # the terms of a sum add their errors
                bound = self.helper_error.get(nid, 0.0) if helper else self.error.get(nid, 0.0)
                total = total + row * bound
        return total

    # ----- the proof
    def run(self):
        self.check_write_hygiene()
        self.check_embeddings()
        order = sorted(self.entries.values(), key=lambda e: e["sublayer"])
        for entry in order:
            nid = entry["id"]
            realize = self.graph.nodes[nid][REALIZE]
            if PAIRED_WITH in self.graph.nodes[nid]:
                self.check_pair_head(nid)
            elif PAIRED_INTO in self.graph.nodes[nid]:
                continue  # proved with the head it shares
            elif realize == "attention":
                self.check_head(nid)
            elif realize == "mlp":
                self.check_mlp(nid)
            elif realize == "width":
                self.check_head(nid)
                self.check_width_mlp(nid)
        self.check_unembedding()

    def check_write_hygiene(self):
        """Biases and embedding columns may touch only the dimensions of the values they write."""
        def owned(kinds, layer=None):
            dims = set()
            for nid, entry in list(self.entries.items()) + list(self.helpers.items()):
                attrs = self.graph.nodes[nid]
                if attrs[REALIZE] in kinds and (layer is None or attrs.get(LAYER) == layer):
                    dims |= set(entry["dims"])
            return dims
        embedded = owned({"embed"})
        for name in ("embed.W_E", "pos_embed.W_pos"):
            used = set((self.weights[name].abs().sum(0) > 0).nonzero()[:, 0].tolist())
            if used - embedded:
                raise _Miss(f"{name} writes into dimensions of values that are not embedded")
        for layer in range(self.config["n_layers"]):
            for name, kinds in ((f"blocks.{layer}.attn.b_O", {"attention", "width"}),
                                (f"blocks.{layer}.mlp.b_out", {"mlp", "width"})):
                if name in self.weights:
                    used = set((self.weights[name] != 0).nonzero()[:, 0].tolist())
                    if used - owned(kinds, layer):
                        raise _Miss(f"{name} writes into dimensions of values other sublayers own")

    def check_embeddings(self):
        W_E, W_pos = self.weights["embed.W_E"], self.weights["pos_embed.W_pos"]
        for nid, entry in self.entries.items():
            attrs = self.graph.nodes[nid]
            if attrs[REALIZE] != "embed":
                continue
            dims = entry["dims"]
            rows = range(self.n) if attrs[SOURCE] == "position" else range(len(self.layout.vocab))
            table = W_pos if attrs[SOURCE] == "position" else W_E
            other = W_E if attrs[SOURCE] == "position" else W_pos
            if float(other[:, dims].abs().max()) != 0:
                raise _Miss(f"'{self.name(nid)}' is embedded by both the token and the position table"
                            f"{self.at(nid)}")
            worst = 0.0  # a weight rounded in its dtype: carried as error
            for row in rows:
                if attrs[SOURCE] == "position":
                    value, what = attrs[PER_POSITION][row], f"position {row}"
                else:
                    value, what = self._token_value(nid, self.layout.vocab[row]), f"token {self.layout.vocab[row]!r}"
                want = torch.zeros(self.d_model, dtype=torch.float64)
                self.encode(nid, value, want)
                miss = float((table[row, dims] - want[dims]).abs().max())
                if miss >= MISS_LIMIT:
                    raise _Miss(f"the embedding of '{self.name(nid)}' for {what} is off by {miss:.3g} "
                                f"(it should encode {value}){self.at(nid)}")
                worst = max(worst, miss)
            self.error[nid] = worst

    def _token_value(self, nid, token):
        node = self.graph.nodes[nid][NODE]
        return _evaluate_token_only(self.graph, node, token, self.base)

    # ----- attention
    def _head(self, nid):
        served = [e for e in self.weight_map if e.get("id") == nid and "head" in e]
        if served:
            layer, h = int(served[0]["block"].split(".")[1]), served[0]["head"]
            return layer, h, self._head_weights(layer, h)
        if self.entries.get(nid, {}).get("shared"):
            raise CannotProve(f"the model file does not say which head writes '{self.name(nid)}'{self.at(nid)}")
        for layer in range(self.config["n_layers"]):
            if not self.config["n_heads"][layer]:
                continue
            prefix = f"blocks.{layer}.attn."
            W_O = self.weights[prefix + "W_O"]
            entry = self.helpers.get(nid) or self.entries[nid]
            for h in range(W_O.shape[0]):
                if float(W_O[h][:, entry["dims"]].abs().max()) > 0:
                    return layer, h, self._head_weights(layer, h)
        raise CannotProve(f"no head writes '{self.name(nid)}'{self.at(nid)}")

    def _head_weights(self, layer, h):
        prefix = f"blocks.{layer}.attn."
        return {name: self.weights[prefix + name][h] for name in
                ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O")} | {
            "sink": float(self.weights[prefix + "sink"][h]),
            "slope": float(self.weights[prefix + "alibi_slope"][h]),
            "curvature": float(self.weights[prefix + "alibi_curvature"][h]),
            "center": float(self.weights[prefix + "alibi_center"][h]),
            "window": float(self.weights[prefix + "window"][h])}

    def check_head(self, nid):
        attrs = self.graph.nodes[nid]
        node = attrs[NODE]
        label = self.name(nid)
        layer, h, w = self._head(nid)
        mode = head_mode(attrs)
        target = self.helpers[nid] if attrs[REALIZE] == "width" else self.entries[nid]
        # The head may write only its own dimensions.
        writes = (w["W_O"].abs().sum(0) > 0).nonzero()[:, 0].tolist()
        if set(writes) - set(target["dims"]):
            raise _Miss(f"the head for '{label}' also writes dimensions of other values{self.at(nid)}")
        read_q = (w["W_Q"].abs().sum(1) > 0).nonzero()[:, 0].tolist()
        read_k = (w["W_K"].abs().sum(1) > 0).nonzero()[:, 0].tolist()
        read_v = (w["W_V"].abs().sum(1) > 0).nonzero()[:, 0].tolist()
        at = attrs[SLOT]
        q_nodes = sorted(n for n, helper in self.owners(read_q, at) if not helper)
        k_nodes = sorted({n for n, helper in self.owners(read_k + read_v, at) if not helper})
        for n in q_nodes + k_nodes:
            if n not in self.error:
                raise CannotProve(f"the head for '{label}' reads '{self.name(n)}' before it is proved{self.at(nid)}")
        dq = self.input_error(w["W_Q"], at)
        dk = self.input_error(w["W_K"], at)
        dv = self.input_error(w["W_V"], at)
        W_O_abs = w["W_O"].abs()
        value_dims_out = W_O_abs.sum(1)  # per head value dim: total write magnitude
        worst_output, value_miss = 0.0, 0.0
        smallest_gap = float("inf")
        sink = w["sink"]
        for q in range(self.n):
            for q_assign in self.combos(q_nodes, q, nid):
                qv = self.vector(q_assign) @ w["W_Q"] + w["b_Q"]
                # per key position: (selected?, score, value vector, exact value vector) per combo
                keys = []
                for k in range(q + 1):
                    if q - k > w["window"]:
                        continue  # masked: the key gets no weight at all
                    options = []
                    for k_assign in self.combos(k_nodes, k, nid):
                        x = self.vector(k_assign)
                        kv = x @ w["W_K"] + w["b_K"]
                        e = k - q + w["center"]
                        score = float(qv @ kv) + w["slope"] * e + w["curvature"] * e ** 2
                        score_error = float((qv.abs() * dk).sum() + (kv.abs() * dq).sum() + (dq * dk).sum())
                        selected = all(self._term(t, k_assign, q_assign, k, q) for t in node.selector.terms)
                        value = x @ w["W_V"] + w["b_V"]
                        exact = self._exact_value(nid, mode, k_assign, w, value, k)
                        value_miss = max(value_miss, float((value - exact).abs().max()))
                        options.append((selected, score, score_error, value, exact))
                    keys.append(options)
                bound, gap = self._head_bound(mode, keys, sink, q, node, dv, value_dims_out, label)
                worst_output = max(worst_output, bound)
                smallest_gap = min(smallest_gap, gap)
        # A value read off by rounding moves the output by at most that much per unit of weight
        # (a sum head's weights add up to at most one per key).
        worst_output += value_miss * float(value_dims_out.max()) * (self.n if mode == "sum" else 1)
        worst_output += self._check_write_scale(nid, w["W_O"], mode, target, label)
        if worst_output >= MISS_LIMIT:
            raise CannotProve(f"the head for '{label}' (layer {layer}) may leak an error of {worst_output:.3g}, "
                              f"a quarter of a step or more{self.at(nid)}")
        if attrs[REALIZE] == "width":
            self.helper_error[nid] = worst_output
        else:
            self.error[nid] = worst_output
        self.margins[f"head '{label}' score gap"] = smallest_gap

    def check_pair_head(self, nid):
        """One head for two shifts of a value, c and c + 1 back, both terms of one sum
        (compiler.passes.pair_heads). Its scores depend on positions alone, so at every query the
        attention weights are computed outright and compared with the weights the two terms
        need; each key's share of the difference, times the most its value can be, bounds the
        error (position 0 holds the default, which contributes nothing whatever its weight)."""
        attrs = self.graph.nodes[nid]
        partner = attrs[PAIRED_WITH][0]
        label = f"{self.name(nid)}' and '{self.name(partner)}"
        layer, h, w = self._head(nid)
        if any(float(w[name].abs().max()) > 0 for name in ("W_Q", "b_Q", "W_K", "b_K")):
            raise CannotProve(f"the head for '{label}' reads the stream in its scores; a paired head must not"
                              f"{self.at(nid)}")
        target = self.entries[nid]
        writes = (w["W_O"].abs().sum(0) > 0).nonzero()[:, 0].tolist()
        if set(writes) - set(target["dims"]):
            raise _Miss(f"the head for '{label}' also writes dimensions of other values{self.at(nid)}")
        if float(w["W_O"][1:].abs().sum()) > 0 or float(w["W_V"][:, 1:].abs().sum() + w["b_V"][1:].abs().sum()) > 0:
            raise CannotProve(f"the head for '{label}' uses more than one value dimension{self.at(nid)}")
        value_node = attrs[NODE].value.id
        default = num(attrs[NODE].default)
        coefficients = {}
        for term in (nid, partner):
            offset = _offset_of(self.graph.nodes[term][NODE], self.n, self.base)
            if offset is None:
                raise CannotProve(f"'{self.name(term)}' is not a shift by a fixed offset{self.at(term)}")
            coefficients[offset] = float(sympy.Rational(self.entries[term]["coefficient"]))
        out_scale = float(w["W_O"][0, target["dims"][0]])
        read_v = (w["W_V"].abs().sum(1) > 0).nonzero()[:, 0].tolist()
        at = attrs[SLOT]
        v_nodes = sorted(n for n, helper in self.owners(read_v, at) if not helper)
        for n in v_nodes:
            if n not in self.error:
                raise CannotProve(f"the head for '{label}' reads '{self.name(n)}' before it is proved{self.at(nid)}")
        dv = float(self.input_error(w["W_V"], at)[0])
        # The value each key carries, checked against the exact one (a rounded miss adds to the
        # value's error), and the most it can be away from zero.
        largest, read_miss = [0.0] * self.n, 0.0
        for k in range(self.n):
            for assign in self.combos(v_nodes, k, nid):
                carried = float((self.vector(assign) @ w["W_V"] + w["b_V"])[0])
                exact = float(num(self.value_of(value_node, assign, k)) - default)
                if abs(carried - exact) >= MISS_LIMIT:
                    raise _Miss(f"the head for '{label}' reads {self._describe(assign)} at position {k} as "
                                f"{carried + float(default):.10g} where {exact + float(default):.10g} was expected"
                                f"{self.at(nid)}")
                read_miss = max(read_miss, abs(carried - exact))
                largest[k] = max(largest[k], abs(exact))
        dv += read_miss
        worst = 0.0
        largest = torch.tensor(largest, dtype=torch.float64)
        for q in range(self.n):
            keys = torch.arange(max(0, q - int(min(w["window"], self.n))), q + 1)
            e = (keys - q).to(torch.float64) + w["center"]
            scores = w["slope"] * e + w["curvature"] * e * e
            if w["sink"] != -math.inf:
                scores = torch.cat([scores, torch.tensor([w["sink"]], dtype=torch.float64)])
            weights = torch.softmax(scores, dim=0)[:len(keys)]
            want = torch.tensor([coefficients.get(q - k, 0.0) for k in keys.tolist()], dtype=torch.float64)
            error = (out_scale * weights - want).abs() * largest[keys] + abs(out_scale) * weights * dv
            worst = max(worst, float(error.sum()))
        if worst >= MISS_LIMIT:
            raise CannotProve(f"the head for '{label}' (layer {layer}) may leak an error of {worst:.3g}, "
                              f"a quarter of a step or more{self.at(nid)}")
        self.error[nid] = worst
        self.error[partner] = 0.0  # its share is in the bound above
        self.margins[f"head '{label}' largest weight error"] = worst

    def _check_write_scale(self, nid, W_O, mode, target, label):
        """Each value dimension must land in one residual dimension at the scale the encoding
        says (1, or a sum term's coefficient); the score analysis only bounds the attention
        weights. Returns the extra output error a rounded scale adds (sum heads check their
        scale against the decay themselves)."""
        if mode == "sum":
            return 0.0
        want = float(sympy.Rational(target["coefficient"])) if target.get("shared") else 1.0
        largest = max([1.0] + [abs(float(num(v) - num(self.graph.nodes[nid][NODE].default)))
                               for v in self.values(nid)] if target.get("encoding") == "numerical"
                      and mode != "width" else [1.0])
        extra = 0.0
        for j in range(W_O.shape[0]):
            column = W_O[j]
            written = column.nonzero()[:, 0].tolist()
            if not written:
                continue
            if len(written) != 1:
                raise _Miss(f"the head for '{label}' writes one value into several dimensions{self.at(nid)}")
            deviation = abs(float(column[written[0]]) - want)
            if deviation * largest >= MISS_LIMIT:
                raise _Miss(f"the head for '{label}' writes its value scaled by "
                            f"{float(column[written[0]]):.6g}, not {want:.6g}{self.at(nid)}")
            extra = max(extra, deviation * largest)  # a rounded scale: carried as error
        return extra

    def _term(self, term, k_assign, q_assign, k, q):
        roles = predicate_roles(term.predicate)
        key = self.value_of(term.keys.id, k_assign, k) if "k" in roles else None
        query = self.value_of(term.queries.id, q_assign, q) if "q" in roles else None
        return bool(eval_predicate(term.predicate, key, query, self.base))

    def _exact_value(self, nid, mode, k_assign, w, value, k):
        """The value vector a selected key should carry (what the compiler meant V to read)."""
        node = self.graph.nodes[nid][NODE]
        if mode == "width":
            return torch.ones_like(value)
        exact_value = self.value_of(node.value.id, k_assign, k)
        out = torch.zeros_like(value)
        entry = self.entries[node.id]
        if entry["encoding"] == "numerical":
            out[0] = float(num(exact_value) - num(node.default))
            if (w["W_V"][:, 1:].abs().sum() > 0) or (w["b_V"][1:].abs().sum() > 0):
                raise CannotProve(f"the numerical head for '{self.name(nid)}' uses more than one value dimension"
                                  f"{self.at(nid)}")
        else:
            # value dim j carries the indicator of the value whose dimension its W_O column writes
            for j in range(value.shape[0]):
                column = w["W_O"][j]
                if float(column.abs().max()) == 0:
                    continue
                written = int(column.abs().argmax())
                text = entry["values"][entry["dims"].index(written)]
                out[j] = 1.0 if text == str(exact_value) else 0.0
        miss = float((value - out).abs().max())
        if miss >= MISS_LIMIT:
            raise _Miss(f"the head for '{self.name(nid)}' reads {self._describe(k_assign)} at position {k} "
                        f"as {_vector_text(value)} where {_vector_text(out)} was expected{self.at(nid)}")
        return out

    def _head_bound(self, mode, keys, sink, q, node, dv, out_scale, label):
        """Worst output error (in residual units) over every choice of key values at each position."""
        if mode != "sum":
            keys, sink = _fold_null_keys(keys, sink)
        V = max((float(o[3].abs().max()) for opts in keys for o in opts), default=0.0) + float(dv.max())
        scale = float(out_scale.max())
        selectable = [[o for o in opts if o[0]] for opts in keys]
        unselectable = [[o for o in opts if not o[0]] for opts in keys]
        top_unselected = [max((o[1] + o[2] for o in opts), default=-math.inf) for opts in unselectable]
        if mode in ("mean", "width"):
            sel_low = min((o[1] - o[2] for opts in selectable for o in opts), default=math.inf)
            sel_high = max((o[1] + o[2] for opts in selectable for o in opts), default=-math.inf)
            u = max(top_unselected, default=-math.inf)
            # Nothing selected (possible unless some key is selected whatever values it holds):
            # the sink must take the weight (for width, it may share it exactly).
            always_selected = any(opts and all(o[0] for o in opts) for opts in keys)
            if u == -math.inf or always_selected:
                empty = 0.0
            else:
                empty = len(keys) * math.exp(min(u - sink, 700)) * (V if mode == "mean" else 1)
            if sel_low == math.inf:
                return empty * scale + float(dv.max()), (math.inf if u == -math.inf else sink - u)
            spread = math.exp(min(sel_high - sel_low, 700)) - 1
            if mode == "width":
                spread = max(spread, math.exp(min(abs(sink - sel_low), 700)) - 1,
                             math.exp(min(abs(sel_high - sink), 700)) - 1)
                leak = len(keys) * math.exp(min(u - sel_low, 700))
            else:
                leak = len(keys) * math.exp(min(u - sel_low, 700)) + math.exp(min(sink - sel_low, 700))
            bound = (2 * spread + 2 * leak) * V + max(empty, 0)
            return bound * scale + float(dv.max()) * scale, min(sel_low - u, sel_low - sink if mode == "mean" else math.inf)
        if mode in ("first", "last"):
            worst, gap = 0.0, math.inf
            positions = range(len(keys)) if mode == "first" else range(len(keys) - 1, -1, -1)
            positions = list(positions)
            u_all = max(top_unselected, default=-math.inf)
            worst = len(keys) * math.exp(min(u_all - sink, 700)) * V  # nothing selected
            for rank, winner in enumerate(positions):
                if not selectable[winner]:
                    continue
                low = min(o[1] - o[2] for o in selectable[winner])
                before = positions[:rank]  # keys that would win if selected: must be unselected
                after = positions[rank + 1:]
                rivals = sum(math.exp(min(top_unselected[k] - low, 700)) for k in before)
                rivals += sum(math.exp(min(max(top_unselected[k],
                                                   max((o[1] + o[2] for o in selectable[k]), default=-math.inf))
                                               - low, 700)) for k in after)
                rivals += math.exp(min(sink - low, 700))
                worst = max(worst, 2 * rivals * V)
                gap = min(gap, low - sink)
            return worst * scale + float(dv.max()) * scale, gap
        if mode == "sum":
            total_error = 0.0
            for index, opts in enumerate(keys):
                k = q - len(keys) + 1 + index  # keys are the contiguous unmasked ones up to q
                worst_k = 0.0
                for selected, score, err, value, exact in opts:
                    weight = math.exp(min(score + err - sink, 700)) * scale
                    if selected:
                        decay = node.decay if node.decay is not None else 1
                        want = float(1 / sympy.sympify(decay) ** (q - k))
                        low = math.exp(min(score - err - sink, 700)) * scale
                        deviation = max(abs(weight - want), abs(low - want)) * float(exact.abs().max())
                        worst_k = max(worst_k, deviation + weight * float(dv.max()))
                    else:
                        worst_k = max(worst_k, weight * (float(value.abs().max()) + float(dv.max())))
                total_error += worst_k
            # The sink's share of the denominator is 1 + mass: it shrinks the whole sum by that factor.
            mass = sum(max(math.exp(min(o[1] + o[2] - sink, 700)) for o in opts) for opts in keys)
            largest_sum = sum(max(math.exp(min(o[1] + o[2] - sink, 700)) * scale *
                                  (float(o[3].abs().max()) + float(dv.max())) for o in opts) for opts in keys)
            return total_error + mass * largest_sum, sink - max((o[1] for opts in keys for o in opts),
                                                               default=-math.inf)
        raise CannotProve(f"no proof rule for {mode} heads")

    # ----- MLPs
    def _mlp_units(self, nid):
        attrs = self.graph.nodes[nid]
        layer = attrs[LAYER]
        prefix = f"blocks.{layer}.mlp."
        W_in, b_in = self.weights[prefix + "W_in"], self.weights[prefix + "b_in"]
        W_out, b_out = self.weights[prefix + "W_out"], self.weights[prefix + "b_out"]
        target = self.entries[nid]["dims"]
        units = (W_out[:, target].abs().sum(1) > 0).nonzero()[:, 0]
        served = [e for e in self.weight_map if e.get("id") == nid and "units" in e]
        if served:  # a sum's dimension may be written by other sublayers' units too
            start, end = served[0]["units"]
            units = units[(units >= start) & (units < end)]
        # Every unit writing this value must write nothing else.
        others = [d for d in range(self.d_model) if d not in target]
        if others and float(W_out[units][:, others].abs().max() if len(units) else 0) > 0:
            raise _Miss(f"the MLP units for '{self.name(nid)}' also write other values{self.at(nid)}")
        return W_in[:, units], b_in[units], W_out[units][:, target], b_out[target], target

    def check_mlp(self, nid):
        attrs = self.graph.nodes[nid]
        W_in, b_in, W_out, b_out, target = self._mlp_units(nid)
        reads = (W_in.abs().sum(1) > 0).nonzero()[:, 0].tolist()
        at = attrs[SLOT]
        stored = sorted(n for n, helper in self.owners(reads, at) if not helper)
        for n in stored:
            if n not in self.error:
                raise CannotProve(f"the MLP for '{self.name(nid)}' reads '{self.name(n)}' before it is proved"
                                  f"{self.at(nid)}")
        d_pre = self.input_error(W_in, at)
        in_place = "updates" in self.entries[nid]
        worst, margin = 0.0, math.inf
        errors = self._error_column(len(target), at)
        positions = self._positions_for(stored)
        for position in positions:
            # Every combination at once: one row of X per combination.
            combos = self.combos(stored, position, nid)
            X = self.vectors(stored, combos, position)
            pre = X @ W_in + b_in
            out = torch.relu(pre) @ W_out + b_out
            codes, table = self.values_over(nid, combos, position)
            exact_values = [table[c] for c in codes.tolist()]
            want = torch.stack([self.vector({nid: value}) for value in table])[torch.from_numpy(codes)]
            if in_place:  # it adds the new value minus what its dimension holds
                want = want - X
            miss = (out - want[:, target]).abs().amax(dim=1) if len(target) else torch.zeros(len(combos))
            if float(miss.max()) >= MISS_LIMIT:  # a smaller miss is rounding: it joins the error below
                i = int(miss.argmax())
                got = out[i] + X[i, target] if in_place else out[i]
                raise _Miss(f"the MLP for '{self.name(nid)}' gives {self._decoded(nid, got)} where "
                            f"{exact_values[i]} was expected (off by {float(miss[i]):.3g}), on "
                            f"{self._describe(combos[i])}{_at_position(positions, position)}{self.at(nid)}")
            if pre.shape[1]:
                if not bool((pre.abs() > d_pre).all()):
                    i = int(((pre.abs() - d_pre).amin(dim=1)).argmin())
                    raise CannotProve(f"an MLP unit for '{self.name(nid)}' may switch under input errors of up to "
                                      f"{float(d_pre.max()):.3g}, on {self._describe(combos[i])}"
                                      f"{_at_position(positions, position)}{self.at(nid)}")
                margin = min(margin, float((pre.abs() - d_pre).min()))
            propagated = self._propagated_error(pre > 0, W_in, W_out, target, in_place, errors)
            worst = max(worst, float((miss + propagated).max()))
        self.error[nid] = worst
        self.margins[f"MLP '{self.name(nid)}' ReLU margin"] = margin

    def _propagated_error(self, active, W_in, W_out, target, in_place, errors):
        """Per combination, the most an MLP passes on of its input errors. It depends on which units
        are active: one Jacobian per distinct pattern, W_in diag(active) W_out, computed for a
        block of patterns at once as active @ (W_in^T * W_out) (one product instead of a loop)."""
        column = errors[:, :1]  # the same bound for every target dimension
        if active.shape[1] == 0:  # no units: only what an update in place keeps
            return torch.full((len(active),), float(column[target].max()) if in_place else 0.0, dtype=torch.float64)
        patterns, rows = torch.unique(active, dim=0, return_inverse=True)
        per_unit = (W_in.T[:, :, None] * W_out[:, None, :]).reshape(W_in.shape[1], -1)  # unit -> d_model x target
        bounds = torch.empty(len(patterns), dtype=torch.float64)
        block = max(1, 2 ** 23 // max(1, per_unit.shape[0] + per_unit.shape[1]))
        for start in range(0, len(patterns), block):
            jacobians = (patterns[start:start + block].to(torch.float64) @ per_unit).reshape(-1, *W_in.shape[:1],
                                                                                               len(target))
            if in_place:  # the dimension keeps its old content, error included
                for i, d in enumerate(target):
                    jacobians[:, d, i] += 1
            bounds[start:start + block] = (jacobians.abs() * column).sum(1).amax(1)
        return bounds[rows.reshape(-1)]

    def _error_column(self, width, at):
        column = torch.zeros(self.d_model, 1, dtype=torch.float64)
        for d in self.dim_owner:
            column[d, 0] = sum(self.helper_error.get(nid, 0.0) if helper else self.error.get(nid, 0.0)
                               for nid, helper in self.live_owners(d, at))
        return column.expand(self.d_model, width)

    def _positions_for(self, stored):
        if any(self.graph.nodes[s][SOURCE] in ("position", "const") for s in stored):
            return range(self.n)
        # Any position but 0 stands for all: values range over their whole sets there (position 0
        # holds only what the layout's first token gives, a subset).
        return range(1, 2) if self.n > 1 else range(1)

    def _answer_positions(self, stored):
        """The positions whose next-token prediction is read: the last prompt position onwards.
        Earlier positions predict nothing, so their output is never checked."""
        positions = range(self.layout.prompt_length - 1, self.n)
        if any(self.graph.nodes[s][SOURCE] in ("position", "const") for s in stored):
            return positions
        return [next((p for p in positions if p > 0), positions[0])]  # as in _positions_for

    def _describe(self, assign):
        return ", ".join(f"{self.name(n)}={v}" for n, v in assign.items()) or "every input"

    def _decoded(self, nid, written):
        """What a value's dimensions hold, read back as a value of it (for messages)."""
        entry = self.entries[nid]
        if entry.get("shared"):
            share = float(written[0]) / float(sympy.Rational(entry["coefficient"]))
            return f"{share + float(number_of(entry['default'])):.10g}"
        if entry["encoding"] == "numerical":
            offset = float(num(self.graph.nodes[nid][NODE].default)) if entry["written_by"] == "attention" else 0.0
            slope, bias = (float(number_of(t)) for t in entry.get("stored_as", ("1", "0")))
            return f"{float(written[0]) * slope + bias + offset:.10g}"
        return f"{entry['values'][int(written.argmax())]} (one-hot {_vector_text(written)})"

    def check_width_mlp(self, nid):
        attrs = self.graph.nodes[nid]
        W_in, b_in, W_out, b_out, target = self._mlp_units(nid)
        d_pre = float(self.input_error(W_in, mlp_slot(attrs[LAYER])).max())
        worst = 0.0
        for value in attrs[VALUES]:
            w = int(value)
            x = torch.zeros(self.d_model, dtype=torch.float64)
            x[self.helpers[nid]["dims"][0]] = w / (w + 1)
            pre = x @ W_in + b_in
            out = torch.relu(pre) @ W_out + b_out
            # The width as a number, or one-hot where it is categorical: its encoding either way.
            miss = float((out - self.vector({nid: value})[target]).abs().max())
            if miss >= MISS_LIMIT:  # a smaller miss is rounding, carried as error
                raise _Miss(f"the selector_width '{self.name(nid)}' gives {self._decoded(nid, out)} where {w} was "
                            f"expected (its head gives {w}/{w + 1}){self.at(nid)}")
            if not bool((pre.abs() > d_pre).all()):
                raise CannotProve(f"a unit of the selector_width '{self.name(nid)}' may switch under input errors "
                                  f"of up to {d_pre:.3g}{self.at(nid)}")
            worst = max(worst, miss)
        self.error[nid] = worst

    # ----- output
    def check_unembedding(self):
        output = self.ir.program.output.id
        W_U, b_U = unembedding_matrix(self.weights), self.weights["unembed.b_U"]
        vocab = self.layout.vocab
        reads = (W_U.abs().sum(1) > 0).nonzero()[:, 0].tolist()
        at = unembedding_slot(self.config["n_layers"])
        stored = sorted(n for n, helper in self.owners(reads, at) if not helper)
        d_logit = self.input_error(W_U, at)
        smallest = math.inf
        positions = self._answer_positions(stored)
        for position in positions:
            combos = self.combos(stored, position, output)
            logits = self.vectors(stored, combos, position) @ W_U + b_U
            codes, table = self.values_over(output, combos, position)
            right = torch.tensor([vocab.index(table[c]) for c in codes.tolist()])
            chosen = logits.gather(1, right[:, None])[:, 0]
            others = logits.scatter(1, right[:, None], -math.inf).amax(dim=1)
            if bool((chosen - others <= 0).any()):
                i = int((chosen - others).argmin())
                written = vocab[int(logits[i].argmax())]
                raise _Miss(f"the output gives {written!r} where {table[codes[i]]!r} was expected (logit gap "
                            f"{float(chosen[i] - others[i]):.3g}), on {self._describe(combos[i])}"
                            f"{_at_position(positions, position)}{self.at(output)}")
            gaps = chosen - others - d_logit[right] - d_logit.max()
            smallest = min(smallest, float(gaps.min()))
        if smallest <= 0:
            raise CannotProve(f"the output's logit margin may be erased by errors (margin {smallest:.3g} "
                              f"after them){self.at(output)}")
        self.margins["smallest logit margin after errors"] = smallest


def _at_position(positions, position) -> str:
    """Names the position when the check ran position by position (else one stood for all)."""
    return f" at position {position}" if len(positions) > 1 else ""


def _vector_text(vector) -> str:
    items = [f"{float(x):.4g}" for x in vector.reshape(-1)[:8]]
    return "[" + ", ".join(items) + (", ...]" if vector.numel() > 8 else "]")


def _offset_of(node, n_ctx, base) -> int | None:
    from compiler.passes.encodings import relative_term
    kind = relative_term(node.selector.terms[0], n_ctx, base)
    return kind[1] if kind is not None and kind[0] == "offset" else None


def _fold_null_keys(keys, sink):
    """Keys never selected whose value vector is exactly zero act as sinks: the weight they take
    adds nothing to the output. Fold them into one sink logit (a lower bound on their share)."""
    null = [i for i, opts in enumerate(keys)
            if opts and all(not o[0] and float(o[3].abs().max()) == 0 for o in opts)]
    if not null:
        return keys, sink
    logits = [sink] + [min(o[1] - o[2] for o in keys[i]) for i in null]
    top = max(logits)
    folded = top + math.log(sum(math.exp(l - top) for l in logits if l != -math.inf))
    return [[] if i in null else opts for i, opts in enumerate(keys)], folded


def _evaluate_token_only(graph, node, token, base):
    """A token-only value for one token (its inputs are tokens and constants)."""
    from dsl.core import Const, Tokens
    if isinstance(node, Tokens):
        return token
    if isinstance(node, Const):
        return node.value
    args = tuple(_evaluate_token_only(graph, a, token, base) for a in node.args)
    return apply_op(node.op, args, base)
