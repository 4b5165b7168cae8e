"""safetensors model files: written by `adderc export --to safetensors` and by `adderc PROGRAM -o
x.safetensors`, read back bit for bit (by adderc and by the safetensors library), accepted by every
command that reads model.pt, and, being untrusted data as well, refused whole when hostile."""
import copy
import json
import struct

import pytest
import torch
from safetensors import safe_open

from compiler.cli import main
from compiler.model.safetensors_file import encode, write
from compiler.model.file import MAX_SAFETENSORS_HEADER, load_model
from tests.conftest import ADD10, ROOT, saved_model
from tests import test_model_file_trust as trust
from tests.test_model_file_trust import _refused

PROGRAMS = {"add10": ADD10, "add_lsb": ROOT / "examples" / "add_lsb.rasp", "sub": ROOT / "examples" / "sub.rasp"}
sandbox = trust.sandbox  # the fixture: a working folder where any stray write shows
CASES = [(name, dtype) for name in PROGRAMS for dtype in ("float64", "float32")]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(program, dtype) -> (model.pt, the same model exported to safetensors by the CLI)."""
    folder = tmp_path_factory.mktemp("safetensors")
    out = {}
    for name, dtype in CASES:
        pt = saved_model(folder, PROGRAMS[name], f"{name}-{dtype}.pt", dtype)
        st = folder / f"{name}-{dtype}.safetensors"
        assert main(["export", str(pt), "--to", "safetensors", "-o", str(st)]) == 0
        out[name, dtype] = pt, st
    return out


@pytest.mark.parametrize("name,dtype", CASES)
def test_round_trip_is_bit_exact(models, name, dtype):
    pt, st = models[name, dtype]
    model_pt, payload_pt = load_model(pt)
    model_st, payload_st = load_model(st)
    assert {k: v for k, v in payload_st.items() if k != "state_dict"} == \
           {k: v for k, v in payload_pt.items() if k != "state_dict"}
    assert payload_st["state_dict"].keys() == payload_pt["state_dict"].keys()
    for key, tensor in payload_pt["state_dict"].items():
        other = payload_st["state_dict"][key]
        assert other.dtype == tensor.dtype == getattr(torch, dtype) and other.shape == tensor.shape
        assert torch.equal(other.reshape(-1).view(torch.uint8), tensor.reshape(-1).view(torch.uint8))  # the bits, -0.0 too
    tokens = torch.randint(0, payload_pt["config"]["d_vocab"], (64, payload_pt["config"]["n_ctx"]),
                           generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        a, b = model_pt(tokens), model_st(tokens)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name,dtype", CASES)
def test_the_safetensors_library_reads_the_same_tensors_and_fields(models, name, dtype):
    pt, st = models[name, dtype]
    _, payload = load_model(pt)
    with safe_open(str(st), "pt") as f:
        assert set(f.keys()) == set(payload["state_dict"])
        for key in f.keys():
            assert torch.equal(f.get_tensor(key), payload["state_dict"][key])
        meta = f.metadata()
    assert {k: json.loads(v) for k, v in meta.items()} == {k: v for k, v in payload.items() if k != "state_dict"}


def test_writing_is_deterministic_and_compile_writes_safetensors_by_suffix(models, tmp_path):
    pt, st = models["add10", "float64"]
    _, payload = load_model(pt)
    assert encode(payload) == encode(copy.deepcopy(payload)) == st.read_bytes()
    direct = tmp_path / "direct.safetensors"
    assert main([str(ADD10), "-o", str(direct)]) == 0
    assert direct.read_bytes() == st.read_bytes()
    assert not list(tmp_path.glob(".*partial*"))


def test_the_kind_is_read_from_the_bytes_not_the_name(models, tmp_path, capsys):
    pt, st = models["add10", "float64"]
    swapped_st, swapped_pt = tmp_path / "really_torch.safetensors", tmp_path / "really_safetensors.pt"
    swapped_st.write_bytes(pt.read_bytes())
    swapped_pt.write_bytes(st.read_bytes())
    capsys.readouterr()
    for path in (swapped_st, swapped_pt):
        assert main(["run", str(path), "1234567890+9876543210="]) == 0
        assert capsys.readouterr().out.split() == ["11111111100"]


def test_every_command_reads_a_safetensors_model(models, capsys):
    for dtype in ("float64", "float32"):
        pt, st = models["add10", dtype]
        capsys.readouterr()
        for argv in (["run", "{}", "1234567890+9876543210=", "9999999999+0000000001="],
                     ["stats", "{}", "--json"], ["explain", "{}", "--json"],
                     ["verify", "{}", "--samples", "300", "--json"]):
            outputs = []
            for path in (pt, st):
                assert main([a.format(path) for a in argv]) == 0, (argv, path)
                outputs.append(capsys.readouterr().out)
            if argv[0] == "run":
                assert outputs[0] == outputs[1] and outputs[0].split() == ["11111111100", "10000000000"]
            else:
                a, b = (json.loads(o) for o in outputs)
                if argv[0] == "verify":
                    assert a["ok"] and b["ok"] and a["status"] == b["status"] == "holds", (a, b)
                    assert a["checks"] == b["checks"] and a["seed"] == b["seed"]
                else:
                    assert a == b


# --- hostile safetensors files -------------------------------------------------------------------

def _split(data: bytes):
    size = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + size]), data[8 + size:]


def _join(header, body: bytes, raw: bytes | None = None) -> bytes:
    text = raw if raw is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def _header_edit(edit):
    def mutate(data):
        header, body = _split(data)
        edit(header)
        return _join(header, body)
    return mutate


def _meta_edit(edit):
    def change(header):
        edit(header["__metadata__"])
    return _header_edit(change)


def _first_tensor(header):
    return next(k for k in sorted(header) if k != "__metadata__")


def _set_tensor(field, value):
    def change(header):
        header[_first_tensor(header)][field] = value
    return _header_edit(change)


def _overlap(header):
    names = [k for k in header if k != "__metadata__"]
    a, b = sorted(names, key=lambda k: header[k]["data_offsets"][0])[:2]
    header[b]["data_offsets"] = list(header[a]["data_offsets"])
    header[b]["shape"], header[b]["dtype"] = list(header[a]["shape"]), header[a]["dtype"]


def _payload_edit(edit):
    """A file written by adderc's own writer from an edited payload: well framed, wrong inside."""
    def mutate(data):
        header, body = _split(data)
        payload = {k: json.loads(v) for k, v in header.pop("__metadata__").items()}
        payload["state_dict"] = {k: torch.frombuffer(bytearray(body[e["data_offsets"][0]:e["data_offsets"][1]]),
                                                     dtype=torch.float64).reshape(e["shape"])
                                 for k, e in header.items()}
        edit(payload)
        return encode(payload)
    return mutate


# name -> (mutation of the good file's bytes, what the one-line message must say)
HOSTILE = {
    "header length huge": (lambda d: struct.pack("<Q", 2 ** 63) + d[8:], "safetensors header: 9,223,372,036"),
    "header length past the limit": (lambda d: struct.pack("<Q", MAX_SAFETENSORS_HEADER + 1) + d[8:],
                                     "more than this adderc reads"),
    "header longer than the file": (lambda d: struct.pack("<Q", len(d)) + d[8:], "truncated"),
    "truncated data": (lambda d: d[:-5], "safetensors tensor"),
    "header not JSON": (lambda d: _join(None, b"", raw=b"{not json" + b" " * 7), "safetensors header: not JSON"),
    "header not UTF-8": (lambda d: _join(None, b"", raw=b"{\xff\xfe}"), "not UTF-8"),
    "header entry not a tensor": (lambda d: _join(None, b"", raw=b'{"a": 1}'), "tensor 'a': not {dtype"),
    "neither kind of file": (lambda d: _join(None, b"", raw=b"[1]"), "not an adderc model"),
    "repeated tensor key": (lambda d: (lambda h, b: _join(None, b, raw=json.dumps(h).encode()[:-1] + b', "embed.W_E": '
                                                          + json.dumps(h["embed.W_E"]).encode() + b"}"))(*_split(d)),
                            "'embed.W_E' is repeated"),
    "deeply nested header": (lambda d: _join(None, b"", raw=b"{\"a\":" + b"[" * 200_000 + b"]" * 200_000 + b"}"),
                             "not JSON"),
    "NaN in the header": (lambda d: _join(None, b"", raw=b"{\"a\": NaN}"), "NaN is not JSON"),
    "metadata not text": (_header_edit(lambda h: h.__setitem__("__metadata__", {"config": 5})), "__metadata__"),
    "metadata value not JSON": (_meta_edit(lambda m: m.__setitem__("config", "{n_layers: 2")),
                                "safetensors __metadata__.config: not JSON"),
    "metadata holds state_dict": (_meta_edit(lambda m: m.__setitem__("state_dict", "{}")), "__metadata__.state_dict"),
    "metadata missing a field": (_meta_edit(lambda m: m.pop("residual_map")), "file.residual_map: is missing"),
    "metadata unknown field": (_meta_edit(lambda m: m.__setitem__("evil", "1")), "file.evil: unknown key"),
    "metadata config wrong": (_meta_edit(lambda m: m.__setitem__("config", m["config"].replace('"d_model": 5', '"d_model": -5'))),
                              "config.d_model"),
    "metadata huge number": (_meta_edit(lambda m: m.__setitem__("format_version", "9" * 5000)), "not JSON"),
    "no metadata at all": (_header_edit(lambda h: h.pop("__metadata__")), "format: not an adderc model"),
    "dtype float16": (_set_tensor("dtype", "F16"), "dtype 'F16'; an adderc model holds F32 or F64"),
    "dtype not text": (_set_tensor("dtype", 64), "dtype '64'"),
    "shape negative": (_set_tensor("shape", [-1]), "is not a list of sizes"),
    "shape huge": (_set_tensor("shape", [2 ** 40, 2 ** 40]), "is not a list of sizes"),
    "shape of the wrong size": (_set_tensor("shape", [1]), "bytes of data for shape [1]"),
    "offsets past the data": (_set_tensor("data_offsets", [0, 10 ** 9]), "do not lie in the"),
    "offsets reversed": (_set_tensor("data_offsets", [16, 8]), "do not lie in the"),
    "offsets not numbers": (_set_tensor("data_offsets", ["0", "8"]), "do not lie in the"),
    "tensor entry missing a key": (_header_edit(lambda h: h[_first_tensor(h)].pop("shape")),
                                   "not {dtype, shape, data_offsets}"),
    "tensors overlap": (_header_edit(_overlap), "safetensors tensor"),
    "bytes after the last tensor": (lambda d: d + bytes(8), "safetensors data: 8 bytes after the last tensor"),
    "extra tensor": (_payload_edit(lambda p: p["state_dict"].__setitem__("blocks.7.attn.W_Q", torch.zeros(1, dtype=torch.float64))),
                     "state_dict.blocks.7.attn.W_Q: not a weight"),
    "missing tensor": (_payload_edit(lambda p: p["state_dict"].pop("unembed.b_U")), "state_dict.unembed.b_U: is missing"),
    "a weight stored as F32": (_payload_edit(lambda p: p["state_dict"].__setitem__(
        "blocks.0.mlp.W_in", p["state_dict"]["blocks.0.mlp.W_in"].float())), "state_dict.blocks.0.mlp.W_in: dtype float32"),
    "NaN weight": (_payload_edit(lambda p: p["state_dict"]["blocks.0.mlp.W_in"].view(-1).__setitem__(0, float("nan"))),
                   "state_dict.blocks.0.mlp.W_in: holds NaN"),
    "tampered source": (_payload_edit(lambda p: p["program"].__setitem__("source", "output 1\n")), "program.source"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_safetensors_file_is_refused_naming_the_file(case, models, sandbox, capsys):
    mutate, message = HOSTILE[case]
    path = sandbox / "hostile.safetensors"
    path.write_bytes(mutate(models["add10", "float64"][1].read_bytes()))
    before = {p for p in sandbox.rglob("*")}
    _refused(path, message, capsys)
    assert {p for p in sandbox.rglob("*")} == before


def test_a_file_too_large_is_refused_before_it_is_read(sandbox, capsys, monkeypatch):
    import compiler.model.file as file
    monkeypatch.setattr(file, "MAX_UNCOMPRESSED", 1000)
    path = sandbox / "large.safetensors"
    write(load_model(saved_model(sandbox, ADD10))[1], path)
    _refused(path, "more than this adderc reads (1,000)", capsys, commands=("stats",))
