"""Fault: the server restarts while a training runs. In a real browser, on real servers.

A training started from the Train page runs in a child process of the Streamlit server
(explorer/trainworker.py) that ends as soon as its server is gone, so a restart kills it with the
server: the test SIGKILLs the server (as a crash, an OOM kill or a machine reboot would; a polite
stop would checkpoint first), sees the training process go too, starts a fresh server on the same
runs folder, and opens the Train page: the run says "interrupted" and
its Resume button continues it from the last checkpoint past the step it had reached. The servers
here are the test's own (not the session's app_server), since one of them is killed.
Screenshots: tests/browser/screenshots/restart_*.png.
"""

from __future__ import annotations

import json
import os
import signal
import time

from playwright.sync_api import expect

from core.events import read_log
from tests.browser.conftest import _need_chromium, _wait_idle, start_server, stop_server

RUN = "restart-me"
STEPS = 2000  # the page checkpoints every max(50, steps // 4) = 500 steps
FIELDS = {
    "Layers (L)": "1",
    "Heads (H)": "2",
    "Width (C)": "16",
    "Context (T)": "16",
    "Steps": str(STEPS),
    "Warm-up steps": "10",
    "Batch (sequences per forward)": "4",
    "Evaluate every (steps)": "500",
    "Time-lapse frames": "0",
    "BPE vocabulary size (V)": "300",
}
STEP_JS = """() => { const t = document.querySelector("[data-testid='stProgress']")?.innerText || "";
    const m = t.match(/step (\\d+)\\//); return m ? Number(m[1]) : 0; }"""


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:  # "pid (comm) state ppid ..."; comm may hold spaces
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def goto(page, url: str) -> None:
    page.goto(url)
    _wait_idle(page)
    time.sleep(0.5)
    _wait_idle(page)


def settle(page) -> None:
    time.sleep(0.4)
    _wait_idle(page)


def start_until_checkpoint(page, base: str, run_dir) -> None:
    """Start RUN from the Train page's form; return once it has a checkpoint to resume from
    (watched on disk, not in the page: on a quiet machine the page's progress timer may
    never catch an early step)."""
    goto(page, f"{base}/train?view=New+run")
    for label, value in FIELDS.items():
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        settle(page)
    name = page.get_by_label("Run name (optional)")
    name.fill(RUN)
    name.press("Enter")
    settle(page)
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(f"**run={RUN}**", timeout=30_000)
    deadline = time.time() + 180
    while not (run_dir / "ckpt" / "LATEST").exists():
        assert time.time() < deadline, "no checkpoint within 3 minutes"
        time.sleep(0.05)


def test_a_server_restart_interrupts_the_run_and_resume_continues_it(page, tmp_path, shot):
    _need_chromium()
    runs, log = tmp_path / "runs", tmp_path / "streamlit.log"
    run_dir = runs / RUN
    first, base = start_server(runs, log)
    second = None
    try:
        start_until_checkpoint(page, base, run_dir)
        # the run trains in a child process of the server: its run.json names that process
        meta = json.loads((run_dir / "run.json").read_text())
        worker = meta["pid"]
        assert meta["status"] == "running" and worker != first.pid
        assert _parent_of(worker) == first.pid
        first.send_signal(signal.SIGKILL)  # the server dies...
        first.wait()
        deadline = time.time() + 30
        while _alive(worker):  # ...and its training process follows (its stdin pipe closed)
            assert time.time() < deadline, "the training outlived its server"
            time.sleep(0.05)
        steps = [e["step"] for e in read_log(run_dir / "log.jsonl") if e["event"] == "step"]
        killed_at = steps[-1]
        assert 0 < killed_at < STEPS, killed_at
        assert json.loads((run_dir / "run.json").read_text())["status"] == "running"  # stale

        second, base = start_server(runs, log)  # a fresh server, same runs folder
        goto(page, f"{base}/train?view=Watch&run={RUN}")
        main = page.locator("[data-testid='stMain']")
        warning = main.locator("[data-testid='stAlertContentWarning']")
        warning.first.wait_for(timeout=60_000)
        text = warning.first.inner_text()
        assert f"interrupted at step {killed_at}" in text, text
        assert "Resume continues from its last checkpoint" in text
        shot(page, "restart_interrupted")
        assert page.locator("[data-testid='stException']").count() == 0

        page.get_by_role("button", name="Resume").click()
        # progress past the old step, or already finished (a fast machine)
        page.wait_for_function(
            f"() => ({STEP_JS})() > {killed_at} || "
            "document.body.innerText.includes('Finished (done)')",
            timeout=180_000,
        )
        shot(page, "restart_resumed")
        page.get_by_text("Finished (done)").first.wait_for(timeout=300_000)
        shot(page, "restart_done")
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        stop_server(first)
        if second is not None:
            stop_server(second)

    # on disk: one curve with no gap and no repeat, continued by the second server
    events = read_log(run_dir / "log.jsonl")
    assert [e["step"] for e in events if e["event"] == "step"] == list(range(1, STEPS + 1))
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 1 and starts[0]["resumed"] and 0 < starts[0]["step"] <= killed_at
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "done"
    assert meta["pid"] not in (worker, first.pid, second.pid)  # the second server's own worker


def test_a_killed_training_process_is_shown_as_crashed_and_resumes(page, tmp_path, shot):
    """The training process dies on its own (an OOM kill, say) while the server lives: the Watch
    view says so in one sentence, offers Resume, and the resumed run finishes as one curve."""
    _need_chromium()
    runs, log = tmp_path / "runs", tmp_path / "streamlit.log"
    run_dir = runs / RUN
    server, base = start_server(runs, log)
    try:
        start_until_checkpoint(page, base, run_dir)
        worker = json.loads((run_dir / "run.json").read_text())["pid"]
        assert _parent_of(worker) == server.pid
        os.kill(worker, signal.SIGKILL)

        main = page.locator("[data-testid='stMain']")
        error = main.locator("[data-testid='stAlertContentError']")
        error.first.wait_for(timeout=60_000)
        text = error.first.inner_text()
        assert "The run crashed" in text and "ended unexpectedly (signal 9, SIGKILL)" in text, text
        # the live fragment's elements stay on screen (faded) while the full rerun that replaces
        # them draws, so for a moment each line is there twice; the settled page has it once
        _wait_idle(page)
        expect(page.get_by_text("Resume continues from its last checkpoint.")).to_have_count(
            1, timeout=30_000
        )
        details = main.get_by_text("Details", exact=True)
        expect(details).to_have_count(1, timeout=30_000)
        details.click()  # no Python traceback: what may have killed it
        page.get_by_text("out-of-memory killer", exact=False).wait_for(timeout=10_000)
        shot(page, "restart_worker_killed")
        assert page.locator("[data-testid='stException']").count() == 0
        meta = json.loads((run_dir / "run.json").read_text())
        assert meta["status"] == "interrupted" and meta["failed"] is True  # recorded by the server

        page.get_by_role("button", name="Resume").click()
        page.get_by_text("Finished (done)").first.wait_for(timeout=300_000)
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        stop_server(server)
    events = read_log(run_dir / "log.jsonl")
    assert [e["step"] for e in events if e["event"] == "step"] == list(range(1, STEPS + 1))
