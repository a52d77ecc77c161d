"""Fine-tuning in a real browser: Start from -> the shipped model, upload your own text, train,
and see where the run started. Screenshots: tests/browser/screenshots/finetune_*.png."""

from __future__ import annotations

import json
import random

from playwright.sync_api import expect

from core.events import read_log
from tests.browser.test_train_browser import fill_number, tall_shot

RUN = "browser-finetune"
PROMPT = "Captain <b>Rosa</b>"  # the samples continue it; the tags must stay text
SENTENCES = [
    "Captain Rosa sailed the silver ship across the quiet sea.",
    "The parrot sang about gold, maps and a lighthouse far away.",
    "At night the crew counted stars and told stories of whales.",
    "A storm came, and Rosa held the wheel until the morning.",
    "The little cabin boy found a bottle with a secret map inside.",
]


def pirate_text(n_bytes: int = 40_000) -> bytes:
    rng = random.Random(0)
    out, size = [], 0
    while size < n_bytes:
        line = " ".join(rng.sample(SENTENCES, 3)) + "\n"
        out.append(line)
        size += len(line)
    return "".join(out).encode("utf-8")


def test_fine_tune_the_shipped_model_on_your_own_text(
    page, open_app, wait_idle, shot, app_runs_dir
):
    open_app(page, "train", view="New run")
    main = page.locator("[data-testid='stMain']")
    main.locator("[data-testid='stSelectbox']").filter(has_text="Start from").click()
    page.get_by_role("option", name="Fine-tune the shipped model").click()
    wait_idle(page)
    expect(main.get_by_text("Kept from the base model", exact=False)).to_be_visible()
    assert page.get_by_label("Layers (L)", exact=True).count() == 0  # its architecture is kept
    assert page.get_by_label("BPE vocabulary size (V)", exact=True).count() == 0
    assert page.get_by_label("Learning rate", exact=True).input_value() == "0.00030"

    page.get_by_text("Your own text file").click()
    wait_idle(page)
    main.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(
        files=[{"name": "pirates.txt", "mimeType": "text/plain", "buffer": pirate_text()}]
    )
    wait_idle(page)
    for label, value in {
        "Steps": "60",
        "Evaluate every (steps)": "20",
        "Tokens per sequence": "32",
        "Time-lapse frames": "3",
    }.items():
        fill_number(page, label, value, wait_idle)  # fmt: skip
    name = page.get_by_label("Run name (optional)")
    name.fill(RUN)
    name.press("Enter")
    wait_idle(page)
    prompt = page.get_by_role("textbox", name="Sample prompt")
    prompt.fill(PROMPT)
    prompt.press("Enter")
    wait_idle(page)
    assert main.locator("[data-testid='stAlertContentError']").count() == 0
    tall_shot(page, shot, "finetune_new_run", height=1600)

    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(f"**run={RUN}**", timeout=30_000)
    page.get_by_text("Finished (done)").first.wait_for(timeout=240_000)
    wait_idle(page)
    expect(
        main.get_by_text("Fine-tuned from the shipped model, step 6000", exact=False)
    ).to_have_count(1, timeout=30_000)
    tall_shot(page, shot, "finetune_done", height=1600)
    assert page.locator("[data-testid='stException']").count() == 0

    run = app_runs_dir / RUN
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "done" and meta["init_from"]["key"] == "default"
    evals = [e for e in read_log(run / "log.jsonl") if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [0, 20, 40, 60]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]  # it adapted to the pirate stories
    # before and after: the base model's sample at step 0 is on the page with the others
    samples = [e for e in read_log(run / "log.jsonl") if e["event"] == "sample"]
    assert [e["step"] for e in samples] == [0, 20, 40, 60]
    assert {e["prompt"] for e in samples} == {PROMPT}
    # the prompt is the user's text: shown as typed, never as markup
    expect(main.get_by_text(f"step 0: {PROMPT}", exact=False)).to_have_count(1)
    assert main.locator("b", has_text="Rosa").count() == 0

    # the runs table (a canvas: looked at in the screenshot) and the time-lapse from step 0
    open_app(page, "train", view="Runs", run=RUN)
    page.locator("#compare-runs").wait_for()
    tall_shot(page, shot, "finetune_runs", height=1400)
    open_app(page, "train", view="Time-lapse", run=RUN)
    tall_shot(page, shot, "finetune_timelapse", height=1600)
    assert page.locator("[data-testid='stException']").count() == 0
