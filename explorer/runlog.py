"""Reading training runs for the Train page: live metrics, the runs list, downloads, rename/delete.

A run's log.jsonl (core.events) is the one source of truth for its curves, whether the run is
training in this process, finished, or was written by the CLI. `run_log(run_dir)` keeps a
process-wide, incremental reader per run: each fragment tick parses only the lines appended since
the last tick (a resume truncates the log; the reader notices and starts again). Arrays come out
as numpy so the page passes them straight to explorer/plots/training.py without any math of its own.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import shutil
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,120}$")  # the picker's rule for run dirs


@dataclass
class Metrics:
    """Everything the live charts need, as plain lists (arrays via the properties)."""

    step: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    clipped: list = field(default_factory=list)
    tokens_per_s: list = field(default_factory=list)
    elapsed: list = field(default_factory=list)
    tokens: int = 0
    layer_step: list = field(default_factory=list)
    layer_norms: list = field(default_factory=list)  # (S_telemetry, L)
    eval_step: list = field(default_factory=list)
    eval_train: list = field(default_factory=list)
    eval_val: list = field(default_factory=list)
    samples: list = field(default_factory=list)  # dicts: step, prompt, text
    start: dict | None = None
    end: dict | None = None  # the done or diverged event
    checkpoints: list = field(default_factory=list)

    def add(self, d: dict) -> None:
        kind = d.get("event")
        if kind == "step":
            self.step.append(d["step"])
            self.loss.append(_f(d.get("loss")))
            self.lr.append(_f(d.get("lr")))
            self.grad_norm.append(_f(d.get("grad_norm")))
            self.clipped.append(bool(d.get("clipped")))
            self.tokens_per_s.append(_f(d.get("tokens_per_s")))
            self.elapsed.append(_f(d.get("elapsed")))
            self.tokens = int(d.get("tokens") or self.tokens)
            if d.get("layer_grad_norms"):
                self.layer_step.append(d["step"])
                self.layer_norms.append([_f(x) for x in d["layer_grad_norms"]])
        elif kind == "eval":
            self.eval_step.append(d["step"])
            self.eval_train.append(_f(d.get("train_loss")))
            self.eval_val.append(_f(d.get("val_loss")))
        elif kind == "sample":
            self.samples.append({k: d.get(k) for k in ("step", "prompt", "text")})
        elif kind == "start":
            self.start = d
            self.end = None
        elif kind in ("done", "diverged"):
            self.end = d
        elif kind == "checkpoint":
            self.checkpoints.append(d.get("step"))

    def snapshot(self) -> Metrics:
        """A copy whose lists are its own (their items, numbers and dicts, are never mutated)."""
        return dataclasses.replace(
            self,
            **{
                f.name: list(v)
                for f in dataclasses.fields(self)
                if isinstance(v := getattr(self, f.name), list)
            },
        )

    @property
    def last_step(self) -> int:
        return int(self.step[-1]) if self.step else int((self.start or {}).get("step", 0))

    @property
    def max_steps(self) -> int | None:
        return (self.start or {}).get("max_steps")

    def layer_matrix(self) -> np.ndarray:
        """(S_telemetry, L); ragged rows (should not happen) are padded with NaN."""
        if not self.layer_norms:
            return np.zeros((0, 0))
        width = max(len(r) for r in self.layer_norms)
        return np.array([r + [np.nan] * (width - len(r)) for r in self.layer_norms])

    def eta_seconds(self) -> float | None:
        """Remaining seconds at the pace of this process's steps so far (None if unknown)."""
        if not self.max_steps or len(self.step) < 2:
            return None
        # `elapsed` restarts at a resume; pace from the steps since the last start only
        first = (self.start or {}).get("step", 0)
        idx = [i for i, s in enumerate(self.step) if s > first]
        if len(idx) < 2:
            return None
        done = self.step[idx[-1]] - self.step[idx[0]]
        secs = self.elapsed[idx[-1]] - self.elapsed[idx[0]]
        if done <= 0 or not np.isfinite(secs) or secs <= 0:
            return None
        return max(0.0, (self.max_steps - self.step[-1]) * secs / done)


def _f(x) -> float:
    return float("nan") if x is None else float(x)


class RunLog:
    """Incremental reader of one log.jsonl (thread-safe: many sessions poll the same run)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.metrics = Metrics()  # the reader's own, appended to under the lock
        self._published = Metrics()  # what callers get: a copy never appended to again
        self._offset = 0
        self._ino = None

    def refresh(self) -> Metrics:
        """A snapshot of the metrics: other sessions' refreshes never change it under the caller
        (a chart built from a list that grew between two reads had mismatched lengths)."""
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                self._reset()
                return self._published
            if st.st_ino != self._ino or st.st_size < self._offset:
                self._reset()  # replaced or truncated (a resume rewrites the log)
                self._ino = st.st_ino
            if st.st_size > self._offset:
                with open(self.path, "rb") as f:
                    f.seek(self._offset)
                    chunk = f.read(st.st_size - self._offset)
                end = chunk.rfind(b"\n") + 1  # only complete lines; a torn tail waits
                for line in chunk[:end].splitlines():
                    try:
                        self.metrics.add(json.loads(line))
                    except (ValueError, KeyError, TypeError):
                        continue
                self._offset += end
                if end:
                    self._published = self.metrics.snapshot()
            return self._published


_LOGS: OrderedDict[Path, RunLog] = OrderedDict()  # the most recently read last
_LOGS_LOCK = threading.Lock()
# runs whose parsed logs stay in memory (the runs list reads every run's log on each rerun,
# so this must exceed any class's run count, or every rerun would parse them all again)
MAX_LOGS = 1024


def run_log(run_dir: str | Path) -> Metrics:
    """The run's metrics, refreshed with whatever was appended since the last call."""
    path = (Path(run_dir) / "log.jsonl").resolve()
    with _LOGS_LOCK:
        reader = _LOGS.get(path)
        if reader is None:
            reader = _LOGS[path] = RunLog(path)
        _LOGS.move_to_end(path)
        while len(_LOGS) > MAX_LOGS:
            _LOGS.popitem(last=False)
    return reader.refresh()


def forget_log(run_dir: str | Path) -> None:
    with _LOGS_LOCK:
        _LOGS.pop((Path(run_dir) / "log.jsonl").resolve(), None)


# ---------------------------------------------------------------- downloads


def log_csv(run_dir: str | Path) -> bytes:
    """One CSV row per step (loss, lr, grad norm, clipped, tokens/s), eval losses on eval steps."""
    m = Metrics()
    from core.events import read_log

    for d in read_log(Path(run_dir) / "log.jsonl"):
        m.add(d)
    evals = dict(zip(m.eval_step, zip(m.eval_train, m.eval_val)))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "step",
            "loss",
            "lr",
            "grad_norm",
            "clipped",
            "tokens_per_s",
            "eval_train_loss",
            "val_loss",
        ]
    )
    for i, s in enumerate(m.step):
        et, ev = evals.get(s, ("", ""))
        w.writerow(
            [s, m.loss[i], m.lr[i], m.grad_norm[i], int(m.clipped[i]), m.tokens_per_s[i], et, ev]
        )
    return buf.getvalue().encode("utf-8")


def checkpoint_zip(run_dir: str | Path) -> bytes:
    """The run's latest checkpoint dir (weights, config, tokenizer) as a zip, plus run.json."""
    from core.runs import latest_checkpoint

    run_dir = Path(run_dir)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"run {run_dir.name} has no complete checkpoint yet")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(ckpt.rglob("*")):
            if p.is_file():
                zf.write(p, f"{run_dir.name}/{p.relative_to(ckpt)}")
        if (run_dir / "run.json").exists():
            zf.write(run_dir / "run.json", f"{run_dir.name}/run.json")
    return buf.getvalue()


# ---------------------------------------------------------------- rename / delete


def check_name(name: str) -> str | None:
    """None if `name` can be a run dir name, else the reason."""
    if not RUN_NAME.match(name or ""):
        return "use letters, digits, '-', '_' or '.', starting with a letter or digit (max 120)"
    return None


def rename_run(root: str | Path, old: str, new: str) -> Path:
    """Rename a finished run's directory (its key in the model picker becomes run:<new>)."""
    root = Path(root)
    for n in (old, new):
        if (why := check_name(n)) is not None:
            raise ValueError(f"{n!r}: {why}")
    src, dst = root / old, root / new
    if not (src / "run.json").exists():
        raise FileNotFoundError(f"no run named {old!r}")
    if dst.exists():
        raise FileExistsError(f"a run named {new!r} already exists")
    forget_log(src)
    src.rename(dst)
    meta = json.loads((dst / "run.json").read_text(encoding="utf-8"))
    meta["name"] = new
    from core.runs import write_json_atomic

    write_json_atomic(dst / "run.json", meta)
    return dst


def delete_run(root: str | Path, name: str) -> None:
    if (why := check_name(name)) is not None:
        raise ValueError(f"{name!r}: {why}")
    path = Path(root) / name
    if not (path / "run.json").exists():
        raise FileNotFoundError(f"no run named {name!r}")
    forget_log(path)
    shutil.rmtree(path)
