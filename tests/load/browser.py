"""A few real Chromium tabs doing the same student walk as the websocket clients.

The websocket clients measure the server; these check the real thing: the page's own scripts,
charts drawn, widgets committed by key presses. Latency here is action -> app idle, read inside
the page: a MutationObserver notes when stApp's data-test-script-state goes running -> notRunning,
and an action is done when a run that started after it has finished and no skeleton is left.
A widget is found by the `st-key-<key>` class Streamlit gives a keyed widget's container.
"""

from __future__ import annotations

import time

from tests.load.scenario import kind
from tests.load.wsclient import RunResult

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
TITLES = {
    "tokenize": "Tokenize",
    "attention": "Attention",
    "sample": "Sample",
    "embeddings": "Embeddings",
    "activations": "Activations",
    "architecture": "Architecture",
    "train": "Train",
}
# how a browser user moves each widget of the walk
HOW = {
    "tok_text": "text",
    "prompt": "text",
    "tok_ctx": "slider",
    "att_layer": "select",
    "att_head": "select",
    "smp_temp": "slider",
    "smp_topk": "slider",
    "emb_colour": "radio",
    "act_layer": "select",
    "arch_L": "slider",
    "arch_act": "select",
    "smp_seed": "number",
}
OBSERVER = """
window.__gbx = {runAt: 0, idleAt: 0};
new MutationObserver((records) => {
  for (const r of records) {
    const s = r.target.getAttribute('data-test-script-state');
    if (s === 'running') window.__gbx.runAt = Date.now();
    else if (s === 'notRunning') window.__gbx.idleAt = Date.now();
  }
}).observe(document, {attributes: true, subtree: true, attributeFilter: ['data-test-script-state']});
"""
DONE = """(t0) => {
  const g = window.__gbx, app = document.querySelector("[data-testid='stApp']");
  return g && g.runAt >= t0 && g.idleAt >= g.runAt && app &&
    app.getAttribute('data-test-script-state') === 'notRunning' &&
    app.getAttribute('data-test-connection-state') === 'CONNECTED' &&
    !document.querySelector("[data-testid='stSkeleton']");
}"""


async def launch(playwright):
    return await playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
    )


class BrowserStudent:
    def __init__(self, browser, base: str, timeout: float = 120.0):
        self.browser, self.base, self.timeout = browser, base, timeout
        self.page = None
        self.results: list[RunResult] = []

    async def start(self) -> None:
        ctx = await self.browser.new_context(viewport={"width": 1400, "height": 1000})
        await ctx.add_init_script(OBSERVER)
        self.page = await ctx.new_page()

    async def close(self) -> None:
        if self.page is not None:
            await self.page.context.close()

    async def step(self, step) -> RunResult:
        action, what, value = step
        page = self.page
        t0 = await page.evaluate("Date.now()") if page.url.startswith("http") else None
        wall0 = time.perf_counter()
        result = RunResult(kind(step), 0.0)
        try:
            if t0 is None:  # the first page: a real page load
                t0 = int(time.time() * 1000)
                await page.goto(f"{self.base}/{what}", timeout=self.timeout * 1000)
                await page.wait_for_function(DONE, arg=1, timeout=self.timeout * 1000)
            else:
                await self._act(action, what, value)
                await page.wait_for_function(DONE, arg=t0, timeout=self.timeout * 1000)
        except Exception as exc:  # noqa: BLE001 - a timeout or a missing widget is a load error
            result.errors.append(f"browser: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        result.latency = time.perf_counter() - wall0
        try:
            n = await page.locator("[data-testid='stException']").count()
            if n:
                text = await page.locator("[data-testid='stException']").first.inner_text()
                result.errors.append(f"exception shown: {text[:200]}")
        except Exception as exc:  # noqa: BLE001
            result.errors.append(f"browser: {type(exc).__name__}")
        self.results.append(result)
        return result

    async def _act(self, action: str, what: str, value) -> None:
        page = self.page
        ms = self.timeout * 1000
        if action == "open":
            nav = page.locator("[data-testid='stSidebarNav'] a").filter(has_text=TITLES[what])
            await nav.first.click(timeout=ms)
            return
        box = page.locator(f".st-key-{what}")
        if action == "click":
            await box.locator("button").first.click(timeout=ms)
            return
        how = HOW[what]
        if how == "text":
            area = box.locator("textarea, input").first
            await area.fill(str(value), timeout=ms)
            await area.press("Control+Enter")
        elif how == "slider":
            thumb = box.locator("input[type='range']").first
            await thumb.focus(timeout=ms)
            await thumb.press("ArrowRight")
        elif how == "number":
            field = box.locator("input").first
            await field.fill(str(int(value)), timeout=ms)
            await field.press("Enter")
        elif how == "radio":
            await box.locator("label").filter(has_text=str(value)).first.click(timeout=ms)
        elif how == "select":
            combo = box.locator("[role='combobox']").first
            await combo.click(timeout=ms)
            await combo.fill(str(value))  # the combobox filters its options as one types
            await page.get_by_role("option", name=str(value), exact=True).first.click(timeout=ms)
        else:
            raise ValueError(how)
