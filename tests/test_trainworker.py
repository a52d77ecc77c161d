"""A Train-page training runs in its own process (explorer/trainworker.py), not in the server.

Checked with real tiny trainings: the run is written by another pid and its events reach the job;
a stray print in the worker does not corrupt the pipe; a worker killed -9 is a failed,
resumable run with a plain message; a worker whose server vanished (its stdin closes) exits at
once and leaves a run that reads as interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from core.runs import load_run
from explorer import jobs, trainjobs
from explorer.trainjobs import TrainSpec

pytestmark = pytest.mark.slow

NOISY = """
from explorer import trainjobs
_load = trainjobs.load_corpus_text
def noisy(run_dir, spec):
    print('{"t": "result", "d": "forged"')  # a library printing to stdout: must not count
    print("not json at all")
    return _load(run_dir, spec)
trainjobs.load_corpus_text = noisy
"""


def tiny_spec(steps: int, label: str, ckpt_every: int = 0) -> TrainSpec:
    return TrainSpec(
        label=label,
        model={"n_layers": 1, "n_heads": 2, "d_model": 16, "context_length": 16},
        train={"max_steps": steps, "batch_size": 4, "eval_every": 0, "ckpt_every": ckpt_every,
               "warmup_steps": 2, "timelapse_frames": 0, "device": "cpu"},
        corpus_bytes=20_000,
        vocab_size=300,
    )  # fmt: skip


def worker_with(patch: str) -> list[str]:
    return [sys.executable, "-c", patch + "\nfrom explorer.trainworker import main\n"
            "raise SystemExit(main())"]  # fmt: skip


def wait_for_step(job, n: int, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while not any(getattr(e, "kind", "") == "step" and e.step >= n for e in job.events()):
        assert time.time() < deadline and job.active, (job.state, job.error)
        time.sleep(0.02)


def test_the_training_runs_in_another_process_and_its_events_reach_the_job(
    tmp_path, reg, monkeypatch
):
    monkeypatch.setattr(trainjobs, "WORKER_CMD", worker_with(NOISY))
    name = trainjobs.start(tiny_spec(20, "elsewhere"), root=tmp_path, registry=reg)
    job = reg.get(name)
    assert job.wait(120) and job.state == jobs.DONE, (job.error, job.traceback)
    meta = json.loads((tmp_path / name / "run.json").read_text())
    assert meta["status"] == "done" and meta["pid"] != os.getpid()
    kinds = [e.kind for e in job.events()]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert [e.step for e in job.events() if e.kind == "step"] == list(range(1, 21))
    assert job.result["event"] == "done" and job.result["step"] == 20  # not the forged line
    assert job.progress[2] == "training"


def test_a_worker_killed_mid_run_is_a_failed_run_that_resumes(tmp_path, reg):
    name = trainjobs.start(tiny_spec(3000, "killed", ckpt_every=5), root=tmp_path, registry=reg)
    job = reg.get(name)
    run_dir = tmp_path / name
    deadline = time.time() + 90
    while not (run_dir / "ckpt" / "LATEST").exists():
        assert time.time() < deadline and job.active, job.error
        time.sleep(0.02)
    pid = json.loads((run_dir / "run.json").read_text())["pid"]
    assert pid != os.getpid()
    if hasattr(os, "SCHED_IDLE"):  # behind every rerun of the server (Linux)
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
    os.kill(pid, signal.SIGKILL)  # an OOM kill, say
    assert job.wait(30) and job.state == jobs.FAILED
    assert job.error == "WorkerError: the training process ended unexpectedly (signal 9, SIGKILL)"
    assert "out-of-memory killer" in job.traceback
    info = load_run(run_dir)
    assert info.status == "interrupted" and info.extra["failed"] is True
    assert trainjobs.run_state(info, reg) == "failed" and info.latest_checkpoint is not None

    trainjobs.resume(run_dir, registry=reg)
    again = reg.get(name)
    wait_for_step(again, info.step + 1)
    assert again.meta["resume"] is True
    assert trainjobs.stop(name, registry=reg)
    assert again.wait(60) and again.state == jobs.STOPPED


def test_a_worker_whose_server_is_gone_exits_and_the_run_reads_interrupted(tmp_path):
    gate = threading.Event()
    reg = jobs.JobRegistry(max_concurrent=1)
    reg.submit("blocker", lambda ctx: gate.wait(60))  # keeps the run queued: we start it by hand
    try:
        name = trainjobs.start(tiny_spec(100_000, "orphan"), root=tmp_path, registry=reg)
        run_dir = tmp_path / name
        proc = subprocess.Popen(
            [*trainjobs.WORKER_CMD, str(run_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=trainjobs._worker_env(),
        )
        for line in proc.stdout:  # wait until it trains
            msg = json.loads(line)
            if msg["t"] == "event" and msg["d"]["event"] == "step":
                break
        proc.stdin.close()  # what the kernel does to the pipe when the server process dies
        assert proc.wait(30) == 3
        meta = json.loads((run_dir / "run.json").read_text())
        assert meta["status"] == "running" and meta["pid"] == proc.pid  # as it was left...
        info = load_run(run_dir)
        assert info.status == "interrupted"  # ...reads as interrupted: its pid is gone
    finally:
        gate.set()
        reg.stop(name)
        assert reg.stop_all(timeout=30)
