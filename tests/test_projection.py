"""core.projection: PCA correctness, the on-disk cache (hit/miss), precomputed maps."""

import hashlib
import json

import numpy as np
import pytest

from core import projection as P


def test_pca_matches_svd(tmp_path):
    rng = np.random.default_rng(0)
    m = rng.normal(size=(200, 16)).astype(np.float32) * np.linspace(3, 0.1, 16)
    xy = P.project(m, "pca", cache_dir=tmp_path)
    assert xy.shape == (200, 2) and xy.dtype == np.float32
    c = m - m.mean(0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    ref = c @ vt[:2].T
    for j in range(2):  # equal up to sign
        assert np.allclose(np.abs(xy[:, j]), np.abs(ref[:, j]), atol=1e-3)


def test_cache_hit_and_miss(tmp_path, monkeypatch):
    m = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    assert P.cached(m, "pca", cache_dir=tmp_path) is None
    first = P.project(m, "pca", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    monkeypatch.setattr(P, "pca_2d", lambda _: pytest.fail("cache hit must not recompute"))
    np.testing.assert_array_equal(P.project(m, "pca", cache_dir=tmp_path), first)
    m2 = m.copy()
    m2[0, 0] += 1  # one changed number is a different key
    assert P.cache_key(m, "pca") != P.cache_key(m2, "pca")
    assert P.cache_key(m, "umap", seed=0) != P.cache_key(m, "umap", seed=1)
    assert P.cache_key(m, "umap") != P.cache_key(m, "umap", params={"n_neighbors": 5})
    assert P.cached(m2, "pca", cache_dir=tmp_path) is None


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="method"):
        P.project(np.zeros((10, 3)), "mds", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="N >= 3"):
        P.project(np.zeros((2, 3)), "pca", cache_dir=tmp_path)


def test_precompute_and_load_maps(tmp_path):
    m = np.random.default_rng(2).normal(size=(64, 8)).astype(np.float32)
    out = P.precompute_maps(tmp_path, methods=("pca",), matrix=m)
    index = json.loads((out / "index.json").read_text())
    assert index["matrix_hash"] == P.matrix_hash(m) and "pca" in index["maps"]
    digest = hashlib.sha256((out / "pca.npy").read_bytes()).hexdigest()
    assert index["maps"]["pca"]["sha256"] == digest
    maps = P.load_maps(tmp_path, m)
    assert set(maps) == {"pca"} and maps["pca"].shape == (64, 2)
    assert P.load_maps(tmp_path, m + 1) == {}  # stale: another model's table
    assert P.load_maps(tmp_path / "nowhere") == {} and P.load_maps(None) == {}
    # a hand-made index never reads outside maps/ and a broken one means no maps
    outside = tmp_path / "secret.npy"
    np.save(outside, np.zeros((64, 2), dtype=np.float32))
    bad = {**index, "maps": {"pca": {"file": "../secret.npy"}}}
    (out / "index.json").write_text(json.dumps(bad))
    assert P.load_maps(tmp_path, m) == {}
    for broken in (
        {**index, "shape": None},
        {**index, "maps": {"pca": None}},
        {**index, "maps": 3},
    ):
        (out / "index.json").write_text(json.dumps(broken))
        assert P.load_maps(tmp_path, m) == {}


@pytest.mark.slow
def test_umap_runs_reports_progress_and_caches(tmp_path):
    m = np.random.default_rng(3).normal(size=(300, 8)).astype(np.float32)
    seen = []
    xy = P.project(m, "umap", cache_dir=tmp_path, params={"n_epochs": 20}, progress=seen.append)
    assert xy.shape == (300, 2) and np.isfinite(xy).all()
    assert seen and seen[-1] == pytest.approx(1.0)
    assert P.cached(m, "umap", cache_dir=tmp_path, params={"n_epochs": 20}) is not None
