"""Fine-tuning: a run that starts from a trained checkpoint instead of random weights.

core: `load_base` (weights, tokenizer, provenance, dropout, a changed-weights refusal),
`read_config` (no weights read), the Trainer's step-0 evaluation and recorded base, the CLI's
`--init-from`. explorer: the form's validation, a Train-page run started from the shipped
model and from a finished run, its resume, and a base whose weights changed meanwhile.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from core.checkpoint import (
    CheckpointError,
    load_base,
    load_checkpoint,
    read_config,
    save_checkpoint,
)
from core.events import read_log
from core.runs import latest_checkpoint, load_run, sha256_file
from core.train import main as cli
from core.trainer import Trainer
from tests.trainutil import tiny_cfg, tiny_data, tiny_model

SHIPPED = "assets/default"


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A checkpoint of a tiny model with a tokenizer and noisy (not init-like) weights."""
    tok, _, _ = tiny_data()
    model = tiny_model(tok.vocab_size, seed=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path_factory.mktemp("base") / "ckpt"
    save_checkpoint(path, model, tokenizer=tok, meta={"step": 42})
    return path


def test_load_base_gives_the_checkpoint_its_tokenizer_and_where_it_came_from(base_dir):
    ckpt, origin = load_base(base_dir)
    ref = load_checkpoint(base_dir)
    for (name, a), (_, b) in zip(ckpt.model.state_dict().items(), ref.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert ckpt.tokenizer.content_hash == ref.tokenizer.content_hash
    assert origin == {"path": str(base_dir), "step": 42,
                      "sha256": sha256_file(base_dir / "model.safetensors")}  # fmt: skip


def test_load_base_changes_dropout_only(base_dir):
    ckpt, _ = load_base(base_dir, dropout=0.25)
    ref = load_checkpoint(base_dir)
    assert ckpt.config == ref.config.replace(dropout=0.25)
    assert ckpt.model.config.dropout == 0.25
    x = torch.arange(16)[None] % ckpt.config.vocab_size
    ckpt.model.train()
    assert not torch.equal(ckpt.model(x)[0], ckpt.model(x)[0])  # dropout is on in training
    ckpt.model.eval()
    assert torch.allclose(ckpt.model(x)[0], ref.model(x)[0], atol=1e-6)  # same weights
    for a, b in zip(ckpt.model.state_dict().values(), ref.model.state_dict().values()):
        assert torch.equal(a, b)


def test_load_base_refuses_changed_weights_and_a_missing_tokenizer(base_dir, tmp_path):
    with pytest.raises(CheckpointError, match="weights changed since"):
        load_base(base_dir, expect_sha256="0" * 64)
    load_base(base_dir, expect_sha256=sha256_file(base_dir / "model.safetensors"))  # same: fine
    bare = save_checkpoint(tmp_path / "bare", load_checkpoint(base_dir).model)
    with pytest.raises(CheckpointError, match="no tokenizer"):
        load_base(bare)


def test_read_config_reads_no_weights(base_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(base_dir, copy)
    (copy / "model.safetensors").write_bytes(b"not weights")  # load_checkpoint would refuse
    assert read_config(copy) == load_checkpoint(base_dir).config
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(copy)
    assert read_config(SHIPPED) == load_checkpoint(SHIPPED).config  # a run dir, via LATEST


def _ids(tok, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from core.corpora import tinytales

    ids = np.array(tok.encode(tinytales.generate(30_000, seed=seed)), dtype=np.int64)
    return ids[: len(ids) * 9 // 10], ids[len(ids) * 9 // 10 :]


def test_a_fine_tune_evaluates_the_base_first_and_records_it(base_dir, tmp_path):
    ckpt, origin = load_base(base_dir)
    train_ids, val_ids = _ids(ckpt.tokenizer, seed=5)
    cfg = tiny_cfg(max_steps=6, eval_every=3, ckpt_every=6, timelapse_frames=0)
    # the base model's loss on the new text, computed by a trainer that is not fine-tuning
    ref = Trainer(load_checkpoint(base_dir).model, train_ids, val_ids, cfg).evaluate()
    run = tmp_path / "ft"
    trainer = Trainer(ckpt.model, train_ids, val_ids, cfg, tokenizer=ckpt.tokenizer,
                      run_dir=run, init_from=origin)  # fmt: skip
    assert trainer.run().kind == "done"
    evals = [e for e in read_log(run / "log.jsonl") if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [0, 3, 6]
    samples = [e for e in read_log(run / "log.jsonl") if e["event"] == "sample"]
    assert [e["step"] for e in samples] == [0, 3, 6]  # what the base wrote, then the fine-tune
    assert evals[0]["val_loss"] == pytest.approx(ref.val_loss, rel=1e-6)
    assert evals[0]["train_loss"] == pytest.approx(ref.train_loss, rel=1e-6)
    assert load_run(run).extra["init_from"] == origin
    assert load_checkpoint(run).meta["init_from"] == origin
    # the weights moved away from the base's
    moved = load_checkpoint(run).model.state_dict()
    assert any(
        not torch.equal(moved[n], p)
        for n, p in load_checkpoint(base_dir).model.state_dict().items()
    )


def test_a_run_from_scratch_has_no_step_zero_evaluation(tmp_path):
    tok, train_ids, val_ids = tiny_data()
    run = tmp_path / "scratch"
    cfg = tiny_cfg(max_steps=3, eval_every=3, ckpt_every=3)
    Trainer(tiny_model(tok.vocab_size), train_ids, val_ids, cfg, tokenizer=tok, run_dir=run).run()
    events = read_log(run / "log.jsonl")
    assert [e["step"] for e in events if e["event"] in ("eval", "sample")] == [3, 3]
    assert "init_from" not in load_run(run).extra


# ---------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_fine_tunes_from_a_run_dir_and_resumes_without_the_base(tmp_path, capsys):
    base = tmp_path / "base"
    assert cli(["--corpus-bytes", "40000", "--preset", "tiny", "--vocab-size", "300",
                "--max-steps", "4", "--eval-every", "0", "--ckpt-every", "4", "--quiet",
                "--threads", "1", "--out", str(base)]) == 0  # fmt: skip
    text = tmp_path / "mine.txt"
    text.write_text("The robot sang a song about the moon and the stars.\n" * 800)
    out = tmp_path / "ft"
    args = ["--init-from", str(base), "--text", str(text), "--max-steps", "6", "--lr", "3e-4",
            "--eval-every", "3", "--ckpt-every", "3", "--warmup-steps", "1", "--batch-size",
            "4", "--seq-len", "32", "--dropout", "0.1", "--quiet", "--threads", "1",
            "--out", str(out)]  # fmt: skip
    assert cli([*args[:5], "3", *args[6:]]) == 0  # 3 steps first
    info = load_run(out)
    base_ckpt = latest_checkpoint(base)
    assert info.extra["init_from"]["path"] == str(base_ckpt)
    assert info.extra["init_from"]["sha256"] == sha256_file(base_ckpt / "model.safetensors")
    assert info.model == load_checkpoint(base).config.replace(dropout=0.1).to_dict()
    same_tokenizer = json.loads((base / "tokenizer.json").read_text()) == json.loads(
        (out / "tokenizer.json").read_text()
    )
    assert same_tokenizer, "a fine-tune keeps the base's tokenizer, byte for byte"
    assert info.extra["init_from"]["label"] == str(base)  # the path as typed
    shutil.rmtree(base)  # the resume continues from the run's own checkpoint

    # a resume without --init-from builds the default preset: one sentence, run.json intact
    plain = [a for a in args if a not in ("--init-from", str(base), "--dropout", "0.1")]
    assert cli([*plain, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --resume: the run's checkpoint has") and "n_layers=2" in err
    assert "It is a fine-tune: pass --init-from" in err and "Traceback" not in err
    assert load_run(out).model == info.model

    # resumed with another dropout: it applies (and run.json and the checkpoint say so)
    resumed = [a if a != "0.1" else "0.3" for a in args]
    assert cli([*resumed, "--resume"]) == 0
    events = read_log(out / "log.jsonl")
    assert [e["step"] for e in events if e["event"] == "step"] == list(range(1, 7))
    assert [e["step"] for e in events if e["event"] == "eval"] == [0, 3, 6]
    assert load_run(out).extra["init_from"] == info.extra["init_from"]
    assert load_run(out).model["dropout"] == 0.3
    assert load_checkpoint(out).config.dropout == 0.3


@pytest.mark.slow
def test_cli_resume_with_other_model_options_is_one_sentence(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--corpus-bytes", "40000", "--preset", "tiny", "--vocab-size", "300",
            "--max-steps", "2", "--eval-every", "0", "--quiet", "--threads", "1",
            "--out", str(out)]  # fmt: skip
    assert cli(argv) == 0
    before = (out / "run.json").read_text()
    assert cli([*argv, "--max-steps", "4", "--n-layers", "3", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --resume: the run's checkpoint has n_layers=2 (options give 3)")
    assert "fine-tune" not in err
    assert (out / "run.json").read_text() == before
    assert cli([*argv, "--max-steps", "4", "--resume"]) == 0  # the same options: it continues
    assert load_run(out).step == 4


@pytest.mark.parametrize(
    "extra, named",
    [(["--n-layers", "2"], "--n-layers"), (["--preset", "tiny"], "--preset"),
     (["--vocab-size", "500"], "--vocab-size"), (["--tokenizer", "t.json"], "--tokenizer")],
)  # fmt: skip
def test_cli_refuses_architecture_options_with_init_from(extra, named, capsys, tmp_path):
    assert cli(["--init-from", SHIPPED, "--out", str(tmp_path / "r"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err and "--init-from" in err
    assert not (tmp_path / "r").exists()


def test_cli_init_from_a_missing_path_is_one_sentence(capsys, tmp_path):
    assert cli(["--init-from", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no checkpoint at") and "Traceback" not in err


def test_cli_init_from_checks_the_window_against_the_base_context(capsys, tmp_path):
    ctx = read_config(SHIPPED).context_length
    argv = ["--init-from", SHIPPED, "--seq-len", str(ctx + 1), "--out", str(tmp_path / "r")]
    assert cli(argv) == 2
    assert f"context_length={ctx}" in capsys.readouterr().err


# ---------------------------------------------------------------- the Train page's runs


def ft_spec(init_from: str, steps: int = 4, ckpt_every: int = 0, **train):
    from explorer.trainspec import TrainSpec

    return TrainSpec(
        label="ft",
        model={"dropout": 0.0},
        train={"max_steps": steps, "batch_size": 4, "seq_len": 32, "eval_every": 2,
               "eval_batches": 2, "ckpt_every": ckpt_every, "warmup_steps": 1,
               "timelapse_frames": 0, "device": "cpu", "lr": 3e-4, **train},
        corpus_bytes=20_000,
        corpus_seed=9,
        tokenizer="no such tokenizer",  # ignored: a fine-tune keeps its base's
        vocab_size=1,
        init_from=init_from,
    )  # fmt: skip


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("GLASSBOX_RUNS", str(tmp_path))
    return tmp_path


def test_the_form_accepts_a_fine_tune_and_names_what_is_wrong(runs_root):
    from explorer.trainspec import estimate, model_config, validate

    spec = ft_spec("default")
    assert validate(spec) == {}
    shipped = read_config(SHIPPED)
    assert model_config(spec) == shipped
    from core import stats

    assert estimate(spec)["params"] == stats.param_counts(shipped)["total"]
    assert "init_from" in validate(ft_spec("run:nothing-here"))
    assert "init_from" in validate(ft_spec("gpt2"))  # not a model this server can fine-tune
    assert "init_from" in validate(ft_spec("../../etc"))
    too_long = ft_spec("default", seq_len=shipped.context_length + 8)
    assert "context length" in validate(too_long)["seq_len"]
    bad_dropout = ft_spec("default")
    bad_dropout.model = {"dropout": 1.5}
    assert "dropout" in validate(bad_dropout)


def test_a_run_saved_without_a_tokenizer_cannot_be_a_base(runs_root):
    from explorer.trainspec import validate

    tok, train_ids, val_ids = tiny_data()
    Trainer(tiny_model(tok.vocab_size), train_ids, val_ids, tiny_cfg(max_steps=3, ckpt_every=3),
            run_dir=runs_root / "no-tok").run()  # fmt: skip
    assert "has no tokenizer" in validate(ft_spec("run:no-tok"))["init_from"]


def test_a_run_that_is_still_training_cannot_be_a_base(runs_root):
    import os
    import time

    from explorer.trainspec import validate

    tok, train_ids, val_ids = tiny_data()
    run = runs_root / "busy"
    Trainer(tiny_model(tok.vocab_size), train_ids, val_ids, tiny_cfg(max_steps=3, ckpt_every=3),
            tokenizer=tok, run_dir=run).run()  # fmt: skip
    assert validate(ft_spec("run:busy")) == {}  # finished: fine
    meta = json.loads((run / "run.json").read_text())
    meta.update(status="running", pid=os.getpid(), heartbeat=time.time())
    (run / "run.json").write_text(json.dumps(meta))
    assert "is running" in validate(ft_spec("run:busy"))["init_from"]


@pytest.mark.slow
def test_a_page_run_fine_tunes_the_shipped_model(runs_root, reg):
    from explorer import jobs, registry, trainjobs, trainviews

    name = trainjobs.start(ft_spec("default"), root=runs_root, registry=reg)
    job = reg.get(name)
    assert job.wait(180) and job.state == jobs.DONE, (job.error, job.traceback)
    run = runs_root / name
    meta = json.loads((run / "run.json").read_text())
    shipped = latest_checkpoint(registry.default_dir())
    assert meta["model"] == read_config(SHIPPED).to_dict()
    assert meta["init_from"] == {"key": "default", "label": "the shipped model",
                                 "path": f"<app>/assets/default/ckpt/{shipped.name}",
                                 "step": int(shipped.name[5:]),
                                 "sha256": sha256_file(shipped / "model.safetensors")}  # fmt: skip
    assert json.loads((run / "tokenizer.json").read_text()) == json.loads(
        (shipped / "tokenizer.json").read_text()
    )
    evals = [e for e in read_log(run / "log.jsonl") if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [0, 2, 4]
    # step 0 is the shipped model itself on this text, on the same evaluation windows
    from core.data import encode_corpus, split_train_val
    from core.train_config import TrainConfig
    from explorer.trainspec import TrainSpec

    spec = TrainSpec.from_dict(meta["spec"])
    tc = TrainConfig.from_dict(spec.train)
    base_ckpt = load_checkpoint(SHIPPED)
    ids = encode_corpus(base_ckpt.tokenizer, trainjobs.load_corpus_text(run, spec))
    ref = Trainer(base_ckpt.model, *split_train_val(ids, tc.val_fraction), tc).evaluate()
    assert evals[0]["val_loss"] == pytest.approx(ref.val_loss, rel=1e-5)
    base = load_checkpoint(SHIPPED).model
    done = load_checkpoint(run)
    assert done.meta["init_from"] == meta["init_from"]
    assert any(not torch.equal(done.model.state_dict()[n], p) for n, p in base.state_dict().items())
    row = trainviews.run_row(name, root=runs_root, registry=reg)
    assert row["from"] == f"the shipped model, step {int(shipped.name[5:])}"


@pytest.mark.slow
def test_the_base_can_go_while_a_fine_tune_waits_and_a_tampered_copy_is_refused(runs_root, reg):
    import threading

    from explorer import jobs, trainjobs

    tok, train_ids, val_ids = tiny_data()
    base = runs_root / "base"
    Trainer(tiny_model(tok.vocab_size), train_ids, val_ids, tiny_cfg(max_steps=3, ckpt_every=3),
            tokenizer=tok, run_dir=base).run()  # fmt: skip
    base_ckpt = latest_checkpoint(base)
    sha = sha256_file(base_ckpt / "model.safetensors")

    # the queue is busy; meanwhile the base run is renamed and then deleted
    gate = threading.Event()
    reg.submit("blocker", lambda ctx: gate.wait(60))
    name = trainjobs.start(ft_spec("run:base", steps=6, ckpt_every=2), root=runs_root,
                           registry=reg)  # fmt: skip
    assert reg.get(name).state == jobs.QUEUED
    copy = runs_root / name / trainjobs.BASE_DIR
    assert sha256_file(copy / "model.safetensors") == sha and (copy / "tokenizer.json").exists()
    assert not list(copy.glob("train_state*"))  # the weights, not the base's optimizer state
    base.rename(runs_root / "renamed")
    shutil.rmtree(runs_root / "renamed")
    gate.set()
    job = reg.get(name)
    assert job.wait(180) and job.state == jobs.DONE, (job.error, job.traceback)
    meta = json.loads((runs_root / name / "run.json").read_text())
    assert meta["init_from"]["sha256"] == sha and meta["init_from"]["label"] == "run base"
    assert meta["init_from"]["path"] == f"runs/base/ckpt/{base_ckpt.name}"  # no server path
    first = read_log(runs_root / name / "log.jsonl")
    assert [e["step"] for e in first if e["event"] == "eval"] == [0, 2, 4, 6]

    # a restart from nothing (no checkpoint of its own) reloads the copy, checked by its hash
    shutil.rmtree(runs_root / name / "ckpt")
    trainjobs.resume(runs_root / name, registry=reg)
    assert reg.get(name).wait(180) and reg.get(name).state == jobs.DONE
    again = read_log(runs_root / name / "log.jsonl")
    assert [e["val_loss"] for e in again if e["event"] == "eval"] == pytest.approx(
        [e["val_loss"] for e in first if e["event"] == "eval"], rel=1e-5
    )  # the same run again, from the same weights
    shutil.rmtree(runs_root / name / "ckpt")
    with open(copy / "model.safetensors", "r+b") as f:  # a corrupted or swapped copy
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    trainjobs.resume(runs_root / name, registry=reg)
    job = reg.get(name)
    assert job.wait(120) and job.state == jobs.FAILED
    assert "weights changed since this run was created" in job.error


@pytest.mark.slow
def test_a_page_fine_tune_resumes_from_its_own_checkpoint(runs_root, reg):
    import time

    from explorer import jobs, trainjobs

    name = trainjobs.start(ft_spec("default", steps=60, ckpt_every=2), root=runs_root,
                           registry=reg)  # fmt: skip
    deadline = time.time() + 120
    while latest_checkpoint(runs_root / name) is None:
        assert time.time() < deadline and reg.get(name).active, reg.get(name).error
        time.sleep(0.05)
    assert reg.stop(name) and reg.get(name).wait(60)
    assert 2 <= load_run(runs_root / name).step < 60
    shutil.rmtree(runs_root / name / trainjobs.BASE_DIR)  # not needed once it has a checkpoint
    trainjobs.resume(runs_root / name, registry=reg)
    job = reg.get(name)
    assert job.wait(180) and job.state == jobs.DONE, (job.error, job.traceback)
    events = read_log(runs_root / name / "log.jsonl")
    assert [e["step"] for e in events if e["event"] == "step"] == list(range(1, 61))
    assert [e["step"] for e in events if e["event"] == "eval"] == list(range(0, 61, 2))
