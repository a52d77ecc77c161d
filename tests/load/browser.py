"""A few real Chromium tabs doing the same student walk as the websocket clients.

The websocket clients measure the server; these check the real thing: the page's own scripts,
charts drawn, widgets committed by key presses. Latency here is action -> app idle, read inside
the page's own websocket: an action is done when a `script_finished` arrives after it (the same
end as the websocket clients'), the app shows notRunning and no skeleton is left. (A
MutationObserver on stApp's script state missed a few short runs and hung steps.)
A widget is found by the `st-key-<key>` class Streamlit gives a keyed widget's container.
"""

from __future__ import annotations

import asyncio
import time

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from tests.load.scenario import kind
from tests.load.wsclient import DONE_STATES, RunResult

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
IDLE = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  return app && app.getAttribute('data-test-script-state') === 'notRunning' &&
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
        self.page = await ctx.new_page()
        self.finished_at = 0.0  # perf_counter of the last script_finished on the page's socket
        self.page.on("websocket", self._watch)

    def _watch(self, ws) -> None:
        def on_frame(payload) -> None:
            if isinstance(payload, str):
                return
            fm = ForwardMsg()
            try:
                fm.ParseFromString(payload)
            except Exception:  # noqa: BLE001 - not a ForwardMsg
                return
            if fm.WhichOneof("type") == "script_finished" and fm.script_finished in DONE_STATES:
                self.finished_at = time.perf_counter()

        ws.on("framereceived", on_frame)

    async def _wait_finished(self, since: float) -> None:
        deadline = since + self.timeout
        while self.finished_at < since:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no script_finished within {self.timeout:.0f} s")
            await asyncio.sleep(0.02)
        await self.page.wait_for_function(IDLE, timeout=self.timeout * 1000)

    async def close(self) -> None:
        if self.page is not None:
            await self.page.context.close()

    async def step(self, step) -> RunResult:
        action, what, value = step
        page = self.page
        first = not page.url.startswith("http")
        wall0 = time.perf_counter()
        result = RunResult(kind(step), 0.0)
        try:
            if first:  # the first page: a real page load
                await page.goto(f"{self.base}/{what}", timeout=self.timeout * 1000)
            else:
                await self._act(action, what, value)
            await self._wait_finished(wall0)
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
