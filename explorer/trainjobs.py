"""Training from the browser: the job that trains a run spec, and starting/stopping/resuming it.

The Train page builds a `TrainSpec` (explorer/trainspec.py: validation and estimate), then `start()` writes the
run dir (run.json says "queued", the spec travels inside it) and submits a job to the process-wide
registry (explorer/jobs.py). The job's thread builds corpus, tokenizer and model, then runs
`core.trainer.Trainer` with the job's `emit` subscribed and `stop` hooked to `Trainer.stop`.
Because the spec is in run.json, a run that a server restart interrupted can be resumed from its
last checkpoint (`resume()`), and an uploaded corpus is kept in the run dir for that reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

from explorer import jobs
from explorer.runlog import forget_log
from explorer.trainspec import (  # noqa: F401 - the page and tests use these through here too
    CORPORA,
    MAX_CORPUS_BYTES,
    TOKENIZERS,
    TrainSpec,
    check_name,
    estimate,
    validate,
)

UPLOAD_FILE = "corpus.txt"
BPE_BYTES = 2_000_000  # the BPE learns its merges on this prefix (as the CLI does)
ACTIVE_STATUSES = ("queued", "running")
NICE = 10  # niceness a training thread adds to the server's (Linux); pages' reruns come first


# ---------------------------------------------------------------- runs on disk


def runs_root_dir() -> Path:
    from explorer.registry import runs_dir

    return runs_dir()


def new_run_name(label: str, root: Path) -> str:
    """The label if free, else label-2, label-3, ...; a timestamp when there is no label."""
    base = label or time.strftime("run-%Y%m%d-%H%M%S")
    name, i = base, 2
    while (root / name).exists():
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
    name = new_run_name(spec.label, root)
    run_dir = root / name
    run_dir.mkdir()
    if spec.corpus == "upload":
        (run_dir / UPLOAD_FILE).write_bytes(upload or b"")
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
        },
    )
    _submit(run_dir, spec, resume=False, registry=registry, threads=threads)
    return name


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
    """Stop a running job (it checkpoints and ends) or cancel a queued one (its dir goes)."""
    reg = registry or jobs.registry()
    job = reg.get(run_id)
    was_queued = job is not None and job.state == jobs.QUEUED
    ok = reg.stop(run_id)
    if ok and was_queued:
        run_dir = Path(job.meta.get("run_dir", ""))
        if run_dir.is_dir() and (run_dir / "run.json").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
    return ok


def _submit(run_dir: Path, spec: TrainSpec, *, resume: bool, registry, threads: int) -> None:
    reg = registry or jobs.registry()
    reg.submit(
        run_dir.name,
        make_target(run_dir, spec, resume=resume, threads=threads),
        label=spec.label or run_dir.name,
        meta={"run_dir": str(run_dir), "resume": resume},
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


def make_target(run_dir: Path, spec: TrainSpec, *, resume: bool = False, threads: int = 1):
    """The callable the job registry runs in its thread; it never touches Streamlit."""

    def target(ctx: jobs.JobContext):
        import torch

        from core import runs
        from core.config import ModelConfig
        from core.data import encode_corpus, split_train_val
        from core.model import GPT
        from core.train_config import TrainConfig
        from core.trainer import Trainer

        # per thread: a training must leave the server's other cores to the sessions' reruns
        torch.set_num_threads(max(1, threads))
        with contextlib.suppress(OSError, AttributeError):
            # nice only this thread (Linux: a thread is a schedulable task with its own id), so
            # the CPU goes to other sessions' reruns first and the training takes what is left
            # relative: a server started under `nice` must still put its reruns before training
            tid = threading.get_native_id()
            os.setpriority(
                os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + NICE)
            )
        try:
            ctx.set_progress(0, None, "preparing the corpus")
            text = load_corpus_text(run_dir, spec)
            ctx.set_progress(0, None, "training the tokenizer")
            tok = build_tokenizer(
                run_dir,
                spec,
                text,
                progress=lambda done, total: ctx.set_progress(0, None, f"tokenizer {done}/{total}"),
            )
            if ctx.stopped():
                runs.set_status(run_dir, "stopped", final={"note": "stopped before training"})
                return {"status": "stopped"}
            ctx.set_progress(0, None, "encoding the corpus")
            tc = TrainConfig.from_dict(spec.train)
            ids = encode_corpus(tok, text)
            train_ids, val_ids = split_train_val(ids, tc.val_fraction)
            cfg = ModelConfig.from_dict({**spec.model, "vocab_size": tok.vocab_size})
            torch.manual_seed(tc.seed)
            model = GPT(cfg)
            trainer = Trainer(
                model,
                train_ids,
                val_ids,
                tc,
                tokenizer=tok,
                run_dir=run_dir,
                subscribers=[ctx.emit],
                command=f"Train page: {run_dir.name}",
            )
            ctx.on_stop(trainer.stop)
            if resume:
                trainer.resume(run_dir)
            ctx.set_progress(trainer.step, tc.max_steps, "training")
            final = trainer.run()
            return final.to_dict()
        except BaseException as exc:
            meta_path = run_dir / "run.json"
            if meta_path.exists():
                status = json.loads(meta_path.read_text(encoding="utf-8")).get("status")
                if status in ACTIVE_STATUSES or status == "interrupted":
                    failed = not isinstance(exc, KeyboardInterrupt | SystemExit)
                    # on a full disk this write fails too; the page must see the first error
                    with contextlib.suppress(OSError):
                        runs.set_status(
                            run_dir, "interrupted", error=jobs.describe_error(exc), failed=failed
                        )
            raise

    return target


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
