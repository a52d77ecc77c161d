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


def test_run_log_snapshots_do_not_change_under_their_reader(tmp_path):
    """Many sessions share one reader: a snapshot one session is drawing from must not grow
    when another session's refresh reads new lines (mismatched array lengths crashed a chart)."""
    log = tmp_path / "log.jsonl"
    write_log(log, [{"event": "start", "step": 0, "max_steps": 10}, step(1), step(2)])
    first = runlog.run_log(tmp_path)
    write_log(log, [step(3, clipped=True), step(4)])
    second = runlog.run_log(tmp_path)
    assert first.step == [1, 2] and first.clipped == [False, False]
    assert second.step == [1, 2, 3, 4] and len(second.clipped) == 4
    assert runlog.run_log(tmp_path) is second  # nothing new: the same snapshot, no copy


def test_parsed_logs_kept_in_memory_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(runlog, "_LOGS", type(runlog._LOGS)())
    monkeypatch.setattr(runlog, "MAX_LOGS", 3)
    for i in range(5):
        d = make_run(tmp_path, f"r{i}")
        write_log(d / "log.jsonl", [step(1)])
        runlog.run_log(d)
    runlog.run_log(tmp_path / "r2")  # read again: the most recent
    kept = [p.parent.name for p in runlog._LOGS]
    assert kept == ["r3", "r4", "r2"]


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


# ---------------------------------------------------------------- real tiny trainings (slow)

TINY_MODEL = {"n_layers": 1, "n_heads": 2, "d_model": 16, "context_length": 16}


def tiny_spec(steps: int, label: str) -> TrainSpec:
    return TrainSpec(
        label=label,
        model=dict(TINY_MODEL),
        train={"max_steps": steps, "batch_size": 4, "eval_every": 50, "ckpt_every": 0,
               "warmup_steps": 2, "timelapse_frames": 2, "device": "cpu"},
        corpus_bytes=20_000,
        vocab_size=300,
    )  # fmt: skip


def dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_checkpoint_with_one_curve(tmp_path, reg):
    from core.events import read_log
    from core.runs import load_run, update_run

    name = trainjobs.start(tiny_spec(300, "resumable"), root=tmp_path, registry=reg)
    job = reg.get(name)
    deadline = time.time() + 60
    while not any(getattr(e, "kind", "") == "step" and e.step >= 5 for e in job.events()):
        assert time.time() < deadline and job.active, job.error
        time.sleep(0.02)
    reg.stop(name)
    assert job.wait(60) and job.state == jobs.STOPPED
    stopped_at = load_run(tmp_path / name).step
    assert 5 <= stopped_at < 300
    # what a server killed mid-run leaves behind: "running" in run.json, its pid gone
    update_run(tmp_path / name, status="running", pid=dead_pid())
    info = load_run(tmp_path / name)
    assert info.status == "interrupted" and trainjobs.run_state(info, reg) == "interrupted"

    trainjobs.resume(tmp_path / name, registry=reg)
    again = reg.get(name)
    assert again is not job and again.meta["resume"] is True
    assert again.wait(120) and again.state == jobs.DONE, again.error
    assert load_run(tmp_path / name).status == "done"
    steps = [d["step"] for d in read_log(tmp_path / name / "log.jsonl") if d["event"] == "step"]
    assert steps == list(range(1, 301)), "the resumed log is one curve, no repeats or gaps"


def patched_worker(patch: str) -> list[str]:
    """A worker command whose process runs `patch` (Python source) before the real worker."""
    import sys

    return [sys.executable, "-c", patch + "\nfrom explorer.trainworker import main\n"
            "raise SystemExit(main())"]  # fmt: skip


BROKEN_CORPUS = """
from explorer import trainjobs
def broken(run_dir, spec):
    raise OSError("disk on fire")
trainjobs.load_corpus_text = broken
"""


def test_a_crash_in_the_training_process_is_captured_and_marked_failed(tmp_path, reg, monkeypatch):
    monkeypatch.setattr(trainjobs, "WORKER_CMD", patched_worker(BROKEN_CORPUS))
    name = trainjobs.start(tiny_spec(5, "crash"), root=tmp_path, registry=reg)
    job = reg.get(name)
    assert job.wait(60) and job.state == jobs.FAILED
    assert job.error == "OSError: disk on fire"
    assert "broken" in job.traceback and "disk on fire" in job.traceback  # the worker's own
    from core.runs import load_run

    info = load_run(tmp_path / name)
    assert info.extra["error"] == "OSError: disk on fire"
    assert trainjobs.run_state(info, jobs.JobRegistry()) == "failed"  # after a server restart too


def test_a_binary_upload_is_refused_before_queueing(tmp_path, reg):
    spec = tiny_spec(5, "binary")
    spec.corpus = "upload"
    with pytest.raises(ValueError, match="binary"):
        trainjobs.start(spec, upload=b"abc\x00def" * 10, root=tmp_path, registry=reg)
    assert not any(tmp_path.iterdir()) and reg.jobs() == []


def test_stopping_a_queued_run_removes_its_dir(tmp_path):
    import threading

    reg = jobs.JobRegistry(max_concurrent=1)
    gate = threading.Event()
    reg.submit("blocker", lambda ctx: gate.wait(30))
    name = trainjobs.start(tiny_spec(5, "waiting"), root=tmp_path, registry=reg)
    assert reg.queue_position(name) == 1
    assert trainjobs.stop(name, registry=reg)
    assert not (tmp_path / name).exists()
    gate.set()
    assert reg.stop_all(timeout=30)


def test_two_runs_named_alike_at_the_same_moment(tmp_path, monkeypatch):
    """The free name is looked up, then made: a run made in between by another student gave
    'Could not start: [Errno 17] File exists: <server path>'. The next free name is taken."""
    reg = jobs.JobRegistry(max_concurrent=0)  # nothing starts: only the folders matter
    real = trainjobs.new_run_name
    calls = []

    def racing(label, root):
        name = real(label, root)
        if not calls:  # the other student's run appears after the lookup
            (root / name).mkdir()
        calls.append(name)
        return name

    monkeypatch.setattr(trainjobs, "new_run_name", racing)
    name = trainjobs.start(tiny_spec(5, "same"), root=tmp_path, registry=reg)
    assert calls == ["same", "same-2"] and name == "same-2"
    assert (tmp_path / "same-2" / "run.json").exists()


def test_a_dangling_link_does_not_trap_the_run_name_loop(tmp_path):
    reg = jobs.JobRegistry(max_concurrent=0)
    (tmp_path / "same").symlink_to(tmp_path / "gone")  # .exists() is False, mkdir fails
    assert trainjobs.start(tiny_spec(5, "same"), root=tmp_path, registry=reg) == "same-2"


def test_stopping_a_queued_resume_keeps_the_run(tmp_path):
    """Stop on a resumed run still waiting for a slot deleted the whole run, checkpoints and
    log included (found by a review); it goes back to interrupted, resumable again."""
    import threading

    run = tmp_path / "mine"
    (run / "ckpt" / "step_000100").mkdir(parents=True)
    (run / "ckpt" / "step_000100" / "config.json").write_text("{}")  # a checkpoint's marker
    (run / "ckpt" / "LATEST").write_text("step_000100\n")
    (run / "log.jsonl").write_text("")
    meta = {"name": "mine", "status": "interrupted", "spec": tiny_spec(5, "mine").to_dict()}
    (run / "run.json").write_text(json.dumps(meta))
    reg = jobs.JobRegistry(max_concurrent=1)
    gate = threading.Event()
    reg.submit("blocker", lambda ctx: gate.wait(30))
    trainjobs.resume(run, registry=reg)
    assert reg.queue_position("mine") == 1
    assert trainjobs.stop("mine", registry=reg)
    assert sorted(p.name for p in run.iterdir()) == ["ckpt", "log.jsonl", "run.json"]
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    gate.set()
    assert reg.stop_all(timeout=30)


def test_poll_interval_grows_with_the_number_of_watchers(monkeypatch):
    from explorer import trainviews

    monkeypatch.setattr(trainviews, "_WATCHERS", {})
    assert trainviews.poll_interval("s0") == 3.0
    for i in range(29):
        trainviews.poll_interval(f"s{i + 1}")
    assert trainviews.poll_interval("s0") == pytest.approx(10.0)  # 30 watchers / 3 ticks/s
    for i in range(100):
        trainviews.poll_interval(f"x{i}")
    assert trainviews.poll_interval("s0") == 15.0  # capped


def test_live_figures_are_built_once_per_log_content(tmp_path):
    from explorer import trainviews

    write_log(tmp_path / "log.jsonl", [step(i) for i in range(1, 4)])
    m = runlog.run_log(tmp_path)
    a = trainviews.live_figures(str(tmp_path), m, clip=1.0)
    assert list(a) == ["loss", "lr", "gn", "lgn", "tps"]
    assert trainviews.live_figures(str(tmp_path), m, clip=1.0) is a  # shared by watchers
    write_log(tmp_path / "log.jsonl", [step(4)])
    b = trainviews.live_figures(str(tmp_path), runlog.run_log(tmp_path), clip=1.0)
    assert b is not a and list(b["loss"].data[0].x)[-1] == 4


def test_estimate_is_calibrated_by_the_newest_finished_run(tmp_path):
    spec = good_spec()
    default = trainjobs.estimate(spec, runs_root=tmp_path)
    assert default["basis"].startswith("default") and default["seconds"] > 0
    assert default["memory"]["total"] > 0 and default["params"] > 0
    d = make_run(tmp_path, "past", model=dict(spec.model, vocab_size=300), train=dict(spec.train))
    predicted = default["step_seconds"]
    # the past run took twice the predicted time per step
    write_log(d / "log.jsonl", [step(i) | {"elapsed": 2 * predicted * i} for i in range(1, 41)])
    calibrated = trainjobs.estimate(spec, runs_root=tmp_path)
    assert calibrated["basis"].startswith("calibrated on run past")
    assert calibrated["step_seconds"] == pytest.approx(2 * predicted, rel=0.01)
