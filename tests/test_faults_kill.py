"""Fault: kill -9 of the trainer at random moments, resumed each time through the real CLI.

Each round starts `python -m core.train --resume` (the command a user reruns after a crash) on
the same run dir, with a checkpoint after every step so most kills land inside a checkpoint
write, and SIGKILLs it: at a random moment, the instant a checkpoint temp dir appears, the
instant LATEST is being replaced, or while the process is still starting up. After every kill
the latest checkpoint loads and its step never goes back; the next round's log says it resumed
from that step. At the end the killed-and-resumed loss curve is compared, step by step, with an
uninterrupted run of the same command: one curve, no gaps, no duplicates, the same numbers.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.events import read_log

ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "--preset", "tiny", "--vocab-size", "280", "--max-steps", "100000", "--batch-size", "4", "--lr", "3e-3",
    "--warmup-steps", "2", "--eval-every", "0", "--telemetry-every", "0",
    "--heartbeat-every", "0", "--threads", "1", "--quiet",
]  # fmt: skip
KILLS = 12
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _start(run: Path, ckpt_every: int) -> subprocess.Popen:
    # a fixed text file, so both runs see the same bytes even if the corpus generator changes
    text = run.parent / "corpus.txt"
    if not text.exists():
        from core.corpora import tinytales

        text.write_text(tinytales.generate(30_000, seed=0), encoding="utf-8")
    cmd = [sys.executable, "-m", "core.train", "--out", str(run), "--resume", "--text", str(text)]
    cmd += ARGS + ["--ckpt-every", str(ckpt_every), "--keep-checkpoints", "2"]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _steps(run: Path) -> list[tuple[int, float]]:
    log = run / "log.jsonl"
    if not log.exists():
        return []
    return [(e["step"], e["loss"]) for e in read_log(log) if e["event"] == "step"]


def _wait_for(pred, p: subprocess.Popen, timeout: float = 120.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if p.poll() is not None:
            return False
        if pred():
            return True
        time.sleep(0.002)
    return False


def _kill_when(mode: str, run: Path, p: subprocess.Popen, rng: random.Random) -> str:
    """Wait for the moment `mode` names, then SIGKILL. Returns what was hit."""
    ckpt = run / "ckpt"

    def n_steps() -> int:
        return len(_steps(run))

    if mode == "startup":  # during imports, corpus, tokenizer or resume()
        time.sleep(rng.uniform(0.05, 1.5))
    else:
        before = n_steps()
        # let this process train at least one step so the run moves on between kills
        _wait_for(lambda: n_steps() > before, p)
        if mode == "random":
            time.sleep(rng.uniform(0.0, 0.4))
        elif mode == "tmpdir":  # save_checkpoint's temp dir exists: mid-write of weights/state
            _wait_for(lambda: any(c.name.startswith(".step_") for c in _ls(ckpt)), p)
        elif mode == "latest":  # this process's temp file for LATEST exists (mid-replace)
            _wait_for(lambda: (ckpt / f".LATEST.tmp{p.pid}").exists(), p)
    names = sorted(c.name for c in _ls(ckpt))
    p.send_signal(signal.SIGKILL)
    p.wait()
    return f"{mode}: {names}"


def _ls(d: Path) -> list[Path]:
    try:
        return list(d.iterdir())
    except OSError:
        return []


@pytest.mark.slow
def test_kill_9_then_cli_resume_continues_the_same_curve(tmp_path):
    from core.checkpoint import load_checkpoint
    from core.runs import load_run

    run = tmp_path / "killed"
    rng = random.Random(8)
    modes = ["random", "tmpdir", "latest", "startup"] * (KILLS // 4)
    rng.shuffle(modes)
    modes[0] = "random"  # the first round must get a checkpoint written
    last = 0
    hits = []
    for mode in modes:
        p = _start(run, ckpt_every=1)
        hits.append(_kill_when(mode, run, p, rng))
        assert p.returncode == -signal.SIGKILL, p.stderr.read().decode()[-2000:]
        if not (run / "ckpt" / "LATEST").exists():
            assert last == 0, f"LATEST vanished after {hits[-1]}"
            continue
        ckpt = load_checkpoint(run, load_extra=True)  # never half-written, never torn
        step = ckpt.meta["step"]
        assert step >= last, f"checkpoint went back from {last} to {step} after {hits[-1]}"
        assert ckpt.extra_json["step"] == step
        last = step
        info = load_run(run)
        assert info.status == "interrupted" and info.step == step
        json.loads((run / "run.json").read_text())
    assert last > 0, hits

    # one more resume through the CLI, stopped politely once it has gone past the last kill
    p = _start(run, ckpt_every=1)
    assert _wait_for(lambda: len(_steps(run)) > last + 3, p), p.stderr.read().decode()[-2000:]
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err.decode()[-2000:]
    starts = [e for e in read_log(run / "log.jsonl") if e["event"] == "start"]
    assert len(starts) == 1 and starts[0]["resumed"] and starts[0]["step"] >= last
    assert load_run(run).status == "stopped"
    killed = _steps(run)
    assert [s for s, _ in killed] == list(range(1, len(killed) + 1)), "gaps or duplicates"
    leftovers = [c.name for c in _ls(run / "ckpt") if c.name != "LATEST"]
    assert all(n.startswith("step_") for n in leftovers), leftovers  # kills' temp files gone
    assert [p.name for p in run.rglob(".*tmp*")] == []

    # the same command, never killed: the same loss at every step (exact resume)
    ref_dir = tmp_path / "reference"
    p = _start(ref_dir, ckpt_every=1000)
    assert _wait_for(lambda: len(_steps(ref_dir)) >= len(killed), p)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=60)
    ref = _steps(ref_dir)[: len(killed)]
    assert [loss for _, loss in killed] == [loss for _, loss in ref]
    print(json.dumps({"kills": len(modes), "final_step": len(killed), "hits": hits}, indent=1))


def test_a_restart_before_the_first_checkpoint_starts_one_clean_curve(tmp_path):
    """Killed before any checkpoint: the rerun starts from step 0, and the dead attempt's
    events must not stay in the log as a second curve (found by the test above under load)."""
    import torch

    from core.runs import latest_checkpoint
    from core.trainer import Trainer
    from tests.trainutil import tiny_cfg, tiny_data, tiny_model

    torch.set_num_threads(1)
    tok, tr, va = tiny_data()
    cfg = tiny_cfg(max_steps=5, ckpt_every=100, eval_every=2, timelapse_steps=[0, 2, 4])
    first = Trainer(tiny_model(tok.vocab_size), tr, va, cfg, tokenizer=tok, run_dir=tmp_path)

    def die(ev):
        if ev.kind == "step" and ev.step == 3:
            raise KeyboardInterrupt  # stands in for the kill: no checkpoint was written

    first.subscribe(die)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    # (die runs before the log writer, so step 3 is not logged)
    assert latest_checkpoint(tmp_path) is None and len(_steps(tmp_path)) == 2
    second = Trainer(tiny_model(tok.vocab_size), tr, va, cfg, tokenizer=tok, run_dir=tmp_path)
    assert second.run().status == "done"
    log = read_log(tmp_path / "log.jsonl")
    assert [s for s, _ in _steps(tmp_path)] == [1, 2, 3, 4, 5]
    assert [e["step"] for e in log if e["event"] == "eval"] == [2, 4, 5]
    assert sum(e["event"] == "start" for e in log) == 1
    from core.timelapse import load_timelapse

    assert load_timelapse(tmp_path).steps.tolist() == [0, 2, 4]
