"""The proof's order: write hygiene, the embeddings, every stored value in the order the sublayers
write them, then the unembedding. Each check reads only error bounds proved before it."""
from __future__ import annotations

import time

from compiler.ir.attrs import PAIRED_INTO, PAIRED_WITH, REALIZE
from compiler.check.prove.attention import check_head
from compiler.check.prove.embeddings import check_embeddings, check_write_hygiene
from compiler.check.prove.mlp import check_mlp
from compiler.check.prove.paired import check_pair_head
from compiler.check.prove.rounding import Rounding
from compiler.check.prove.state import ProofState
from compiler.check.prove.unembedding import check_unembedding
from compiler.check.prove.width import check_width_mlp
from compiler.progress import Progress


class Checker(ProofState):
    def __init__(self, ir, residual_map, weights, config, weight_map=(), dtype="float64"):
        super().__init__(ir, residual_map, weights, config, weight_map)
        self.rounding = Rounding(dtype)  # every check bounds the rounding of the dtype the model runs in

    def run(self, progress: Progress | None = None):
        """Every check in order; `seconds` gets the time each sublayer's checks took (sublayer
        number -> seconds), so a slow proof shows where it spends its time."""
        self.seconds: dict[int, float] = {}
        check_write_hygiene(self)
        check_embeddings(self)
        order = sorted(self.entries.values(), key=lambda e: e["sublayer"])
        for entry in order:
            started = time.perf_counter()
            self._check_entry(entry)
            self.seconds[entry["sublayer"]] = self.seconds.get(entry["sublayer"], 0.0) + time.perf_counter() - started
            if progress is not None:
                progress.advance(1)
        check_unembedding(self)

    def _check_entry(self, entry):
        nid = entry["id"]
        attrs = self.graph.nodes[nid]
        if PAIRED_WITH in attrs:
            check_pair_head(self, nid)
        elif PAIRED_INTO in attrs:
            return  # proved with the head it shares
        elif attrs[REALIZE] == "attention":
            check_head(self, nid)
        elif attrs[REALIZE] == "mlp":
            check_mlp(self, nid)
        elif attrs[REALIZE] == "width":
            check_head(self, nid)
            check_width_mlp(self, nid)
