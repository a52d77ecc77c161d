"""Trainer events: small JSON-serialisable dataclasses the trainer emits to subscribers.

The trainer prints nothing and knows nothing of any UI (minGPT's callbacks, STYLE rule 10).
A subscriber is any callable taking one event: the JSONL log writer, the CLI's progress bar,
the Train page. `event.to_dict()` gives one flat JSON object with an `"event"` key naming
its kind; `event_from_dict` turns a log line back into the dataclass.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Event:
    kind = "event"  # class attribute, not a field: the name written as "event"
    step: int

    def to_dict(self) -> dict:
        d = {"event": self.kind}
        for f in dataclasses.fields(self):
            d[f.name] = _jsonable(getattr(self, f.name))
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)


@dataclass
class StartEvent(Event):
    kind = "start"
    max_steps: int
    tokens_per_step: int  # global batch x seq_len
    num_params: int
    world_size: int = 1
    resumed: bool = False  # True when continuing from a checkpoint at `step`


@dataclass
class StepEvent(Event):
    kind = "step"
    loss: float  # mean training loss of this step's global batch
    lr: float
    grad_norm: float  # global gradient norm before clipping
    clipped: bool  # True when the clip changed the gradients
    tokens: int  # tokens seen so far (whole run, all processes)
    tokens_per_s: float  # throughput of this step
    elapsed: float  # seconds of training so far in this process
    layer_grad_norms: list[float] | None = None  # per block (telemetry steps only)
    update_ratios: list[float] | None = None  # per block ||dW|| / ||W|| (telemetry steps)


@dataclass
class EvalEvent(Event):
    kind = "eval"
    train_loss: float
    val_loss: float
    train_ppl: float
    val_ppl: float


@dataclass
class SampleEvent(Event):
    kind = "sample"
    prompt: str
    text: str  # the generated continuation only
    ids: list[int]  # prompt + continuation


@dataclass
class CheckpointEvent(Event):
    kind = "checkpoint"
    path: str


@dataclass
class TimelapseEvent(Event):
    kind = "timelapse"
    frame: int  # index of the frame in the time-lapse
    # "previous_token" | "first_token" | "induction" -> (L, H) nested lists
    head_scores: dict[str, list[list[float]]]
    probe_loss: float  # mean per-token loss on the probe text


@dataclass
class DoneEvent(Event):
    kind = "done"
    status: str  # "done" (reached max_steps) | "stopped" (stop() was called)
    train_loss: float | None
    val_loss: float | None
    elapsed: float


@dataclass
class DivergedEvent(Event):
    kind = "diverged"
    reason: str
    loss: float | None
    grad_norm: float | None
    last_checkpoint: str | None  # the last good checkpoint, kept on disk


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        StartEvent,
        StepEvent,
        EvalEvent,
        SampleEvent,
        CheckpointEvent,
        TimelapseEvent,
        DoneEvent,
        DivergedEvent,
    )
}


def event_from_dict(d: dict) -> Event:
    d = dict(d)
    kind = d.pop("event")
    if kind not in EVENT_TYPES:
        raise ValueError(f"unknown event kind {kind!r}")
    return EVENT_TYPES[kind](**d)


def _jsonable(v):
    """Non-finite floats become None so every line is strict JSON."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


class JsonlLogger:
    """Subscriber that appends one JSON object per event to a file (logs are data).

    Each line is written whole and flushed, so a reader (or a crash) sees only complete lines
    except, at worst, a torn last line, which `read_log` skips.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._f.write(event.to_json() + "\n")
            self._f.flush()

    def close(self) -> None:
        with self._lock:
            self._f.close()


def read_log(path: str | Path) -> list[dict]:
    """Every complete JSON line of a log.jsonl (a torn last line is ignored)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
