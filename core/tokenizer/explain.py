"""The readable encoder: byte-level BPE in plain Python, showing its work.

`encode(tok, text)` gives the same ids as the tiktoken.Encoding inside a BPETokenizer (a test
fuzzes this), by the same algorithm:

1. cut out special tokens; 2. split the rest with the pre-tokenisation regex into chunks;
3. for each chunk: if its bytes are a token, that is the answer; otherwise start from single
   bytes and repeatedly merge the adjacent pair whose concatenation has the lowest rank
   (leftmost on ties) until no adjacent pair is a token.

Rank = id for the mergeable tokens, so "lowest rank" = "learned earliest". `trace` returns each
step as records; `Replay` gives the segmentation after the first k merges for every k from
each chunk's merge events (a few per word), never one copy of the whole text per k.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

import regex

from .base import bytes_label, clean_text
from .bpe_train import find_chunks, special_splitter


def chunks(tok, text: str) -> list[tuple[str, bool]]:
    """Pre-tokenise: [(chunk text, is_special)], specials cut out first, then the regex."""
    text = clean_text(text)
    pat = regex.compile(tok.pattern)
    splitter = special_splitter(tok.special_tokens)
    out: list[tuple[str, bool]] = []
    pos = 0
    for m in splitter.finditer(text) if splitter else ():
        out.extend((c, False) for c in find_chunks(pat, text[pos : m.start()]))
        out.append((m.group(), True))
        pos = m.end()
    out.extend((c, False) for c in find_chunks(pat, text[pos:]))
    return out


def merge_steps(ranks: dict[bytes, int], piece: bytes, limit: int | None = None):
    """Run BPE on one chunk's bytes. Yields (rank, position, parts after) per merge.

    `limit`: only ranks below it may be used (the vocabulary as it was after limit-256 merges).
    """
    parts = [piece[i : i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        best_rank, best_i = None, -1
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and (best_rank is None or r < best_rank):
                best_rank, best_i = r, i
        if best_rank is None or (limit is not None and best_rank >= limit):
            return
        parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]
        yield best_rank, best_i, parts


def encode_chunk(ranks: dict[bytes, int], piece: bytes) -> list[int]:
    """Ids of one chunk's bytes."""
    if piece in ranks:  # tiktoken's shortcut: a chunk that is one token
        return [ranks[piece]]
    return [ranks[p] for p in _final_parts(ranks, piece)]


def _final_parts(ranks, piece: bytes) -> list[bytes]:
    parts = [piece[i : i + 1] for i in range(len(piece))]
    for step in merge_steps(ranks, piece):
        parts = step[2]
    return parts


def encode(tok, text: str) -> list[int]:
    """The same ids as `tok.encode(text)`, computed in Python (memoised per chunk)."""
    cache: dict[str, list[int]] = {}
    ids: list[int] = []
    for chunk, special in chunks(tok, text):
        if special:
            ids.append(tok.special_tokens[chunk])
            continue
        got = cache.get(chunk)
        if got is None:
            got = cache[chunk] = encode_chunk(tok.ranks, chunk.encode("utf-8"))
        ids.extend(got)
    return ids


def recover_merge(ranks: dict[bytes, int], token: bytes, rank: int) -> tuple[int, int]:
    """The pair that made `token`: BPE on its bytes with only lower ranks leaves two parts."""
    parts = [token[i : i + 1] for i in range(len(token))]
    for step in merge_steps(ranks, token, limit=rank):
        parts = step[2]
    if len(parts) != 2:
        raise ValueError(f"token {token!r} (rank {rank}) is not a merge of two lower-rank tokens")
    return ranks[parts[0]], ranks[parts[1]]


def trace(tok, text: str) -> list[dict]:
    """One record per chunk: how the text becomes ids.

    {"chunk": str, "special": bool, "bytes": [int], "start_ids": [int] (one per byte),
     "merges": [{"rank", "merge" (1-based merge number = rank - 255), "position",
                 "left", "right", "new" (ids), "label" (new token's text), "ids" (after)}],
     "ids": [int] (final, equal to tok.encode for this chunk)}
    """
    records = []
    for chunk, special in chunks(tok, text):
        b = chunk.encode("utf-8")
        if special:
            sid = tok.special_tokens[chunk]
            records.append(
                {
                    "chunk": chunk,
                    "special": True,
                    "bytes": list(b),
                    "start_ids": [sid],
                    "merges": [],
                    "ids": [sid],
                }
            )
            continue
        start = [tok.ranks[b[i : i + 1]] for i in range(len(b))]
        ids = list(start)
        steps = []
        for rank, pos, parts in merge_steps(tok.ranks, b):
            left, right = ids[pos], ids[pos + 1]
            ids = [tok.ranks[p] for p in parts]
            steps.append(
                {
                    "rank": rank,
                    "merge": rank - 255,
                    "position": pos,
                    "left": left,
                    "right": right,
                    "new": rank,
                    "label": bytes_label(parts[pos]),
                    "ids": ids,
                }
            )
        final = encode_chunk(tok.ranks, b)
        records.append(
            {
                "chunk": chunk,
                "special": False,
                "bytes": list(b),
                "start_ids": start,
                "merges": steps,
                "ids": final,
            }
        )
    return records


class Replay(Sequence):
    """replay[k] = the ids of the text when only the first k merges exist (0 <= k <= n_merges).

    replay[0] is one token per byte; replay[len - 1] is the full encoding. A chunk's merges
    come in the order BPE applied them; with a vocabulary cut at merge k, BPE applies them up to
    the first one above k. So event j of a chunk is in effect from merge number
    max(merge numbers of events 0..j) on, and each chunk keeps its states after each event
    (chunks are short) plus those thresholds: replay[k] is a bisect per chunk, not a re-run.
    `.events` lists every event (merge number, chunk index, position, left, right, new id);
    `.steps` the merge numbers at which this text changes (what a slider can jump between).
    """

    def __init__(self, tok, text: str):
        self.n_merges = tok.n_merges
        self._chunks: list[tuple[list[int], list[tuple[int, ...]]]] = []
        self.events: list[dict] = []
        for ci, rec in enumerate(trace(tok, text)):
            thresholds: list[int] = []
            states = [tuple(rec["start_ids"])]
            for m in rec["merges"]:
                thresholds.append(max(m["merge"], thresholds[-1] if thresholds else 0))
                states.append(tuple(m["ids"]))
                self.events.append(
                    {"merge": m["merge"], "chunk": ci, "position": m["position"],
                     "left": m["left"], "right": m["right"], "new": m["new"]}
                )  # fmt: skip
            self._chunks.append((thresholds, states))
        self.events.sort(key=lambda e: (e["merge"], e["chunk"], e["position"]))
        self.steps = sorted({t for thresholds, _ in self._chunks for t in thresholds})

    def __len__(self) -> int:
        return self.n_merges + 1

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        return [i for chunk in self.segments(k) for i in chunk]

    def segments(self, k: int) -> list[tuple[int, ...]]:
        """Ids after k merges, one tuple per chunk."""
        return [states[bisect_right(thresholds, k)] for thresholds, states in self._chunks]

    def changed_at(self, k: int) -> bool:
        """Whether merge number k changes this text."""
        i = bisect_left(self.steps, k)
        return i < len(self.steps) and self.steps[i] == k
