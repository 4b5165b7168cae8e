"""A model file is untrusted data: hostile or inconsistent files, built here from a good one, are
each refused with one line naming the file and the field (exit 2), and none writes or reads
anything outside what the command asked for. Compiling twice writes the same bytes."""
import copy
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch

from compiler.api import compile_file
from compiler.cli import main
from compiler.model.file import load_model, save_model
from compiler.model.schema import MAX_PROVENANCE_NODES, MAX_UNCOMPRESSED
from dsl.resolve import sources_digest
from tests.conftest import ADD10, ROOT, saved_model

LSB = ROOT / "examples" / "add_lsb.rasp"
PROMPT = "0987654321+0123456789="


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """(path of a good add_lsb model file, its payload)."""
    ir, stats, digest = compile_file(LSB)
    path = tmp_path_factory.mktemp("good") / "good.pt"
    save_model(path, ir, stats, digest)
    return path, torch.load(path, weights_only=True)


def _resealed(payload):
    """The payload with its program's digest made to match its (edited) sources again, so a check
    past the digest is what refuses it."""
    program = payload["program"]
    program["source"] = program["sources"][program["path"]]
    program["sha256"] = sources_digest(program["sources"].values())
    return payload


def _sources(payload, sources, path=None):
    payload["program"]["sources"] = sources
    if path is not None:
        payload["program"]["path"] = path
    return _resealed(payload)


def _with_import(payload, line):
    program = payload["program"]
    program["sources"][program["path"]] = line + "\n" + program["sources"][program["path"]]
    return _resealed(payload)


def _state(name, edit):
    def mutate(payload):
        payload["state_dict"][name] = edit(payload["state_dict"][name])
        return payload
    return mutate


def _set(keys, value):
    def mutate(payload):
        target = payload
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
        return payload
    return mutate


def _delete(keys):
    def mutate(payload):
        target = payload
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
        return payload
    return mutate


def _nan(t):
    t = t.clone()
    t.view(-1)[0] = float("nan")
    return t


SITE = "site-packages/evil.pth"  # where a planted .pth would run code at the next Python start
PLANT = "import os; open(os.path.join(os.path.dirname(__file__), 'RAN'), 'w')\n"

# name -> (mutation, the field the message must name)
HOSTILE = {
    "source name climbs out": (lambda p: _sources(p, {**p["program"]["sources"], "../../" + SITE: PLANT}),
                               "program.sources"),
    "source name absolute": (lambda p: _sources(p, {**p["program"]["sources"], "ABSOLUTE_SITE": PLANT}),
                             "program.sources"),
    "main source named /etc/passwd": (lambda p: _sources(p, {"/etc/passwd": p["program"]["source"]}, "/etc/passwd"),
                                      "program.sources"),
    "program path /etc/passwd": (_set(["program", "path"], "/etc/passwd"), "program.path"),
    "program path climbs out": (_set(["program", "path"], "../add_lsb.rasp"), "program.path"),
    "source name with a dot part": (lambda p: _sources(p, {"./add_lsb.rasp": p["program"]["source"]},
                                                       "./add_lsb.rasp"), "program.sources"),
    "tampered source": (lambda p: _set(["program", "sources", p["program"]["path"]],
                                       p["program"]["source"].replace("const N = 10", "const N = 9"))(p),
                        "program.source"),
    "tampered source, source field too": (lambda p: _set(["program", "source"], p["program"]["source"] + "\n")(
        _set(["program", "sources", p["program"]["path"]], p["program"]["source"] + "\n")(p)), "program.sha256"),
    "source field differs": (_set(["program", "source"], "output 1\n"), "program.source"),
    "digest not hex": (_set(["program", "sha256"], "abc"), "program.sha256"),
    "huge override": (_set(["program", "overrides"], {"N": 10 ** 30}), "program.overrides.N"),
    "bool override": (_set(["program", "overrides"], {"N": True}), "program.overrides.N"),
    "constant a list": (_set(["program", "constants", "N"], [1, 2]), "program.constants.N"),
    "wrong shape": (_state("embed.W_E", lambda t: torch.zeros(t.shape[0] + 1, t.shape[1], dtype=t.dtype)),
                    "state_dict.embed.W_E"),
    "wrong dtype float32": (_state("blocks.0.mlp.W_in", lambda t: t.float()), "state_dict.blocks.0.mlp.W_in"),
    "wrong dtype int": (_state("blocks.0.mlp.W_in", lambda t: t.long()), "state_dict.blocks.0.mlp.W_in"),
    "NaN weight": (_state("blocks.0.mlp.W_in", _nan), "state_dict.blocks.0.mlp.W_in"),
    "infinite sink the wrong way": (_state("blocks.0.attn.sink", lambda t: torch.full_like(t, float("inf"))),
                                    "state_dict.blocks.0.attn.sink"),
    "negative window": (_state("blocks.0.attn.window", lambda t: torch.full_like(t, -1.0)),
                        "state_dict.blocks.0.attn.window"),
    "not a tensor": (_state("unembed.b_U", lambda t: t.tolist()), "state_dict.unembed.b_U"),
    "missing tensor": (_delete(["state_dict", "unembed.b_U"]), "state_dict.unembed.b_U"),
    "extra tensor": (_set(["state_dict", "blocks.7.attn.W_Q"], torch.zeros(1, dtype=torch.float64)),
                     "state_dict.blocks.7.attn.W_Q"),
    "format_version bool": (_set(["format_version"], True), "format_version"),
    "format_version text": (_set(["format_version"], "2"), "format_version"),
    "format_version float": (_set(["format_version"], 2.0), "format_version"),
    "format_version newer": (_set(["format_version"], 99), "format_version"),
    "not adderc": (_set(["format"], "pytorch"), "format"),
    "missing residual map": (_delete(["residual_map"]), "file.residual_map"),
    "d_model zero": (_set(["config", "d_model"], 0), "state_dict.embed.W_E: shape [13, 1], but the config gives [13, 0]"),
    "d_model a float": (_set(["config", "d_model"], 1.0), "config.d_model: 1.0 is not a non-negative whole number"),
    "d_model negative": (_set(["config", "d_model"], -5), "config.d_model"),
    "d_model huge": (_set(["config", "d_model"], 10 ** 12), "config.d_model"),
    "layers huge": (_set(["config", "n_layers"], 10 ** 9), "config.n_layers"),
    "context huge": (_set(["config", "n_ctx"], 2 ** 40), "config.n_ctx"),
    "heads of the wrong length": (_set(["config", "n_heads"], [2, 2]), "config.n_heads"),
    "heads a float": (_set(["config", "n_heads"], [2.0]), "config.n_heads[0]"),
    "kv groups do not divide": (_set(["config", "n_kv_heads"], [3]), "config.n_kv_heads[0]"),
    "dtype float16": (_set(["config", "dtype"], "float16"), "config.dtype"),
    "config lacks n_ctx": (_delete(["config", "n_ctx"]), "config.n_ctx"),
    "config unknown key": (_set(["config", "hidden"], 1), "config.hidden"),
    "context disagrees with layout": (_set(["config", "n_ctx"], 40), "config.n_ctx"),
    "vocab repeats": (lambda p: _set(["vocab"], p["vocab"][:-1] + ["0"])(p), "vocab"),
    "vocab not a list": (_set(["vocab"], "0123456789"), "vocab"),
    "vocab of numbers": (lambda p: _set(["vocab"], list(range(len(p["vocab"]))))(p), "vocab"),
    "layout base 99": (_set(["layout", "base"], 99), "layout.base"),
    "layout answer index out": (_set(["layout", "answer_index"], 40), "layout.answer_index"),
    "layout item malformed": (_set(["layout", "items", 1], ["field", "a"]), "layout.items[1]"),
    "layout width text": (_set(["layout", "items", 1], ["field", "a", "10"]), "layout.items[1]"),
    "layout order": (_set(["layout", "order"], "sideways"), "layout.order"),
    "layout without answer field": (_set(["layout", "items", 5], ["literal", "!"]), "layout"),
    "layout field repeated": (_set(["layout", "items", 3], ["field", "a", 10]), "layout"),
    "layout wider than the weights": (_set(["layout", "items", 1], ["field", "a", 11]), "config.n_ctx"),
    "residual dims past d_model": (_set(["residual_map", 0, "dims"], [999]), "residual_map[0].dims"),
    "residual dims bool": (_set(["residual_map", 0, "dims"], [True]), "residual_map[0].dims"),
    "residual sublayer past the model": (_set(["residual_map", 0, "sublayer"], 50), "residual_map[0].sublayer"),
    "residual entry not a mapping": (_set(["residual_map", 0], "value"), "residual_map[0]"),
    "residual unknown key": (_set(["residual_map", 0, "exec"], "x"), "residual_map[0].exec"),
    "residual slope zero": (_set(["residual_map", 2, "stored_as"], ["0", "0"]), "residual_map[2].stored_as"),
    "residual coefficient code": (_set(["residual_map", 1, "sum_of", 0, "coefficient"], "__import__('os')"),
                                  "residual_map[1].sum_of[0].coefficient"),
    "weight map block bogus": (_set(["weight_map", 0, "block"], "blocks.0.evil"), "weight_map[0].block"),
    "weight map head past the layer": (_set(["weight_map", 0, "head"], 5), "weight_map[0].head"),
    "weight map units past the layer": (_set(["weight_map", 2, "units"], [0, 99]), "weight_map[2].units"),
    "meaning of another field": (_set(["meaning", "field"], "a"), "meaning.field"),
    "provenance missing": (_delete(["provenance"]), "file.provenance"),
    "provenance unknown key": (_set(["provenance", "extra"], 1), "provenance.extra"),
    "provenance of an unknown tensor": (_set(["provenance", "tensors", "blocks.9.attn.W_Q"], []), "provenance.tensors"),
    "provenance names an unknown node": (_set(["provenance", "tensors", "embed.W_E", 0, 1], [10 ** 6]),
                                         "provenance.tensors.embed.W_E[0]"),
    "provenance node id bool": (_set(["provenance", "tensors", "embed.W_E", 0, 1], [True]),
                                "provenance.tensors.embed.W_E[0]"),
    "provenance node id a list": (_set(["provenance", "tensors", "embed.W_E", 0, 1], [[4]]),
                                  "provenance.tensors.embed.W_E[0]"),
    "provenance names no node": (_set(["provenance", "tensors", "embed.W_E", 0, 1], []),
                                 "provenance.tensors.embed.W_E[0]"),
    "provenance index past the tensor": (_set(["provenance", "tensors", "embed.W_E", 0, 0], [999, 0]),
                                         "provenance.tensors.embed.W_E[0]"),
    "provenance index negative": (_set(["provenance", "tensors", "embed.W_E", 0, 0], [-1, 0]),
                                  "provenance.tensors.embed.W_E[0]"),
    "provenance index of the wrong rank": (_set(["provenance", "tensors", "embed.W_E", 0, 0], [1]),
                                           "provenance.tensors.embed.W_E[0]"),
    "provenance entry not a pair": (_set(["provenance", "tensors", "embed.W_E", 0], "x"),
                                    "provenance.tensors.embed.W_E[0]"),
    "provenance index traced twice": (lambda p: _set(["provenance", "tensors", "embed.W_E"],
                                                     [p["provenance"]["tensors"]["embed.W_E"][0]] * 2)(p),
                                      "provenance.tensors.embed.W_E[1]: [1, 0] is traced twice"),
    "provenance longer than its tensor": (lambda p: _set(["provenance", "tensors", "unembed.logit_scale"],
                                                         p["provenance"]["tensors"]["unembed.logit_scale"] * 2)(p),
                                          "provenance.tensors.unembed.logit_scale: 2 entries for a tensor of 1"),
    "provenance node file not embedded": (_set(["provenance", "nodes", 0, "file"], "/etc/passwd"),
                                          "provenance.nodes[0].file"),
    "provenance node line past the source": (_set(["provenance", "nodes", 0, "line"], 10 ** 6),
                                             "provenance.nodes[0].line"),
    "provenance node ends before it starts": (_set(["provenance", "nodes", 0, "end_line"], 0),
                                              "provenance.nodes[0].end_line"),
    "provenance node column text": (_set(["provenance", "nodes", 0, "column"], "3"), "provenance.nodes[0].column"),
    "provenance node label huge": (_set(["provenance", "nodes", 0, "node"], "x" * 20_000), "provenance.nodes[0].node"),
    "provenance node listed twice": (lambda p: _set(["provenance", "nodes"], p["provenance"]["nodes"] * 2)(p),
                                     "is listed twice"),
    "provenance nodes past the bound": (lambda p: _set(["provenance", "nodes"],
                                                       p["provenance"]["nodes"][:1] * (MAX_PROVENANCE_NODES + 1))(p),
                                        "provenance.nodes: 65,537 nodes, more than this adderc reads"),
    "payload a list": (lambda p: [p], "file"),
}


@pytest.fixture()
def sandbox(tmp_path, monkeypatch):
    """A working directory and a temporary folder inside tmp_path, so any file a command wrongly
    writes (relative, climbing out of the temporary folder, or into the fake site-packages) lands
    where the test sees it."""
    (tmp_path / "site-packages").mkdir()
    work, temp = tmp_path / "work", tmp_path / "t1" / "t2"
    work.mkdir()
    temp.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return tmp_path


def _tree(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")}


def _refused(path, field, capsys, commands=("verify", "stats", "run", "explain")):
    for command in commands:
        argv = {"verify": ["verify", str(path), "--samples", "10"], "stats": ["stats", str(path)],
                "run": ["run", str(path), PROMPT], "explain": ["explain", str(path)]}[command]
        assert main(argv) == 2, (command, field)
        captured = capsys.readouterr()
        err = captured.err
        assert "internal error" not in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith(f"error: {path}: ") and field in err, (command, err)
        assert captured.out == ""
    return err


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_or_inconsistent_file_is_refused_naming_the_field(case, good, sandbox, capsys):
    mutate, field = HOSTILE[case]
    payload = mutate(copy.deepcopy(good[1]))
    if case == "source name absolute":
        payload["program"]["sources"][str(sandbox / SITE)] = payload["program"]["sources"].pop("ABSOLUTE_SITE")
    path = sandbox / "hostile.pt"
    torch.save(payload, path)
    before = _tree(sandbox)
    err = _refused(path, field, capsys)
    assert _tree(sandbox) == before  # nothing written, anywhere a name could have pointed
    assert not (sandbox / "site-packages" / "evil.pth").exists()
    passwd = Path("/etc/passwd")
    if passwd.exists() and "passwd" in case:
        assert passwd.read_text().splitlines()[0] not in err


def _bomb(good_path: Path, target: Path):
    """The good model's archive plus one entry of zeros that inflates past the limit: a small file."""
    with zipfile.ZipFile(good_path) as source, \
            zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        for info in source.infolist():
            out.writestr(info.filename.replace("good/", "bomb/"), source.read(info))
        with out.open("bomb/data/padding", "w", force_zip64=True) as handle:
            chunk = bytes(1 << 24)
            for _ in range(MAX_UNCOMPRESSED // len(chunk) + 1):
                handle.write(chunk)


def test_archives_that_are_not_a_bounded_torch_zip_are_refused_before_loading(good, sandbox, capsys):
    good_path = good[0]
    bomb = sandbox / "bomb.pt"
    _bomb(good_path, bomb)
    assert bomb.stat().st_size < MAX_UNCOMPRESSED // 50
    _refused(bomb, "archive: ", capsys)
    many = sandbox / "many.pt"
    with zipfile.ZipFile(many, "w") as out:
        for i in range(20_000):
            out.writestr(f"many/{i}", b"")
    _refused(many, "archive: 20,000 entries", capsys)
    data = good_path.read_bytes()
    truncated = sandbox / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    _refused(truncated, "not an adderc model", capsys)
    empty = sandbox / "empty.pt"
    empty.write_bytes(b"")
    _refused(empty, "not an adderc model", capsys)
    text = sandbox / "text.pt"
    text.write_text("layout base 10: ...\n")
    _refused(text, "not an adderc model", capsys)
    legacy = sandbox / "legacy.pt"
    torch.save(good[1], legacy, _use_new_zipfile_serialization=False)
    _refused(legacy, "not an adderc model", capsys)
    foreign_zip = sandbox / "foreign.pt"
    with zipfile.ZipFile(foreign_zip, "w") as out:
        out.writestr("readme.txt", "hello")
    _refused(foreign_zip, "not an adderc model", capsys)


def test_embedded_imports_never_reach_the_disk(good, sandbox, capsys):
    (sandbox / "work" / "nearby.rasp").write_text("const SECRET_FROM_DISK = 1\n")
    (sandbox / "work" / "add_lsb.rasp").write_text("DECOY_ON_DISK\n" * 3)  # what a disk read would quote
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else None
    for line, what in [('import "/etc/hostname"', "cannot import '/etc/hostname'"),
                       ('import "../../etc/hostname"', "cannot import '../../etc/hostname'"),
                       ('import "nearby.rasp"', "cannot import nearby.rasp: the model file embeds no source")]:
        path = sandbox / "importing.pt"
        torch.save(_with_import(copy.deepcopy(good[1]), line), path)
        assert main(["verify", str(path), "--samples", "10"]) == 2
        err = capsys.readouterr().err
        assert what in err and "internal error" not in err and "Traceback" not in err
        assert "add_lsb.rasp:1:1: error: " in err and line in err  # quoted from the file, not from disk
        assert f"note: in the program embedded in {path}" in err
        assert "SECRET_FROM_DISK" not in err and "DECOY_ON_DISK" not in err
        assert hostname is None or f"    {hostname}" not in err.splitlines()  # not quoted as a source line
        # run and stats do not read the program: they work, and read nothing either
        assert main(["run", str(path), PROMPT]) == 0
        assert capsys.readouterr().out.split() == ["00111111111"]


def test_a_hostile_file_in_a_real_process_writes_nothing_and_prints_no_secret(good, tmp_path):
    site = tmp_path / "site-packages"
    site.mkdir()
    cases = {"plant.pt": lambda p: _sources(p, {**p["program"]["sources"], str(site / "evil.pth"): PLANT}),
             "passwd.pt": _set(["program", "path"], "/etc/passwd")}
    for name, mutate in cases.items():
        torch.save(mutate(copy.deepcopy(good[1])), tmp_path / name)
        done = subprocess.run([sys.executable, "-m", "compiler.cli", "verify", str(tmp_path / name),
                               "--samples", "10"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith(f"error: {tmp_path / name}: program.")
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
        if Path("/etc/passwd").exists():
            assert Path("/etc/passwd").read_text().splitlines()[0] not in done.stderr
    assert sorted(p.name for p in site.iterdir()) == []


def test_a_program_with_imports_is_checked_from_its_embedded_sources_alone(tmp_path, capsys):
    folder = tmp_path / "program"
    (folder / "sub").mkdir(parents=True)
    (folder / "common.rasp").write_text("const N = 10\n")
    (folder / "sub" / "digits.rasp").write_text("def twice(x) = x + x\n")
    text = LSB.read_text().replace("const N = 10\n", "")
    (folder / "sub" / "main.rasp").write_text('import "../common.rasp"\nimport "digits.rasp"\n' + text)
    model = tmp_path / "m.pt"
    assert main(["compile", str(folder / "sub" / "main.rasp"), "-o", str(model)]) == 0
    payload = torch.load(model, weights_only=True)
    assert list(payload["program"]["sources"]) == ["sub/main.rasp", "common.rasp", "sub/digits.rasp"]
    assert payload["program"]["path"] == "sub/main.rasp"
    for source in folder.rglob("*.rasp"):
        source.unlink()  # what verify reads, it reads from the model file
    capsys.readouterr()
    assert main(["verify", str(model), "--samples", "10"]) == 0
    assert "every check holds" in capsys.readouterr().out


def test_every_example_model_meets_the_schema(tmp_path):
    for example in sorted((ROOT / "examples").glob("*.rasp")):
        load_model(saved_model(tmp_path, example))  # raises on any field the schema refuses


def test_maps_naming_values_the_program_lacks_are_refused_by_verify(good, tmp_path, capsys):
    for keys, field in [(["residual_map", 0, "id"], "residual_map[0].id"),
                        (["residual_map", 1, "sum_of", 2, "id"], "residual_map[1].sum_of[2].id"),
                        (["weight_map", 0, "also"], "weight_map[0].also")]:
        path = tmp_path / "ids.pt"
        torch.save(_set(keys, 10 ** 6)(copy.deepcopy(good[1])), path)
        for argv in (["verify", str(path), "--samples", "10"], ["verify", str(path), str(LSB), "--prove"]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert err.strip() == f"error: {path}: {field}: 1000000 is not a value of the program it was compiled from"


def test_provenance_naming_a_value_the_program_lacks_is_refused_by_verify(good, tmp_path, capsys):
    # Renamed consistently (its node table entry and every tensor row), the file is well formed;
    # only the program can tell the id is not one of its values.
    payload = copy.deepcopy(good[1])
    old = payload["provenance"]["nodes"][0]["id"]
    payload["provenance"]["nodes"][0]["id"] = 10 ** 6
    for rows in payload["provenance"]["tensors"].values():
        for row in rows:
            row[1] = sorted(10 ** 6 if n == old else n for n in row[1])
    path = tmp_path / "ids.pt"
    torch.save(payload, path)
    assert main(["verify", str(path), "--samples", "10"]) == 2
    assert capsys.readouterr().err.strip() == \
        f"error: {path}: provenance.nodes[0].id: 1000000 is not a value of the program it was compiled from"


def test_a_program_of_another_layout_is_refused_by_verify(good, tmp_path, capsys):
    longer = tmp_path / "longer.rasp"
    longer.write_text(LSB.read_text().replace("const N = 10", "const N = 12"))
    assert main(["verify", str(good[0]), str(longer), "--samples", "10"]) == 2
    err = capsys.readouterr().err
    assert f"error: {longer}: its layout is not the one {good[0]} was compiled for: its context is 39 positions, " \
           f"the model's 33" in err and "internal error" not in err
    other_vocab = tmp_path / "minus.rasp"
    other_vocab.write_text(LSB.read_text().replace('"+" b[N]', '"&" b[N]'))
    assert main(["verify", str(good[0]), str(other_vocab), "--samples", "10"]) == 2
    err = capsys.readouterr().err
    assert "its vocabulary is" in err and "internal error" not in err


def test_two_compiles_write_the_same_bytes(tmp_path, capsys):
    first, second = tmp_path / "one" / "add10.pt", tmp_path / "two" / "add10.pt"
    for path in (first, second):
        path.parent.mkdir()
        assert main(["compile", str(ADD10), "-o", str(path)]) == 0
    assert "compiled in" in capsys.readouterr().out  # the time is shown, not stored
    assert first.read_bytes() == second.read_bytes()
    assert "compile_seconds" not in torch.load(first, weights_only=True)["stats"]
    # torch.save itself writes identical bytes for identical payloads
    payload = torch.load(first, weights_only=True)
    copies = []
    for _ in range(2):
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        copies.append(buffer.getvalue())
    assert copies[0] == copies[1]


def test_a_version_2_file_still_runs_and_verifies_but_cannot_be_explained(good, tmp_path, capsys):
    # Format 2 is format 3 without provenance: models kept under regression tests before explain
    # existed still load; explain says what is missing and how to get it.
    older = copy.deepcopy(good[1])
    older["format_version"] = 2
    del older["provenance"], older["structure"]
    path = tmp_path / "v2.pt"
    torch.save(older, path)
    capsys.readouterr()
    assert main(["verify", str(path), "--samples", "10"]) == 0
    assert main(["run", str(path), "1000000000+2000000000="]) == 0 and "30000000000" in capsys.readouterr().out
    assert main(["explain", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"error: {path}: written in model format 2, which keeps no provenance of its numbers"
    with_provenance = copy.deepcopy(good[1])
    with_provenance["format_version"] = 2  # a version-2 file that carries provenance is not one adderc wrote
    del with_provenance["structure"]
    torch.save(with_provenance, path)
    assert main(["verify", str(path), "--samples", "10"]) == 2
    assert "unknown key 'provenance'" in capsys.readouterr().err
    without = copy.deepcopy(good[1])
    del without["provenance"]  # and a version-3 file must carry it
    torch.save(without, path)
    assert main(["stats", str(path)]) == 2
    assert "file.provenance: is missing" in capsys.readouterr().err
