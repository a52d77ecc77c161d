"""2-D projections of an (N, C) matrix — PCA, UMAP, t-SNE — cached on disk by content.

The Embeddings page draws the token-embedding table (V, C) as a map. PCA is instant; UMAP and
t-SNE are slow (UMAP's first fit in a process spends 30-45 s compiling numba), so:

* every result is cached on disk under a key made of a hash of the matrix bytes, the method and
  its parameters — the same model never pays twice, across sessions and server restarts;
* `warm_up_umap()` compiles numba once per process in a background thread, off the request path;
* `precompute_maps(run_dir)` writes `run_dir/maps/` so a finished run or the shipped model opens
  with every map ready (`load_maps` checks the stored matrix hash before trusting a file).

References: McInnes et al. 2018 (UMAP); van der Maaten & Hinton 2008 (t-SNE).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

METHODS = ("pca", "umap", "tsne")
# UMAP settings measured in FIELD-NOTES: the approximate-neighbour path is 2.5x faster under 4096
# rows, and 200 epochs halve a fit with no visible change in the picture.
UMAP_DEFAULTS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "n_epochs": 200}
TSNE_DEFAULTS = {"perplexity": 30.0, "metric": "cosine"}
MAPS_VERSION = 1

_REPO_ROOT = Path(__file__).resolve().parents[1]


def cache_root() -> Path:
    """Writable folder for projection and numba caches (env GLASSBOX_CACHE overrides)."""
    env = os.environ.get("GLASSBOX_CACHE")
    for cand in ([Path(env)] if env else []) + [_REPO_ROOT / ".cache"]:
        try:
            cand.mkdir(parents=True, exist_ok=True)
            if os.access(cand, os.W_OK):
                return cand
        except OSError:
            continue
    fallback = Path(tempfile.gettempdir()) / "glassbox-cache"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def _import_umap():
    # numba caches compiled functions next to the package unless told otherwise; site-packages
    # may be read-only on a server, so point it at our cache before umap (and numba) import.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_root() / "numba"))
    import umap

    return umap


def matrix_hash(matrix: np.ndarray) -> str:
    """Content hash of a matrix as float32 (shape included), stable across processes."""
    m = np.ascontiguousarray(matrix, dtype=np.float32)
    h = hashlib.sha256()
    h.update(repr(m.shape).encode())
    h.update(m.tobytes())
    return h.hexdigest()[:32]


def _params(method: str, params: dict | None) -> dict:
    if method not in METHODS:
        raise ValueError(f"unknown projection method {method!r}; choose one of {METHODS}")
    base = {"pca": {}, "umap": UMAP_DEFAULTS, "tsne": TSNE_DEFAULTS}[method]
    return {**base, **(params or {})}


def cache_key(
    matrix: np.ndarray, method: str, seed: int = 0, params: dict | None = None, digest=None
) -> str:
    """File name of a projection; `digest` (matrix_hash(matrix)) skips re-hashing a big matrix."""
    blob = json.dumps(
        {
            "m": digest or matrix_hash(matrix),
            "method": method,
            "seed": seed,
            "p": _params(method, params),
        },
        sort_keys=True,
    )
    return f"{method}-{hashlib.sha256(blob.encode()).hexdigest()[:24]}"


def _cache_file(cache_dir: Path | str | None, key: str) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "projections"
    return folder / f"{key}.npy"


def cached(
    matrix: np.ndarray, method: str, seed: int = 0, params=None, cache_dir=None, digest=None
) -> np.ndarray | None:
    """The cached projection if present, else None (never computes)."""
    path = _cache_file(cache_dir, cache_key(matrix, method, seed, params, digest))
    if path.exists():
        try:
            return np.load(path)
        except (OSError, ValueError):
            return None
    return None


# --------------------------------------------------------------------------- the methods


def pca_2d(matrix: np.ndarray) -> np.ndarray:
    """First two principal components via the C x C covariance (fast for V >> C)."""
    x = np.asarray(matrix, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)  # (N, C)
    cov = x.T @ x / max(len(x) - 1, 1)  # (C, C)
    vals, vecs = np.linalg.eigh(cov)
    comps = vecs[:, ::-1][:, :2]  # (C, 2) largest variance first
    if comps.shape[1] < 2:
        comps = np.pad(comps, ((0, 0), (0, 2 - comps.shape[1])))
    # eigenvectors have arbitrary sign; fix it so the same matrix always gives the same picture
    signs = np.sign(comps[np.abs(comps).argmax(axis=0), range(comps.shape[1])])
    comps = comps * np.where(signs == 0, 1, signs)
    return (x @ comps).astype(np.float32)  # (N, 2)


class _TqdmSink:
    """A file-like object tqdm writes to; parses 'NN%' so a job can report epochs done."""

    def __init__(self, report: Callable[[float], None]):
        self._report = report

    def write(self, s: str) -> int:
        found = re.findall(r"(\d+)%", s)
        if found:
            self._report(int(found[-1]) / 100.0)
        return len(s)

    def flush(self) -> None:
        pass


def umap_2d(matrix, seed=0, params=None, progress: Callable[[float], None] | None = None):
    umap = _import_umap()
    p = _params("umap", params)
    n = len(matrix)
    kw = {}
    if progress is not None:
        kw["tqdm_kwds"] = {"disable": False, "file": _TqdmSink(progress), "mininterval": 0.2}
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(p["n_neighbors"], max(n - 1, 2)),
        min_dist=p["min_dist"],
        metric=p["metric"],
        n_epochs=p["n_epochs"],
        random_state=seed,  # determinism (STYLE 17); costs parallelism, measured acceptable
        force_approximation_algorithm=True,
        low_memory=True,
        n_jobs=1,  # random_state forces one thread anyway; saying so silences a warning
        **kw,
    )
    return reducer.fit_transform(np.asarray(matrix, dtype=np.float32)).astype(np.float32)


def tsne_2d(matrix, seed=0, params=None):
    from sklearn.manifold import TSNE

    p = _params("tsne", params)
    n = len(matrix)
    tsne = TSNE(
        n_components=2,
        perplexity=min(p["perplexity"], max((n - 1) / 3, 1.0)),
        metric=p["metric"],
        init="pca",
        random_state=seed,
    )
    return tsne.fit_transform(np.asarray(matrix, dtype=np.float32)).astype(np.float32)


def project(
    matrix: np.ndarray,
    method: str = "pca",
    seed: int = 0,
    cache_dir: Path | str | None = None,
    params: dict | None = None,
    progress: Callable[[float], None] | None = None,
    digest: str | None = None,
) -> np.ndarray:
    """Project an (N, C) matrix to (N, 2), reading/writing the on-disk cache."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or len(matrix) < 3:
        raise ValueError(f"need an (N, C) matrix with N >= 3, got shape {matrix.shape}")
    digest = digest or matrix_hash(matrix)
    hit = cached(matrix, method, seed, params, cache_dir, digest)
    if hit is not None:
        return hit
    if method == "pca":
        out = pca_2d(matrix)
    elif method == "umap":
        out = umap_2d(matrix, seed, params, progress)
    else:
        out = tsne_2d(matrix, seed, params)
    path = _cache_file(cache_dir, cache_key(matrix, method, seed, params, digest))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}-{threading.get_ident()}.npy")
        np.save(tmp, out)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none
    except OSError:
        pass  # a read-only cache only costs time
    return out


# --------------------------------------------------------------------------- numba warm-up

_warm = {"state": "cold", "seconds": None, "error": None}
_warm_lock = threading.Lock()


def umap_warm_state() -> dict:
    """{'state': 'cold'|'warming'|'warm'|'failed', 'seconds': float|None, 'error': str|None}."""
    return dict(_warm)


def _warm_up() -> None:
    t0 = time.perf_counter()
    try:
        # the same settings as a real fit (metric, approximate neighbours, one thread): numba
        # compiles one specialisation per combination, so a euclidean warm-up leaves cosine cold
        data = np.random.default_rng(0).normal(size=(4096, 16)).astype(np.float32)
        umap_2d(data, seed=0, params={"n_epochs": 10})
        _warm.update(state="warm", seconds=time.perf_counter() - t0)
    except Exception as exc:  # warm-up is an optimisation; failure must not break anything
        _warm.update(state="failed", error=f"{type(exc).__name__}: {exc}")


def warm_up_umap(block: bool = False) -> threading.Thread | None:
    """Compile UMAP's numba code once per process, in a daemon thread (or inline if block)."""
    with _warm_lock:
        if _warm["state"] != "cold":
            return None
        _warm["state"] = "warming"
    if block:
        _warm_up()
        return None
    t = threading.Thread(target=_warm_up, name="umap-warm-up", daemon=True)
    t.start()
    return t


# --------------------------------------------------------------------------- run_dir/maps


def precompute_maps(
    run_dir: Path | str,
    methods: tuple[str, ...] = ("pca", "umap"),
    seed: int = 0,
    matrix: np.ndarray | None = None,
) -> Path:
    """Write run_dir/maps/{method}.npy (float32, (V, 2)) + index.json for the token embeddings.

    The matrix defaults to the token-embedding table of the run's latest checkpoint. index.json
    is the folder's manifest: the hash of the matrix the maps were made from (a map of other
    weights is never shown), and each file's sha256, parameters and compute time.
    """
    run_dir = Path(run_dir)
    if matrix is None:
        from core.checkpoint import load_checkpoint

        ck = load_checkpoint(run_dir)
        matrix = ck.model.tok_emb.weight.detach().float().numpy()
    matrix = np.asarray(matrix, dtype=np.float32)
    out_dir = run_dir / "maps"
    out_dir.mkdir(parents=True, exist_ok=True)
    index = {
        "version": MAPS_VERSION,
        "matrix_hash": matrix_hash(matrix),
        "shape": list(matrix.shape),
    }
    index["maps"] = {}
    for method in methods:
        t0 = time.perf_counter()
        xy = project(matrix, method, seed=seed)
        np.save(out_dir / f"{method}.npy", xy.astype(np.float32))
        index["maps"][method] = {
            "file": f"{method}.npy",
            "sha256": hashlib.sha256((out_dir / f"{method}.npy").read_bytes()).hexdigest(),
            "seed": seed,
            "params": _params(method, None),
            "seconds": round(time.perf_counter() - t0, 2),
        }
    (out_dir / "index.json").write_text(json.dumps(index, indent=1))
    return out_dir


def load_maps(
    run_dir: Path | str | None, matrix: np.ndarray | None = None, digest: str | None = None
) -> dict[str, np.ndarray]:
    """Precomputed maps of run_dir ({method: (V, 2)}); empty when absent or stale.

    With `matrix` (or its `digest`, matrix_hash(matrix)), a map is used only if it was made from
    exactly that matrix.
    """
    if run_dir is None:
        return {}
    folder = Path(run_dir) / "maps"
    try:
        index = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError):
        return {}
    if digest is None and matrix is not None:
        digest = matrix_hash(matrix)
    if digest is not None and index.get("matrix_hash") != digest:
        return {}
    out = {}
    try:
        rows = int(index["shape"][0])
        maps = dict(index.get("maps", {}))
    except (KeyError, TypeError, ValueError, IndexError):
        return {}
    for method, meta in maps.items():
        try:  # the file's name only: an index cannot point outside maps/
            xy = np.load(folder / Path(str(meta["file"])).name)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if xy.ndim == 2 and xy.shape[1] == 2 and xy.shape[0] == rows:
            out[method] = xy.astype(np.float32)
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Precompute embedding maps into RUN_DIR/maps/.")
    ap.add_argument("run_dir")
    ap.add_argument("--methods", default="pca,umap", help="comma list of pca,umap,tsne")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    out = precompute_maps(a.run_dir, tuple(a.methods.split(",")), seed=a.seed)
    print(json.loads((out / "index.json").read_text()))


if __name__ == "__main__":
    main()
