"""Data parallel: 2 gloo processes under torchrun match 1 process with the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.trainutil import losses, tiny_cfg, tiny_data, tiny_model

ROOT = Path(__file__).resolve().parents[1]
CFG = dict(max_steps=10, batch_size=8, micro_batch_size=2, eval_every=0, ckpt_every=0)

WORKER = """
import json, sys
import torch
torch.set_num_threads(1)
from core import distributed as D
from core.trainer import Trainer
from tests.trainutil import tiny_cfg, tiny_data, tiny_model
from tests.test_ddp import CFG
info = D.init(torch.device("cpu"))
assert info.world_size == 2 and info.backend == "gloo"
tok, tr, va = tiny_data()
events = []
t = Trainer(tiny_model(tok.vocab_size), tr, va, tiny_cfg(**CFG), tokenizer=tok,
            subscribers=[events.append], dist=info)
assert t.accum == 2  # 8 = 2 micro x 2 accum x 2 ranks: exercises no_sync
t.run()
if info.is_main:
    json.dump([e.loss for e in events if e.kind == "step"], open(sys.argv[1], "w"))
else:
    assert events == []  # only rank 0 emits (and so writes)
D.shutdown(info)
"""


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_two_gloo_processes_match_one(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "losses.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run(
        cmd + [str(script), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(out.read_text())

    from core.trainer import Trainer

    tok, tr, va = tiny_data()
    events = []
    one = Trainer(
        tiny_model(tok.vocab_size),
        tr,
        va,
        tiny_cfg(**CFG),
        tokenizer=tok,
        subscribers=[events.append],
    )
    assert one.accum == 4
    one.run()
    ref = losses(events)
    assert len(two) == len(ref) == 10
    assert two == pytest.approx(ref, rel=1e-5)
    assert ref[-1] < ref[0]
