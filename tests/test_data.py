"""Token ids in numpy: compact dtypes, memory-mapped files, splits, windows and batches."""

import numpy as np
import pytest

from core.corpora import tinytales
from core.data import (
    WindowDataset,
    encode_corpus,
    ids_dtype,
    load_ids,
    sample_batch,
    save_ids,
    split_train_val,
    window_records,
)
from core.tokenizer import CharTokenizer, train_bpe


@pytest.fixture(scope="module")
def tok():
    return train_bpe(tinytales.generate(30_000), 400)


def test_dtype_by_vocab():
    assert ids_dtype(4096) == np.uint16 and ids_dtype(65536) == np.uint16
    assert ids_dtype(65537) == np.uint32 and ids_dtype(200_000) == np.uint32


def test_encode_corpus_matches_encode(tok, monkeypatch):
    text = tinytales.generate(50_000, seed=3)
    ids = encode_corpus(tok, text)
    assert ids.dtype == np.uint16
    assert ids.tolist() == tok.encode(text)
    # long texts are encoded piecewise at <|endoftext|>: the ids must not change
    import core.data as D

    monkeypatch.setattr(D, "_PIECE", 1000)
    assert encode_corpus(tok, text).tolist() == tok.encode(text)


def test_memmap_roundtrip(tok, tmp_path):
    text = tinytales.generate(20_000)
    m = encode_corpus(tok, text, tmp_path / "ids.bin")
    assert isinstance(m, np.memmap) and not m.flags.writeable
    assert m.tolist() == tok.encode(text)
    assert (tmp_path / "ids.bin").stat().st_size == 2 * len(m)
    again = load_ids(tmp_path / "ids.bin")
    assert np.array_equal(again, m)
    big = save_ids(np.arange(70_000, 70_010, dtype=np.uint32), tmp_path / "big.bin")
    assert big.dtype == np.uint32 and big[-1] == 70_009
    (tmp_path / "ids.bin").write_bytes(b"\x00" * 3)
    with pytest.raises(ValueError, match="side file says"):
        load_ids(tmp_path / "ids.bin")
    with pytest.raises(ValueError, match="side file"):
        load_ids(tmp_path / "nothing.bin")


def test_split():
    ids = np.arange(1000, dtype=np.uint16)
    train, val = split_train_val(ids, 0.1)
    assert len(train) == 900 and len(val) == 100
    assert train[-1] + 1 == val[0]  # contiguous, in order
    assert np.shares_memory(train, ids)  # views, not copies
    with pytest.raises(ValueError):
        split_train_val(ids, 1.0)


def test_windows_shift_by_one():
    ids = np.arange(20, dtype=np.uint16)
    ds = WindowDataset(ids, context_length=4, stride=3)
    # starts 0, 3, ..., the last start s needs s + 4 < 20
    assert len(ds) == len(range(0, 20 - 4, 3))
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == np.int64 and x.shape == (4,)
        assert np.array_equal(y, x + 1)
        assert x[0] == 3 * i
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert len(WindowDataset(ids[:4], 4)) == 0 and len(WindowDataset(ids[:5], 4)) == 1
    xb, yb = next(ds.batches(2, shuffle=False))
    assert xb.shape == (2, 4) and np.array_equal(xb[1], ds[1][0])
    seen = [x[:, 0].tolist() for x, _ in ds.batches(2, shuffle=True, seed=1)]
    assert len(ds) % 2 == 0  # so drop_last drops nothing: one pass sees every window once
    assert sorted(sum(seen, [])) == [3 * i for i in range(len(ds))]


def test_sample_batch_is_seeded():
    ids = np.arange(500, dtype=np.uint16)
    x1, y1 = sample_batch(ids, 8, 16, np.random.default_rng(5))
    x2, y2 = sample_batch(ids, 8, 16, np.random.default_rng(5))
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert x1.shape == (8, 16) and x1.dtype == np.int64
    assert np.array_equal(y1, x1 + 1) and y1.max() < 500
    x3, _ = sample_batch(ids, 8, 16, 6)
    assert not np.array_equal(x1, x3)
    torch = pytest.importorskip("torch")
    a, _ = sample_batch(ids, 4, 8, torch.Generator().manual_seed(0))
    b, _ = sample_batch(ids, 4, 8, torch.Generator().manual_seed(0))
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="too few"):
        sample_batch(ids[:10], 2, 10, 0)


def test_window_records(tok):
    text = "Once upon a time, there was a little fox. The little fox liked to run."
    ids = tok.encode(text)
    recs = window_records(tok, ids, context_length=6, stride=3, n=2)
    assert [r["start"] for r in recs] == [0, 3]
    for r in recs:
        assert r["input_ids"][1:] == r["target_ids"][:-1]
        assert r["input_labels"] == [tok.token_label(i) for i in r["input_ids"]]
    assert "".join(recs[0]["input_labels"]) == tok.decode(ids[:6])
    short = window_records(CharTokenizer("abc"), [0, 1, 2], context_length=8, n=3)
    assert len(short) == 1 and short[0]["input_ids"] == [0, 1] and short[0]["target_ids"] == [1, 2]
