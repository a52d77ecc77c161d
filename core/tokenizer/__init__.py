"""Tokenizers: byte-level BPE trained from scratch (run through tiktoken), the book's simple
character and word tokenizers, and OpenAI's named encodings when their files are on this machine.

    tok = train_bpe(text, 4096)          # a BPETokenizer
    ids = tok.encode("Once upon a time")  # tiktoken speed
    tok.trace("Once")                     # the merges, as records
    tok.replay("Once")[k]                 # ids after the first k merges
    tok.save("tokenizer.json"); load_tokenizer("tokenizer.json")

Reference: Raschka, "Build a Large Language Model (From Scratch)", ch. 2.
"""

from __future__ import annotations

import json
from pathlib import Path

from .base import Tokenizer, TokenizerError, TokenizerUnavailable, bytes_label, hash_payload
from .bpe import BPETokenizer, train_bpe
from .explain import Replay
from .named import available_named_encodings, named_encoding, read_ranks
from .patterns import ENDOFTEXT, GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN
from .simple import UNK, CharTokenizer, SimpleWordTokenizer

__all__ = [
    "ENDOFTEXT",
    "GPT2_PATTERN",
    "GPT4_PATTERN",
    "O200K_PATTERN",
    "UNK",
    "BPETokenizer",
    "CharTokenizer",
    "Replay",
    "SimpleWordTokenizer",
    "Tokenizer",
    "TokenizerError",
    "TokenizerUnavailable",
    "available_named_encodings",
    "bytes_label",
    "load_tokenizer",
    "named_encoding",
    "train_bpe",
]

_TYPES = {"bpe": BPETokenizer, "char": CharTokenizer, "word": SimpleWordTokenizer}


def tokenizer_from_dict(payload: dict):
    """Build a tokenizer from its saved JSON, checking the content hash when there is one."""
    if not isinstance(payload, dict) or "type" not in payload:
        raise TokenizerError("not a tokenizer file: no 'type' field")
    kind = payload["type"]
    if kind not in _TYPES:
        raise TokenizerError(f"unknown tokenizer type {kind!r}; known: {', '.join(_TYPES)}")
    stored = payload.get("hash")
    body = {k: v for k, v in payload.items() if k != "hash"}
    if stored is not None and hash_payload(body) != stored:
        raise TokenizerError("the tokenizer file is corrupt: its content hash does not match")
    return _TYPES[kind].from_dict(body)


def load_tokenizer(path) -> Tokenizer:
    """Load a tokenizer saved with `.save()`: a JSON file, or a folder holding tokenizer.json.

    A `.tiktoken` ranks file is loaded as a BPETokenizer with the GPT-4 pattern (or the
    pattern of the named encoding its file name matches, e.g. r50k_base.tiktoken).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise TokenizerError(f"no tokenizer file at {path}")
    if path.suffix == ".tiktoken":
        stem = path.stem
        try:
            return named_encoding(stem, path, verify=False)
        except TokenizerUnavailable:
            raise
        except TokenizerError:
            return BPETokenizer.from_ranks(read_ranks(path), name=stem)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerError(f"{path} is not a tokenizer JSON file: {e}") from e
    return tokenizer_from_dict(payload)
