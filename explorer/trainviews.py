"""Data for the Train page's views: the runs table, run overlays, and the time-lapse.

Everything here returns plain records and numpy arrays for explorer/plots/training.py, so the page
itself does no math (STYLE rule 2). A time-lapse is loaded once per (run dir, index version) and
kept in a small process-wide LRU: every session scrubbing the shipped model shares one copy.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer import jobs, trainjobs
from explorer.runlog import run_log

SHIPPED_LABEL = "shipped model (assets/default)"


# ---------------------------------------------------------------- runs table and overlays


def run_rows(
    root: str | Path | None = None, registry: jobs.JobRegistry | None = None
) -> list[dict]:
    """One record per run dir under the runs root, newest first, with its live state."""
    from core.runs import list_runs

    return [_row(info, registry) for info in list_runs(root or trainjobs.runs_root_dir())]


def run_row(name: str, root: str | Path | None = None, registry=None) -> dict | None:
    """The record of one run (what a live tick needs, without listing every run)."""
    from core.runs import load_run

    if trainjobs.check_name(name) is not None:
        return None
    path = Path(root or trainjobs.runs_root_dir()) / name
    try:
        return _row(load_run(path), registry)
    except (OSError, ValueError):
        return None


def _row(info, registry) -> dict:
    state = trainjobs.run_state(info, registry)
    m = run_log(info.path)
    final = info.final or {}
    return {
        "name": info.name,
        "state": state,
        "step": m.last_step,
        "max_steps": info.train.get("max_steps"),
        "train_loss": _num(m.loss[-1]) if m.loss else None,
        "val_loss": _num(m.eval_val[-1]) if m.eval_val else None,
        "layers": info.model.get("n_layers"),
        "heads": info.model.get("n_heads"),
        "width": info.model.get("d_model"),
        "norm": info.model.get("norm_position"),
        "activation": info.model.get("activation"),
        "position": info.model.get("pos_encoding"),
        "grad_clip": info.train.get("grad_clip"),
        "from": _base_label(info.extra.get("init_from")),  # a fine-tune's base model
        "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created)),
        "checkpoint": info.latest_checkpoint is not None,
        # a crash (a full disk, a killed process) is resumable too: its last checkpoint is intact
        "resumable": state in ("interrupted", "failed") and "spec" in info.extra,
        "error": info.extra.get("error") or final.get("reason"),
        "path": str(info.path),
    }


def _base_label(origin) -> str | None:
    """'run X, step N' for a fine-tune's base (from run.json's init_from); None otherwise."""
    if not isinstance(origin, dict):
        return None
    label, step = str(origin.get("label") or "a checkpoint"), origin.get("step")
    return f"{label}, step {step}" if isinstance(step, int) else label


_FIGS: dict[str, tuple[tuple, dict]] = {}
_FIGS_LOCK = threading.Lock()


def live_figures(run_path: str, m, *, clip: float | None = None) -> dict:
    """The live charts of a run, built once per new log content and shared by every session
    watching that run (read-only: st.plotly_chart only serialises them). Passing the Figure
    objects, not dicts, also spares Streamlit a re-validation (measured 30 vs 190 ms)."""
    from explorer.plots import training as tp

    key = (len(m.step), len(m.eval_step), len(m.layer_step), clip)
    with _FIGS_LOCK:
        hit = _FIGS.get(run_path)
        if hit is not None and hit[0] == key:
            return hit[1]
    figs = {
        "loss": tp.loss_figure(
            m.step, m.loss, m.eval_step, m.eval_val, eval_train_loss=m.eval_train
        ),
        "lr": tp.lr_figure(m.step, m.lr),
        "gn": tp.grad_norm_figure(m.step, m.grad_norm, m.clipped, clip=clip),
        "lgn": tp.layer_grad_norms_figure(m.layer_step, m.layer_matrix()),
        "tps": tp.tokens_per_s_figure(m.step, m.tokens_per_s),
    }
    with _FIGS_LOCK:
        _FIGS[run_path] = (key, figs)
        while len(_FIGS) > 16:
            _FIGS.pop(next(iter(_FIGS)))
    return figs


# Live watchers: every session polling a run ticks on a timer, and one server manages only
# ~10 ticks/s in all (FIELD-NOTES). The poll interval grows with the number of watchers.
_WATCHERS: dict[str, float] = {}
_WATCHERS_LOCK = threading.Lock()
WATCHER_TTL_S = 30.0
TICKS_PER_S_BUDGET = 3.0  # share of the server's tick capacity that live training views may use


def poll_interval(session: str, *, base: float = 3.0, cap: float = 15.0) -> float:
    """Seconds between this session's live ticks: `base` alone, longer with many watchers."""
    now = time.time()
    with _WATCHERS_LOCK:
        _WATCHERS[session] = now
        for key in [k for k, t in _WATCHERS.items() if now - t > WATCHER_TTL_S]:
            del _WATCHERS[key]
        n = len(_WATCHERS)
    return float(min(cap, max(base, n / TICKS_PER_S_BUDGET)))


def _num(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def shipped_log_source() -> dict[str, str]:
    """{label: dir} for the shipped model when its training log is at hand (for overlays)."""
    from explorer.registry import default_dir

    d = default_dir()
    return {SHIPPED_LABEL: str(d)} if (d / "log.jsonl").exists() else {}


def overlay_curves(paths: dict[str, str | Path], metric: str = "train") -> list[dict]:
    """Curves for plots.training.overlay_figure: per-step train loss, or eval-time val loss."""
    curves = []
    for label, path in paths.items():
        m = run_log(path)
        if metric == "val":
            curves.append({"label": f"{label} (val)", "steps": m.eval_step, "values": m.eval_val})
        else:
            curves.append({"label": label, "steps": m.step, "values": m.loss})
    return curves


# ---------------------------------------------------------------- time-lapse


def timelapse_sources(root: str | Path | None = None) -> dict[str, str]:
    """label -> dir of everything with a recorded time-lapse: the shipped model, then runs."""
    from explorer.registry import default_dir

    out: dict[str, str] = {}
    if (default_dir() / "timelapse" / "index.json").exists():
        out[SHIPPED_LABEL] = str(default_dir())
    base = Path(root) if root is not None else trainjobs.runs_root_dir()
    if base.is_dir():
        found = [d for d in base.iterdir() if (d / "timelapse" / "index.json").exists()]
        for d in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True):
            out[f"run: {d.name}"] = str(d)
    return out


@dataclass
class TimelapseView:
    steps: list[int]
    probe_labels: list[str]
    attention: np.ndarray  # (S, L, H, T, T)
    head_scores: np.ndarray  # (S, L, H, 3)
    score_names: list[str]
    token_loss: np.ndarray  # (S, T)
    embedding: np.ndarray  # (S, V, 2)
    extent: tuple[float, float, float, float]  # one set of axes for every frame
    vocab_labels: list[str]  # V display labels for the map's hover
    categories: list[str] | None  # V TinyTales word categories ("other" elsewhere)
    samples: list[str]
    sample_prompt: str
    loss_max: float  # colour scale top for the per-token loss heat-text (same for every frame)

    def frame_of(self, step: int) -> int:
        """Index of the last frame at or before `step` (the first frame if none)."""
        idx = int(np.searchsorted(np.asarray(self.steps), step, side="right")) - 1
        return max(0, min(idx, len(self.steps) - 1))


def load_timelapse_view(run_dir: str | Path) -> TimelapseView:
    """The run's time-lapse plus what the views need; raises FileNotFoundError if it has none."""
    index = Path(run_dir) / "timelapse" / "index.json"
    if not index.exists():
        raise FileNotFoundError(f"{Path(run_dir).name} has no time-lapse recorded")
    return _load_view(str(Path(run_dir).resolve()), index.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_view(run_dir: str, version: int) -> TimelapseView:
    from core.timelapse import load_timelapse
    from explorer.plots.training import map_extent

    tl = load_timelapse(run_dir)
    V = tl.embedding.shape[1] if tl.embedding.ndim == 3 else 0
    labels, cats = _vocab_labels(Path(run_dir), V)
    finite = tl.token_loss[np.isfinite(tl.token_loss)]
    return TimelapseView(
        steps=[int(s) for s in tl.steps],
        probe_labels=list(tl.probe_labels),
        attention=tl.attention,
        head_scores=tl.head_scores,
        score_names=list(tl.score_names),
        token_loss=tl.token_loss,
        embedding=tl.embedding,
        extent=map_extent(tl.embedding),
        vocab_labels=labels,
        categories=cats,
        samples=list(tl.samples),
        sample_prompt=tl.sample_prompt,
        loss_max=float(np.percentile(finite, 99)) if len(finite) else 1.0,
    )


def _vocab_labels(run_dir: Path, V: int) -> tuple[list[str], list[str] | None]:
    """Display label of every token id and, where the word is in TinyTales' lexicon, its category."""
    try:
        from core.tokenizer import load_tokenizer

        tok = load_tokenizer(run_dir / "tokenizer.json")
        labels = [tok.token_label(i) for i in range(min(V, tok.vocab_size))]
    except Exception:  # a run without a readable tokenizer still gets a map, with id labels
        labels = []
    labels += [f"#{i}" for i in range(len(labels), V)]
    try:
        from core.corpora import category_of
    except ImportError:
        return labels, None
    cats = [category_of(lab.strip().lower()) or "other" for lab in labels]
    return labels, (cats if any(c != "other" for c in cats) else None)
