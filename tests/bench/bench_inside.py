"""Benchmark of the Embeddings, Attention and Activations pages; prints one JSON object.

    python tests/bench/bench_inside.py [--no-browser] [--no-umap]

Goals (issue 6): the embedding map on screen <= 2 s after first opening the page (precomputed
maps), a fresh UMAP of a 4k-token vocabulary <= 10 s once numba is warm, each page's first
render <= 1.5 s server-side, a control change <= 0.5 s.

Server-side times are AppTest runs in one process on the default model (the stand-in model of
tests/app when assets/default is missing), model already loaded as in a running server, derived
caches cold. The browser time is a real `streamlit run` + Chromium: from page.goto to the map's
points drawn. Torch runs one intra-op thread, as the app's server does.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tests.app._inside_model: the shared stand-in model helper

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
PAGES = {
    "embeddings": ("radio", "emb_colour", "frequency"),
    "attention": ("slider", "att_query", 2),
    "activations": ("selectbox", "act_layer", 1),
}


def warm_plotly() -> float:
    """Build each figure once on tiny arrays: plotly's validators load lazily, once per process,
    which a running server has long paid. Model-derived caches stay cold."""
    from explorer.plots import activations as X
    from explorer.plots import attention as A
    from explorer.plots import embeddings as E

    t0 = time.perf_counter()
    z, lab = np.eye(3, dtype=np.float32), ["a", "b", "c"]
    E.embedding_map(np.zeros((3, 2)), lab, "category", categories=["x", "y", "other"])
    E.position_similarity(z, "learned")
    E.contextual_path(np.zeros((3, 2)), lab, "x")
    E.neighbour_bars(lab, np.ones(3), "x")
    A.head_grid(np.ones((1, 1, 3, 3)))
    A.head_heatmap(z, lab, 0, 0)
    A.head_scores_figure({k: np.ones((1, 1)) for k in A.ROLE_TITLES})
    A.step_figure(lab, np.ones(3), np.ones(3), np.ones(3), 1)
    A.vector_strip(z, lab, "x")
    X.residual_norms(lab, z, lab)
    X.neuron_histogram(np.arange(4.0), np.ones(3), 0)
    X.neuron_heatmap(z, [1, 2, 3], lab)
    X.norm_stats_figure([{"norm": "a", "out_rms_mean": 1.0}])
    X.logit_lens_figure(lab, z, [lab] * 3, lab)
    return time.perf_counter() - t0


def server_side() -> dict:
    from streamlit.testing.v1 import AppTest

    import explorer.inside  # noqa: F401 - imported once at server start, not per render
    import explorer.plots.activations  # noqa: F401
    import explorer.plots.attention  # noqa: F401
    import explorer.plots.embeddings  # noqa: F401
    from explorer import loaders
    from tests.app._inside_model import inside_model

    lm = inside_model()
    loaders.get_model = lambda key: lm
    out = {
        "model": lm.label,
        "vocab": lm.config.vocab_size,
        "plotly_warm_up_s": round(warm_plotly(), 2),
    }
    # AppTest's first run scans every installed package for Streamlit components (~1.1 s here);
    # a server does that once at start-up, so pay it on a throwaway script
    t0 = time.perf_counter()
    AppTest.from_string("import streamlit as st\nst.write(1)").run()
    out["apptest_first_run_overhead_s"] = round(time.perf_counter() - t0, 2)
    for name, (kind, key, value) in PAGES.items():
        at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=120)
        if name == "embeddings" and lm.run_dir is None:
            at.session_state["emb_method"] = "pca"  # the stand-in has no precomputed maps
        t0 = time.perf_counter()
        at.run()
        first = time.perf_counter() - t0
        assert not at.exception, at.exception
        widget = getattr(at, kind)(key=key)
        t0 = time.perf_counter()
        widget.set_value(value).run()
        change = time.perf_counter() - t0
        assert not at.exception, at.exception
        out[f"{name}_first_render_s"] = round(first, 3)
        out[f"{name}_control_change_s"] = round(change, 3)
    return out


def umap_times(matrix_rows: int = 4096, width: int = 256) -> dict:
    from core import projection

    t0 = time.perf_counter()
    projection.warm_up_umap(block=True)
    warm = time.perf_counter() - t0
    m = np.random.default_rng(0).normal(size=(matrix_rows, width)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        projection.project(m, "umap", cache_dir=tmp)
        fresh = time.perf_counter() - t0
        t0 = time.perf_counter()
        projection.project(m, "umap", cache_dir=tmp)
        hit = time.perf_counter() - t0
        t0 = time.perf_counter()
        projection.project(m, "pca", cache_dir=tmp)
        pca = time.perf_counter() - t0
    return {
        "umap_warm_up_s": round(warm, 2),
        f"umap_fresh_{matrix_rows}x{width}_s": round(fresh, 2),
        "umap_cache_hit_s": round(hit, 4),
        f"pca_{matrix_rows}x{width}_s": round(pca, 4),
    }


def browser_map_time() -> dict:
    if not Path("/usr/bin/chromium").exists():
        return {"browser": "skipped: /usr/bin/chromium missing"}
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "streamlit", "run", "explorer/app.py", "--server.headless", "true",
        "--server.port", str(port), "--server.address", "127.0.0.1",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    out = {}
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                time.sleep(0.3)
        # the map itself, drawn (not a chart left over from the page before)
        drawn = """() => { const g = document.querySelector('.js-plotly-plot');
                    return !!(g && g.layout && g.layout.title &&
                              String(g.layout.title.text).includes('token embeddings') &&
                              g._fullData && g._fullData.length && g._fullData[0].x.length); }"""
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/architecture")  # loads the model, as any first page would
            page.wait_for_selector(IDLE)
            time.sleep(1.0)
            # as a user opens it: a click on the sidebar's link (the app is already loaded)
            t0 = time.perf_counter()
            page.locator("[data-testid='stSidebarNav'] a[href$='/embeddings']").click()
            page.wait_for_function(drawn, timeout=120_000)
            out["map_on_screen_first_open_s"] = round(time.perf_counter() - t0, 2)
            out["map_shown"] = page.evaluate(
                "() => document.querySelector('.js-plotly-plot').layout.title.text"
            )
            page.locator("[data-testid='stSidebarNav'] a[href$='/architecture']").click()
            page.wait_for_selector(IDLE)
            time.sleep(1.0)
            t0 = time.perf_counter()
            page.locator("[data-testid='stSidebarNav'] a[href$='/embeddings']").click()
            page.wait_for_function(drawn, timeout=120_000)
            out["map_on_screen_second_open_s"] = round(time.perf_counter() - t0, 2)
            # a full page load (a typed URL or a refresh) also boots the frontend
            t0 = time.perf_counter()
            page.goto(f"{base}/embeddings")
            page.wait_for_function(drawn, timeout=120_000)
            out["map_on_screen_page_load_s"] = round(time.perf_counter() - t0, 2)
            b.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--no-umap", action="store_true")
    a = ap.parse_args()
    result = {"goals": {"map_on_screen_s": 2.0, "fresh_umap_4k_s": 10.0, "first_render_s": 1.5,
                        "control_change_s": 0.5}}  # fmt: skip
    result.update(server_side())
    if not a.no_browser:
        result.update(browser_map_time())
    if not a.no_umap:
        result.update(umap_times())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
