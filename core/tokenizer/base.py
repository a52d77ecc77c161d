"""What every tokenizer offers, and the small helpers they share.

A tokenizer maps text to integer ids and back. The app shows tokens as chips, so each one also
gives its raw bytes and a display label; a label never hides bytes behind U+FFFD (a token that
holds half of a UTF-8 character is shown as e.g. "<0xE2>").
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Protocol, runtime_checkable


class TokenizerError(ValueError):
    """Bad tokenizer input or file, with a message a person can act on."""


class TokenizerUnavailable(TokenizerError):
    """A named tokenizer whose files are not on this machine (and nothing downloads)."""


@runtime_checkable
class Tokenizer(Protocol):
    name: str
    vocab_size: int
    eot_id: int | None

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids) -> str: ...
    def token_bytes(self, id: int) -> bytes: ...
    def token_label(self, id: int) -> str: ...
    def save(self, path) -> None: ...

    @property
    def content_hash(self) -> str: ...


def clean_text(text: str) -> str:
    """Lone surrogates cannot be UTF-8 encoded; tiktoken replaces them with U+FFFD, so do we."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def bytes_label(b: bytes) -> str:
    """Readable text for a token's bytes: valid UTF-8 as text, other bytes as <0xNN>."""
    out: list[str] = []
    i = 0
    while i < len(b):
        lead = b[i]
        width = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4
        try:
            out.append(b[i : i + width].decode("utf-8"))
            i += width
        except UnicodeDecodeError:  # a stray continuation byte or a cut-off character
            out.append(f"<0x{lead:02X}>")
            i += 1
    return "".join(out)


def canonical_json(obj) -> str:
    """JSON with sorted keys and no spaces: the text a content hash is taken of."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def hash_payload(payload: dict) -> str:
    """sha256 of the canonical JSON of everything that decides the ids."""
    return hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest()


def write_json(path, payload: dict) -> Path:
    """Write a tokenizer file atomically (temp file + rename) so a crash leaves no half file."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=True), encoding="utf-8")
    tmp.replace(path)
    return path
