"""Byte-level BPE training from scratch, with incremental pair counts.

The textbook loop (count every adjacent pair in the corpus, merge the most frequent, repeat)
costs O(corpus x merges). This trainer does the same thing with three standard tricks:

1. Pre-tokens are deduplicated: the regex pre-split turns 1 MB of text into ~200k chunks but
   only ~10-30k distinct ones, each kept once with its count.
2. Pair counts are updated incrementally: a merge only touches the words that contain the pair
   (found through a pair -> word index), and only the pairs next to each merge site change.
3. The most frequent pair comes from a lazy-deletion heap: entries are never removed when a
   count drops; a popped entry whose count is out of date is re-pushed with the current count.

Pairs are single integers (left * KEY + right) so that dict keys hash fast, and a heap entry is
one integer too: -count * SPACE + pair, so that Python compares ints, not tuples.

Tie-breaking (deterministic, independent of dict order): the highest count wins; among equal
counts, the pair with the smaller (left id, right id) wins. (Hugging Face `tokenizers` uses
the same rule on its own ids, which number the bytes in another order, so its ties can differ.)

References: Sennrich et al. 2016 (BPE for NMT); Radford et al. 2019 (byte-level BPE, GPT-2);
Raschka, "Build a Large Language Model (From Scratch)", ch. 2.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from heapq import heapify, heappop, heappush

import regex

from .base import clean_text

KEY = 1 << 20  # ids must stay below this: a vocabulary of up to ~1M tokens
SPACE = KEY * KEY  # pair keys are < SPACE, so -count * SPACE + pair orders by (count, pair)


def special_splitter(special_tokens: Iterable[str]) -> regex.Pattern | None:
    """A regex that matches any special token (longest first), or None if there are none."""
    specials = sorted(set(special_tokens), key=len, reverse=True)
    if not specials:
        return None
    return regex.compile("|".join(regex.escape(s) for s in specials))


def count_pretokens(text: str, pattern: str, special_tokens: Iterable[str] = ()) -> Counter[str]:
    """Split `text` with the pre-tokenisation regex and count each distinct chunk.

    Special tokens are cut out first and never trained on (they get their own ids).
    """
    pat = regex.compile(pattern)
    splitter = special_splitter(special_tokens)
    text = clean_text(text)  # a lone surrogate becomes U+FFFD, as encode() treats it
    pieces = splitter.split(text) if splitter else [text]
    counts: Counter[str] = Counter()
    for piece in pieces:
        if piece:
            counts.update(find_chunks(pat, piece))
    return counts


def find_chunks(pat: regex.Pattern, text: str) -> list[str]:
    """Every match of the pattern (whole matches, even if a user pattern has groups)."""
    if pat.groups:
        return [m.group() for m in pat.finditer(text)]
    return pat.findall(text)


def learn_merges(
    word_counts: dict[str, int],
    n_merges: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[tuple[int, int]], list[bytes], dict[str, float]]:
    """Learn up to `n_merges` new tokens from pre-token counts.

    Returns (merges, vocab, stats): merges[k] = (left id, right id) creates token 256 + k;
    vocab[i] = the bytes of token i; stats holds phase timings in seconds.
    """
    t0 = time.perf_counter()
    words: list[list[int]] = []
    wcounts: list[int] = []
    for w, c in word_counts.items():
        b = w.encode("utf-8")
        if len(b) > 1:  # a single byte has no pair: it can never change
            words.append(list(b))
            wcounts.append(c)

    counts: defaultdict[int, int] = defaultdict(int)
    where: defaultdict[int, list[int]] = defaultdict(list)  # pair -> words (may hold stale ids)
    for wi, w in enumerate(words):
        c = wcounts[wi]
        for a, b in zip(w, w[1:]):
            k = a * KEY + b
            counts[k] += c
            where[k].append(wi)
    heap = [-c * SPACE + k for k, c in counts.items()]
    heapify(heap)
    t1 = time.perf_counter()

    vocab: list[bytes] = [bytes([i]) for i in range(256)]
    index: dict[bytes, int] = {b: i for i, b in enumerate(vocab)}
    merges: list[tuple[int, int]] = []
    report_every = max(1, n_merges // 100)
    while len(merges) < n_merges and heap:
        entry = heappop(heap)
        pair = entry % SPACE
        count = -(entry // SPACE)
        current = counts.get(pair, 0)
        if current != count:
            if 0 < current < count:  # the count dropped since this entry was pushed
                heappush(heap, -current * SPACE + pair)
            continue
        a, b = divmod(pair, KEY)
        merged = vocab[a] + vocab[b]
        new = index.get(merged)
        if new is None:  # the usual case; a byte string reached by a second route keeps its id
            new = len(vocab)
            vocab.append(merged)
            index[merged] = new
            merges.append((a, b))
            if progress is not None and len(merges) % report_every == 0:
                progress(len(merges), n_merges)
        grown = _apply_merge(words, wcounts, counts, where, a, b, new, set(where.pop(pair)))
        del counts[pair]
        for k in grown:
            c = counts[k]
            if c > 0:
                heappush(heap, -c * SPACE + k)
    t2 = time.perf_counter()
    stats = {"count_s": t1 - t0, "merge_s": t2 - t1, "n_words": len(words)}
    return merges, vocab, stats


def _apply_merge(words, wcounts, counts, where, a, b, new, word_ids) -> set[int]:
    """Replace (a, b) by `new` in the given words; update pair counts around each site.

    Works left to right on the growing output so overlapping runs ("aaa" with pair (a, a))
    come out as a fresh encoder would produce them. Returns the pair keys whose counts grew.
    """
    grown: set[int] = set()
    for wi in word_ids:
        w = words[wi]
        n = len(w)
        c = wcounts[wi]
        out: list[int] = []
        i = 0
        while i < n:
            if w[i] == a and i + 1 < n and w[i + 1] == b:
                if out:
                    prev = out[-1]
                    counts[prev * KEY + a] -= c
                    k = prev * KEY + new
                    counts[k] += c
                    where[k].append(wi)
                    grown.add(k)
                if i + 2 < n:
                    nxt = w[i + 2]
                    counts[b * KEY + nxt] -= c
                    k = new * KEY + nxt
                    counts[k] += c
                    where[k].append(wi)
                    grown.add(k)
                out.append(new)
                i += 2
            else:
                out.append(w[i])
                i += 1
        if len(out) != n:
            words[wi] = out
    return grown
