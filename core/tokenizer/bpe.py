"""BPETokenizer: a byte-level BPE vocabulary run through tiktoken, and `train_bpe` to make one.

The vocabulary is a list of byte strings (ids 0..N-1, the 256 single bytes first, then one per
merge in training order) plus special tokens. It becomes a `tiktoken.Encoding`, whose Rust core
encodes tens of MB/s; `explain.py` holds the readable Python encoder that gives the same ids and
shows its work (`trace`, `replay`).

tiktoken facts this relies on (FIELD-NOTES.md): the ranks must hold all 256 single bytes (a
missing byte is a Rust panic, not an exception), and special tokens need `allowed_special`.

Reference: Raschka, "Build a Large Language Model (From Scratch)", ch. 2; Radford et al. 2019.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path

import regex
import tiktoken

from . import explain
from .base import TokenizerError, bytes_label, hash_payload, write_json
from .bpe_train import count_pretokens, learn_merges
from .patterns import ENDOFTEXT, GPT4_PATTERN, resolve_pattern

FORMAT = "glassbox-tokenizer/1"


class BPETokenizer:
    """Byte-level BPE. `vocab[i]` is the bytes of token i; specials map text -> id."""

    kind = "bpe"

    def __init__(
        self,
        vocab: list[bytes],
        *,
        pattern: str = GPT4_PATTERN,
        special_tokens: dict[str, int] | None = None,
        name: str = "bpe",
        merges: list[tuple[int, int]] | None = None,
    ):
        pattern = resolve_pattern(pattern)
        try:
            regex.compile(pattern)
        except regex.error as e:
            raise TokenizerError(f"the pre-tokenisation pattern is not a valid regex: {e}") from e
        missing = {bytes([i]) for i in range(256)} - set(vocab)
        if missing:  # tiktoken would panic (uncatchable) on a text that needs a missing byte
            raise TokenizerError(
                f"a byte-level vocabulary needs all 256 bytes; {len(missing)} missing"
            )
        self.vocab = list(vocab)
        self.ranks = {b: i for i, b in enumerate(self.vocab)}
        if len(self.ranks) != len(self.vocab):
            raise TokenizerError("the vocabulary holds the same byte string twice")
        self.pattern = pattern
        self.special_tokens = dict(special_tokens or {})
        for s, i in self.special_tokens.items():
            if i < len(self.vocab):
                raise TokenizerError(
                    f"special token {s!r} has id {i}, which a byte token already uses"
                )
        self.name = name
        self._merges = merges
        self._special_by_id = {i: s for s, i in self.special_tokens.items()}
        self.vocab_size = max([len(self.vocab) - 1, *self.special_tokens.values()]) + 1
        self.eot_id = self.special_tokens.get(ENDOFTEXT)
        self.train_stats: dict[str, float] = {}
        try:
            self.encoding = tiktoken.Encoding(
                name,
                pat_str=pattern,
                mergeable_ranks=self.ranks,
                special_tokens=self.special_tokens,
            )
        except ValueError as e:
            raise TokenizerError(f"tiktoken rejected this vocabulary: {e}") from e

    # ---- encoding ------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Text -> ids; special tokens written in the text (e.g. <|endoftext|>) are recognised."""
        return self.encoding.encode(text, allowed_special="all")

    def encode_ordinary(self, text: str) -> list[int]:
        """Text -> ids with special tokens treated as plain text."""
        return self.encoding.encode_ordinary(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.encoding.encode_batch(texts, allowed_special="all")

    def decode(self, ids) -> str:
        """Ids -> text. A cut through a UTF-8 character decodes to U+FFFD (use token_bytes)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids) -> bytes:
        ids = [int(i) for i in ids]
        for i in ids:
            if not (0 <= i < len(self.vocab) or i in self._special_by_id):
                raise TokenizerError(
                    f"token id {i} is not in this vocabulary (size {self.vocab_size})"
                )
        return self.encoding.decode_bytes(ids)

    def token_bytes(self, id: int) -> bytes:
        id = int(id)
        if 0 <= id < len(self.vocab):
            return self.vocab[id]
        if id in self._special_by_id:
            return self._special_by_id[id].encode("utf-8")
        raise TokenizerError(f"token id {id} is not in this vocabulary (size {self.vocab_size})")

    def token_label(self, id: int) -> str:
        """Display text of one token: its UTF-8 text, with undecodable bytes as <0xNN>."""
        id = int(id)
        if id in self._special_by_id:
            return self._special_by_id[id]
        if len(self.vocab) <= id < self.vocab_size:  # an unused id between specials (cl100k)
            return f"<unused {id}>"
        return bytes_label(self.token_bytes(id))

    def is_special(self, id: int) -> bool:
        return int(id) in self._special_by_id

    # ---- the merge history ---------------------------------------------------------------
    @property
    def n_merges(self) -> int:
        return len(self.vocab) - 256

    @cached_property
    def merges(self) -> list[tuple[int, int]]:
        """merges[k] = (left id, right id) that made token vocab[256 + k] (rank order).

        Known for a trained tokenizer; for a ranks file (GPT-2) each split is recovered by
        running BPE on the token's own bytes with only the lower ranks available.
        """
        if self._merges is not None:
            return list(self._merges)
        return [
            explain.recover_merge(self.ranks, self.vocab[r], r) for r in range(256, len(self.vocab))
        ]

    def trace(self, text: str) -> list[dict]:
        """How `text` becomes ids, chunk by chunk (see `explain.trace`)."""
        return explain.trace(self, text)

    def replay(self, text: str) -> explain.Replay:
        """Segmentation of `text` after the first k merges, for every k (see `explain.Replay`)."""
        return explain.Replay(self, text)

    # ---- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        payload = {
            "format": FORMAT,
            "type": "bpe",
            "name": self.name,
            "pattern": self.pattern,
            "special_tokens": self.special_tokens,
        }
        if self._merges is not None or _is_byte_ordered(self.vocab):
            payload["merges"] = [list(m) for m in self.merges]
        else:  # a ranks file whose first 256 ids are not the bytes in order (GPT-2)
            payload["ranks"] = [base64.b64encode(b).decode("ascii") for b in self.vocab]
        return payload

    @cached_property
    def content_hash(self) -> str:
        return hash_payload(self.to_dict())

    def save(self, path) -> Path:
        """Write JSON (a file path, or a folder to hold tokenizer.json) with the content hash."""
        payload = self.to_dict()
        payload["hash"] = self.content_hash
        return write_json(path, payload)

    @classmethod
    def from_dict(cls, payload: dict) -> BPETokenizer:
        try:
            if "merges" in payload:
                merges = [(int(a), int(b)) for a, b in payload["merges"]]
                vocab = vocab_from_merges(merges)
            else:
                merges = None
                vocab = [base64.b64decode(s) for s in payload["ranks"]]
            return cls(
                vocab,
                pattern=payload["pattern"],
                special_tokens={str(k): int(v) for k, v in payload["special_tokens"].items()},
                name=payload.get("name", "bpe"),
                merges=merges,
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            if isinstance(e, TokenizerError):
                raise
            raise TokenizerError(f"not a valid BPE tokenizer file: {e!r}") from e

    @classmethod
    def from_ranks(cls, ranks: dict[bytes, int], **kwargs) -> BPETokenizer:
        """From a tiktoken ranks dict (e.g. `tiktoken.load.load_tiktoken_bpe(file)`)."""
        vocab = [b for b, _ in sorted(ranks.items(), key=lambda kv: kv[1])]
        if [ranks[b] for b in vocab] != list(range(len(vocab))):
            raise TokenizerError("the ranks are not the contiguous ids 0..N-1")
        return cls(vocab, **kwargs)

    def __repr__(self) -> str:
        return f"BPETokenizer(name={self.name!r}, vocab_size={self.vocab_size}, merges={self.n_merges})"


def _is_byte_ordered(vocab: list[bytes]) -> bool:
    return all(vocab[i] == bytes([i]) for i in range(256))


def vocab_from_merges(merges: Iterable[tuple[int, int]]) -> list[bytes]:
    vocab = [bytes([i]) for i in range(256)]
    for a, b in merges:
        vocab.append(vocab[a] + vocab[b])
    return vocab


def train_bpe(
    text: str,
    vocab_size: int,
    *,
    pattern: str = GPT4_PATTERN,
    special_tokens: Iterable[str] = (ENDOFTEXT,),
    progress: Callable[[int, int], None] | None = None,
    name: str = "bpe",
) -> BPETokenizer:
    """Train a byte-level BPE whose total vocabulary (bytes + merges + specials) is `vocab_size`.

    Special tokens are cut out of the text before training and take the last ids. If the text
    runs out of pairs first, the vocabulary is smaller (check `.vocab_size`).
    `progress(done, total)` is called about 100 times during the merges.
    """
    special_tokens = list(dict.fromkeys(special_tokens))
    if any(not isinstance(s, str) or not s for s in special_tokens):
        raise TokenizerError("special tokens must be non-empty strings")
    n_merges = vocab_size - 256 - len(special_tokens)
    if n_merges < 0:
        raise TokenizerError(
            f"vocab_size {vocab_size} is too small: 256 bytes + {len(special_tokens)} special tokens"
        )
    if not isinstance(text, str):
        raise TokenizerError("train_bpe needs text (a str)")
    pattern = resolve_pattern(pattern)
    try:
        regex.compile(pattern)
    except regex.error as e:
        raise TokenizerError(f"the pre-tokenisation pattern is not a valid regex: {e}") from e
    t0 = time.perf_counter()
    word_counts = count_pretokens(text, pattern, special_tokens)
    t1 = time.perf_counter()
    merges, vocab, stats = learn_merges(word_counts, n_merges, progress)
    first_special = len(vocab)
    tok = BPETokenizer(
        vocab,
        pattern=pattern,
        special_tokens={s: first_special + i for i, s in enumerate(special_tokens)},
        name=name,
        merges=merges,
    )
    tok.train_stats = {
        "pretokenize_s": t1 - t0,
        **stats,
        "n_unique": len(word_counts),
        "total_s": time.perf_counter() - t0,
    }
    return tok
