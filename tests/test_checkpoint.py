"""Checkpoints: round trips, atomic writes, LATEST resolution, every error case, no pickle."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.model import GPT


def noisy(model: GPT) -> GPT:
    """Every parameter moved off its init (norm gains 1 and biases 0 at init would make a
    loader that drops them look right: found by mutation testing)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("tie", [True, False])
def test_round_trip(tmp_path, tiny_config, tie):
    torch.manual_seed(0)
    cfg = tiny_config.replace(tie_embeddings=tie, pos_encoding="rope", activation="swiglu")
    model = noisy(GPT(cfg))
    meta = {"step": 100, "seed": 3, "command": "python -m core.train", "path": tmp_path}
    out = save_checkpoint(tmp_path / "ck", model, meta=meta,
                          extra_tensors={"opt.m": torch.ones(3), "opt.v": torch.ones(3)},
                          extra_json={"step": 100})  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "model.safetensors",
        "train_state.json",
        "train_state.safetensors",
    ]
    ck = load_checkpoint(out)
    assert ck.config == model.config and same_weights(ck.model, model)
    assert ck.meta["step"] == 100 and ck.meta["path"] == str(tmp_path)
    assert ck.extra_tensors == {} and ck.tokenizer is None and not ck.model.training
    assert (ck.model.lm_head.weight is ck.model.tok_emb.weight) == tie
    full = load_checkpoint(out, load_extra=True)
    assert torch.equal(full.extra_tensors["opt.v"], torch.ones(3))
    assert full.extra_json == {"step": 100}
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(ck.model(ids)[0], model.eval()(ids)[0])


def test_tokenizer_round_trip_and_hash(tmp_path, tiny_model):
    from core.tokenizer import CharTokenizer

    tok = CharTokenizer("hello world")  # stands in for any tokenizer with save/content_hash
    save_checkpoint(tmp_path / "ck", tiny_model, tokenizer=tok)
    header = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert header["tokenizer"] == {"file": "tokenizer.json", "hash": tok.content_hash}
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.tokenizer.content_hash == tok.content_hash
    assert ck.tokenizer.decode(ck.tokenizer.encode("hello")) == "hello"
    header["tokenizer"]["hash"] = "0" * 16
    (tmp_path / "ck" / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="hash"):
        load_checkpoint(tmp_path / "ck")
    # config.json names its tokenizer file; a path elsewhere on the machine is never read
    # (an upload could probe or read any JSON file on the server: found by a review)
    (tmp_path / "elsewhere.json").write_text(json.dumps({"type": "SECRET"}))
    for bad in ("/etc/passwd", "../elsewhere.json", str(tmp_path / "elsewhere.json"),
                "sub/tokenizer.json", "..", "", 5, None):  # fmt: skip
        header["tokenizer"] = {"file": bad}
        (tmp_path / "ck" / "config.json").write_text(json.dumps(header))
        with pytest.raises(CheckpointError, match="file name") as err:
            load_checkpoint(tmp_path / "ck")
        assert "SECRET" not in str(err.value)
    header["tokenizer"] = {"file": "tokenizer.json"}
    (tmp_path / "ck" / "config.json").write_text(json.dumps(header))
    (tmp_path / "ck" / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="tokenizer"):
        load_checkpoint(tmp_path / "ck")


def test_no_overwrite_unless_asked_and_no_temp_left(tmp_path, tiny_model, tiny_config):
    save_checkpoint(tmp_path / "ck", tiny_model)
    with pytest.raises(CheckpointError, match="exists"):
        save_checkpoint(tmp_path / "ck", tiny_model)
    other = GPT(tiny_config.replace(n_layers=1))
    save_checkpoint(tmp_path / "ck", other, overwrite=True)
    assert load_checkpoint(tmp_path / "ck").config.n_layers == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_a_failed_save_leaves_nothing(tmp_path, tiny_model):
    class Broken:
        content_hash = "x"

        def save(self, path):
            raise OSError("disk full")

    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "ck", tiny_model, tokenizer=Broken())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CheckpointError, match="cannot store"):
        save_checkpoint(tmp_path / "ck", tiny_model, meta={"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_run_dir_with_latest(tmp_path, tiny_model):
    run = tmp_path / "run"
    save_checkpoint(run / "ckpt" / "step_000100", tiny_model, meta={"step": 100})
    save_checkpoint(run / "ckpt" / "step_000200", tiny_model, meta={"step": 200})
    (run / "ckpt" / "LATEST").write_text("step_000200\n")
    assert load_checkpoint(run).meta["step"] == 200
    assert load_checkpoint(run / "ckpt").meta["step"] == 200
    (run / "ckpt" / "LATEST").unlink()
    (run / "LATEST").write_text("ckpt/step_000100")
    assert load_checkpoint(run).meta["step"] == 100
    assert load_checkpoint(run / "LATEST").meta["step"] == 100
    (run / "LATEST").write_text("step_000999")
    with pytest.raises(CheckpointError, match="step_000999"):
        load_checkpoint(run)
    (run / "LATEST").write_text("../../etc")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(run)


def test_missing_and_corrupt_files(tmp_path, tiny_model):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_checkpoint(tmp_path / "empty")
    ck = save_checkpoint(tmp_path / "ck", tiny_model)
    weights = (ck / "model.safetensors").read_bytes()
    (ck / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(ck)
    (ck / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        load_checkpoint(ck)
    (ck / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(ck)
    (ck / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="glassbox-gpt/1"):
        load_checkpoint(ck)


def test_wrong_names_shapes_and_config(tmp_path, tiny_model):
    ck = save_checkpoint(tmp_path / "ck", tiny_model)
    path = ck / "model.safetensors"
    good = load_file(path)
    renamed = dict(good)
    renamed["blocks.0.attn.c_attn.weight"] = renamed.pop("blocks.0.attn.qkv.weight")
    save_file(renamed, path)
    with pytest.raises(CheckpointError, match=r"missing blocks\.0\.attn\.qkv\.weight.*unexpected"):
        load_checkpoint(ck)
    reshaped = dict(good)
    reshaped["ln_f.weight"] = torch.ones(7)
    save_file(reshaped, path)
    with pytest.raises(CheckpointError, match=r"ln_f\.weight is \(7,\), expected \(32,\)"):
        load_checkpoint(ck)
    save_file(good, path)
    header = json.loads((ck / "config.json").read_text())
    header["model"]["n_heads"] = 5
    (ck / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="n_heads"):
        load_checkpoint(ck)
    header["model"] = {**header["model"], "n_heads": 4, "n_layer": 2}
    (ck / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="n_layer"):
        load_checkpoint(ck)


def test_pt_files_load_weights_only(tmp_path, tiny_model, tiny_config):
    tiny_model = noisy(tiny_model)
    state = {"_orig_mod." + k: v for k, v in tiny_model.state_dict().items()}
    torch.save({"config": tiny_config.to_dict(), "model": state}, tmp_path / "m.pt")
    assert same_weights(load_checkpoint(tmp_path / "m.pt").model, tiny_model)
    torch.save({"weights": state}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="'config'"):
        load_checkpoint(tmp_path / "bad.pt")

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    torch.save({"config": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_a_replace_killed_between_its_renames_still_leaves_a_checkpoint(
    tmp_path, tiny_model, monkeypatch
):
    """overwrite=True renames the old directory aside, then the new one in: a kill between the
    two leaves the old one, complete, beside the missing path; readers find it there."""
    from core import checkpoint, runs

    run = tmp_path / "run"
    path = run / "ckpt" / "step_000100"
    save_checkpoint(path, tiny_model, meta={"step": 100, "v": "old"})
    runs.mark_latest(run, path)
    real_rename, calls = os.rename, []

    def killed_at_second_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise SystemExit("killed")  # what a SIGTERM handler would raise; not an OSError
        real_rename(src, dst)

    monkeypatch.setattr(checkpoint.os, "rename", killed_at_second_rename)
    with pytest.raises(SystemExit):
        save_checkpoint(path, tiny_model, meta={"step": 100, "v": "new"}, overwrite=True)
    monkeypatch.setattr(checkpoint.os, "rename", real_rename)
    assert not path.exists()
    assert runs.latest_checkpoint(run).name.startswith(".step_000100.old-")
    runs.create_run(run, model={}, train={}, command="test", seed=0)
    info = runs.load_run(run)  # the Train page lists it, at its step, resumable
    assert info.step == 100 and info.latest_checkpoint.name.startswith(".step_000100.old-")
    assert load_checkpoint(run).meta == {"step": 100, "v": "old"}
    assert load_checkpoint(run / "ckpt").meta["v"] == "old"
    # the next save puts a checkpoint back in place and the leftover goes
    save_checkpoint(path, tiny_model, meta={"step": 100, "v": "again"}, overwrite=True)
    runs.mark_latest(run, path)
    assert load_checkpoint(run).meta["v"] == "again"
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["LATEST", "step_000100"]
