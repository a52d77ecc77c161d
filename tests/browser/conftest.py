"""The real-browser rig: a real `streamlit run explorer/app.py` server and headless Chromium.

Fixtures (every browser test file may use them):
  app_server  session: base URL of the server on 127.0.0.1 at a free port (its runs root is
              the temp folder `app_runs_dir`, so tests never touch runs/)
  app_runs_dir session: that runs root (GLASSBOX_RUNS of the server)
  page        pytest-playwright's page, launched with Debian's /usr/bin/chromium
  open_app    open_app(page, "sample", prompt="hi") -> navigates and waits until the app is idle
  wait_idle   wait_idle(page): after a click or key press, wait for the rerun to finish
  shot        shot(page, "name"): whole-page screenshot to tests/browser/screenshots/name.png
              (the default page, Tokenize, is served at "/": open_app(page) opens it)
  dialogs     list of JS dialogs (alert/confirm) that opened: an XSS check asserts it stays empty
A module that needs a runs root of its own overrides app_server (scope="module") with
`with serve(runs_dir, log) as base: yield base`; open_app then opens that server.

Every test in this folder is marked `browser`; all skip, with the reason, when Chromium is absent.
Readiness is Streamlit's own: GET /_stcore/health == ok, then stApp CONNECTED, script
notRunning and no stSkeleton (FIELD-NOTES).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
READY = "[data-testid='stApp'][data-test-connection-state='CONNECTED']"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


def _need_chromium():
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            f"{CHROMIUM} is not installed (apt-get install chromium); browser tests skipped"
        )


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    _need_chromium()
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": LAUNCH_ARGS,
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_runs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


def start_server(runs_dir: Path, log: Path, env: dict | None = None):
    """Start a real `streamlit run explorer/app.py` on a free port with GLASSBOX_RUNS=runs_dir
    (output appended to `log`); returns (process, base URL) once it answers its health check."""
    _need_chromium()
    port = _free_port()
    env = {**os.environ, "GLASSBOX_RUNS": str(runs_dir), "PYTHONUNBUFFERED": "1", **(env or {})}
    cmd = [
        sys.executable, "-m", "streamlit", "run", "explorer/app.py",
        "--server.headless", "true", "--server.port", str(port),
        "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, base
        except (urllib.error.URLError, OSError):
            pass
        if time.time() > deadline:
            stop_server(proc)
            pytest.fail(f"streamlit not healthy after 90 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serve(runs_dir: Path, log: Path, env: dict | None = None):
    """A real server on runs_dir for a `with` block: yields its base URL once healthy, stops it
    on exit (a test module that needs runs of its own starts one with this; app_server is the
    shared one)."""
    proc, base = start_server(runs_dir, log, env)
    try:
        yield base
    finally:
        stop_server(proc)


@pytest.fixture(scope="session")
def app_server(app_runs_dir, tmp_path_factory):
    with serve(app_runs_dir, tmp_path_factory.mktemp("server") / "streamlit.log") as base:
        yield base


def _wait_idle(page, timeout: float = 60_000) -> None:
    page.wait_for_selector(READY, timeout=timeout)
    page.wait_for_selector(IDLE, timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector(\"[data-testid='stSkeleton']\")", timeout=timeout
    )


@pytest.fixture
def wait_idle():
    def wait(page, timeout: float = 60_000, settle: float = 0.4) -> None:
        # a rerun starts a moment after the event: let it begin, then wait for it to end
        time.sleep(settle)
        _wait_idle(page, timeout)

    return wait


@pytest.fixture
def open_app(app_server):
    def open_(page, path: str = "", **query) -> None:
        url = f"{app_server}/{path.lstrip('/')}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        page.goto(url)
        _wait_idle(page)
        time.sleep(0.5)  # charts draw after the script is idle
        _wait_idle(page)

    return open_


@pytest.fixture
def shot():
    SCREENSHOTS.mkdir(exist_ok=True)

    def take(page, name: str, full: bool = True) -> Path:
        """Streamlit scrolls inside stMain, not the document, so a 'full page' screenshot
        means growing the viewport to the content's height for the shot, then restoring it."""
        path = SCREENSHOTS / f"{name}.png"
        size = page.viewport_size
        height = page.evaluate(
            "() => { const m = document.querySelector(\"[data-testid='stMain']\");"
            " return m ? m.scrollHeight : document.body.scrollHeight; }"
        )
        if full and size and height > size["height"]:
            page.set_viewport_size({"width": size["width"], "height": min(int(height), 12_000)})
            time.sleep(0.5)  # plotly relayouts on resize
            page.screenshot(path=str(path))
            page.set_viewport_size(size)
        else:
            page.screenshot(path=str(path))
        return path

    return take


@pytest.fixture
def dialogs(page):
    opened: list[str] = []

    def on_dialog(dialog):
        opened.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return opened
