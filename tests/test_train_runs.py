"""Run dirs: run.json status, interrupted detection, listing, logs, LATEST handling."""

import json
import os
import subprocess
import sys
import time

from core import runs
from core.events import (
    EVENT_TYPES,
    DoneEvent,
    JsonlLogger,
    StepEvent,
    event_from_dict,
    read_log,
)


def test_create_load_list(tmp_path):
    runs.create_run(tmp_path / "r1", model={"d_model": 8}, train={"lr": 1.0}, command="x", seed=3)
    time.sleep(0.01)
    runs.create_run(tmp_path / "r2", model={}, train={}, command="y", seed=4)
    info = runs.load_run(tmp_path / "r1")
    assert info.status == "running" and info.seed == 3 and info.model == {"d_model": 8}
    assert info.latest_checkpoint is None and info.step == 0
    assert [r.name for r in runs.list_runs(tmp_path)] == ["r2", "r1"]
    runs.set_status(tmp_path / "r1", "done", final={"val_loss": 1.5})
    assert runs.load_run(tmp_path / "r1").is_finished
    assert runs.list_runs(tmp_path / "missing") == []


def test_dead_process_reads_as_interrupted(tmp_path):
    runs.create_run(tmp_path / "r", model={}, train={}, command="", seed=0)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runs.update_run(tmp_path / "r", pid=dead.pid)
    assert runs.load_run(tmp_path / "r").status == "interrupted"
    runs.update_run(tmp_path / "r", pid=os.getpid(), heartbeat=time.time())
    assert runs.load_run(tmp_path / "r").status == "running"
    runs.update_run(tmp_path / "r", heartbeat=time.time() - 3600)  # alive but silent: stale
    assert runs.load_run(tmp_path / "r").status == "interrupted"


def test_latest_points_to_complete_dirs_and_prunes(tmp_path):
    for s in (1, 2, 3):
        d = runs.checkpoint_dir(tmp_path, s)
        d.mkdir(parents=True)
        runs.mark_latest(tmp_path, d, keep=2)
    (tmp_path / "ckpt" / ".tmp_half_written").mkdir()
    runs.mark_latest(tmp_path, runs.checkpoint_dir(tmp_path, 3), keep=2)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "LATEST",
        "step_000002",
        "step_000003",
    ]
    assert runs.latest_checkpoint(tmp_path).name == "step_000003"
    (tmp_path / "ckpt" / "LATEST").write_text("step_000009\n")  # names a missing dir
    assert runs.latest_checkpoint(tmp_path) is None


def test_events_roundtrip_and_log_survives_torn_line(tmp_path):
    log = JsonlLogger(tmp_path / "log.jsonl")
    ev = StepEvent(
        step=1,
        loss=float("nan"),
        lr=0.1,
        grad_norm=2.0,
        clipped=True,
        tokens=8,
        tokens_per_s=1.0,
        elapsed=0.1,
    )
    log(ev)
    log(DoneEvent(step=1, status="done", train_loss=1.0, val_loss=None, elapsed=1.0))
    log.close()
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"event": "step", "st')  # a crash mid-line
    rows = read_log(tmp_path / "log.jsonl")
    assert [r["event"] for r in rows] == ["step", "done"]
    assert rows[0]["loss"] is None  # strict JSON, no NaN
    back = event_from_dict(rows[1])
    assert isinstance(back, DoneEvent) and back.status == "done"
    assert set(EVENT_TYPES) == {
        "start",
        "step",
        "eval",
        "sample",
        "checkpoint",
        "timelapse",
        "done",
        "diverged",
    }


def test_truncate_log_keeps_one_curve(tmp_path):
    p = tmp_path / "log.jsonl"
    rows = [{"event": "start", "step": 0}] + [{"event": "step", "step": s} for s in range(1, 6)]
    rows += [{"event": "done", "step": 5}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs.truncate_log(p, 3)
    assert [r["step"] for r in read_log(p)] == [1, 2, 3]


def test_git_commit_names_head_and_marks_edited_trees(tmp_path):
    import subprocess

    from core.runs import git_commit

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=tmp_path, check=True, capture_output=True, text=True).stdout  # fmt: skip

    assert git_commit(tmp_path) is None  # not a repository
    git("init", "-q")
    assert git_commit(tmp_path) is None  # no commit yet
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-qm", "one")
    head = git("rev-parse", "HEAD").strip()
    assert git_commit(tmp_path) == head
    (tmp_path / "notes.txt").write_text("untracked files do not count\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == head + "+dirty"
