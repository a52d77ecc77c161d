"""The Train page in a real browser: start a tiny run, watch the curve grow, stop it, reattach from
the URL in a second tab, and find the run in the sidebar's model picker. Screenshots go to
tests/browser/screenshots/train_*.png (looked at by hand; not committed)."""

from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path

RUN = "browser-tiny"
FIELDS = {  # label -> value: a model that trains ~100 steps/s, far more steps than the test needs
    "Layers (L)": "1",
    "Heads (H)": "2",
    "Width (C)": "16",
    "Context (T)": "16",
    "Steps": "20000",
    "Warm-up steps": "10",
    "Batch (sequences per forward)": "4",
    "Evaluate every (steps)": "100",
    "Time-lapse frames": "3",
    "BPE vocabulary size (V)": "300",
}


LAST_STEP = """() => { const g = document.querySelector('.js-plotly-plot');
    const d = g && g._fullData && g._fullData[0];
    return d && d.x && d.x.length ? Number(d.x[d.x.length - 1]) : -1; }"""


def curve_end(page) -> float:
    """The last step on the loss curve (the first plotly chart), -1 before it is drawn."""
    return page.evaluate(LAST_STEP)


def tall_shot(page, shot, name: str, height: int = 3000) -> None:
    """Streamlit scrolls inside its own container, so a full-page shot shows one screen only:
    take it through a tall viewport instead."""
    page.set_viewport_size({"width": 1400, "height": height})
    time.sleep(0.8)  # plotly redraws at the new size
    shot(page, name)
    page.set_viewport_size({"width": 1400, "height": 1000})


def fill_number(page, label: str, value: str, wait_idle) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    wait_idle(page)


PROGRESS = (
    "() => document.querySelector(\"[data-testid='stProgress']\")?.innerText.includes('step ')"
)
STEP_JS = """() => { const t = document.querySelector("[data-testid='stProgress']")?.innerText || "";
    const m = t.match(/step (\\d+)\\//); return m ? Number(m[1]) : 0; }"""


def progress_step(page) -> int:
    return page.evaluate(STEP_JS)


def test_train_tiny_run_live_stop_and_pick(page, open_app, wait_idle, shot, app_runs_dir, browser):
    open_app(page, "train", view="New run")
    assert page.locator("[data-testid='stException']").count() == 0
    for label, value in FIELDS.items():
        fill_number(page, label, value, wait_idle)
    page.get_by_label("Corpus size (kB)")  # slider exists; keep its default size
    name = page.get_by_label("Run name (optional)")
    name.fill(RUN)
    name.press("Enter")
    wait_idle(page)
    assert page.locator("[data-testid='stAlertContentError']").count() == 0
    tall_shot(page, shot, "train_new_run")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(f"**run={RUN}**", timeout=30_000)

    # live: the progress bar and the loss curve grow between polls
    page.wait_for_function(
        "() => document.querySelector(\"[data-testid='stProgress']\")?.innerText.includes('step ')",
        timeout=120_000,
    )
    page.wait_for_function(f"() => ({LAST_STEP})() > 0", timeout=60_000)
    first_end, first_step = curve_end(page), progress_step(page)
    page.wait_for_function(f"() => ({LAST_STEP})() > {first_end}", timeout=60_000)
    assert curve_end(page) > first_end and progress_step(page) >= first_step > 0
    tall_shot(page, shot, "train_live")

    # a second tab with the same link reattaches to the same run; the first tab goes away
    # (its websocket closes) and the run keeps training
    run_url = page.url
    other = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        other.goto(run_url)
        other.wait_for_function(PROGRESS, timeout=60_000)
        assert other.locator("[data-testid='stMain']").get_by_text(f"Run {RUN}").count() >= 1
        page.goto("about:blank")
        seen = progress_step(other)
        other.wait_for_function(f"() => ({STEP_JS})() > {seen}", timeout=60_000)
    finally:
        other.close()
    page.goto(run_url)  # a refresh of the original link reattaches too
    page.wait_for_function(PROGRESS, timeout=60_000)

    page.get_by_test_id("stButton").get_by_role("button", name="Stop").click()
    page.get_by_text("Finished (stopped)").first.wait_for(timeout=60_000)
    wait_idle(page)
    meta = json.loads((app_runs_dir / RUN / "run.json").read_text())
    assert meta["status"] == "stopped"
    tall_shot(page, shot, "train_stopped")
    assert page.get_by_text("Finished (stopped)").count() == 1

    # one click makes it the model every page shows
    page.get_by_role("button", name="Explore this run on every page").click()
    wait_idle(page)
    page.wait_for_url(f"**model=run%3A{RUN}**", timeout=30_000)  # the picker mirrors into the URL

    # the finished run is in the sidebar's model picker
    picker = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first
    picker.click()
    option = page.get_by_role("option", name=re.compile(f"run: {RUN}"))
    option.wait_for(timeout=10_000)
    option.click()
    wait_idle(page)
    assert "model=run" in page.url
    assert page.locator("[data-testid='stException']").count() == 0

    # runs view and the run's time-lapse
    open_app(page, "train", view="Runs")
    page.locator("#compare-runs").wait_for()
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download checkpoint (.zip)").click()
    names = zipfile.ZipFile(dl.value.path()).namelist()
    assert f"{RUN}/model.safetensors" in names and f"{RUN}/config.json" in names
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download log (.csv)").click()
    assert Path(dl.value.path()).read_text().startswith("step,loss,lr,grad_norm")
    tall_shot(page, shot, "train_runs")
    open_app(page, "train", view="Time-lapse")
    time.sleep(1.0)
    assert page.locator("[data-testid='stException']").count() == 0
    tall_shot(page, shot, "train_timelapse")
