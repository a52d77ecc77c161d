"""OpenAI's named encodings (gpt2 / r50k_base, cl100k_base, o200k_base), found on this machine.

`tiktoken.get_encoding` downloads its ranks file the first time and caches it under
sha1(url) in TIKTOKEN_CACHE_DIR (or DATA_GYM_CACHE_DIR, or <tmp>/data-gym-cache). Offline it
fails with a connection error, so this module never calls it: it looks for the file itself —
a path the user gives, GLASSBOX_TIKTOKEN_DIR/<name>.tiktoken, then tiktoken's cache — and
raises TokenizerUnavailable with a plain message when it is not there. Files are checked
against the sha256 tiktoken publishes. The result is a BPETokenizer, so trace/replay work on
GPT-2's ranks too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from .base import TokenizerError, TokenizerUnavailable
from .bpe import BPETokenizer
from .patterns import ENDOFTEXT, GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/"

# name -> (file, sha256, pattern, special tokens); "gpt2" has the same ranks as r50k_base
NAMED = {
    "r50k_base": (
        "r50k_base.tiktoken",
        "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
        GPT2_PATTERN,
        {ENDOFTEXT: 50256},
    ),
    "cl100k_base": (
        "cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        GPT4_PATTERN,
        {
            ENDOFTEXT: 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    "o200k_base": (
        "o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        O200K_PATTERN,
        {ENDOFTEXT: 199999, "<|endofprompt|>": 200018},
    ),
}
ALIASES = {"gpt2": "r50k_base"}
NAMES = ("gpt2", "r50k_base", "cl100k_base", "o200k_base")


def _canonical(name: str) -> str:
    key = ALIASES.get(name, name)
    if key not in NAMED:
        raise TokenizerError(f"unknown encoding {name!r}; known: {', '.join(NAMES)}")
    return key


def tiktoken_cache_dir() -> Path:
    """Where tiktoken keeps downloaded files (the same rule as tiktoken.load)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def cache_file(name: str) -> Path:
    """The path tiktoken would cache `name`'s ranks file at: sha1 of its URL."""
    url = _BLOB + NAMED[_canonical(name)][0]
    return tiktoken_cache_dir() / hashlib.sha1(url.encode()).hexdigest()


def candidates(name: str) -> list[Path]:
    key = _canonical(name)
    out = []
    if os.environ.get("GLASSBOX_TIKTOKEN_DIR"):
        out.append(Path(os.environ["GLASSBOX_TIKTOKEN_DIR"]) / NAMED[key][0])
    out.append(cache_file(key))
    return out


def find_ranks_file(name: str) -> Path | None:
    return next((p for p in candidates(name) if p.is_file()), None)


def available_named_encodings() -> dict[str, bool]:
    """{name: whether its ranks file is on this machine} (presence only: cheap)."""
    return {n: find_ranks_file(n) is not None for n in NAMES}


def read_ranks(path, expected_sha256: str | None = None) -> dict[bytes, int]:
    """Parse a .tiktoken file: one "base64(token bytes) rank" per line."""
    data = Path(path).read_bytes()
    if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise TokenizerError(
            f"{path} is not the expected file (sha256 mismatch): corrupt or another version"
        )
    ranks: dict[bytes, int] = {}
    try:
        for line in data.splitlines():
            if line:
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
    except ValueError as e:
        raise TokenizerError(f"{path} is not a tiktoken ranks file: {e}") from e
    return ranks


def named_encoding(name: str, path=None, *, verify: bool = True) -> BPETokenizer:
    """gpt2 / r50k_base / cl100k_base / o200k_base from a local file, never from the network.

    `path`: a .tiktoken file the user points to (checked against the published sha256).
    Raises TokenizerUnavailable ("not available offline") when no file is found.
    `verify=False` skips the sha256 check (tests build small stand-in files).
    """
    key = _canonical(name)
    if path is not None:
        found = Path(path)
        if not found.is_file():
            raise TokenizerUnavailable(f"{name}: the file {found} does not exist")
    else:
        found = find_ranks_file(key)
        if found is None:
            where = " or ".join(str(p) for p in candidates(key))
            raise TokenizerUnavailable(
                f"The {name} tokenizer is not available offline: its ranks file "
                f"{NAMED[key][0]} was not found (looked for {where}). Copy the file there, "
                f"or pass its path."
            )
    return _load(name, str(found), verify)


@lru_cache(maxsize=8)
def _load(name: str, path: str, verify: bool) -> BPETokenizer:
    key = _canonical(name)
    _, sha, pattern, specials = NAMED[key]
    ranks = read_ranks(path, sha if verify else None)
    return BPETokenizer.from_ranks(ranks, pattern=pattern, special_tokens=specials, name=name)
