"""Train page plumbing without Streamlit: log reading, run management, spec validation."""

import json
import time

import pytest

from explorer import jobs, runlog, trainjobs
from explorer.trainjobs import TrainSpec


def write_log(path, events):
    with open(path, "a", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")


def step(i, loss=3.0, clipped=False, layers=None):
    d = {
        "event": "step",
        "step": i,
        "loss": loss,
        "lr": 1e-3,
        "grad_norm": 0.5 + i,
        "clipped": clipped,
    }
    d |= {"tokens": 64 * i, "tokens_per_s": 1000.0, "elapsed": 0.1 * i}
    if layers is not None:
        d["layer_grad_norms"] = layers
    return d


def make_run(root, name, status="done", **extra):
    d = root / name
    d.mkdir(parents=True)
    meta = {"name": name, "status": status, "created": time.time(), "model": {"n_layers": 2}}
    meta |= {"train": {"max_steps": 10}, **extra}
    (d / "run.json").write_text(json.dumps(meta))
    return d


def test_run_log_reads_incrementally_and_skips_a_torn_line(tmp_path):
    log = tmp_path / "log.jsonl"
    write_log(log, [{"event": "start", "step": 0, "max_steps": 10}, step(1), step(2, clipped=True)])
    m = runlog.run_log(tmp_path)
    assert m.step == [1, 2] and m.clipped == [False, True] and m.max_steps == 10
    with open(log, "a") as f:
        f.write(json.dumps(step(3, layers=[0.1, 0.2])) + "\n" + '{"event": "st')  # torn tail
    m = runlog.run_log(tmp_path)
    assert m.step == [1, 2, 3] and m.layer_step == [3]
    assert m.layer_matrix().shape == (1, 2)
    with open(log, "a") as f:
        f.write('ep", "step": 4, "loss": 1.0}\n')  # the tail completes
    write_log(log, [{"event": "eval", "step": 4, "train_loss": 2.0, "val_loss": 2.5}])
    m = runlog.run_log(tmp_path)
    assert m.step[-1] == 4 and m.eval_val == [2.5]


def test_run_log_restarts_when_the_log_is_truncated(tmp_path):
    log = tmp_path / "log.jsonl"
    write_log(log, [step(i) for i in range(1, 6)])
    assert runlog.run_log(tmp_path).last_step == 5
    log.write_text(json.dumps(step(1)) + "\n")  # a resume rewrites a shorter log
    assert runlog.run_log(tmp_path).step == [1]


def test_eta_from_the_pace_since_the_last_start(tmp_path):
    m = runlog.Metrics()
    m.add({"event": "start", "step": 0, "max_steps": 100})
    for i in range(1, 11):
        m.add(step(i))  # 0.1 s per step
    assert m.eta_seconds() == pytest.approx(9.0)
    m.add({"event": "done", "step": 10, "status": "stopped"})
    assert m.end["status"] == "stopped"


def test_csv_log_has_a_row_per_step_and_eval_columns(tmp_path):
    write_log(
        tmp_path / "log.jsonl",
        [step(1), step(2), {"event": "eval", "step": 2, "train_loss": 2.0, "val_loss": 2.2}],
    )
    rows = runlog.log_csv(tmp_path).decode().strip().splitlines()
    assert rows[0].startswith("step,loss,lr,grad_norm,clipped")
    assert len(rows) == 3 and rows[2].endswith(",2.0,2.2")


def test_rename_and_delete_runs(tmp_path):
    make_run(tmp_path, "a")
    dst = runlog.rename_run(tmp_path, "a", "b")
    assert dst.name == "b" and json.loads((dst / "run.json").read_text())["name"] == "b"
    make_run(tmp_path, "c")
    with pytest.raises(FileExistsError):
        runlog.rename_run(tmp_path, "b", "c")
    with pytest.raises(ValueError, match="letters"):
        runlog.rename_run(tmp_path, "b", "../evil")
    runlog.delete_run(tmp_path, "b")
    assert not (tmp_path / "b").exists()
    with pytest.raises(FileNotFoundError):
        runlog.delete_run(tmp_path, "b")


def test_checkpoint_zip_needs_a_checkpoint(tmp_path):
    d = make_run(tmp_path, "r")
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        runlog.checkpoint_zip(d)
    ck = d / "ckpt" / "step_000010"
    ck.mkdir(parents=True)
    (ck / "config.json").write_text("{}")
    (d / "ckpt" / "LATEST").write_text("step_000010\n")
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(runlog.checkpoint_zip(d))).namelist()
    assert sorted(names) == ["r/config.json", "r/run.json"]


def good_spec(**over):
    spec = TrainSpec(
        model={"n_layers": 1, "n_heads": 2, "d_model": 16, "context_length": 16},
        train={"max_steps": 4, "batch_size": 4, "micro_batch_size": 2, "eval_every": 2},
        corpus_bytes=20_000,
        vocab_size=300,
    )
    for key, value in over.items():
        setattr(spec, key, value)
    return spec


def test_validate_names_the_field():
    assert trainjobs.validate(good_spec()) == {}
    bad_heads = good_spec(model={"n_layers": 1, "n_heads": 3, "d_model": 16, "context_length": 16})
    assert "n_heads" in trainjobs.validate(bad_heads)
    assert "vocab_size" in trainjobs.validate(good_spec(vocab_size=10))
    assert "corpus" in trainjobs.validate(good_spec(corpus="upload"))
    assert trainjobs.validate(good_spec(corpus="upload"), upload_bytes=100) == {}
    bad_lr = good_spec(train={"max_steps": 4, "batch_size": 4, "lr": -1.0})
    assert "lr" in trainjobs.validate(bad_lr)
    odd = good_spec(train={"max_steps": 4, "batch_size": 5, "micro_batch_size": 2})
    assert "batch_size" in trainjobs.validate(odd)
    assert "label" in trainjobs.validate(good_spec(label="no spaces/slashes"))


def test_run_state_marks_orphaned_runs_interrupted(tmp_path):
    from core.runs import load_run

    reg = jobs.JobRegistry(max_concurrent=1)
    make_run(tmp_path, "q", status="queued")
    assert trainjobs.run_state(load_run(tmp_path / "q"), reg) == "interrupted"
    make_run(tmp_path, "d", status="done")
    assert trainjobs.run_state(load_run(tmp_path / "d"), reg) == "done"
