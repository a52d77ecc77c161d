"""Benchmark: server-side render time of the Tokenize, Architecture and Sample pages.

    python tests/bench/bench_pages.py              # page timings on the default model (JSON)
    python tests/bench/bench_pages.py --threads    # + torch thread count under concurrent load

Page timings use Streamlit's AppTest (the script run only, no browser): `first_render_s` is a
new session opening the page with the model already in the process cache (what a student sees
after the first one), `cold_s` the very first run in the process (imports + model load), and
`slider_s` one slider change. Goals (issue 5): first render <= 1.5 s, slider <= 0.5 s.

The thread sweep runs a Sample-page rerun's tensor work (next-token logits + 40 generated
tokens) in K threads at once, each with torch.set_num_threads(n) as the app sets it per script
thread, and reports p50/p90 seconds per rerun: it is why explorer/app.py uses 1 thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "explorer" / "app.py")
PAGES = {  # page -> (slider key, new value)
    "tokenize": ("tok_ctx", 12),
    "architecture": ("arch_L", 8),
    "sample": ("smp_temp", 0.7),
}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_page(name: str, slider: str, value, repeats: int = 3) -> dict:
    from streamlit.testing.v1 import AppTest

    def fresh():
        at = AppTest.from_file(APP, default_timeout=300)
        at.switch_page(f"../pages/{name}.py")
        return at

    at = fresh()
    cold = timed(at.run)
    assert not at.exception, at.exception
    firsts, slides = [], []
    for _ in range(repeats):
        at = fresh()
        firsts.append(timed(at.run))
        assert not at.exception, at.exception
        widget = at.slider(key=slider)
        widget.set_value(value)
        slides.append(timed(at.run))
        assert not at.exception, at.exception
        widget.set_value(widget.value)  # keep the session valid for the next repeat
    return {
        "cold_s": round(cold, 3),
        "first_render_s": round(statistics.median(firsts), 3),
        "slider_s": round(statistics.median(slides), 3),
        "first_render_ok": statistics.median(firsts) <= 1.5,
        "slider_ok": statistics.median(slides) <= 0.5,
    }


def rerun_work(loaded, n_threads: int) -> float:
    import torch

    from explorer import compute

    torch.set_num_threads(n_threads)
    ids = loaded.tokenizer.encode("Once upon a time, a little fox")
    t0 = time.perf_counter()
    compute.next_token_logits(loaded.model, ids)
    compute.generate(loaded.model, ids, 40, 1.0, None, None, 0)
    return time.perf_counter() - t0


def thread_sweep(loaded, threads=(1, 2, 4), concurrency=(1, 4, 8), rounds: int = 3) -> list[dict]:
    rows = []
    for n in threads:
        for k in concurrency:
            times: list[float] = []
            lock = threading.Lock()

            def worker(n=n, times=times, lock=lock):
                for _ in range(rounds):
                    dt = rerun_work(loaded, n)
                    with lock:
                        times.append(dt)

            pool = [threading.Thread(target=worker) for _ in range(k)]
            t0 = time.perf_counter()
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            wall = time.perf_counter() - t0
            times.sort()
            rows.append(
                {
                    "torch_threads": n,
                    "sessions": k,
                    "p50_s": round(statistics.median(times), 3),
                    "p90_s": round(times[int(0.9 * (len(times) - 1))], 3),
                    "reruns_per_s": round(len(times) / wall, 2),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", action="store_true", help="also run the thread sweep")
    parser.add_argument("--pages", default=",".join(PAGES))
    args = parser.parse_args()
    os.environ.setdefault("GLASSBOX_TORCH_THREADS", "1")
    from explorer import compute, loaders, registry

    out: dict = {"model": str(registry.default_dir()), "cpus": os.cpu_count()}
    try:
        model, tok, cfg, _, _ = compute.load_model("default", str(registry.default_dir()))
    except compute.ModelUnavailable as exc:
        print(json.dumps({"error": str(exc)}))
        sys.exit(1)
    out["params"] = model.num_params()
    out["pages"] = {p: bench_page(p, *PAGES[p]) for p in args.pages.split(",") if p}
    if args.threads:
        lm = loaders.LoadedModel("default", model, tok, cfg, None)
        out["thread_sweep"] = thread_sweep(lm)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
