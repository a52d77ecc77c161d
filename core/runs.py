"""Run directories: what a training run leaves on disk, and how to find and read runs.

Layout (CONTRACTS.md, "Runs and assets"):

    runs/NAME/
      run.json        model + train config, status, command, seed, created, commit, pid, heartbeat
      log.jsonl       one trainer event per line (core.events)
      tokenizer.json  the tokenizer the run was trained with
      ckpt/step_000100/ ...  checkpoints (core.checkpoint), LATEST names the newest complete one
      timelapse/      index.json + one .npz per frame (core.timelapse)

Status is one of running | done | stopped | diverged | interrupted. A process that dies while
"running" cannot say so, so the running process stamps `heartbeat` (unix time) and `pid` into
run.json every few seconds; `load_run` reports a run as "interrupted" when its pid is gone on
this host or its heartbeat is stale.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

STATUSES = ("running", "done", "stopped", "diverged", "interrupted")
# errnos that mean "this folder cannot take more writes": full, over quota, over a file size
# limit, read-only, no permission, not a folder, I/O error
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES,
                errno.EPERM, errno.ENOTDIR, errno.EIO}  # fmt: skip
STALE_AFTER_S = 60.0  # a heartbeat older than this means the writer is gone
CKPT_DIR = "ckpt"
LATEST = "LATEST"


@dataclass
class RunInfo:
    path: Path
    name: str
    status: str
    created: float
    model: dict  # ModelConfig.to_dict()
    train: dict  # TrainConfig.to_dict()
    command: str = ""
    seed: int = 0
    commit: str | None = None
    step: int = 0  # step of the latest complete checkpoint (0 if none)
    latest_checkpoint: Path | None = None
    final: dict = field(default_factory=dict)  # final losses etc., filled when a run ends
    extra: dict = field(default_factory=dict)  # everything else in run.json

    @property
    def is_finished(self) -> bool:
        return self.status in ("done", "stopped", "diverged")


class RunWriteError(OSError):
    """The run folder cannot take a write (disk full, read-only, not a folder ...).

    str() is a sentence for a person (CLI, Train page); `errno` is the underlying one.
    """

    def __init__(self, message: str, err: int | None = None):
        super().__init__(message)
        self.errno = err


def write_error(exc: OSError, run_dir: str | Path, last_checkpoint: Path | None) -> RunWriteError:
    """A RunWriteError saying what failed, where, and what is still safe on disk."""
    if last_checkpoint is not None:
        kept = (
            f"The last complete checkpoint, {Path(last_checkpoint).name}, is intact: free some "
            "space (or make the folder writable) and resume the run."
        )
    else:
        kept = "No checkpoint had been written yet."
    return RunWriteError(
        f"Cannot write to the run folder {run_dir}: {_why(exc)}. {kept}", exc.errno
    )


def _why(exc: OSError) -> str:
    """What the OS said, and about which file."""
    return (exc.strerror or str(exc)) + (f" ({exc.filename})" if exc.filename else "")


def ensure_writable(path: str | Path) -> Path:
    """Create `path` if needed and prove a file can be written in it, else RunWriteError."""
    path = Path(path)
    probe = path / f".write-test-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"ok")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise RunWriteError(
            f"The runs folder {path} is not writable: {_why(exc)}. "
            "Choose another folder or free some space.",
            exc.errno,
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return path


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # a full disk leaves no stray temp file
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def write_json_atomic(path: str | Path, obj) -> None:
    """Write JSON via a temp file + fsync + rename, so readers never see half a file."""
    _write_atomic(Path(path), lambda f: json.dump(obj, f, indent=1, allow_nan=False))


def write_text_atomic(path: str | Path, text: str) -> None:
    _write_atomic(Path(path), lambda f: f.write(text))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def git_commit(repo: str | Path | None = None) -> str | None:
    """The current commit hash (with '+dirty' when tracked files changed), or None."""
    cwd = Path(repo) if repo else Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:  # its output, or "" when git fails (no repository, no commit)
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        sha = git("rev-parse", "HEAD")
        # --no-optional-locks: never take .git/index.lock from under a developer's git command
        dirty = sha and git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + ("+dirty" if dirty else "")) if sha else None


def create_run(
    path: str | Path, *, model: dict, train: dict, command: str, seed: int, **extra
) -> Path:
    """Make (or reopen) a run dir and mark it running with this process's pid."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _sweep_temp_files(path)
    meta_path = path / "run.json"
    old = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta = {
        **old,
        "name": path.name,
        "status": "running",
        "created": old.get("created", time.time()),
        "model": model,
        "train": train,
        "command": command,
        "seed": seed,
        "commit": git_commit(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "heartbeat": time.time(),
        **extra,
    }
    write_json_atomic(meta_path, meta)
    return path


def _sweep_temp_files(path: Path) -> None:
    """Remove the temp files (.run.json.tmpPID, .log.jsonl.tmpPID) of writers a kill -9 ended;
    a live process's own temp files are left alone."""
    for p in path.iterdir():
        found = re.fullmatch(r"\..+\.tmp(\d+)", p.name)
        if found and p.is_file():
            pid = int(found.group(1))
            if pid != os.getpid() and not _pid_alive(pid):
                p.unlink(missing_ok=True)


def update_run(path: str | Path, **fields) -> dict:
    """Merge fields into run.json (atomically). Returns the new contents."""
    meta_path = Path(path) / "run.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta.update(fields)
    write_json_atomic(meta_path, meta)
    return meta


def heartbeat(path: str | Path) -> None:
    update_run(path, heartbeat=time.time(), pid=os.getpid(), host=socket.gethostname())


def set_status(path: str | Path, status: str, **fields) -> dict:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    return update_run(path, status=status, heartbeat=time.time(), **fields)


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CKPT_DIR / f"step_{step:06d}"


def checkpoint_step(path: Path) -> int:
    """The step of a checkpoint dir: step_000100, or .step_000100.old-* beside a killed replace."""
    found = re.search(r"step_(\d+)", path.name)
    return int(found.group(1)) if found else 0


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint LATEST names, if it exists; None for a run with no complete checkpoint."""
    ckpt = Path(run_dir) / CKPT_DIR
    latest = ckpt / LATEST
    if not latest.exists():
        return None
    name = latest.read_text(encoding="utf-8").strip()
    if not name:
        return None
    target = ckpt / name
    return target if target.is_dir() else replaced_checkpoint(target)


def replaced_checkpoint(path: Path) -> Path | None:
    """Where the checkpoint at `path` is while a replace of it is under way, or was killed.

    core.checkpoint.save_checkpoint(overwrite=True) renames the old directory aside to
    `.NAME.old-*`, then the new one into place: between the two renames (a kill there, or a
    reader at that moment) `path` is missing and the old checkpoint, complete, sits beside it.
    Readers take it from there; nothing is moved (a live writer's second rename would fail),
    and the next save of the run removes it. None when there is no such directory.
    """
    olds = [p for p in path.parent.glob(f".{path.name}.old-*") if (p / "config.json").is_file()]
    return max(olds, key=lambda p: p.stat().st_mtime) if olds else None


def mark_latest(run_dir: str | Path, ckpt_path: Path, keep: int = 2) -> None:
    """Point LATEST at a complete checkpoint (atomically), then prune older ones.

    Ordering matters for kill -9: the checkpoint dir is complete before LATEST names it, and
    old checkpoints are deleted only after LATEST has moved on.
    """
    ckpt = Path(run_dir) / CKPT_DIR
    write_text_atomic(ckpt / LATEST, ckpt_path.name + "\n")
    steps = sorted(p for p in ckpt.iterdir() if p.is_dir() and p.name.startswith("step_"))
    for old in steps[:-keep] if keep > 0 else []:
        if old.name != ckpt_path.name:
            shutil.rmtree(old, ignore_errors=True)
    for tmp in ckpt.iterdir():  # temp dirs / LATEST temp files that a kill left behind
        if tmp.is_dir() and not tmp.name.startswith("step_"):
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.name.startswith(f".{LATEST}.tmp"):
            tmp.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _is_dead(meta: dict, now: float) -> bool:
    hb = meta.get("heartbeat") or 0.0
    stale = now - hb > STALE_AFTER_S
    pid = meta.get("pid")
    same_host = meta.get("host") == socket.gethostname()
    if pid and same_host:
        return not _pid_alive(int(pid)) or stale
    return stale


def load_run(path: str | Path) -> RunInfo:
    """Read one run dir. A 'running' run whose process is gone reads as 'interrupted'."""
    path = Path(path)
    meta_path = path / "run.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{path} is not a run directory (no run.json)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    status = meta.get("status", "interrupted")
    if status == "running" and _is_dead(meta, time.time()):
        status = "interrupted"
    latest = latest_checkpoint(path)
    step = checkpoint_step(latest) if latest else 0
    known = {"name", "status", "created", "model", "train", "command", "seed", "commit", "final"}
    return RunInfo(
        path=path,
        name=meta.get("name", path.name),
        status=status,
        created=float(meta.get("created", 0.0)),
        model=meta.get("model", {}),
        train=meta.get("train", {}),
        command=meta.get("command", ""),
        seed=int(meta.get("seed", 0)),
        commit=meta.get("commit"),
        step=step,
        latest_checkpoint=latest,
        final=meta.get("final", {}),
        extra={k: v for k, v in meta.items() if k not in known},
    )


def list_runs(root: str | Path = "runs") -> list[RunInfo]:
    """Every run dir directly under root, newest first. Unreadable dirs are skipped."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = []
    for d in root.iterdir():
        if (d / "run.json").exists():
            try:
                runs.append(load_run(d))
            except (OSError, ValueError):
                continue
    return sorted(runs, key=lambda r: r.created, reverse=True)


def truncate_log(log_path: str | Path, step: int) -> None:
    """Keep only events up to `step` (used when resuming, so the log has one curve)."""
    log_path = Path(log_path)
    if not log_path.exists():
        return
    keep = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if d.get("event") in ("done", "diverged", "start"):
            continue
        if d.get("step", 0) <= step:
            keep.append(line)
    write_text_atomic(log_path, "".join(x + "\n" for x in keep))


def sha256_file(path: str | Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def release_run(run_dir: str | Path, *, command: str, wall_time_s: float | None = None) -> dict:
    """Turn a finished run into a shippable asset and write its manifest.json.

    Keeps only the LATEST checkpoint, drops its optimizer/RNG state (a release is for
    inference; it is 2/3 of the bytes), records head scores, and checksums every file
    (maps/ excluded: it is added later by another tool and has its own manifest).
    """
    from core.checkpoint import load_checkpoint
    from core.heads import best_heads, head_scores

    run_dir = Path(run_dir)
    latest = latest_checkpoint(run_dir)
    if latest is None:
        raise FileNotFoundError(f"{run_dir} has no complete checkpoint to release")
    for d in (run_dir / CKPT_DIR).iterdir():
        if d.is_dir() and d != latest:
            shutil.rmtree(d)
    for name in ("train_state.safetensors", "train_state.json"):
        (latest / name).unlink(missing_ok=True)
    ckpt = load_checkpoint(latest)
    eot = getattr(ckpt.tokenizer, "eot_id", None)
    scores = head_scores(ckpt.model, batch=16, prefix_id=eot, seed=0)
    meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    files = {}
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir)
        if p.is_file() and rel.parts[0] != "maps" and rel.name != "manifest.json":
            files[rel.as_posix()] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    manifest = {
        "format": "glassbox-asset/1",
        "command": command,
        "seed": meta.get("seed"),
        "commit": meta.get("commit"),
        "created": meta.get("created"),
        "wall_time_s": wall_time_s,
        "checkpoint": latest.name,
        "model": meta.get("model"),
        "train": meta.get("train"),
        "final": meta.get("final"),
        "num_params": ckpt.model.num_params(),
        "head_scores": {k: v.round(4).tolist() for k, v in scores.items()},
        "best_heads": best_heads(scores),
        "files": files,
        "total_bytes": sum(f["bytes"] for f in files.values()),
    }
    write_json_atomic(run_dir / "manifest.json", manifest)
    return manifest
