"""Corpus variety figures: is there enough variety that a small model must generalise?

Distinct sentences (a template corpus that repeats itself can be memorised), vocabulary size,
and word n-gram entropies in bits: H1 (unigram), H2 - H1 (next word given one word),
H3 - H2 (next word given two). Low conditional entropy = predictable text.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_SENT = re.compile(r"(?<=[.!?])\s+|<\|endoftext\|>")
_WORD = re.compile(r"[A-Za-z']+|[0-9]+|[^\sA-Za-z0-9]")


def _entropy(counts: Counter) -> float:
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0


def corpus_stats(text: str) -> dict:
    sentences = [s.strip() for s in _SENT.split(text) if s.strip()]
    words = _WORD.findall(text.replace("<|endoftext|>", " "))
    lower = [w.lower() for w in words]
    n1 = Counter(lower)
    n2 = Counter(zip(lower, lower[1:]))
    n3 = Counter(zip(lower, lower[1:], lower[2:]))
    h1, h2, h3 = _entropy(n1), _entropy(n2), _entropy(n3)
    distinct = len(set(sentences))
    return {
        "bytes": len(text.encode("utf-8")),
        "documents": text.count("<|endoftext|>") + 1,
        "sentences": len(sentences),
        "distinct_sentences": distinct,
        "distinct_sentence_ratio": round(distinct / max(1, len(sentences)), 4),
        "words": len(words),
        "vocabulary": len(n1),
        "distinct_bigrams": len(n2),
        "distinct_trigrams": len(n3),
        "H1_bits": round(h1, 3),
        "H2_given_1_bits": round(h2 - h1, 3),
        "H3_given_2_bits": round(h3 - h2, 3),
    }
