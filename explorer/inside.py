"""The data behind the Embeddings, Attention and Activations pages, cached per model and prompt.

Pages call these and only draw. Conventions follow explorer/loaders.py: a loaded model is
passed as `_lm` (unhashable, skipped by the cache) next to `key`, the picker key plus version,
and derived arrays are `st.cache_data(max_entries=...)`. The embedding table and its unit rows
are views of a shared, read-only model, so they are `st.cache_resource` (never copied per hit).

Slow projections (UMAP, t-SNE) run in a plain background thread that never touches `st`; a job
is shared by every session that asks for the same matrix + method, and its result lands in the
on-disk cache of core.projection. Pages poll `job_status` from an `st.fragment(run_every=...)`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from core import lens, neighbours, projection
from explorer.plots.common import token_label

MAX_TOKENS = 64  # prompt positions shown on the inside pages (T x T heatmaps stay legible)
SAMPLE_BYTES = 300_000  # TinyTales text used to count token frequencies


def model_key(lm) -> str:
    """Cache key of a loaded model: the picker key plus a serial of its model object that is
    never reused (an id() can be, once a replaced checkpoint's model is freed)."""
    from explorer.loaders import object_key

    return object_key(f"{lm.key}|{lm.run_dir}", lm.model)


# --------------------------------------------------------------------------- prompt


@st.cache_data(max_entries=64, show_spinner=False)
def prompt_tokens(key: str, _lm, text: str, limit: int = MAX_TOKENS) -> dict:
    """{"ids": tuple, "labels": axis labels, "raw": token texts, "total": n, "cropped": bool}."""
    ids = list(_lm.tokenizer.encode(text))
    limit = min(limit, _lm.config.context_length)
    total = len(ids)
    ids = ids[:limit]
    raw = [_lm.tokenizer.token_label(i) for i in ids]
    return {
        "ids": tuple(int(i) for i in ids),
        "labels": [token_label(s, 16) for s in raw],
        "raw": raw,
        "total": total,
        "cropped": total > limit,
    }


def _capture(lm, ids, names):
    from core.probes import capture

    with torch.no_grad():
        return capture(lm.model, torch.tensor([list(ids)], dtype=torch.long), names)


# --------------------------------------------------------------------------- embeddings


@st.cache_resource(max_entries=4, show_spinner=False)
def embedding_table(key: str, _lm) -> dict:
    """{"matrix": (V, C) float32 view of the token embeddings, "unit": unit rows, "hash"}."""
    m = _lm.model.tok_emb.weight.detach().float().numpy()  # (V, C), shares the model's memory
    return {"matrix": m, "unit": neighbours.unit_rows(m), "hash": projection.matrix_hash(m)}


@st.cache_data(max_entries=4, show_spinner=False)
def token_facts(key: str, _lm) -> dict:
    """Per-token labels, TinyTales categories, lengths and frequencies (V rows each)."""
    from core.corpora import load_corpus

    tok = _lm.tokenizer
    try:
        sample = np.asarray(tok.encode(load_corpus("tinytales", n_bytes=SAMPLE_BYTES)))
    except Exception:  # noqa: BLE001 - frequencies are a nicety; a tokenizer may refuse the text
        sample = None
    t = neighbours.token_table(tok, sample, vocab_size=_lm.config.vocab_size)
    return {
        "labels": [token_label(s, 24) for s in t.labels],
        "categories": t.categories,
        "lengths": t.lengths,
        "counts": t.counts,
    }


def available_map(key: str, lm, method: str) -> tuple[np.ndarray | None, str]:
    """(xy (V, 2), where it came from) if the map exists without computing, else (None, "")."""
    table = embedding_table(key, lm)
    maps = _precomputed(key, lm, table["hash"])
    if method in maps:
        return maps[method], "precomputed"
    if method == "pca":
        return pca_map(key, lm), "computed"
    hit = projection.cached(table["matrix"], method, digest=table["hash"])
    if hit is not None:
        return hit, "cached"
    job = _JOBS.get((table["hash"], method))
    if job is not None and job.result is not None:
        return job.result, "computed"
    return None, ""


@st.cache_data(max_entries=8, show_spinner=False)
def _precomputed(key: str, _lm, matrix_hash: str) -> dict:
    if _lm.run_dir is None:
        return {}
    return projection.load_maps(_lm.run_dir, digest=matrix_hash)


@st.cache_data(max_entries=8, show_spinner=False)
def pca_map(key: str, _lm) -> np.ndarray:
    t = embedding_table(key, _lm)
    return projection.project(t["matrix"], "pca", digest=t["hash"])


@st.cache_data(max_entries=256, show_spinner=False)
def nearest(key: str, _lm, token: int, k: int = 10) -> tuple[list[int], list[float]]:
    t = embedding_table(key, _lm)
    ids, sims = neighbours.nearest(t["matrix"], int(token), k, unit=t["unit"])
    return ids.tolist(), sims.tolist()


def search(key: str, lm, query: str, limit: int = 20) -> list[int]:
    """Token ids whose text matches `query` (exact, then prefix, then substring)."""
    return neighbours.search_tokens(_raw_labels(key, lm), query, limit)


@st.cache_data(max_entries=4, show_spinner=False)
def _raw_labels(key: str, _lm) -> list[str]:
    tok = _lm.tokenizer
    return [
        neighbours.safe_label(tok, i) for i in range(min(tok.vocab_size, _lm.config.vocab_size))
    ]


@st.cache_data(max_entries=8, show_spinner=False)
def position_similarity(key: str, _lm, n: int = 64) -> tuple[str, np.ndarray | None]:
    return neighbours.position_similarity(_lm.model, n)


CONTEXT_STAGES = ("embed", "attn", "mlp")


@st.cache_data(max_entries=32, show_spinner=False)
def contextual_map(key: str, _lm, ids: tuple, layer: int, stage: str) -> np.ndarray:
    """(T, 2) PCA of the residual stream at one point: the embedding ("embed"), or after the
    attention ("attn") or MLP ("mlp") of `layer`."""
    name = {
        "embed": "blocks.0.resid_pre",
        "attn": f"blocks.{layer}.resid_mid",
        "mlp": f"blocks.{layer}.resid_post",
    }[stage]
    _, trace = _capture(_lm, ids, [name])
    x = trace[name][0].numpy()  # (T, C)
    if len(x) < 3:
        return np.zeros((len(x), 2), np.float32)
    return projection.pca_2d(x)


# --------------------------------------------------------------------------- background maps


@dataclass
class ProjectionJob:
    method: str
    n: int
    started: float
    state: str = "queued"  # queued | compiling | neighbours | layout | running | done | failed
    progress: float = 0.0
    result: np.ndarray | None = None
    error: str | None = None
    seconds: float | None = None


_JOBS: dict[tuple[str, str], ProjectionJob] = {}
_JOBS_LOCK = threading.Lock()
_ONE_AT_A_TIME = threading.Semaphore(1)  # CPU is shared: projections queue, never pile up


def _run_job(job: ProjectionJob, matrix: np.ndarray, digest: str) -> None:
    with _ONE_AT_A_TIME:
        t0 = time.perf_counter()
        try:
            if job.method == "umap":
                if projection.umap_warm_state()["state"] != "warm":
                    job.state = "compiling"
                    projection.warm_up_umap(block=True)
                    while projection.umap_warm_state()["state"] == "warming":
                        time.sleep(0.5)  # another thread is compiling; wait for it
                job.state = "neighbours"

                def report(frac: float) -> None:
                    job.state, job.progress = "layout", frac

                job.result = projection.project(matrix, "umap", progress=report, digest=digest)
            else:
                job.state = "running"
                job.result = projection.project(matrix, job.method, digest=digest)
            job.progress, job.state = 1.0, "done"
        except Exception as exc:  # noqa: BLE001 - shown in the page as a message
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        job.seconds = time.perf_counter() - t0


def start_projection(key: str, lm, method: str) -> ProjectionJob:
    """The (shared) background job computing `method` for this model's embeddings."""
    table = embedding_table(key, lm)
    jk = (table["hash"], method)
    with _JOBS_LOCK:
        job = _JOBS.get(jk)
        if job is None or job.state == "failed":
            job = ProjectionJob(method, len(table["matrix"]), time.time())
            _JOBS[jk] = job
            threading.Thread(
                target=_run_job,
                args=(job, table["matrix"], table["hash"]),
                name=f"map-{method}",
                daemon=True,
            ).start()
    return job


def job_status(key: str, lm, method: str) -> ProjectionJob | None:
    return _JOBS.get((embedding_table(key, lm)["hash"], method))


def warm_up() -> None:
    """Compile UMAP's numba code in the background (once per process)."""
    projection.warm_up_umap()


# --------------------------------------------------------------------------- attention


@st.cache_data(max_entries=32, show_spinner=False)
def attention_patterns(key: str, _lm, ids: tuple) -> np.ndarray:
    """(L, H, T, T) float32 attention weights for the prompt."""
    _, trace = _capture(_lm, ids, ["blocks.*.attn.pattern"])
    L = _lm.config.n_layers
    return np.stack([trace[f"blocks.{i}.attn.pattern"][0].numpy() for i in range(L)])


@st.cache_data(max_entries=64, show_spinner=False)
def head_step(key: str, _lm, ids: tuple, layer: int, head: int, query: int):
    """core.lens.AttentionSteps for one head at one query position, with the real numbers."""
    pre = f"blocks.{layer}.attn."
    _, trace = _capture(_lm, ids, [pre + s for s in ("q", "k", "v", "pattern", "z", "scores")])
    return lens.attention_steps(trace, layer, head, query, model=_lm.model)


@st.cache_data(max_entries=8, show_spinner="Scoring every head on repeated random tokens…")
def head_scores(key: str, _lm) -> dict[str, np.ndarray]:
    """{"previous_token"|"first_token"|"induction": (L, H)} from core.heads (TRAIN's)."""
    from core.heads import head_scores as _scores

    shape = (_lm.config.n_layers, _lm.config.n_heads)
    if _lm.run_dir is not None:  # a released asset carries them, measured at release
        try:
            from core.runs import latest_checkpoint

            manifest = json.loads((Path(_lm.run_dir) / "manifest.json").read_text())
            scores = {k: np.asarray(v, np.float32) for k, v in manifest["head_scores"].items()}
            latest = latest_checkpoint(_lm.run_dir)
            same = latest is not None and manifest.get("checkpoint") == latest.name
            if same and len(scores) == 3 and all(v.shape == shape for v in scores.values()):
                return scores
        except (OSError, ValueError, KeyError, TypeError):
            pass
    # the settings of core.runs.release_run, so a run's numbers compare with the shipped model's;
    # a big model (GPT-2: ~20 s at batch 16 on 2 cores) gets a smaller batch of sequences
    eot = getattr(_lm.tokenizer, "eot_id", None)
    batch = 16 if _lm.model.num_params() < 20e6 else 4
    return _scores(_lm.model, batch=batch, seed=0, prefix_id=eot)


# --------------------------------------------------------------------------- activations


@st.cache_data(max_entries=32, show_spinner=False)
def activation_summary(key: str, _lm, ids: tuple) -> dict:
    """Per-token loss, residual norms, norm statistics and the logit lens for the prompt."""
    logits, trace = _capture(_lm, ids, None)
    grid = lens.logit_lens(_lm.model, trace, list(ids))
    stages, norms = lens.residual_norms(trace)
    tok = _lm.tokenizer
    lab = lambda i: token_label(neighbours.safe_label(tok, int(i)), 12)  # noqa: E731
    losses = lens.token_losses(logits, list(ids))
    mean = float(np.nanmean(losses)) if len(ids) > 1 else None
    return {
        "losses": losses,
        "mean_loss": mean,
        "perplexity": float(np.exp(mean)) if mean is not None else None,
        "norm_stages": stages,
        "norms": norms,
        "norm_rows": lens.norm_stats(_lm.model, trace),
        "lens_stages": grid.stages,
        "lens_probs": grid.top_probs,
        "lens_target_probs": grid.target_probs,
        "lens_labels": [[lab(i) for i in row] for row in grid.top_ids],
        "final_labels": [lab(i) for i in grid.final_ids],
        "neurons": _neuron_reports(_lm, trace),
    }


NEURONS_MAX = 30  # the most neurons the page lists; reports keep this many per layer


def _neuron_reports(_lm, trace) -> list[dict]:
    """Per layer: activation histogram and the NEURONS_MAX most active neurons on the prompt."""
    out = []
    for layer in range(_lm.config.n_layers):
        rep = lens.mlp_neurons(trace, layer, k=NEURONS_MAX)
        top = [r["neuron"] for r in rep.top]
        out.append(
            {
                "edges": rep.hist_edges,
                "counts": rep.hist_counts,
                "top": rep.top,
                "top_acts": rep.acts[:, top],  # (T, k): only the columns the page draws
                "fraction_active": rep.fraction_active,
                "width": rep.acts.shape[1],
            }
        )
    return out


def neuron_report(key: str, lm, ids: tuple, layer: int, k: int = 12) -> dict:
    """Layer `layer`'s MLP report with its k most active neurons (a slice of the cached pass, so
    changing the layer or k runs no model)."""
    rep = activation_summary(key, lm, ids)["neurons"][layer]
    return {**rep, "top": rep["top"][:k], "top_acts": rep["top_acts"][:, :k]}
