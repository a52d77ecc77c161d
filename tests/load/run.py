"""Classroom load harness (issue #8): N students on one real server while one training runs.

    python -m tests.load.run --sessions 30 --browsers 2          # prints one JSON object

Starts `streamlit run explorer/app.py` on 127.0.0.1 (a free port, a temporary runs root, the
shipped default model), starts one training from the Train page the way a teacher would (see
scenario.TRAINING; it keeps training through the measurement), then lets `--sessions` websocket
students and `--browsers` Chromium students each walk scenario.student(): about 20 interactions
across every page, a think time between them, arriving over `--ramp` seconds.

Reported: latency of every interaction (send -> script_finished; for Chromium action -> idle)
as p50/p95/max overall and per interaction type; fragment timer ticks separately; errors
(exceptions drawn in a page, compile errors, websocket errors, timeouts, missing widgets);
the server's peak RSS (process + children, from /proc); training steps made during the load;
the machine's load average before and after. Environment variables (GLASSBOX_TORCH_THREADS,
GLASSBOX_MAX_JOBS, ...) pass through to the server. Not part of `pytest`; the smoke test
tests/load/test_load_smoke.py runs the same code with 2 sessions and checks it, without timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from tests.load import scenario
from tests.load.server import AppServer, RssSampler, cpu_seconds, loadavg, tree_cpu_seconds
from tests.load.wsclient import RunResult, Session

GOAL = {"sessions": 30, "p95_s": 2.0, "errors": 0, "rss_bytes": 2 * 2**30}


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[i]


def summary(xs: list[float]) -> dict:
    return {
        "n": len(xs),
        "p50_s": _r(percentile(xs, 50)),
        "p95_s": _r(percentile(xs, 95)),
        "max_s": _r(max(xs) if xs else None),
    }


def _r(x):
    return None if x is None else round(x, 3)


def training_step(runs_dir: Path, name: str = scenario.TRAINING_RUN) -> int:
    """The last step the training logged (0 before its first)."""
    log = runs_dir / name / "log.jsonl"
    if not log.exists():
        return 0
    step = 0
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"event": "step"' in line or '"event":"step"' in line:
            try:
                step = max(step, int(json.loads(line)["step"]))
            except (ValueError, KeyError):
                continue
    return step


def log(args, who: str, r: RunResult) -> None:
    if args.verbose:
        print(f"{who:>10} {r.kind:<24} {r.latency:6.2f}s {r.errors or ''}", file=sys.stderr)


async def do(session: Session, step) -> RunResult:
    action, what, value = step
    try:
        if action == "open":
            return await session.open(what)
        if action == "set":
            return await session.set(what, value)
        return await session.click(what)
    except LookupError as exc:  # the widget was not drawn: the page broke or changed
        r = RunResult(scenario.kind(step), 0.0, errors=[f"missing widget: {exc}"])
        session.results.append(r)
        return r


async def start_training(ws_url: str, runs_dir: Path, timeout: float) -> Session:
    """The teacher's tab: start a training from the Train page and wait for its first step."""
    teacher = Session(ws_url, timeout=timeout, name="teacher")
    await teacher.connect()
    for step in scenario.TRAINING:
        r = await do(teacher, step)
        if r.errors:
            raise RuntimeError(f"could not start the training at {step}: {r.errors}")
    deadline = time.time() + timeout
    while training_step(runs_dir) == 0:
        if time.time() > deadline:
            raise RuntimeError("the training made no step")
        await asyncio.sleep(0.5)
    return teacher


async def ws_student(i: int, args, ws_url: str, out: list) -> None:
    rng = random.Random(args.seed * 7919 + i)
    await asyncio.sleep(args.ramp * i / max(1, args.sessions))
    s = Session(ws_url, timeout=args.timeout, name=f"student{i}")
    try:
        await s.connect()
    except Exception as exc:  # noqa: BLE001
        out.append([RunResult("connect", 0.0, errors=[f"connect: {exc}"])])
        return
    try:
        for step in scenario.student(i, args.seed)[: args.interactions]:
            log(args, s.name, await do(s, step))
            await asyncio.sleep(args.think * rng.uniform(0.5, 1.5))
    finally:
        await s.close()
        out.append(s.results)


async def browser_students(args, base: str, out: list) -> None:
    if not args.browsers:
        return
    from playwright.async_api import async_playwright

    from tests.load.browser import BrowserStudent, launch

    async with async_playwright() as pw:
        browser = await launch(pw)
        try:

            async def one(j: int) -> None:
                rng = random.Random(args.seed * 104729 + j)
                await asyncio.sleep(args.ramp * (j + 0.5) / max(1, args.browsers))
                b = BrowserStudent(browser, base, timeout=args.timeout)
                await b.start()
                try:
                    steps = scenario.student(1000 + j, args.seed)[: args.interactions]
                    for step in steps:
                        log(args, f"browser{j}", await b.step(step))
                        await asyncio.sleep(args.think * rng.uniform(0.5, 1.5))
                finally:
                    await b.close()
                    out.append(b.results)

            await asyncio.gather(*(one(j) for j in range(args.browsers)))
        finally:
            await browser.close()


async def measure(args, srv: AppServer, runs_dir: Path) -> dict:
    ws_url = srv.base.replace("http://", "ws://") + "/_stcore/stream"
    teacher = None
    steps0 = 0
    if args.training:
        teacher = await start_training(ws_url, runs_dir, args.timeout)
        steps0 = training_step(runs_dir)
    t0 = time.perf_counter()
    cpu0, own0 = tree_cpu_seconds(srv.proc.pid), cpu_seconds(srv.proc.pid)
    ws_out: list[list[RunResult]] = []
    br_out: list[list[RunResult]] = []
    await asyncio.gather(
        *(ws_student(i, args, ws_url, ws_out) for i in range(args.sessions)),
        browser_students(args, srv.base, br_out),
    )
    wall = time.perf_counter() - t0
    cpu = tree_cpu_seconds(srv.proc.pid) - cpu0
    own = cpu_seconds(srv.proc.pid) - own0
    steps = training_step(runs_dir) - steps0 if args.training else None
    teacher_ticks = []
    if teacher is not None:
        teacher_ticks = [r for r in teacher.results if r.kind == "tick"]
        await teacher.close()
    return {
        "ws": [r for rs in ws_out for r in rs],
        "browser": [r for rs in br_out for r in rs],
        "teacher_ticks": teacher_ticks,
        "wall_s": wall,
        "server_cpu_s": cpu,
        "server_own_cpu_s": own,
        "training_steps": steps,
        "training_started_step": steps0,
    }


def report(args, m: dict, rss_peak: int, load_before, load_after, server_env: dict) -> dict:
    user = [r for r in m["ws"] + m["browser"] if r.kind != "tick"]
    ticks = [r for r in m["ws"] + m["browser"] + m["teacher_ticks"] if r.kind == "tick"]
    by_kind: dict[str, list[float]] = {}
    for r in user:
        by_kind.setdefault(r.kind, []).append(r.latency)
    errors = [
        f"{r.kind}: {e}" for r in m["ws"] + m["browser"] + m["teacher_ticks"] for e in r.errors
    ]
    alerts = sorted({a for r in m["ws"] + m["browser"] for a in r.alerts})
    overall = summary([r.latency for r in user])
    out = {
        "sessions": args.sessions,
        "browsers": args.browsers,
        "interactions": len(user),
        "think_s": args.think,
        "ramp_s": args.ramp,
        "wall_s": round(m["wall_s"], 1),
        "latency": overall,
        "latency_ws": summary([r.latency for r in m["ws"] if r.kind != "tick"]),
        "latency_browser": summary([r.latency for r in m["browser"] if r.kind != "tick"]),
        "per_type": {k: summary(v) for k, v in sorted(by_kind.items())},
        "fragment_ticks": summary([r.latency for r in ticks]),
        "errors": len(errors),
        "error_samples": errors[:20],
        "error_alerts_shown": alerts[:10],
        # the server process and its children (a training process); the server alone per click
        "server_cpu_s": round(m["server_cpu_s"], 1),
        "server_own_cpu_s": round(m["server_own_cpu_s"], 1),
        "server_cpu_per_interaction_s": round(m["server_own_cpu_s"] / max(1, len(user)), 3),
        "server_rss_peak_mb": round(rss_peak / 2**20, 1),
        "training": args.training,
        "training_started_step": m["training_started_step"],
        "training_steps": m["training_steps"],
        "training_steps_per_s": (
            round(m["training_steps"] / m["wall_s"], 2) if m["training_steps"] else None
        ),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "cpus": os.cpu_count(),
        "server_env": server_env,
    }
    out["goal_met"] = bool(
        args.sessions >= GOAL["sessions"]
        and overall["p95_s"] is not None
        and overall["p95_s"] <= GOAL["p95_s"]
        and not errors
        and rss_peak <= GOAL["rss_bytes"]
        and (not args.training or (m["training_steps"] or 0) > 0)
    )
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=30, help="websocket students")
    p.add_argument("--browsers", type=int, default=2, help="Chromium students (0 = none)")
    p.add_argument("--interactions", type=int, default=22, help="steps of the walk per student")
    p.add_argument("--think", type=float, default=4.0, help="mean seconds between interactions")
    p.add_argument("--ramp", type=float, default=20.0, help="students arrive over this many s")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before a run errors")
    p.add_argument("--no-training", dest="training", action="store_false")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true", help="one line per interaction (stderr)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (server log, runs)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="glassbox-load-"))
    runs_dir = tmp / "runs"
    runs_dir.mkdir()
    keys = ("GLASSBOX_TORCH_THREADS", "GLASSBOX_MAX_JOBS", "GLASSBOX_TRAIN_THREADS")
    server_env = {k: os.environ[k] for k in keys if k in os.environ}
    load_before = loadavg()
    with AppServer(runs_dir, tmp / "streamlit.log") as srv, RssSampler(srv.proc.pid) as rss:
        try:
            m = asyncio.run(measure(args, srv, runs_dir))
        except Exception:
            print(srv.log_tail(), file=sys.stderr)
            raise
        peak = rss.peak
        load_after = loadavg()
        every = m["ws"] + m["browser"] + m["teacher_ticks"]
        if any("exception" in e for r in every for e in r.errors):
            print(srv.log_tail(6000), file=sys.stderr)  # the traceback the page redacted
    result = report(args, m, peak, load_before, load_after, server_env)
    if args.keep:
        result["tmp"] = str(tmp)
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
