"""The process-wide job registry without Streamlit: cap, FIFO queue, stop, crash capture, reattach."""

import threading

import pytest

from explorer import jobs
from explorer.jobs import JobRegistry

WAIT = 10.0  # generous: a safety net for a loaded CI machine, not a timing assertion


def blocking_target(started: threading.Event | None = None, events: int = 0):
    """A job that emits `events` events, then waits for its stop flag."""

    def target(ctx):
        for i in range(events):
            ctx.emit({"step": i})
        if started is not None:
            started.set()
        ctx.stop_event.wait(WAIT)
        return "finished"

    return target


@pytest.fixture
def reg():
    r = JobRegistry(max_concurrent=1)
    yield r
    assert r.stop_all(timeout=WAIT), "a test left a job thread running"


def test_default_cap_comes_from_env(monkeypatch):
    monkeypatch.setenv("GLASSBOX_MAX_JOBS", "3")
    assert JobRegistry().max_concurrent == 3
    monkeypatch.setenv("GLASSBOX_MAX_JOBS", "nonsense")
    assert JobRegistry().max_concurrent == 1
    monkeypatch.delenv("GLASSBOX_MAX_JOBS")
    assert JobRegistry().max_concurrent == 1


def test_job_runs_and_records_events_and_result(reg):
    def target(ctx):
        for i in range(5):
            ctx.emit(i)
        ctx.set_progress(5, 5, "all")
        return {"status": "ok"}

    job = reg.submit("r1", target, label="first")
    assert job.wait(WAIT)
    assert job.state == jobs.DONE
    assert job.result == {"status": "ok"}
    assert job.events() == [0, 1, 2, 3, 4]
    assert job.events(since=3) == [3, 4]
    assert job.n_events == 5
    assert job.progress == (5.0, 5.0, "all")
    assert job.error is None and job.elapsed() >= 0


def test_cap_and_fifo_queue(reg):
    first = threading.Event()
    a = reg.submit("a", blocking_target(first))
    b = reg.submit("b", blocking_target())
    c = reg.submit("c", blocking_target())
    assert first.wait(WAIT)
    assert a.state == jobs.RUNNING
    assert [j.run_id for j in reg.running()] == ["a"]
    assert [j.run_id for j in reg.queued()] == ["b", "c"]
    assert reg.queue_position("b") == 1 and reg.queue_position("c") == 2
    assert reg.queue_position("a") is None
    # the cap holds: b and c have not started
    assert b.state == c.state == jobs.QUEUED and b.started is None

    reg.stop("a")
    assert a.wait(WAIT) and a.state == jobs.STOPPED
    # a's end starts the next in line, b, and only b
    for _ in range(100):
        if b.state == jobs.RUNNING:
            break
        threading.Event().wait(0.02)
    assert b.state == jobs.RUNNING and c.state == jobs.QUEUED
    assert reg.queue_position("c") == 1


def test_cap_of_two_runs_two_at_once():
    reg = JobRegistry(max_concurrent=2)
    started = [threading.Event() for _ in range(3)]
    js = [reg.submit(f"j{i}", blocking_target(started[i])) for i in range(3)]
    assert started[0].wait(WAIT) and started[1].wait(WAIT)
    assert [j.state for j in js] == [jobs.RUNNING, jobs.RUNNING, jobs.QUEUED]
    assert reg.stop_all(timeout=WAIT)
    assert js[2].state == jobs.CANCELLED and not started[2].is_set()


def test_stop_a_queued_job_removes_it_from_the_queue(reg):
    first = threading.Event()
    reg.submit("a", blocking_target(first))
    b = reg.submit("b", blocking_target())
    assert first.wait(WAIT)
    assert reg.stop("b")
    assert b.state == jobs.CANCELLED and b.wait(0)
    assert reg.queued() == []
    assert not reg.stop("b"), "stopping a finished job is a no-op"
    assert not reg.stop("nope")


def test_stop_hooks_are_called_once_and_late_hooks_fire_at_once(reg):
    calls = []
    hooked = threading.Event()

    def target(ctx):
        ctx.on_stop(lambda: calls.append("early"))
        hooked.set()
        ctx.stop_event.wait(WAIT)
        ctx.on_stop(lambda: calls.append("late"))

    job = reg.submit("h", target)
    assert hooked.wait(WAIT)
    reg.stop("h")
    assert job.wait(WAIT)
    assert calls == ["early", "late"]
    assert job.state == jobs.STOPPED


def test_crash_is_captured_with_a_clear_message_and_frees_the_slot(reg):
    def boom(ctx):
        ctx.emit("before")
        raise RuntimeError("loss went to the moon\nsecond line")

    bad = reg.submit("bad", boom)
    nxt = reg.submit("next", lambda ctx: 42)
    assert bad.wait(WAIT) and nxt.wait(WAIT)
    assert bad.state == jobs.FAILED
    assert bad.error == "RuntimeError: loss went to the moon"
    assert "Traceback" in bad.traceback and "boom" in bad.traceback
    assert bad.events() == ["before"]
    assert nxt.state == jobs.DONE and nxt.result == 42


def test_a_running_id_cannot_be_submitted_twice_but_a_finished_one_can(reg):
    first = threading.Event()
    reg.submit("same", blocking_target(first))
    assert first.wait(WAIT)
    with pytest.raises(ValueError, match="already running"):
        reg.submit("same", blocking_target())
    reg.stop("same")
    assert reg.get("same").wait(WAIT)
    again = reg.submit("same", lambda ctx: "resumed")
    assert again.wait(WAIT) and again.result == "resumed"


def test_reattach_by_run_id_from_another_thread(reg):
    """A second tab is another script thread: it finds the same job object by id."""
    first = threading.Event()
    job = reg.submit("shared", blocking_target(first, events=3))
    assert first.wait(WAIT)
    found = {}
    t = threading.Thread(target=lambda: found.setdefault("job", reg.get("shared")))
    t.start()
    t.join(WAIT)
    assert found["job"] is job and found["job"].events() == [{"step": i} for i in range(3)]


def test_process_wide_registry_is_a_singleton():
    assert jobs.registry() is jobs.registry()


def test_event_buffer_is_bounded(monkeypatch, reg):
    monkeypatch.setattr(jobs, "MAX_EVENTS", 10)

    def chatty(ctx):
        for i in range(25):
            ctx.emit(i)

    job = reg.submit("chatty", chatty)
    assert job.wait(WAIT)
    assert job.n_events == 25
    assert job.events() == list(range(15, 25))
    assert job.events(since=20) == list(range(20, 25))


def test_old_finished_jobs_are_forgotten(monkeypatch, reg):
    monkeypatch.setattr(jobs, "KEEP_FINISHED", 2)
    for i in range(4):
        assert reg.submit(f"f{i}", lambda ctx: None).wait(WAIT)
    reg.submit("last", lambda ctx: None).wait(WAIT)
    ids = {j.run_id for j in reg.jobs()}
    assert "f0" not in ids and "last" in ids
