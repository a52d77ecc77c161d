"""Fault: a full disk or an unwritable runs folder, made real without needing to drop root.

Tests run as root (here and in CI), so chmod cannot make a folder unwritable. Instead:
- a full disk: the trainer runs in a subprocess that, right after its second checkpoint, sets
  RLIMIT_FSIZE (with SIGXFSZ ignored) so the kernel refuses every later write with EFBIG, just as
  a full disk refuses them with ENOSPC; limit 0 fails every write (log, run.json, checkpoint),
  16 KiB fails only the checkpoint's weights. ENOSPC itself is injected in-process too.
- an unwritable folder: a runs path whose parent is a regular file (ENOTDIR), and one under
  /sys (read-only to everyone, root included: EPERM).
Required: one clear sentence on every surface (CLI stderr, trainer exception, Train page), the
previous checkpoint intact and loadable, no half-written LATEST or stray temp files, and the
process (a server, for in-app trainings) carries on.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.runs import RunWriteError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
CLI_ARGS = [
    "--preset", "tiny", "--vocab-size", "280", "--max-steps", "12", "--batch-size", "4",
    "--warmup-steps", "2", "--eval-every", "0", "--ckpt-every", "2", "--heartbeat-every", "0",
    "--threads", "1", "--quiet",
]  # fmt: skip
# Patch Trainer.save so the disk "fills up" right after the second checkpoint is complete.
FILL_AFTER_SECOND_SAVE = """
import resource, signal
from core.trainer import Trainer
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
_save, _n = Trainer.save, [0]
def save(self):
    path = _save(self)
    _n[0] += 1
    if _n[0] == 2:
        resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, resource.RLIM_INFINITY))
    return path
Trainer.save = save
"""


def _corpus(tmp_path: Path) -> Path:
    from core.corpora import tinytales

    text = tmp_path / "corpus.txt"
    text.write_text(tinytales.generate(30_000, seed=0), encoding="utf-8")
    return text


def _cli(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _stray_temp_files(run: Path) -> list[str]:
    return [p.name for p in run.rglob(".*") if ".tmp" in p.name or ".write-test" in p.name]


@pytest.mark.slow
@pytest.mark.parametrize("limit", [0, 16_384], ids=["every-write-fails", "checkpoint-fails"])
def test_cli_on_a_full_disk_says_so_and_keeps_the_last_checkpoint(tmp_path, limit):
    from core.checkpoint import load_checkpoint
    from core.runs import load_run

    run, text = tmp_path / "run", _corpus(tmp_path)
    script = FILL_AFTER_SECOND_SAVE.replace("FSIZE_LIMIT", str(limit))
    script += "import sys\nfrom core.train import main\nsys.exit(main(sys.argv[1:]))\n"
    res = _cli(script, "--out", str(run), "--text", str(text), *CLI_ARGS)
    assert res.returncode == 1, res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: Cannot write to the run folder {run}: File too large"), last
    assert "step_000004, is intact" in last and "resume" in last

    assert (run / "ckpt" / "LATEST").read_text() == "step_000004\n"
    ckpt = load_checkpoint(run, load_extra=True)  # the previous checkpoint loads, with its state
    assert ckpt.meta["step"] == 4 and ckpt.extra_json["step"] == 4
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == [
        "LATEST",
        "step_000002",
        "step_000004",
    ]
    assert _stray_temp_files(run) == []
    json.loads((run / "run.json").read_text())  # never torn
    assert load_run(run).status == "interrupted"

    # space is back: the same CLI resumes from step 4 and finishes
    res = _cli(
        "import sys\nfrom core.train import main\nsys.exit(main(sys.argv[1:]))\n",
        "--out", str(run), "--text", str(text), "--resume", *CLI_ARGS,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    from core.events import read_log

    log = read_log(run / "log.jsonl")
    start = [e for e in log if e["event"] == "start"]
    assert len(start) == 1 and start[0]["resumed"] and start[0]["step"] == 4
    assert [e["step"] for e in log if e["event"] == "step"] == list(range(1, 13))
    assert load_run(run).status == "done"


@pytest.mark.slow
@pytest.mark.parametrize("where", ["file-parent", "sysfs"])
def test_cli_refuses_an_unwritable_runs_folder_in_one_sentence(tmp_path, where):
    if where == "file-parent":
        (tmp_path / "plain-file").write_text("not a folder")
        out, why = tmp_path / "plain-file" / "run", "Not a directory"
    else:
        out, why = Path("/sys/glassbox-faults-test/run"), ""
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no sysfs here")
    script = "import sys\nfrom core.train import main\nsys.exit(main(sys.argv[1:]))\n"
    res = _cli(script, "--out", str(out), "--corpus-bytes", "20000", *CLI_ARGS)
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: The runs folder {out} is not writable: {why}"), line


def test_enospc_while_writing_a_checkpoint(tmp_path, monkeypatch):
    """safetensors raises its own error type for a full disk; it becomes a RunWriteError."""
    import torch
    from safetensors import SafetensorError

    import core.checkpoint as C
    from core.checkpoint import load_checkpoint
    from core.trainer import Trainer
    from tests.trainutil import tiny_cfg, tiny_data, tiny_model

    torch.set_num_threads(1)
    tok, tr, va = tiny_data()
    cfg = tiny_cfg(max_steps=6, ckpt_every=2, eval_every=0)
    t = Trainer(tiny_model(tok.vocab_size), tr, va, cfg, tokenizer=tok, run_dir=tmp_path / "r")
    real, calls = C.save_file, []

    def save_file(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) > 2:  # the second checkpoint's weights: the disk is full
            raise SafetensorError("Error while serializing: I/O error: No space left (os error 28)")
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(C, "save_file", save_file)
    with pytest.raises(RunWriteError) as err:
        t.run()
    assert err.value.errno == 28
    msg = str(err.value)
    assert "No space left on device" in msg and "model.safetensors" in msg
    assert "step_000002, is intact" in msg
    assert load_checkpoint(tmp_path / "r").meta["step"] == 2
    assert _stray_temp_files(tmp_path / "r") == []
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "interrupted"


def test_trainer_and_train_page_refuse_an_unwritable_runs_folder(tmp_path):
    from explorer import jobs, trainjobs
    from explorer.trainjobs import TrainSpec
    from tests.trainutil import tiny_cfg, tiny_data, tiny_model

    (tmp_path / "plain-file").write_text("x")
    bad = tmp_path / "plain-file" / "runs"
    tok, tr, va = tiny_data()
    with pytest.raises(RunWriteError, match="runs folder .* is not writable: Not a directory"):
        from core.trainer import Trainer

        Trainer(tiny_model(tok.vocab_size), tr, va, tiny_cfg(), run_dir=bad / "r")
    reg = jobs.JobRegistry(max_concurrent=1)
    spec = TrainSpec(label="x", model={"n_layers": 1, "n_heads": 2, "d_model": 16})
    with pytest.raises(OSError, match="not writable: Not a directory") as err:  # page catches it
        trainjobs.start(spec, root=bad, registry=reg)
    assert isinstance(err.value, RunWriteError)
    assert reg.jobs() == []  # nothing queued


APP_SCRIPT = """
import json, sys, time
from pathlib import Path
from streamlit.testing.v1 import AppTest
from explorer import jobs, trainjobs
from explorer.trainjobs import TrainSpec
from explorer.registry import list_models
root, fill = Path(sys.argv[1]), sys.argv[3]
# the training process (not this server) fills its disk after its second checkpoint
trainjobs.WORKER_CMD = [sys.executable, "-c",
    fill + "from explorer.trainworker import main\\nraise SystemExit(main())\\n"]
spec = TrainSpec(label="full", corpus_bytes=20_000, vocab_size=300,
    model={"n_layers": 1, "n_heads": 2, "d_model": 16, "context_length": 16},
    train={"max_steps": 400, "batch_size": 4, "eval_every": 0, "ckpt_every": 2,
           "heartbeat_every": 0, "device": "cpu"})
name = trainjobs.start(spec, root=root)
job = jobs.registry().get(name)
assert job.wait(240)
out = {"state": job.state, "error": job.error}
at = AppTest.from_file(sys.argv[2], default_timeout=60)
at.query_params["run"] = name
at.query_params["view"] = "Watch"
at.run()
out["page_errors"] = [e.value for e in at.error]
out["exception"] = bool(at.exception)
out["resume_button"] = any(b.key == "train_resume" for b in at.button)
other = jobs.registry().submit("other", lambda ctx: 42)
other.wait(30)
out["other_job"] = [other.state, other.result]
out["models"] = [e.label for e in list_models(root)]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_in_app_training_on_a_full_disk_shows_a_message_and_the_server_carries_on(tmp_path):
    from core.checkpoint import load_checkpoint
    from core.runs import load_run

    root = tmp_path / "runs"
    fill = FILL_AFTER_SECOND_SAVE.replace("FSIZE_LIMIT", "0")
    env = {**ENV, "GLASSBOX_RUNS": str(root)}
    res = subprocess.run(
        [sys.executable, "-c", APP_SCRIPT, str(root), str(ROOT / "pages" / "train.py"), fill],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["state"] == "failed"
    assert out["error"].startswith("RunWriteError: Cannot write to the run folder")
    assert "step_000004, is intact" in out["error"]
    assert not out["exception"]
    # the page shows markdown with every punctuation mark escaped (run text is shown as typed)
    shown = [re.sub(r"\\(.)", r"\1", e) for e in out["page_errors"]]
    msg = [e for e in shown if e.startswith("The run stopped: Cannot write")]
    assert msg and "File too large" in msg[0] and "step_000004, is intact" in msg[0], out
    assert out["resume_button"]
    assert out["other_job"] == ["done", 42]  # the job registry still runs work
    # the worker could not record its failure; the server (whose disk had room) did, so the
    # run reads "failed" from disk too and its intact checkpoint is offered in the model picker
    info = load_run(root / "full")
    assert info.status == "interrupted" and info.extra["failed"] is True
    assert info.extra["error"] == out["error"]
    assert "default" in out["models"][0] and "run: full (interrupted, step 4)" in out["models"]
    assert load_checkpoint(root / "full").meta["step"] == 4
    assert _stray_temp_files(root / "full") == []


def test_enospc_while_replacing_latest_leaves_the_old_latest(tmp_path, monkeypatch):
    """The checkpoint dir is complete but LATEST cannot be rewritten: LATEST keeps naming the
    previous checkpoint (never half a name) and its temp file is removed."""
    import builtins
    import errno

    import torch

    import core.runs as R
    from core.checkpoint import load_checkpoint
    from core.trainer import Trainer
    from tests.trainutil import tiny_cfg, tiny_data, tiny_model

    torch.set_num_threads(1)
    tok, tr, va = tiny_data()
    cfg = tiny_cfg(max_steps=6, ckpt_every=2, eval_every=0)
    run = tmp_path / "r"
    t = Trainer(tiny_model(tok.vocab_size), tr, va, cfg, tokenizer=tok, run_dir=run)
    seen = []

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[: len(text) // 2])  # half of it lands, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

    def fake_open(path, *args, **kw):
        f = builtins.open(path, *args, **kw)  # noqa: SIM115 - returned to the caller's with
        if ".LATEST.tmp" in str(path):
            seen.append(path)
            if len(seen) == 2:
                return Full(f)
        return f

    monkeypatch.setattr(R, "open", fake_open, raising=False)
    with pytest.raises(RunWriteError, match="No space left on device") as err:
        t.run()
    assert "step_000002, is intact" in str(err.value)
    assert (run / "ckpt" / "LATEST").read_text() == "step_000002\n"
    assert load_checkpoint(run).meta["step"] == 2
    assert _stray_temp_files(run) == []
