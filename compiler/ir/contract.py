"""What each pass reads from the IR and what it adds, declared on the pass itself.

    @compiler_pass(reads={VALUES, REALIZE}, adds={READY, SLOT}, reads_ir={"options"}, sets_ir={"n_layers"})
    def schedule(ir): ...

`reads` and `adds` are node attributes (compiler.ir.attrs); `rewrites` are attributes an earlier
pass added that this one changes in place. `reads_ir` and `sets_ir` are fields of CompileIR.
Every pass may read `ir.program` and `ir.graph`: build_graph makes both, and nothing replaces
the program, so they are left out of the declarations. Declarations are data, not enforcement:
tests/test_contract.py runs every example with recording attribute dicts and fails when a pass
touches what it did not declare, and `static_problems` checks the order of the declarations.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from compiler.ir.attrs import NODE_ATTRIBUTES
from compiler.ir.compile_ir import CompileIR

IR_FIELDS = frozenset(f.name for f in fields(CompileIR))
# Read by every pass, made by build_graph and never replaced: not declared pass by pass.
EVERY_PASS_READS = frozenset({"program", "graph"})


@dataclass(frozen=True)
class PassContract:
    name: str
    reads: frozenset = frozenset()
    adds: frozenset = frozenset()
    rewrites: frozenset = frozenset()
    reads_ir: frozenset = frozenset()
    sets_ir: frozenset = frozenset()


def compiler_pass(reads=(), adds=(), rewrites=(), reads_ir=(), sets_ir=()):
    """Attach a PassContract to a pass (as `fn.contract`); the function itself is unchanged."""
    def declare(function):
        contract = PassContract(function.__name__, frozenset(reads), frozenset(adds), frozenset(rewrites),
                                frozenset(reads_ir), frozenset(sets_ir))
        unknown = (contract.reads | contract.adds | contract.rewrites) - NODE_ATTRIBUTES
        unknown |= (contract.reads_ir | contract.sets_ir) - IR_FIELDS
        if unknown:  # a typo in a declaration would make it silently true
            raise ValueError(f"{function.__name__} declares unknown names: {sorted(unknown)}")
        function.contract = contract
        return function
    return declare


def contract_of(compiler_pass) -> PassContract:
    return compiler_pass.contract


def static_problems(passes) -> list[str]:
    """Declarations that cannot hold in this order: a read (or rewrite) of what no earlier pass
    adds, an add of what an earlier pass already added (that is a rewrite), a field read before
    any pass sets it."""
    problems = []
    added: set = set()
    set_fields = set(EVERY_PASS_READS)
    for compiler_pass in passes:
        contract = contract_of(compiler_pass)
        for name in sorted(contract.reads - added):
            problems.append(f"{contract.name} reads '{name}', which no earlier pass adds")
        for name in sorted(contract.rewrites - added):
            problems.append(f"{contract.name} rewrites '{name}', which no earlier pass adds")
        for name in sorted(contract.adds & added):
            problems.append(f"{contract.name} adds '{name}', which an earlier pass added: declare it as a rewrite")
        for name in sorted(contract.reads_ir - set_fields):
            problems.append(f"{contract.name} reads ir.{name}, which no earlier pass sets")
        added |= contract.adds
        set_fields |= contract.sets_ir
    return problems


def contract_table(passes) -> str:
    """The declarations as a markdown table, one row per pass in pipeline order."""
    show = lambda names, prefix="": ", ".join(f"`{prefix}{n}`" for n in sorted(names)) or "-"
    rows = ["| pass | reads | adds | rewrites | reads IR | sets IR |",
            "|---|---|---|---|---|---|"]
    for compiler_pass in passes:
        c = contract_of(compiler_pass)
        rows.append(f"| `{c.name}` | {show(c.reads)} | {show(c.adds)} | {show(c.rewrites)} | "
                    f"{show(c.reads_ir, 'ir.')} | {show(c.sets_ir, 'ir.')} |")
    return "\n".join(rows) + "\n"
