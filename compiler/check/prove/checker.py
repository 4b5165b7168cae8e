"""The proof's order: write hygiene, the embeddings, every stored value in the order the sublayers
write them, then the unembedding. Each check reads only error bounds proved before it."""
from __future__ import annotations

from compiler.ir.attrs import PAIRED_INTO, PAIRED_WITH, REALIZE
from compiler.check.prove.attention import check_head
from compiler.check.prove.embeddings import check_embeddings, check_write_hygiene
from compiler.check.prove.mlp import check_mlp
from compiler.check.prove.paired import check_pair_head
from compiler.check.prove.state import ProofState
from compiler.check.prove.unembedding import check_unembedding
from compiler.check.prove.width import check_width_mlp


class Checker(ProofState):
    def run(self):
        check_write_hygiene(self)
        check_embeddings(self)
        order = sorted(self.entries.values(), key=lambda e: e["sublayer"])
        for entry in order:
            nid = entry["id"]
            realize = self.graph.nodes[nid][REALIZE]
            if PAIRED_WITH in self.graph.nodes[nid]:
                check_pair_head(self, nid)
            elif PAIRED_INTO in self.graph.nodes[nid]:
                continue  # proved with the head it shares
            elif realize == "attention":
                check_head(self, nid)
            elif realize == "mlp":
                check_mlp(self, nid)
            elif realize == "width":
                check_head(self, nid)
                check_width_mlp(self, nid)
        check_unembedding(self)
