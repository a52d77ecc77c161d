"""Exact resume and crash safety: an interrupted run continues on the same loss curve, and a
kill -9 at any moment leaves a loadable latest checkpoint."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from core.events import read_log
from core.trainer import Trainer
from tests.trainutil import tiny_cfg, tiny_data, tiny_model


def _step_losses(run_dir):
    return [(e["step"], e["loss"]) for e in read_log(run_dir / "log.jsonl") if e["event"] == "step"]


def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path):
    tok, tr, va = tiny_data()
    # dropout > 0 so the RNG state matters; eval + samples in between must not disturb it
    cfg = tiny_cfg(max_steps=8, ckpt_every=3, eval_every=2, timelapse_steps=[0, 4, 8])
    kw = dict(dropout=0.1)

    full = Trainer(
        tiny_model(tok.vocab_size, **kw), tr, va, cfg, tokenizer=tok, run_dir=tmp_path / "a"
    )
    full.run()

    first = Trainer(
        tiny_model(tok.vocab_size, **kw), tr, va, cfg, tokenizer=tok, run_dir=tmp_path / "b"
    )
    first.subscribe(lambda e: first.stop() if e.kind == "step" and e.step == 5 else None)
    assert first.run().status == "stopped"
    # pretend the process died after step 5 was logged but only step 3 was checkpointed
    (tmp_path / "b" / "ckpt" / "LATEST").write_text("step_000003\n")
    # a fresh process: different init seed, everything must come from the checkpoint
    second = Trainer(
        tiny_model(tok.vocab_size, seed=99, **kw),
        tr,
        va,
        cfg,
        tokenizer=tok,
        run_dir=tmp_path / "b",
    )
    second.resume(tmp_path / "b")
    assert second.step == 3
    assert second.run().status == "done"

    a, b = _step_losses(tmp_path / "a"), _step_losses(tmp_path / "b")
    assert [s for s, _ in b] == list(range(1, 9))  # the log holds one curve, no duplicates
    assert [loss for _, loss in a] == [loss for _, loss in b]  # exact
    evals = lambda d: [e["val_loss"] for e in read_log(d / "log.jsonl") if e["event"] == "eval"]  # noqa: E731
    assert evals(tmp_path / "a") == evals(tmp_path / "b")
    from core.timelapse import load_timelapse

    assert load_timelapse(tmp_path / "b").steps.tolist() == [0, 4, 8]


KILL_SCRIPT = """
import sys
from core.trainer import Trainer
from tests.trainutil import tiny_cfg, tiny_data, tiny_model
tok, tr, va = tiny_data()
cfg = tiny_cfg(max_steps=100000, ckpt_every=1, eval_every=0, keep_checkpoints=2)
t = Trainer(tiny_model(tok.vocab_size), tr, va, cfg, tokenizer=tok, run_dir=sys.argv[1])
from core.runs import latest_checkpoint
if latest_checkpoint(sys.argv[1]) is not None:
    t.resume(sys.argv[1])
print("ready", flush=True)
t.run()
"""


@pytest.mark.slow
def test_kill_9_at_random_moments_never_breaks_latest(tmp_path):
    from core.checkpoint import load_checkpoint
    from core.runs import load_run

    run = tmp_path / "run"
    rng = random.Random(0)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    last_step = 0
    for _ in range(4):
        p = subprocess.Popen(
            [sys.executable, "-c", KILL_SCRIPT, str(run)],
            stdout=subprocess.PIPE,
            env=env,
            cwd=os.path.dirname(os.path.dirname(__file__)),
        )
        assert p.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.3, 1.5))  # checkpoints are written every step: hit mid-write
        p.send_signal(signal.SIGKILL)
        p.wait()
        if (run / "ckpt" / "LATEST").exists():
            ckpt = load_checkpoint(run, load_extra=True)
            assert ckpt.meta["step"] >= last_step
            last_step = ckpt.meta["step"]
        info = load_run(run)
        assert info.status == "interrupted"
    assert last_step > 0
    steps = [e["step"] for e in read_log(run / "log.jsonl") if e["event"] == "step"]
    assert steps == list(range(1, len(steps) + 1)) or steps[-1] >= last_step
    json.loads((run / "run.json").read_text())  # never torn
