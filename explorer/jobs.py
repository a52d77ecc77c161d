"""Process-wide registry of background jobs (trainings) that outlive a browser tab.

Why it exists: a Streamlit rerun interrupts the script, a session resource dies with its
websocket, and Streamlit calls from our own threads are unsupported (../shared/FIELD-NOTES.md).
So a job runs in a plain `threading.Thread` that never touches `st` (for a training that thread
only starts and watches a separate process: explorer/trainjobs.py); it lives here, in a
module-level registry keyed by a run id that the page keeps in `st.query_params`. A refresh or a
second tab asks the registry for that id and reattaches; pages poll with `st.fragment(run_every=...)`.

The registry is generic: a job is any callable `target(ctx)` where `ctx` is a `JobContext`
(a stop event, an `emit(event)` callback, `on_stop(fn)` hooks). At most `max_concurrent` jobs run
at once (env `GLASSBOX_MAX_JOBS`, default 1 on a 2-core classroom server); the rest wait in a
visible FIFO queue. A job that raises is captured with a one-line message and its traceback.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUEUED, RUNNING, DONE, STOPPED, FAILED, CANCELLED = (
    "queued",
    "running",
    "done",
    "stopped",
    "failed",
    "cancelled",
)
ACTIVE = (QUEUED, RUNNING)
MAX_EVENTS = 50_000  # per job; a step event is ~100 bytes, so this bounds memory to a few MB
KEEP_FINISHED = 64  # finished jobs remembered for reattaching; older ones are forgotten


def default_max_concurrent() -> int:
    """`GLASSBOX_MAX_JOBS` from the environment, else 1 (a training uses a whole core)."""
    raw = os.environ.get("GLASSBOX_MAX_JOBS", "1")
    try:
        return max(1, int(raw))
    except ValueError:
        return 1


class JobContext:
    """What a job's target receives: a stop flag, an event sink and stop hooks."""

    def __init__(self, job: Job):
        self._job = job
        self.stop_event = job._stop_event

    @property
    def run_id(self) -> str:
        return self._job.run_id

    def stopped(self) -> bool:
        return self.stop_event.is_set()

    def emit(self, event: Any) -> None:
        """Record an event (any object; trainer events are small dataclasses)."""
        self._job._add_event(event)

    def on_stop(self, fn: Callable[[], None]) -> None:
        """Call `fn` (e.g. `trainer.stop`) when a stop is requested; at once if it already was."""
        self._job._add_stop_hook(fn)

    def set_progress(self, done: float, total: float | None = None, note: str = "") -> None:
        self._job._set_progress(done, total, note)


@dataclass
class Job:
    """One background job; all fields are read through `snapshot()`-style accessors."""

    run_id: str
    target: Callable[[JobContext], Any]
    label: str = ""
    meta: dict = field(default_factory=dict)
    state: str = QUEUED
    error: str | None = None  # "ValueError: ..." one line, for the page
    traceback: str | None = None
    result: Any = None
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    progress: tuple[float, float | None, str] = (0.0, None, "")
    _events: list = field(default_factory=list, repr=False)
    _n_dropped: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    _stop_hooks: list = field(default_factory=list, repr=False)
    _done_event: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    # --- read side (any thread) ---
    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def stop_requested(self) -> bool:
        return self._stop_event.is_set()

    def events(self, since: int = 0) -> list:
        """Events with index >= `since` (indices count every event ever emitted)."""
        with self._lock:
            start = max(0, since - self._n_dropped)
            return list(self._events[start:])

    @property
    def n_events(self) -> int:
        with self._lock:
            return self._n_dropped + len(self._events)

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (any terminal state); True if it has."""
        return self._done_event.wait(timeout)

    # --- write side (worker thread / registry) ---
    def _add_event(self, event: Any) -> None:
        with self._lock:
            self._events.append(event)
            if len(self._events) > MAX_EVENTS:
                # drop the oldest; the full history is in the run's log.jsonl on disk
                drop = len(self._events) - MAX_EVENTS
                del self._events[:drop]
                self._n_dropped += drop

    def _add_stop_hook(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._stop_hooks.append(fn)
            already = self._stop_event.is_set()
        if already:
            _call_quietly(fn)

    def _request_stop(self) -> None:
        with self._lock:
            self._stop_event.set()
            hooks = list(self._stop_hooks)
        for fn in hooks:
            _call_quietly(fn)

    def _set_progress(self, done: float, total: float | None, note: str) -> None:
        self.progress = (float(done), None if total is None else float(total), note)


def _call_quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # a failing stop hook must not break the stop of others
        traceback.print_exc()


def describe_error(exc: BaseException) -> str:
    """A one-line message for the page: the exception type and its message (an error relayed
    from another process, e.g. a training's, brings its own line as `one_line`)."""
    if isinstance(getattr(exc, "one_line", None), str):
        return exc.one_line
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


class JobRegistry:
    """Runs at most `max_concurrent` jobs in plain daemon threads; the rest wait FIFO.

    Daemon threads: a server shutdown must not hang on a training; the trainer's run dir then
    says "running" and the Train page marks it interrupted and resumable.
    """

    def __init__(self, max_concurrent: int | None = None):
        self.max_concurrent = max_concurrent or default_max_concurrent()
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._queue: deque[str] = deque()

    # --- submit / stop ---
    def submit(
        self,
        run_id: str,
        target: Callable[[JobContext], Any],
        *,
        label: str = "",
        meta: dict | None = None,
    ) -> Job:
        """Queue `target` under `run_id` and start it if a slot is free.

        A run id that is still queued or running is refused (ValueError): one run dir, one writer.
        """
        with self._lock:
            old = self._jobs.get(run_id)
            if old is not None and old.active:
                raise ValueError(f"run {run_id!r} is already {old.state}")
            job = Job(run_id=run_id, target=target, label=label or run_id, meta=dict(meta or {}))
            self._jobs[run_id] = job
            self._queue.append(run_id)
            self._forget_old()
            self._pump()
            return job

    def stop(self, run_id: str) -> bool:
        """Stop a running job (cooperatively) or take a queued one out of the queue."""
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None or not job.active:
                return False
            if job.state == QUEUED:
                self._queue.remove(run_id)
                job.state = CANCELLED
                job.finished = time.time()
                job._stop_event.set()
                job._done_event.set()
                return True
        job._request_stop()
        return True

    def stop_all(self, timeout: float | None = 10.0) -> bool:
        """Cancel the queue, stop every running job and wait; True if all threads ended."""
        with self._lock:
            ids = [j.run_id for j in self._jobs.values() if j.active]
        for rid in ids:
            self.stop(rid)
        deadline = None if timeout is None else time.time() + timeout
        ok = True
        for rid in ids:
            left = None if deadline is None else max(0.0, deadline - time.time())
            ok = self._jobs[rid].wait(left) and ok
        return ok

    # --- read ---
    def get(self, run_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(run_id)

    def jobs(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.submitted)

    def running(self) -> list[Job]:
        with self._lock:
            return [j for j in self.jobs() if j.state == RUNNING]

    def queued(self) -> list[Job]:
        """Queued jobs in the order they will start."""
        with self._lock:
            return [self._jobs[r] for r in self._queue]

    def queue_position(self, run_id: str) -> int | None:
        """1 for the next job to start, None when the job is not queued."""
        with self._lock:
            try:
                return list(self._queue).index(run_id) + 1
            except ValueError:
                return None

    def any_active(self) -> bool:
        with self._lock:
            return any(j.active for j in self._jobs.values())

    # --- internals ---
    def _pump(self) -> None:
        """Start queued jobs while slots are free (caller holds the lock)."""
        n_running = sum(1 for j in self._jobs.values() if j.state == RUNNING)
        while self._queue and n_running < self.max_concurrent:
            job = self._jobs[self._queue.popleft()]
            job.state = RUNNING
            job.started = time.time()
            job._thread = threading.Thread(
                target=self._run, args=(job,), name=f"glassbox-job-{job.run_id}", daemon=True
            )
            job._thread.start()
            n_running += 1

    def _run(self, job: Job) -> None:
        ctx = JobContext(job)
        state, error, tb, result = DONE, None, None, None
        try:
            result = job.target(ctx)
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the page
            tb = getattr(exc, "remote_traceback", None) or traceback.format_exc()
            state, error = FAILED, describe_error(exc)
        else:
            if job.stop_requested:
                state = STOPPED
        with self._lock:
            job.result, job.error, job.traceback = result, error, tb
            job.finished = time.time()
            job.state = state
            job._done_event.set()
            self._pump()

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if not j.active]
        finished.sort(key=lambda j: j.finished or j.submitted)
        for job in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.run_id]


_REGISTRY: JobRegistry | None = None
_REGISTRY_LOCK = threading.Lock()


def registry() -> JobRegistry:
    """The one registry of this process (every session and tab sees the same jobs)."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is None:
            _REGISTRY = JobRegistry()
        return _REGISTRY
