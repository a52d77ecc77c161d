"""Server CPU seconds per interaction type: what each step of the walk costs, one at a time.

    python -m tests.load.cost --students 3        # prints JSON

Latency on a shared machine says more about the neighbours than about the app; CPU time spent
by the server process tree does not (much). One websocket session walks scenario.student(i) for
`--students` different students in turn (each types other text, so caches help only where they
would in a class), with no training and no think time, and the server's user+system CPU time is
read from /proc before and after each step. The sum over a class's walk, divided by the cores,
bounds how many students one server can take: see the README's classroom section.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from tests.load import scenario
from tests.load.run import do, percentile
from tests.load.server import AppServer, tree_cpu_seconds
from tests.load.wsclient import Session


async def walk(srv: AppServer, students: int, first: int) -> tuple[dict, list[str]]:
    url = srv.base.replace("http://", "ws://") + "/_stcore/stream"
    costs: dict[str, list[float]] = {}
    errors: list[str] = []
    for i in range(first, first + students):
        s = Session(url, timeout=300)
        await s.connect()
        for step in scenario.student(i):
            c0 = tree_cpu_seconds(srv.proc.pid)
            r = await do(s, step)
            costs.setdefault(r.kind, []).append(tree_cpu_seconds(srv.proc.pid) - c0)
            errors += [f"{r.kind}: {e}" for e in r.errors]
        await s.close()
    return costs, errors


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--students", type=int, default=3)
    p.add_argument("--warm", type=int, default=1, help="walks first, not counted (model load)")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="glassbox-cost-"))
    (tmp / "runs").mkdir()
    with AppServer(tmp / "runs", tmp / "streamlit.log") as srv:
        if args.warm:
            asyncio.run(walk(srv, args.warm, 10_000))
        costs, errors = asyncio.run(walk(srv, args.students, 0))
    per = {
        k: {"n": len(v), "mean_s": round(sum(v) / len(v), 3), "max_s": round(max(v), 3)}
        for k, v in sorted(costs.items())
    }
    every = [c for v in costs.values() for c in v]
    return {
        "students": args.students,
        "interactions": len(every),
        "cpu_per_interaction_s": {
            "mean": round(sum(every) / len(every), 3),
            "p50": round(percentile(every, 50), 3),
            "p95": round(percentile(every, 95), 3),
        },
        "cpu_per_walk_s": round(sum(every) / args.students, 2),
        "per_type": per,
        "errors": errors,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
