"""docs/architecture.md shows the passes' declarations as they are (compiler.ir.contract)."""
import re

from compiler.ir.contract import contract_table
from compiler.pipeline import PIPELINE
from tests.conftest import ROOT

DOC = ROOT / "docs" / "architecture.md"
TABLE = re.compile(r"<!-- contract table:[^\n]*-->\n(.*?)<!-- end of contract table -->", re.S)


def test_the_contract_table_is_the_declarations():
    found = TABLE.search(DOC.read_text(encoding="utf-8"))
    assert found, "docs/architecture.md has lost its contract table markers"
    assert found.group(1) == contract_table(PIPELINE), \
        "the table differs from the passes' declarations: paste the output of `python -m compiler.pipeline`"


def test_every_pass_in_the_pipeline_has_a_row():
    table = TABLE.search(DOC.read_text(encoding="utf-8")).group(1)
    assert [row.split("`")[1] for row in table.splitlines()[2:]] == [p.__name__ for p in PIPELINE]
