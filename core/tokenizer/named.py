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


# tiktoken's "gpt2" constructor caches GPT-2's original merges file instead (same ranks)
GPT2_VOCAB_BPE = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe"
GPT2_VOCAB_BPE_SHA = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"


def candidates(name: str) -> list[Path]:
    key = _canonical(name)
    out = []
    if os.environ.get("GLASSBOX_TIKTOKEN_DIR"):
        out.append(Path(os.environ["GLASSBOX_TIKTOKEN_DIR"]) / NAMED[key][0])
    out.append(cache_file(key))
    if key == "r50k_base":
        out.append(tiktoken_cache_dir() / hashlib.sha1(GPT2_VOCAB_BPE.encode()).hexdigest())
    return out


def find_ranks_file(name: str) -> Path | None:
    return next((p for p in candidates(name) if p.is_file()), None)


def available_named_encodings() -> dict[str, bool]:
    """{name: whether its ranks file is on this machine} (presence only: cheap)."""
    return {n: find_ranks_file(n) is not None for n in NAMES}


def _gpt2_byte_decoder() -> dict[str, int]:
    """GPT-2's merges files spell each byte as a printable character (bytes_to_unicode)."""
    printable = [b for b in range(256) if chr(b).isprintable() and chr(b) != " "]
    table = {chr(b): b for b in printable}
    n = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + n)] = b
            n += 1
    return table


def read_merges_file(data: bytes) -> dict[bytes, int]:
    """GPT-2's vocab.bpe / a Hugging Face merges.txt: "#version" then one "left right" per line.

    The single bytes take ranks 0-255 in GPT-2's order (printable first), then one per merge,
    as tiktoken's data_gym_to_mergeable_bpe_ranks does.
    """
    table = _gpt2_byte_decoder()
    ranks = {bytes([b]): i for i, b in enumerate(table.values())}
    for line in data.decode("utf-8").splitlines():
        if not line or line.startswith("#version"):
            continue
        left, right = line.split(" ")
        ranks[bytes(table[c] for c in left) + bytes(table[c] for c in right)] = len(ranks)
    return ranks


def read_ranks(path, expected_sha256: str | None = None) -> dict[bytes, int]:
    """Parse a .tiktoken file (one "base64(token bytes) rank" per line), or GPT-2's merges
    file (vocab.bpe / merges.txt), or a folder holding merges.txt."""
    path = Path(path)
    if path.is_dir():
        path = path / "merges.txt"
    data = path.read_bytes()
    if data.startswith(b"#version"):
        if expected_sha256 and hashlib.sha256(data).hexdigest() != GPT2_VOCAB_BPE_SHA:
            raise TokenizerError(f"{path} is not GPT-2's merges file (sha256 mismatch)")
        try:
            return read_merges_file(data)
        except (ValueError, KeyError, UnicodeDecodeError) as e:
            raise TokenizerError(f"{path} is not a GPT-2 merges file: {e!r}") from e
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

    `path`: a .tiktoken file the user points to (checked against the published sha256), or for
    GPT-2 its merges file (vocab.bpe) or a Hugging Face GPT-2 folder holding merges.txt.
    Raises TokenizerUnavailable ("not available offline") when no file is found.
    `verify=False` skips the sha256 check (tests build small stand-in files).
    """
    key = _canonical(name)
    if path is not None:
        found = Path(path)
        if found.is_dir() and (found / "merges.txt").is_file():
            found = found / "merges.txt"
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
