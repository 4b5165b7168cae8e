"""`adderc export --to onnx`: the graph onnxruntime runs gives torch's logits, for any batch size and
sequence length up to the context, and carries adderc's vocabulary in its metadata."""
import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from dsl.errors import AdderError
from dsl.layout import Layout
from compiler.export.to_onnx import OPSET, export
from compiler.model.file import load_model
from tests.conftest import EXAMPLES, ROOT, saved_model
from tests.test_model import _ids

# float32 logits reach a few hundred; ORT and torch sum in different orders
TOLERANCE = {"float64": 1e-9, "float32": 1e-3}


@pytest.fixture(scope="session", params=[("add10", "float64"), ("add10", "float32"), ("sub", "float64")],
                ids=lambda p: "-".join(p))
def exported(request, tmp_path_factory):
    name, dtype = request.param
    folder = tmp_path_factory.mktemp(f"onnx-{name}-{dtype}")
    model, payload = load_model(saved_model(folder, EXAMPLES / f"{name}.rasp", dtype=dtype))
    lines = export(model, payload, folder / "m.onnx")
    return model, payload, folder / "m.onnx", lines


def _session(path):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _layout(payload):
    return Layout.from_dict(payload["layout"])


@pytest.mark.parametrize("batch", [1, 3, 64])
def test_onnxruntime_gives_torchs_logits(exported, batch):
    model, payload, path, _ = exported
    session = _session(path)
    ids = _ids(_layout(payload), batch, seed=batch)
    n_ctx = payload["config"]["n_ctx"]
    for seq in (1, 2, n_ctx // 2, n_ctx):
        part = ids[:, :seq]
        with torch.no_grad():
            want = model(part).numpy()
        (got,) = session.run(["logits"], {"token_ids": part.numpy()})
        assert got.shape == want.shape == (batch, seq, payload["config"]["d_vocab"])
        assert got.dtype == want.dtype
        assert np.max(np.abs(got - want)) <= TOLERANCE[payload["config"]["dtype"]], (batch, seq)
        assert (got.argmax(-1) == want.argmax(-1)).all()


def test_the_graph_has_one_dynamic_input_and_output_and_metadata(exported):
    model, payload, path, lines = exported
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    (given,), (out,) = proto.graph.input, proto.graph.output
    assert (given.name, out.name) == ("token_ids", "logits")
    assert given.type.tensor_type.elem_type == onnx.TensorProto.INT64
    dims = [d.dim_param or d.dim_value for d in given.type.tensor_type.shape.dim]
    assert all(isinstance(d, str) for d in dims), dims  # both symbolic
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["adderc.vocab"]) == list(payload["vocab"])
    assert props["adderc.dtype"] == payload["config"]["dtype"]
    assert props["adderc.opset"] == str(OPSET)
    assert any(o.domain in ("", "ai.onnx") and o.version == OPSET for o in proto.opset_import)
    assert "token_ids" in lines[0]


def test_the_command_line_exports(tmp_path):
    model_file = saved_model(tmp_path, EXAMPLES / "add_lsb.rasp")
    run = lambda *extra: subprocess.run([sys.executable, "-m", "compiler.cli", "export", str(model_file), "--to",
                                         "onnx", *extra], cwd=ROOT, capture_output=True, text=True, timeout=240)
    result = run("-o", str(tmp_path / "m.onnx"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["format"] == "onnx" and report["output"] == str(tmp_path / "m.onnx")
    model, payload = load_model(model_file)
    ids = _ids(_layout(payload), 5, seed=9)
    (got,) = _session(tmp_path / "m.onnx").run(["logits"], {"token_ids": ids.numpy()})
    with torch.no_grad():
        assert np.max(np.abs(got - model(ids).numpy())) <= 1e-9
    result = run("-o", str(tmp_path / "no" / "such" / "m.onnx"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "does not exist" in result.stderr


def test_a_bad_path_is_an_adder_error(exported, tmp_path):
    model, payload, _, _ = exported
    with pytest.raises(AdderError, match="does not exist"):
        export(model, payload, tmp_path / "missing" / "m.onnx")
    with pytest.raises(AdderError, match="folder"):
        export(model, payload, tmp_path)
