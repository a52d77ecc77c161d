"""The one place with st.cache_resource / st.cache_data (STYLE rule 13).

Models and tokenizers are st.cache_resource: one read-only object shared by every session and
thread (never mutate them). Derived arrays are st.cache_data with max_entries, keyed by small
hashable arguments; an unhashable object is passed as `_obj` next to an explicit key.
The work itself lives in explorer/compute.py (torch, no streamlit).
"""

from __future__ import annotations

import contextlib
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
        if isinstance(exc, ModelUnavailable):
            raise ValueError(str(exc)) from exc
        raise ValueError(f"This upload is not a loadable checkpoint: {exc}") from exc
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
# The public functions therefore key on (key, serial of the object): a number given to each
# object the first time it is seen and never reused, even after the object is freed.

_SERIALS: dict[int, int] = {}
_NEXT_SERIAL = itertools.count()
_SERIALS_LOCK = threading.Lock()


def _ident(key: str, obj) -> str:
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


@st.cache_data(max_entries=64, show_spinner=False)
def _token_records(ident: str, _tokenizer, text: str, limit: int | None) -> list[dict]:
    return compute.token_records(_tokenizer, text, limit)


def token_records(tok_key: str, tokenizer, text: str, limit: int | None = None) -> list[dict]:
    return _token_records(_ident(tok_key, tokenizer), tokenizer, text, limit)


@st.cache_data(max_entries=32, show_spinner=False)
def _count_tokens(ident: str, _tokenizer, text: str) -> int:
    return len(_tokenizer.encode(text))


def count_tokens(tok_key: str, tokenizer, text: str) -> int:
    return _count_tokens(_ident(tok_key, tokenizer), tokenizer, text)


@st.cache_data(max_entries=16, show_spinner=False)
def _bpe_replay(ident: str, _tokenizer, text: str) -> dict:
    return compute.bpe_replay(_tokenizer, text)


def bpe_replay(tok_key: str, tokenizer, text: str) -> dict:
    """The merges that change `text`, token counts and labels after each (compute.bpe_replay)."""
    return _bpe_replay(_ident(tok_key, tokenizer), tokenizer, text)


@st.cache_data(max_entries=16, show_spinner=False)
def _window_records(ident: str, _tokenizer, text: str, context_length: int, stride: int, n: int):
    return compute.window_records(_tokenizer, text, context_length, stride, n)


def window_records(tok_key: str, tokenizer, text: str, context_length: int, stride: int, n: int):
    return _window_records(_ident(tok_key, tokenizer), tokenizer, text, context_length, stride, n)


# --- model outputs -----------------------------------------------------------------------------


@st.cache_data(max_entries=4, show_spinner=False)
def _vocab_labels(ident: str, _tokenizer) -> list[str]:
    return compute.vocab_labels(_tokenizer)


def vocab_labels(model_key: str, tokenizer) -> list[str]:
    return _vocab_labels(_ident(model_key, tokenizer), tokenizer)


@st.cache_data(max_entries=64, show_spinner=False)
def _next_token_logits(ident: str, _model, ids: tuple[int, ...]):
    return compute.next_token_logits(_model, ids)


def next_token_logits(model_key: str, model, ids: tuple[int, ...]):
    return _next_token_logits(_ident(model_key, model), model, ids)


@st.cache_data(max_entries=128, show_spinner=False)
def _sampling_stages(ident: str, _model, ids: tuple[int, ...], temperature, top_k, top_p):
    from core.sampling import sampling_stages as _stages

    logits = _next_token_logits(ident, _model, ids)
    return _stages(logits, temperature=temperature, top_k=top_k, top_p=top_p)


def sampling_stages(model_key: str, model, ids: tuple[int, ...], temperature, top_k, top_p):
    return _sampling_stages(_ident(model_key, model), model, ids, temperature, top_k, top_p)


@st.cache_data(max_entries=64, show_spinner=False)
def _generate(ident: str, _model, ids: tuple[int, ...], max_new, temperature, top_k, top_p, seed):
    return compute.generate(_model, ids, max_new, temperature, top_k, top_p, seed)


def generate(model_key: str, model, ids: tuple[int, ...], max_new, temperature, top_k, top_p, seed):
    args = (ids, max_new, temperature, top_k, top_p, seed)
    return _generate(_ident(model_key, model), model, *args)


@st.cache_data(max_entries=16, show_spinner=False)
def _diversity(
    ident: str, _model, ids: tuple[int, ...], temps: tuple, n, max_new, top_k, top_p, seed
):
    return compute.diversity(_model, ids, temps, n, max_new, top_k, top_p, seed)


def diversity(
    model_key: str, model, ids: tuple[int, ...], temps: tuple, n, max_new, top_k, top_p, seed
):
    args = (ids, temps, n, max_new, top_k, top_p, seed)
    return _diversity(_ident(model_key, model), model, *args)
