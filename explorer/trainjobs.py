"""Training from the browser: the job that trains a run spec, and starting/stopping/resuming it.

The Train page builds a `TrainSpec` (explorer/trainspec.py: validation and estimate), then `start()` writes the
run dir (run.json says "queued", the spec travels inside it) and submits a job to the process-wide
registry (explorer/jobs.py). The job's thread starts a training process (explorer/trainworker.py:
why a process, and the pipe protocol), which builds corpus, tokenizer and model and runs
`core.trainer.Trainer`; the thread relays its events into the job and a stop into the process.
Because the spec is in run.json, a run that a server restart interrupted can be resumed from its
last checkpoint (`resume()`), and an uploaded corpus is kept in the run dir for that reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.events import event_from_dict
from explorer import jobs
from explorer.runlog import forget_log
from explorer.trainspec import (  # noqa: F401 - the page and tests use these through here too
    CORPORA,
    MAX_CORPUS_BYTES,
    TOKENIZERS,
    BaseModelError,
    TrainSpec,
    base_checkpoint,
    check_name,
    estimate,
    model_config,
    validate,
)

UPLOAD_FILE = "corpus.txt"
BASE_DIR = "base"  # a fine-tune's own copy of the checkpoint it starts from
BPE_BYTES = 2_000_000  # the BPE learns its merges on this prefix (as the CLI does)
NICE = 10  # niceness a training process adds to the server's (Linux); pages' reruns come first
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- runs on disk


def runs_root_dir() -> Path:
    from explorer.registry import runs_dir

    return runs_dir()


def new_run_name(label: str, root: Path) -> str:
    """The label if free, else label-2, label-3, ...; a timestamp when there is no label."""
    base = label or time.strftime("run-%Y%m%d-%H%M%S")
    name, i = base, 2
    while os.path.lexists(root / name):  # a dangling link is taken too
        name, i = f"{base}-{i}", i + 1
    return name


def _write_meta(run_dir: Path, meta: dict) -> None:
    from core.runs import write_json_atomic

    write_json_atomic(run_dir / "run.json", meta)


def start(
    spec: TrainSpec,
    *,
    upload: bytes | None = None,
    root: str | Path | None = None,
    registry: jobs.JobRegistry | None = None,
    threads: int = 1,
) -> str:
    """Create the run dir, queue the training, return the run id (the dir name)."""
    errs = validate(spec, upload_bytes=len(upload) if upload else None)
    if errs:
        raise ValueError("; ".join(f"{k or 'form'}: {v}" for k, v in errs.items()))
    if spec.corpus == "upload":
        from core.corpora import CorpusError, read_user_text

        try:  # refuse a binary or oversized file before anything is queued
            read_user_text(upload or b"", max_bytes=MAX_CORPUS_BYTES)
        except CorpusError as exc:
            raise ValueError(str(exc)) from None
    from core.runs import ensure_writable

    # an unwritable or full runs folder: a sentence for the page (RunWriteError is an OSError)
    root = ensure_writable(Path(root) if root is not None else runs_root_dir())
    for attempt in range(100):  # two students naming runs alike at one moment: the next name
        name = new_run_name(spec.label, root)
        run_dir = root / name
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            if attempt == 99:
                raise ValueError(f"Could not find a free name for the run {name!r}.") from None
    if spec.corpus == "upload":
        (run_dir / UPLOAD_FILE).write_bytes(upload or b"")
    extra = {}
    if spec.init_from:
        try:
            extra["init_from"] = snapshot_base(spec, run_dir / BASE_DIR)
        except (ValueError, OSError):
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        # the run's architecture is the base model's, written out (run.json, estimates, resume)
        spec = dataclasses.replace(spec, model=model_config(spec).to_dict())
    _write_meta(
        run_dir,
        {
            "name": name,
            "status": "queued",
            "created": time.time(),
            "model": spec.model,
            "train": spec.train,
            "spec": spec.to_dict(),
            "command": f"Train page: {name}",
            "seed": spec.train.get("seed", 0),
            **extra,
        },
    )
    _submit(run_dir, spec, resume=False, registry=registry, threads=threads, fresh=True)
    return name


def snapshot_base(spec: TrainSpec, dest: Path) -> dict:
    """Give a fine-tune its own copy of the base checkpoint (weights, config, tokenizer; not the
    optimizer state) in `dest`, hard-linked where the filesystem allows (checkpoint files are
    only ever replaced, never written in place), so renaming, deleting or resuming the base run
    later cannot take it away. Returns where it came from: the picker key and label, the base's
    path as a classroom may see it, its step, and the weights' hash (the worker checks it)."""
    from core.checkpoint import WEIGHTS
    from core.runs import checkpoint_step, sha256_file
    from explorer.registry import hide_paths

    path, label = base_checkpoint(spec.init_from)
    try:
        dest.mkdir()
        for f in path.iterdir():
            if f.is_file() and not f.name.startswith("train_state"):
                try:
                    os.link(f, dest / f.name)
                except OSError:  # another filesystem (the shipped model), or no links here
                    shutil.copy2(f, dest / f.name)
        sha = sha256_file(dest / WEIGHTS)
    except FileNotFoundError:  # deleted or replaced between the form and this click
        raise BaseModelError(
            f"{label} changed while the run was being created; try again"
        ) from None
    return {"key": spec.init_from, "label": label, "path": hide_paths(str(path)),
            "step": checkpoint_step(path), "sha256": sha}  # fmt: skip


def resume(run_dir: str | Path, *, registry=None, threads: int = 1) -> str:
    """Continue an interrupted run from its last checkpoint (or from scratch if it has none)."""
    from core.runs import latest_checkpoint

    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    if "spec" not in meta:
        raise ValueError("this run was not started from the Train page; resume it with the CLI")
    spec = TrainSpec.from_dict(meta["spec"])
    has_ckpt = latest_checkpoint(run_dir) is not None
    if not has_ckpt:  # nothing to continue from: start over in the same dir
        for p in ("log.jsonl", "timelapse", "ckpt"):
            target = run_dir / p
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    forget_log(run_dir)
    meta.update(status="queued", resumed_at=time.time())
    meta.pop("error", None)
    meta.pop("failed", None)
    _write_meta(run_dir, meta)
    _submit(run_dir, spec, resume=has_ckpt, registry=registry, threads=threads)
    return run_dir.name


def stop(run_id: str, *, registry=None) -> bool:
    """Stop a running job (it checkpoints and ends) or cancel a queued one: a new run's dir
    goes (nothing was trained), a queued resume goes back to interrupted, its run intact."""
    reg = registry or jobs.registry()
    job = reg.get(run_id)
    ok = reg.stop(run_id)
    # CANCELLED is set under the registry's lock only for a job taken out of the queue; one
    # that started meanwhile is RUNNING, stopping, and its dir must stay
    if ok and job is not None and job.state == jobs.CANCELLED:
        run_dir = Path(job.meta.get("run_dir", ""))
        if not (run_dir.is_dir() and (run_dir / "run.json").exists()):
            return ok
        if job.meta.get("fresh"):
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            from core.runs import update_run

            update_run(run_dir, status="interrupted")
    return ok


def _submit(run_dir: Path, spec: TrainSpec, *, resume: bool, registry, threads: int,
            fresh: bool = False) -> None:  # fmt: skip
    reg = registry or jobs.registry()
    reg.submit(
        run_dir.name,
        make_target(run_dir, resume=resume, threads=threads),
        label=spec.label or run_dir.name,
        meta={"run_dir": str(run_dir), "resume": resume, "fresh": fresh},
    )


# ---------------------------------------------------------------- the job


def load_corpus_text(run_dir: Path, spec: TrainSpec) -> str:
    from core.corpora import load_corpus, read_user_text

    if spec.corpus == "upload":
        return read_user_text(run_dir / UPLOAD_FILE, max_bytes=MAX_CORPUS_BYTES)
    if spec.corpus == "tinytales":
        return load_corpus("tinytales", n_bytes=spec.corpus_bytes, seed=spec.corpus_seed)
    return load_corpus(spec.corpus, n_bytes=spec.corpus_bytes, seed=spec.corpus_seed)


def build_tokenizer(run_dir: Path, spec: TrainSpec, text: str, progress=None):
    """The run's tokenizer: reloaded from the run dir on resume, else trained on the corpus."""
    from core.tokenizer import CharTokenizer, load_tokenizer, train_bpe

    saved = run_dir / "tokenizer.json"
    if saved.exists():
        return load_tokenizer(saved)
    if spec.tokenizer == "char":
        tok = CharTokenizer(text)
    else:
        tok = train_bpe(text[:BPE_BYTES], spec.vocab_size, progress=progress)
    tok.save(saved)
    return tok


WORKER_CMD = [sys.executable, "-m", "explorer.trainworker"]  # tests swap in a patched worker
STOP_GRACE_S = 120.0  # a polite stop that has not ended by then is killed (a wedged process)


class WorkerError(Exception):
    """A training process failed: its own one-line message and traceback, for the page."""

    def __init__(self, one_line: str, remote_traceback: str | None = None):
        super().__init__(one_line)
        self.one_line = one_line
        self.remote_traceback = remote_traceback


def _worker_env() -> dict:
    """The server's environment, with this checkout importable (no editable install needed)."""
    env = dict(os.environ)
    paths = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def make_target(run_dir: Path, *, resume: bool = False, threads: int = 1):
    """The callable the job registry runs in its thread: it starts the training process
    (explorer/trainworker.py, which reads the run's spec from run.json), relays its events and
    progress into the job, and turns a stop into a "stop" line on the worker's stdin. The
    thread itself only waits on a pipe."""

    def target(ctx: jobs.JobContext):
        cmd = [*WORKER_CMD, str(run_dir), "--threads", str(max(1, threads)), "--nice", str(NICE)]
        if resume:
            cmd.append("--resume")
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
            env=_worker_env(),
            cwd=str(ROOT),
        )
        ctx.on_stop(lambda: _ask_to_stop(proc))
        result = error = None
        try:
            for line in proc.stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue  # not ours (the worker sends everything else to stderr)
                kind = msg.get("t")
                if kind == "event":
                    ctx.emit(event_from_dict(msg["d"]))
                elif kind == "progress":
                    ctx.set_progress(msg["done"], msg["total"], msg["note"])
                elif kind == "result":
                    result = msg["d"]
                elif kind == "error":
                    error = WorkerError(msg["error"], msg.get("traceback"))
            rc = proc.wait()
        finally:
            if proc.poll() is None:  # this thread is being torn down: the worker goes too
                proc.kill()
                proc.wait()
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if error is None and result is None:
            error = _died(proc.pid, rc)
        if error is not None:
            # the worker records its own crash, unless it could not (killed, or a full disk);
            # the server tries again, so the run reads "failed" after a restart too
            from explorer.trainworker import mark_interrupted

            mark_interrupted(run_dir, error.one_line, failed=True)
            raise error
        return result

    return target


def _died(pid: int, rc: int) -> WorkerError:
    """What to say about a training process that ended without a word (killed, or crashed
    in native code): the page's one line, and in place of a traceback, what may have done it."""
    if rc < 0:
        try:
            why = f"signal {-rc}, {signal.Signals(-rc).name}"
        except ValueError:
            why = f"signal {-rc}"
    else:
        why = f"exit code {rc}"
    detail = (
        f"The training process (pid {pid}) ended with {why} before it could report an error. "
        "SIGKILL usually means the kernel's out-of-memory killer or a kill command; SIGSEGV or "
        "SIGABRT a crash in native code. Whatever it printed is in the server's log (stderr). "
        "The run's last checkpoint is intact: Resume continues from it."
    )
    return WorkerError(f"WorkerError: the training process ended unexpectedly ({why})", detail)


def _ask_to_stop(proc: subprocess.Popen) -> None:
    """A "stop" line (the worker checkpoints and ends); a kill if it has not gone in time."""
    try:
        proc.stdin.write("stop\n")
        proc.stdin.flush()
    except (OSError, ValueError):
        return  # it has already ended

    def reap():
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()

    threading.Thread(target=reap, name="glassbox-stop-reaper", daemon=True).start()


def run_state(info, registry=None) -> str:
    """What the page should call a run: the job's state when it is live in this process,
    else the status on disk ("queued"/"running" with no job here means the server restarted)."""
    reg = registry or jobs.registry()
    job = reg.get(info.name) if hasattr(info, "name") else None
    if job is not None and job.active:
        return job.state
    status = info.status
    if status == "interrupted" and info.extra.get("failed"):
        return "failed"  # it crashed here; the error is in run.json
    # run.json says running/queued but nothing here trains it: a queued run, or a running one
    # this very process wrote, was orphaned; a live pid elsewhere (a CLI run) stays "running"
    # and a dead one has already become "interrupted" in load_run
    orphan = status == "queued" or (status == "running" and os.getpid() == info.extra.get("pid"))
    if orphan and (job is None or not job.active):
        return "interrupted"
    return status
