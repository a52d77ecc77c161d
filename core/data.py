"""Token ids for training: compact numpy arrays, a train/val split, and sliding windows.

A corpus becomes one long array of ids (uint16 when the vocabulary has at most 65536 tokens,
else uint32: 2 or 4 bytes a token instead of a Python int's 28). Large corpora live on disk as
a raw array (`ids.bin`) with a small JSON side file (`ids.bin.json`: dtype, length, tokenizer
hash) and are opened with np.memmap, so only the windows a batch touches are read.

A training example is a window of T = context_length ids and the same window shifted by one:
the model reads input[t] and learns to predict target[t] = input[t + 1]. Windows start every
`stride` ids (stride = T: no overlap; stride = 1: every position).
Reference: Raschka, "Build a Large Language Model (From Scratch)", ch. 2 (data sampling with a
sliding window); Karpathy's nanoGPT (uint16 memmap + random batches).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.tokenizer import ENDOFTEXT

FORMAT = "glassbox-ids/1"
_PIECE = 4_000_000  # encode long texts a few MB at a time, cut at <|endoftext|>


def ids_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 65536 else np.uint32)


def _pieces(text: str):
    """Cut at <|endoftext|> (a special token is its own chunk, so ids are unchanged)."""
    if len(text) <= _PIECE or ENDOFTEXT not in text:
        yield text
        return
    start = 0
    while start < len(text):
        cut = text.find(ENDOFTEXT, start + _PIECE)
        end = len(text) if cut < 0 else cut
        yield text[start:end]
        start = end


def encode_corpus(tokenizer, text: str, path=None) -> np.ndarray:
    """Encode `text` into a uint16/uint32 array; with `path`, write it there and memory-map it."""
    dtype = ids_dtype(tokenizer.vocab_size)
    parts = [np.asarray(tokenizer.encode(p), dtype=dtype) for p in _pieces(text)]
    ids = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if path is None:
        return ids
    return save_ids(ids, path, tokenizer_hash=getattr(tokenizer, "content_hash", None))


def save_ids(ids: np.ndarray, path, tokenizer_hash: str | None = None) -> np.memmap:
    """Write a raw id array plus its JSON side file; return it memory-mapped (read-only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = np.ascontiguousarray(ids)
    tmp = path.with_name(path.name + ".tmp")
    ids.tofile(tmp)
    tmp.replace(path)
    meta = {
        "format": FORMAT,
        "dtype": ids.dtype.name,
        "length": int(ids.size),
        "tokenizer_hash": tokenizer_hash,
    }
    _side(path).write_text(json.dumps(meta), encoding="utf-8")
    return load_ids(path)


def load_ids(path) -> np.memmap:
    """Open ids written by `save_ids` without reading them into memory."""
    path = Path(path)
    try:
        meta = json.loads(_side(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: missing or unreadable side file {_side(path).name}: {e}") from e
    dtype = np.dtype(meta["dtype"])
    expected = meta["length"] * dtype.itemsize
    if path.stat().st_size != expected:
        raise ValueError(f"{path} holds {path.stat().st_size} bytes; the side file says {expected}")
    if meta["length"] == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(meta["length"],))


def _side(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def split_train_val(ids: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The first (1 - val_fraction) of the ids for training, the rest for validation (views)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    cut = len(ids) - int(round(len(ids) * val_fraction))
    return ids[:cut], ids[cut:]


class WindowDataset:
    """Windows of `context_length` ids every `stride` ids: item i = (input, target), each (T,).

    Works as a map-style torch Dataset (len + getitem); items are int64 numpy arrays.
    """

    def __init__(self, ids: np.ndarray, context_length: int, stride: int | None = None):
        if context_length < 1:
            raise ValueError("context_length must be at least 1")
        stride = context_length if stride is None else stride
        if stride < 1:
            raise ValueError("stride must be at least 1")
        self.ids = ids
        self.context_length = context_length
        self.stride = stride

    def __len__(self) -> int:
        # a window needs T + 1 ids (the target is shifted by one)
        usable = len(self.ids) - self.context_length - 1
        return 0 if usable < 0 else usable // self.stride + 1

    def start(self, i: int) -> int:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range ({len(self)} windows)")
        return i * self.stride

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.start(i)
        w = np.asarray(self.ids[s : s + self.context_length + 1], dtype=np.int64)
        return w[:-1], w[1:]

    def batches(
        self, batch_size: int, *, shuffle: bool = True, seed: int = 0, drop_last: bool = True
    ):
        """Yield (input, target) as (B, T) int64 arrays over one pass of the windows."""
        order = np.arange(len(self))
        if shuffle:
            np.random.default_rng(seed).shuffle(order)
        stop = len(order) - (len(order) % batch_size if drop_last else 0)
        offsets = np.arange(self.context_length + 1)
        for b in range(0, stop, batch_size):
            starts = order[b : b + batch_size] * self.stride
            w = np.asarray(self.ids[starts[:, None] + offsets], dtype=np.int64)  # (B, T+1)
            yield w[:, :-1], w[:, 1:]


def _draw_starts(high: int, batch: int, generator) -> np.ndarray:
    if generator is None or isinstance(generator, int | np.integer):
        generator = np.random.default_rng(generator)
    if isinstance(generator, np.random.Generator):
        return generator.integers(0, high, size=batch)
    if hasattr(generator, "manual_seed"):  # a torch.Generator
        import torch

        return torch.randint(high, (batch,), generator=generator).numpy()
    raise TypeError("generator must be a numpy Generator, a torch Generator or an int seed")


def sample_batch(ids: np.ndarray, batch: int, context_length: int, generator=None):
    """`batch` windows at random start positions: (input, target), each (B, T) int64.

    `generator`: np.random.Generator, torch.Generator or an int seed (same seed => same batch).
    """
    high = len(ids) - context_length  # last start leaves room for the shifted target
    if high < 1:
        raise ValueError(
            f"{len(ids)} ids are too few for context_length {context_length} (need at least "
            f"{context_length + 1})"
        )
    starts = _draw_starts(high, batch, generator)
    w = np.asarray(ids[starts[:, None] + np.arange(context_length + 1)], dtype=np.int64)  # (B, T+1)
    return w[:, :-1], w[:, 1:]


def window_records(tokenizer, ids, context_length: int, stride: int | None = None, n: int = 4):
    """The first `n` windows as records for the Tokenize page (ids and labels, input/target)."""
    ids = np.asarray(ids)
    if 2 <= len(ids) <= context_length:  # a short text still shows its one (shorter) window
        context_length = len(ids) - 1
    ds = WindowDataset(ids, context_length, stride)
    out = []
    for i in range(min(n, len(ds))):
        x, y = ds[i]
        out.append(
            {
                "window": i,
                "start": ds.start(i),
                "input_ids": x.tolist(),
                "target_ids": y.tolist(),
                "input_labels": [tokenizer.token_label(t) for t in x.tolist()],
                "target_labels": [tokenizer.token_label(t) for t in y.tolist()],
            }
        )
    return out
