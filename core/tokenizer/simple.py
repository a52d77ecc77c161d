"""The two tokenizers that come before BPE in the book: characters, and words.

CharTokenizer: one id per distinct character of a training text (plus <|endoftext|>); a
character it never saw maps to <|unk|>. SimpleWordTokenizer is Raschka's ch. 2 tokenizer:
split on whitespace and punctuation with a regex, a vocabulary of the distinct words of a text,
<|unk|> for words outside it and <|endoftext|> between documents. Neither round-trips every
string (unknowns are lost; the word tokenizer also normalises spaces) — that is the lesson
that motivates byte-level BPE.
"""

from __future__ import annotations

import re
from pathlib import Path

from .base import TokenizerError, bytes_label, hash_payload, write_json
from .bpe import FORMAT
from .patterns import ENDOFTEXT

UNK = "<|unk|>"
# Raschka ch. 2: split on punctuation, double dashes and whitespace, keeping the punctuation.
WORD_SPLIT = re.compile(r'([,.:;?_!"()\']|--|\s)')


class _VocabTokenizer:
    """Shared parts: an id -> string table and the specials at its end."""

    kind = ""

    def __init__(self, tokens: list[str], name: str):
        if len(set(tokens)) != len(tokens):
            raise TokenizerError("the vocabulary holds the same token twice")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.name = name
        self.vocab_size = len(self.tokens)
        self.eot_id = self.index.get(ENDOFTEXT)
        self.unk_id = self.index.get(UNK)

    def token_bytes(self, id: int) -> bytes:
        return self.tokens[self._check(id)].encode("utf-8")

    def token_label(self, id: int) -> str:
        return bytes_label(self.token_bytes(id))

    def _check(self, id) -> int:
        id = int(id)
        if not 0 <= id < self.vocab_size:
            raise TokenizerError(
                f"token id {id} is not in this vocabulary (size {self.vocab_size})"
            )
        return id

    def to_dict(self) -> dict:
        return {"format": FORMAT, "type": self.kind, "name": self.name, "tokens": self.tokens}

    @property
    def content_hash(self) -> str:
        return hash_payload(self.to_dict())

    def save(self, path) -> Path:
        payload = self.to_dict()
        payload["hash"] = self.content_hash
        return write_json(path, payload)

    @classmethod
    def from_dict(cls, payload: dict):
        obj = cls.__new__(cls)
        _VocabTokenizer.__init__(
            obj, [str(t) for t in payload["tokens"]], payload.get("name", cls.kind)
        )
        return obj

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size})"


class CharTokenizer(_VocabTokenizer):
    """One token per character seen in `text` (sorted), then <|unk|> and <|endoftext|>."""

    kind = "char"

    def __init__(self, text: str = "", name: str = "char"):
        super().__init__(sorted(set(text)) + [UNK, ENDOFTEXT], name)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        # <|endoftext|> written in the text is one token; everything else is one per character
        for n, part in enumerate(text.split(ENDOFTEXT)):
            if n:
                ids.append(self.eot_id)
            ids.extend(self.index.get(ch, self.unk_id) for ch in part)
        return ids

    def decode(self, ids) -> str:
        return "".join(self.tokens[self._check(i)] for i in ids)


class SimpleWordTokenizer(_VocabTokenizer):
    """Raschka's SimpleTokenizerV2: regex split, distinct words sorted, <|unk|>, <|endoftext|>."""

    kind = "word"

    def __init__(self, text: str = "", name: str = "word"):
        words = sorted(set(self.split(text)) - {UNK, ENDOFTEXT})
        super().__init__(words + [ENDOFTEXT, UNK], name)

    @staticmethod
    def split(text: str) -> list[str]:
        """Words and punctuation, whitespace dropped; <|endoftext|> kept whole."""
        out: list[str] = []
        for i, part in enumerate(text.split(ENDOFTEXT)):
            if i:
                out.append(ENDOFTEXT)
            out.extend(t.strip() for t in WORD_SPLIT.split(part) if t.strip())
        return out

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, self.unk_id) for w in self.split(text)]

    def decode(self, ids) -> str:
        text = " ".join(self.tokens[self._check(i)] for i in ids)
        # the book's rule: no space before punctuation
        return re.sub(r'\s+([,.?!"()\'])', r"\1", text)
