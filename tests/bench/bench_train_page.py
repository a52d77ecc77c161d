"""Benchmark: does another session's page stay responsive while one run trains? Prints JSON.

Starts a real `streamlit run explorer/app.py` (runs in a temp dir), then in headless Chromium:
1. idle: session B loads each page N times (page load -> script idle) and reruns it N times
   by editing the sidebar's shared prompt (every page reads it);
2. training: session A starts a run on the Train page and stays on its live view (polling every
   few seconds, as a user would), while session B repeats the same measurements;
3. stops the run and reports its throughput during the measurement.

Usage: python tests/bench/bench_train_page.py [--pages tokenize,sample] [--n 6]
No timed assertions: the figures go in the report. The machine is shared, so expect noise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
READY = "[data-testid='stApp'][data-test-connection-state='CONNECTED']"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
RUNNING = "[data-testid='stApp'][data-test-script-state='running']"
RUN = "bench-run"
TRAIN_FIELDS = {"Steps": "1000000", "Evaluate every (steps)": "200", "Time-lapse frames": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(runs: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "GLASSBOX_RUNS": str(runs), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "streamlit", "run", "explorer/app.py", "--server.headless", "true"]
    cmd += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    log = open(runs.parent / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, base
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("streamlit did not become healthy")


def wait_idle(page, timeout=120_000) -> None:
    page.wait_for_selector(READY, timeout=timeout)
    page.wait_for_selector(IDLE, timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector(\"[data-testid='stSkeleton']\")", timeout=timeout
    )


def timed_load(page, url: str) -> float:
    t0 = time.perf_counter()
    page.goto(url)
    wait_idle(page)
    return time.perf_counter() - t0


def timed_rerun(page, i: int) -> float:
    """Edit the sidebar's shared prompt (every page reads it) and time the rerun it causes."""
    box = page.get_by_role("textbox", name="Shared prompt")
    box.fill(f"Once upon a time, a little fox number {i}")
    t0 = time.perf_counter()
    box.press("Control+Enter")
    with contextlib.suppress(Exception):  # a rerun faster than the poll is still a rerun
        page.wait_for_selector(RUNNING, timeout=3_000)
    wait_idle(page)
    return time.perf_counter() - t0


def summary(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {
        "n": len(xs),
        "p50_s": round(statistics.median(xs), 3),
        "p90_s": round(xs[min(len(xs) - 1, int(0.9 * len(xs)))], 3),
        "max_s": round(xs[-1], 3),
    }


def measure(page, base: str, pages: list[str], n: int) -> dict:
    out = {}
    for name in pages:
        url = f"{base}/{name}"
        timed_load(page, url)  # warm caches (model load) outside the figures
        loads = [timed_load(page, url) for _ in range(n)]
        reruns = [timed_rerun(page, i) for i in range(n)]
        out[name] = {"load": summary(loads), "rerun": summary(reruns)}
    return out


def start_training(page, base: str) -> None:
    page.goto(f"{base}/train?view=New+run")
    wait_idle(page)
    for label, value in TRAIN_FIELDS.items():
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        time.sleep(0.3)
        wait_idle(page)
    name = page.get_by_label("Run name (optional)")
    name.fill(RUN)
    name.press("Enter")
    time.sleep(0.3)
    wait_idle(page)
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function(
        "() => document.querySelector(\"[data-testid='stProgress']\")?.innerText.includes('step ')",
        timeout=300_000,
    )


def tokens_per_s(run_dir: Path, t_from: float, t_to: float) -> dict:
    steps = []
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        d = json.loads(line)
        if d.get("event") == "step":
            steps.append(d)
    if len(steps) < 2:
        return {}
    tps = sorted(d["tokens_per_s"] for d in steps[len(steps) // 4 :] if d.get("tokens_per_s"))
    return {"steps": steps[-1]["step"], "median_tokens_per_s": round(statistics.median(tps))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", default="tokenize,sample")
    ap.add_argument("--n", type=int, default=6)
    args = ap.parse_args()
    pages = args.pages.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="glassbox-bench-"))
    runs = tmp / "runs"
    runs.mkdir()
    proc, base = start_server(runs)
    result: dict = {"cores": os.cpu_count(), "pages": pages, "n": args.n}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            a = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            b = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            result["idle"] = measure(b, base, pages, args.n)
            start_training(a, base)
            t0 = time.time()
            result["while_training"] = measure(b, base, pages, args.n)
            t1 = time.time()
            result["training"] = tokens_per_s(runs / RUN, t0, t1)
            a.get_by_test_id("stButton").get_by_role("button", name="Stop").click()
            a.get_by_text("Finished (stopped)").first.wait_for(timeout=120_000)
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    for name in pages:
        idle, busy = result["idle"][name], result["while_training"][name]
        result[f"{name}_slowdown_p50"] = {
            kind: round(busy[kind]["p50_s"] / max(idle[kind]["p50_s"], 1e-3), 2)
            for kind in ("load", "rerun")
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
