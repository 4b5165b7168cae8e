"""The emitted model is one file that needs torch alone (as nanoGPT's model.py): a reader can copy
compiler/model/transformer.py next to a model file's state dict and run it without adderc."""
import subprocess
import sys

from tests.conftest import ROOT

# With torch loaded (torch itself may pull in numpy), refuse every import of the compiler's other
# dependencies and of adderc's other modules, then load the emitted model: from its package and
# from the file alone.
PROBE = r"""
import importlib.abc, importlib.util, sys
import torch
BLOCKED = ("sympy", "lark", "networkx", "dsl", "compiler.passes", "compiler.ir", "compiler.check",
           "compiler.pipeline", "compiler.api", "compiler.cli")
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Refuse())
from compiler.model.transformer import CompiledTransformer
spec = importlib.util.spec_from_file_location("standalone_model", sys.argv[1])
alone = importlib.util.module_from_spec(spec)
spec.loader.exec_module(alone)
config = {"n_layers": 1, "d_model": 2, "d_vocab": 3, "n_ctx": 4, "n_heads": [1], "d_head": [1],
          "d_mlp": [1], "act_fn": "relu", "dtype": "float64"}
for cls in (CompiledTransformer, alone.CompiledTransformer):
    logits = cls(config)(torch.tensor([[0, 1, 2]]))
    assert tuple(logits.shape) == (1, 3, 3), logits.shape
print("ok", sorted(m for m in sys.modules if m.split(".")[0] in ("compiler", "dsl")))
"""


def test_the_emitted_model_imports_with_torch_alone():
    result = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "compiler" / "model" / "transformer.py")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok"), result.stdout
    assert "dsl" not in result.stdout and "compiler.passes" not in result.stdout
