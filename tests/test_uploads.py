"""Bad uploads through the functions the app calls: each gets a clear message, nothing executes.

Checkpoints (sidebar "Load a checkpoint": explorer.loaders.save_upload = compute.unpack_upload
+ compute.load_model, and core.checkpoint.load_checkpoint for .pt files) and corpora (Train page
and Tokenize page: core.corpora.read_user_text, explorer.trainjobs.start). A pickle payload
would create a marker file when unpickled; the tests assert the marker never appears.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.config import ModelConfig
from core.corpora import CorpusError, read_user_text
from core.model import GPT
from explorer import jobs, loaders, trainjobs
from explorer.trainjobs import TrainSpec


class Payload:
    """Unpickling this calls open(marker, "w"): code execution, made visible."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def ckpt_files(tmp_path_factory) -> dict[str, bytes]:
    """A real, loadable checkpoint's files (tiny model, char tokenizer)."""
    from core.tokenizer import CharTokenizer

    torch.manual_seed(0)
    tok = CharTokenizer("abcdefghij klmnop.")
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, context_length=8, d_model=8, n_layers=1,
                            n_heads=2))  # fmt: skip
    path = save_checkpoint(tmp_path_factory.mktemp("ck") / "c", model, tokenizer=tok)
    return {p.name: p.read_bytes() for p in path.iterdir()}


@pytest.fixture
def upload_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "uploads"
    monkeypatch.setattr(loaders, "UPLOAD_ROOT", root)
    return root


def zip_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def refused(files, match: str) -> str:
    with pytest.raises(ValueError, match=match) as err:
        loaders.save_upload(files)
    root = loaders.UPLOAD_ROOT  # a refused upload leaves nothing on the server's disk
    assert not root.exists() or not any(root.iterdir()), list(root.iterdir())
    assert str(root) not in str(err.value)  # nor tells anyone where its temp folder is
    return str(err.value)


def test_a_good_checkpoint_loads(ckpt_files, upload_root):
    entry = loaders.save_upload(list(ckpt_files.items()))
    assert entry.kind == "upload" and Path(entry.path).parent == upload_root


def test_students_uploading_the_same_checkpoint_at_once(ckpt_files, upload_root):
    """Uploads are stored by content: identical ones rewrote one folder under each other's
    memory-mapped weights (good uploads refused as corrupt, once the server killed by
    SIGBUS). Each is now unpacked privately and renamed into place whole. Found by a review."""
    import threading

    results, files = [], list(ckpt_files.items())

    def upload():
        try:
            results.append(loaders.save_upload(files))
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            results.append(exc)

    for _ in range(5):
        threads = [threading.Thread(target=upload) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(isinstance(r, type(results[0])) and r.path == results[0].path for r in results)
    assert sorted(p.name for p in upload_root.iterdir()) == [Path(results[0].path).name]
    assert load_checkpoint(results[0].path).tokenizer is not None


def _flag_encrypted(blob: bytes) -> bytes:
    """Set the 'encrypted' bit in every local and central header of a zip."""
    data = bytearray(blob)
    for sig, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(sig)
        while at != -1:
            data[at + offset] |= 1
            at = data.find(sig, at + 4)
    return bytes(data)


def test_damaged_or_locked_zips_are_a_message(ckpt_files, upload_root):
    blob = bytearray(zip_of({"ck/" + k: v for k, v in ckpt_files.items()}))
    blob[blob.find(ckpt_files["model.safetensors"][-64:]) + 10] ^= 0xFF  # a flipped byte
    assert "could not be unpacked" in refused([("ck.zip", bytes(blob))], "CRC")
    locked = _flag_encrypted(zip_of({"ck/" + k: v for k, v in ckpt_files.items()}))
    refused([("ck.zip", locked)], "password-protected")
    for method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):  # their decoders raise other errors
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", method) as zf:
            for k, v in ckpt_files.items():
                zf.writestr("ck/" + k, v)
        data = bytearray(buf.getvalue())
        at = data.find(b"PK\x03\x04", data.find(b"model.safetensors"))  # the next member
        start = data.find(b"model.safetensors") + len("model.safetensors") + 8
        for i in range(start, min(start + 64, at if at > 0 else start + 64)):
            data[i] ^= 0x5A  # damage the compressed stream itself
        refused([("ck.zip", bytes(data))], "could not be unpacked")


def _with_tokenizer(tok) -> list[tuple[str, bytes]]:
    """A tiny 128-id model's checkpoint files, saved with `tok`."""
    import tempfile

    from core.config import preset

    torch.manual_seed(0)
    path = save_checkpoint(Path(tempfile.mkdtemp()) / "c", GPT(preset("tiny")), tokenizer=tok)
    return [(p.name, p.read_bytes()) for p in path.iterdir()]


def test_a_tokenizer_bigger_than_the_model_is_refused(upload_root):
    """Its ids past the model's vocabulary crashed every model page (IndexError in the
    embedding). Found by a review."""
    from core.tokenizer import train_bpe

    why = refused(_with_tokenizer(train_bpe("hello world " * 50, 260)), "vocabulary of 128")
    assert "260 tokens" in why


def test_a_padded_vocabulary_gets_labels_for_every_id(upload_root):
    """A model with more ids than its tokenizer (a padded vocabulary) is fine; the ids past
    the tokenizer are labelled "<id>" (the Sample page indexed past the labels)."""
    from core.sampling import stream
    from core.tokenizer import CharTokenizer
    from explorer import compute, widgets

    entry = loaders.save_upload(_with_tokenizer(CharTokenizer("abc")))
    model, tok, cfg, *_ = compute.load_model("upload", entry.path)
    labels = compute.vocab_labels(tok, cfg.vocab_size)
    assert len(labels) == 128 and labels[: tok.vocab_size] == compute.vocab_labels(tok)
    assert labels[100] == "<100>"
    steps = list(stream(model, compute.encode(tok, "abc"), 8, 1.0, None, None, 0))
    assert any(s.token_id >= tok.vocab_size for s in steps)  # the random model uses them
    assert "&lt;" in widgets.generation_html([], steps, labels)


def test_corrupt_safetensors(ckpt_files, upload_root):
    files = {**ckpt_files, "model.safetensors": b"\x07" * 64 + b"garbage" * 100}
    msg = refused(list(files.items()), "not a loadable checkpoint")
    assert "not a readable safetensors file" in msg


def test_truncated_safetensors_in_a_zip(ckpt_files, upload_root):
    weights = ckpt_files["model.safetensors"]
    files = {**ckpt_files, "model.safetensors": weights[: len(weights) // 2]}
    msg = refused([("half.zip", zip_of(files))], "not a loadable checkpoint")
    assert "is corrupt" in msg


def test_wrong_shapes(ckpt_files, upload_root):
    header = json.loads(ckpt_files["config.json"])
    header["model"]["d_model"] = 12  # weights are 8 wide
    header["model"]["n_heads"] = 3
    files = {**ckpt_files, "config.json": json.dumps(header).encode()}
    msg = refused(list(files.items()), "not a loadable checkpoint")
    assert "wrong shapes" in msg and "tok_emb.weight is (" in msg


def test_a_config_far_bigger_than_its_weights_is_not_built(ckpt_files, upload_root):
    """A hand-made config.json must not make the server allocate 100 GB before checking."""
    header = json.loads(ckpt_files["config.json"])
    header["model"].update(vocab_size=10**9, d_model=64, n_heads=2)
    files = {**ckpt_files, "config.json": json.dumps(header).encode()}
    msg = refused(list(files.items()), "not a loadable checkpoint")
    assert "the config describes a model of" in msg and "not building it" in msg


def test_size_guard_runs_before_any_allocation(ckpt_files):
    """6 GB of weights (vocab 25M x 64) would be accepted by malloc and initialised: the guard
    refuses from arithmetic alone, before GPT(config) is called."""
    from core.checkpoint import _check_size

    cfg = ModelConfig(vocab_size=25_000_000, context_length=8, d_model=64, n_layers=1, n_heads=2)
    with pytest.raises(CheckpointError, match="not building it"):
        _check_size(cfg, {"tok_emb.weight": torch.zeros(300, 8)}, "upload")


def test_a_huge_context_is_not_built_either(ckpt_files, upload_root):
    header = json.loads(ckpt_files["config.json"])
    header["model"].update(context_length=10**9, pos_encoding="sinusoidal")
    files = {**ckpt_files, "config.json": json.dumps(header).encode()}
    assert "not building it" in refused(list(files.items()), "not a loadable checkpoint")


def test_pickle_payloads_never_run(ckpt_files, upload_root, tmp_path):
    marker = tmp_path / "PWNED"
    evil = pickle.dumps({"config": {}, "model": Payload(marker)})
    # a pickle posing as the weights
    files = [("config.json", ckpt_files["config.json"]), ("model.safetensors", evil)]
    refused(files, "not a readable safetensors file")
    # a loose .pkl / .pt file is not part of a checkpoint
    refused([("model.pkl", evil)], "not part of a checkpoint")
    refused([("model.pt", evil)], "not part of a checkpoint")
    # a zip holding a pickle next to a real config: the pickle is never read
    refused([("evil.zip", zip_of({"config.json": ckpt_files["config.json"], "x.pkl": evil}))],
            "no model.safetensors")  # fmt: skip
    # torch.save's own format (a zip with data.pkl inside) uploaded as a .zip
    pt = tmp_path / "evil.pt"
    torch.save({"config": {"vocab_size": 4}, "model": Payload(marker)}, pt)
    refused([("evil.zip", pt.read_bytes())], "no config.json")
    # and the core API's .pt path uses the restricted unpickler
    with pytest.raises(CheckpointError, match="refused or unreadable as plain tensors"):
        load_checkpoint(pt)
    raw = tmp_path / "raw.pth"
    raw.write_bytes(evil)
    with pytest.raises(CheckpointError, match="refused or unreadable"):
        load_checkpoint(raw)
    assert not marker.exists()


def test_empty_files(ckpt_files, upload_root):
    refused([("config.json", b""), ("model.safetensors", b"")], "not a loadable checkpoint")
    refused([("empty.zip", b"")], "not a valid zip archive")
    refused([("empty.zip", zip_of({}))], "no config.json or model.safetensors")
    files = {**ckpt_files, "config.json": b""}
    assert "not valid JSON" in refused(list(files.items()), "not a loadable checkpoint")


@pytest.mark.parametrize("kind, says", [("default", "The shipped model"), ("run", "The model r1")])
def test_a_broken_model_folder_is_named_not_located(ckpt_files, tmp_path, kind, says):
    """A corrupt shipped model (GLASSBOX_DEFAULT) or run: the page names it, never the server's
    folders (every student in a classroom sees the message)."""
    from explorer import compute

    folder = tmp_path / "srv" / "secret-place" / "r1"
    folder.mkdir(parents=True)
    for name, data in {**ckpt_files, "model.safetensors": b"\x07" * 64}.items():
        (folder / name).write_bytes(data)
    with pytest.raises(compute.ModelUnavailable) as err:
        compute.load_model(kind, str(folder))
    msg = str(err.value)
    assert msg.startswith(f"{says} could not be loaded: ") and "safetensors" in msg
    assert "secret-place" not in msg and str(tmp_path) not in msg
    with pytest.raises(compute.ModelUnavailable) as err:
        compute.load_model(kind, str(folder / "gone"))
    assert "secret-place" not in str(err.value)


def test_over_the_cap(ckpt_files, upload_root, monkeypatch):
    monkeypatch.setattr(loaders, "UPLOAD_MAX_BYTES", 1000)
    refused(list(ckpt_files.items()), "larger than 0 MiB|unpacks to more")
    refused([("big.zip", zip_of(ckpt_files))], "unpacks to more than")
    assert not upload_root.exists() or not any(upload_root.iterdir())


def test_zip_members_cannot_escape(ckpt_files, upload_root, tmp_path):
    members = {f"../../{n}": b for n, b in ckpt_files.items()}
    members |= {"/etc/cron.d/evil": b"x", "..\\..\\evil.py": b"x", "../../../evil.sh": b"x"}
    entry = loaders.save_upload([("trick.zip", zip_of(members))])  # names reduced to basenames
    out = Path(entry.path)
    assert out.parent == upload_root
    assert sorted(p.name for p in out.iterdir()) == sorted(ckpt_files)
    written = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    assert not written & {"evil", "evil.py", "evil.sh", "..\\..\\evil.py"}


# ---------------------------------------------------------------- corpora


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "is empty"),
        (b"  \n\t ", "only whitespace"),
        (b"caf\xe9 latin-1", r"not UTF-8 text \(byte 0xE9 at line 1\)"),
        (b"ok\n\xff\xfeU\x00T\x00F\x00", "binary file"),
        (b"line\nline\n\x80", r"byte 0x80 at line 3"),
        (b"x" * 2001, "the limit is 2,000 bytes"),
    ],
)
def test_corpus_checks(data, message):
    with pytest.raises(CorpusError, match=message):
        read_user_text(data, max_bytes=2000)


def test_train_page_start_refuses_bad_corpora_before_queueing(tmp_path):
    reg = jobs.JobRegistry(max_concurrent=1)
    spec = TrainSpec(label="up", corpus="upload", model={"n_layers": 1, "n_heads": 2})
    for data, message in [
        (b"\xc3\x28 bad utf-8" * 10, "not UTF-8"),
        (b"\x00" * 100, "binary"),
        (b"a" * (trainjobs.MAX_CORPUS_BYTES + 1), "the limit is 50.0 MB"),
    ]:
        with pytest.raises(ValueError, match=message):
            trainjobs.start(spec, upload=data, root=tmp_path, registry=reg)
    with pytest.raises(ValueError, match="upload a UTF-8 text file first"):
        trainjobs.start(spec, upload=b"", root=tmp_path, registry=reg)
    assert reg.jobs() == [] and list(tmp_path.iterdir()) == []
