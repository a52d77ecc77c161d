"""The one place with st.cache_resource / st.cache_data (STYLE rule 13).

Models and tokenizers are st.cache_resource: one read-only object shared by every session and
thread (never mutate them). Derived arrays are st.cache_data with max_entries, keyed by small
hashable arguments; an unhashable object is passed as `_obj` next to an explicit key.
The work itself lives in explorer/compute.py (torch, no streamlit).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import shutil
import tempfile
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from explorer import compute, registry
from explorer.compute import ModelUnavailable

__all__ = ["LoadedModel", "ModelUnavailable", "get_model", "get_tokenizer"]

UPLOAD_ROOT = Path(tempfile.gettempdir()) / "glassbox-uploads"
UPLOAD_MAX_BYTES = 200 * 2**20  # unpacked; the server caps the upload itself (maxUploadSize)


@dataclass(frozen=True)
class LoadedModel:
    key: str
    model: Any  # core.GPT, eval mode, read-only, shared by every session
    tokenizer: Any
    config: Any  # core.config.ModelConfig
    run_dir: Path | None
    label: str = ""
    meta: dict = field(default_factory=dict, hash=False, compare=False)


@st.cache_resource(max_entries=6, show_spinner="Loading the model…")
def _load(key: str, kind: str, path: str | None, version: float, label: str) -> LoadedModel:
    model, tokenizer, config, run_dir, meta = compute.load_model(kind, path)
    return LoadedModel(key, model, tokenizer, config, run_dir, label, meta)


def _version(path: str | None) -> float:
    """Changes when a run dir gets a new checkpoint, so the cache does not serve a stale one."""
    if not path:
        return 0.0
    p = Path(path)
    stamps = [q.stat().st_mtime for q in (p / "LATEST", p / "ckpt" / "LATEST") if q.exists()]
    return max(stamps) if stamps else (p.stat().st_mtime if p.exists() else 0.0)


def resolve_entry(key: str) -> registry.ModelEntry | None:
    """The registry entry for a key, including checkpoints uploaded in this process."""
    if key.startswith("upload:"):
        path = UPLOAD_ROOT / key.split(":", 1)[1]
        if path.is_dir() and key.split(":", 1)[1].isalnum():
            return registry.ModelEntry(key, f"upload {key[7:]}", "upload", str(path))
        return None
    return registry.resolve(key)


def get_model(key: str) -> LoadedModel:
    """The loaded model for a picker key. Raises ModelUnavailable with a page-ready message."""
    entry = resolve_entry(key)
    if entry is None:
        raise ModelUnavailable(f"There is no model called {key!r} on this server.")
    return _load(entry.key, entry.kind, entry.path, _version(entry.path), entry.label)


def save_upload(files: list[tuple[str, bytes]]) -> registry.ModelEntry:
    """Unpack and validate an uploaded checkpoint; its entry, or ValueError with a message."""
    path = compute.unpack_upload(files, UPLOAD_ROOT, UPLOAD_MAX_BYTES)
    key = f"upload:{path.name}"
    try:
        compute.load_model("upload", str(path))
    except Exception as exc:  # noqa: BLE001 - a hostile file must become a message
        shutil.rmtree(path, ignore_errors=True)  # refused uploads must not pile up on disk
        # compute.load_model already names the folder instead of locating it; to the user it
        # is simply their upload
        msg = str(exc).split(" could not be loaded: ", 1)[-1].replace(path.name, "the upload")
        raise ValueError(f"This upload is not a loadable checkpoint: {msg}") from exc
    name = next((n for n, _ in files), "checkpoint")
    return registry.ModelEntry(key, f"upload: {os.path.basename(name)[:40]}", "upload", str(path))


# --- tokenizers --------------------------------------------------------------------------------

COMPARE_TOKENIZERS = ("char", "word", "gpt2", "cl100k_base", "o200k_base")


@st.cache_resource(max_entries=8, show_spinner=False)
def get_tokenizer(name: str):
    """A named tokenizer: "char" and "word" (the book's ch. 2 tokenizers, vocabularies built from
    the built-in tinytales corpus) or a tiktoken encoding ("gpt2", "cl100k_base", "o200k_base").
    Raises core.tokenizer.TokenizerUnavailable when the encoding's files are not on this machine.
    """
    from core.corpora import load_corpus
    from core.tokenizer import CharTokenizer, SimpleWordTokenizer, named_encoding

    if name == "char":
        return CharTokenizer(load_corpus("tinytales", n_bytes=200_000))
    if name == "word":
        return SimpleWordTokenizer(load_corpus("tinytales", n_bytes=200_000))
    return named_encoding(name)


@st.cache_data(max_entries=64, show_spinner=False)
def available_tokenizers() -> dict[str, bool]:
    from core.tokenizer import available_named_encodings

    avail = {"char": True, "word": True}
    avail.update(available_named_encodings())
    return {n: avail.get(n, False) for n in COMPARE_TOKENIZERS}


# Every cached function below takes a small key next to an unhashable object (`_tokenizer`,
# `_model`). The key alone is not enough: "default" names a new model when assets/default is
# replaced, and a run's key names new weights at each checkpoint, so the first load test served
# labels of the old 1416-token vocabulary to a 2048-token model (IndexError on every Generate).
# The functions below therefore key on (key, serial of the object): a number given to each
# object the first time it is seen and never reused, even after the object is freed.

_SERIALS: dict[int, int] = {}
_NEXT_SERIAL = itertools.count()
_SERIALS_LOCK = threading.Lock()


def object_key(key: str, obj) -> str:
    """`key` plus the serial of `obj`: a cache key that names this very object."""
    with _SERIALS_LOCK:
        i = id(obj)
        if i not in _SERIALS:
            _SERIALS[i] = next(_NEXT_SERIAL)
            with contextlib.suppress(TypeError):  # not weak-referenceable: keep its serial
                weakref.finalize(obj, _forget, i)
        return f"{key}#{_SERIALS[i]}"


def _forget(i: int) -> None:
    with _SERIALS_LOCK:
        _SERIALS.pop(i, None)


def _cached_per_object(max_entries: int):
    """st.cache_data for a function whose first two arguments are (key, object): callers pass
    the key, the cache sees (key, serial of the object), and the object itself goes unhashed.
    `.cached` is the cached function itself, taking that ident (one cached function calling
    another with the ident it already has)."""

    def wrap(fn):
        cached = st.cache_data(max_entries=max_entries, show_spinner=False)(fn)

        @functools.wraps(fn)
        def call(key: str, obj, *args, **kwargs):
            return cached(object_key(key, obj), obj, *args, **kwargs)

        call.cached = cached
        return call

    return wrap


@_cached_per_object(64)
def token_records(ident: str, _tokenizer, text: str, limit: int | None = None) -> list[dict]:
    return compute.token_records(_tokenizer, text, limit)


@_cached_per_object(32)
def count_tokens(ident: str, _tokenizer, text: str) -> int:
    return len(_tokenizer.encode(text))


@_cached_per_object(16)
def bpe_replay(ident: str, _tokenizer, text: str) -> dict:
    """The merges that change `text`, token counts and labels after each (compute.bpe_replay)."""
    return compute.bpe_replay(_tokenizer, text)


@_cached_per_object(16)
def window_records(ident: str, _tokenizer, text: str, context_length: int, stride: int, n: int):
    return compute.window_records(_tokenizer, text, context_length, stride, n)


# --- model outputs -----------------------------------------------------------------------------


@_cached_per_object(4)
def vocab_labels(ident: str, _tokenizer, size: int | None = None) -> list[str]:
    return compute.vocab_labels(_tokenizer, size)


@_cached_per_object(64)
def next_token_logits(ident: str, _model, ids: tuple[int, ...]):
    return compute.next_token_logits(_model, ids)


@_cached_per_object(128)
def sampling_stages(ident: str, _model, ids: tuple[int, ...], temperature, top_k, top_p):
    from core.sampling import sampling_stages as _stages

    logits = next_token_logits.cached(ident, _model, ids)
    return _stages(logits, temperature=temperature, top_k=top_k, top_p=top_p)


@_cached_per_object(64)
def generate(ident: str, _model, ids: tuple[int, ...], max_new, temperature, top_k, top_p, seed):
    return compute.generate(_model, ids, max_new, temperature, top_k, top_p, seed)


@_cached_per_object(16)
def diversity(
    ident: str, _model, ids: tuple[int, ...], temps: tuple, n, max_new, top_k, top_p, seed
):
    return compute.diversity(_model, ids, temps, n, max_new, top_k, top_p, seed)
