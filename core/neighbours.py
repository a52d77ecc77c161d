"""Token-embedding neighbourhoods: cosine nearest neighbours, token search, token facts.

The Embeddings page colours every token of the vocabulary and, on a click, lists the tokens whose
embedding vectors point the same way. Cosine similarity (not Euclidean distance) because the
embedding norm mostly tracks frequency, while direction carries meaning (book ch. 2; word2vec).

`token_table` gives each token a display label, a TinyTales category (the synthetic corpus has a
known lexicon, so the map has ground truth to colour by), its length and its frequency in a
sample of text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    m = np.asarray(matrix, dtype=np.float32)
    n = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(n == 0, 1.0, n)


def nearest(
    matrix: np.ndarray, index: int, k: int = 10, unit: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The k rows most cosine-similar to row `index` (itself excluded): (ids (k,), sims (k,))."""
    u = unit if unit is not None else unit_rows(matrix)
    if not 0 <= index < len(u):
        raise IndexError(f"token id {index} outside 0..{len(u) - 1}")
    sims = u @ u[index]  # (V,)
    sims[index] = -np.inf
    k = max(0, min(k, len(u) - 1))
    top = np.argpartition(-sims, k - 1)[:k] if k else np.array([], dtype=np.int64)
    top = top[np.argsort(-sims[top], kind="stable")]
    return top.astype(np.int64), sims[top].astype(np.float32)


def nearest_to_vector(unit: np.ndarray, vec: np.ndarray, k: int = 10):
    """k rows of a unit-row matrix most cosine-similar to an arbitrary vector."""
    v = np.asarray(vec, dtype=np.float32)
    v = v / (np.linalg.norm(v) or 1.0)
    sims = unit @ v
    k = max(1, min(k, len(unit)))
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top], kind="stable")]
    return top.astype(np.int64), sims[top].astype(np.float32)


def search_tokens(labels: list[str], query: str, limit: int = 20) -> list[int]:
    """Token ids whose label matches `query`: exact first, then exact ignoring the leading space
    and case, then prefix, then substring; shorter labels first within a group."""
    q = query.strip().lower()
    if not q:
        return []
    groups: list[list[tuple[int, int]]] = [[], [], [], []]
    for i, lab in enumerate(labels):
        low = lab.lower()
        bare = low.strip()
        if lab == query:
            groups[0].append((len(lab), i))
        elif bare == q:
            groups[1].append((len(lab), i))
        elif bare.startswith(q):
            groups[2].append((len(lab), i))
        elif q in low:
            groups[3].append((len(lab), i))
    out: list[int] = []
    for g in groups:
        out.extend(i for _, i in sorted(g))
        if len(out) >= limit:
            break
    return out[:limit]


@dataclass
class TokenTable:
    """One row per token id (V rows)."""

    labels: list[str]  # display text (tokenizer.token_label)
    categories: list[str]  # TinyTales lexicon category, or "other"
    lengths: np.ndarray  # (V,) int: characters in the label without surrounding spaces
    counts: np.ndarray  # (V,) int: occurrences in the sample text (0 when none given)


def category_lookup(lexicon: dict[str, list[str]]) -> dict[str, str]:
    """word (lower-case) -> category; a word in two categories keeps the first."""
    out: dict[str, str] = {}
    for cat, words in lexicon.items():
        for w in words:
            out.setdefault(str(w).strip().lower(), cat)
    return out


def safe_label(tokenizer, i: int) -> str:
    """tokenizer.token_label(i), or "<i>" for an id the tokenizer does not have."""
    try:
        return tokenizer.token_label(i)
    except Exception:  # noqa: BLE001 - a row the tokenizer has no token for (padded vocab)
        return f"<{i}>"


def token_table(
    tokenizer,
    sample_ids: np.ndarray | None = None,
    lexicon: dict[str, list[str]] | None = None,
    vocab_size: int | None = None,
) -> TokenTable:
    """Labels, lexicon categories, lengths and frequencies for every token id.

    vocab_size: rows wanted (the model's V; a model may pad its vocabulary beyond the
    tokenizer's, and those rows get "<id>" labels). Default: the tokenizer's size.
    """
    if lexicon is None:
        try:
            from core.corpora.tinytales import LEXICON as lexicon
        except ImportError:
            lexicon = {}
    lookup = category_lookup(lexicon)
    V = vocab_size or tokenizer.vocab_size
    n_tok = tokenizer.vocab_size
    labels = [tokenizer.token_label(i) if i < n_tok else safe_label(tokenizer, i) for i in range(V)]
    cats = [lookup.get(lab.strip().lower(), "other") if lab.strip() else "other" for lab in labels]
    lengths = np.array([len(lab.strip()) for lab in labels], dtype=np.int32)
    counts = np.zeros(V, dtype=np.int64)
    if sample_ids is not None and len(sample_ids):
        ids = np.asarray(sample_ids, dtype=np.int64)
        ids = ids[(ids >= 0) & (ids < V)]
        counts = np.bincount(ids, minlength=V)[:V]
    return TokenTable(labels, cats, lengths, counts)


def position_similarity(model, n: int | None = None) -> tuple[str, np.ndarray | None]:
    """Cosine similarity between positions 0..n-1 as the model encodes them: (kind, (n, n)).

    learned: cosine of the position-embedding rows 0..n-1 after subtracting their mean (trained
    positions share one large common direction that would make every pair look alike);
    sinusoidal: cosine of the fixed rows. rope: there is no table; the
    similarity of one vector rotated to position m and to position n, mean_i cos((m-n) θ_i),
    which depends only on m - n (RoPE encodes relative position). none: (kind, None).
    """
    cfg = model.config
    n = min(n or cfg.context_length, cfg.context_length)
    kind = cfg.pos_encoding
    if kind in ("learned", "sinusoidal"):
        table = model.pos_emb.weight if kind == "learned" else model.pos_table
        rows = table.detach().float().cpu().numpy()[:n]  # (n, C)
        if kind == "learned":  # centred over the positions shown, so the picture is self-contained
            rows = rows - rows.mean(axis=0, keepdims=True)
        u = unit_rows(rows)  # (n, C)
        return kind, (u @ u.T).astype(np.float32)
    if kind == "rope":
        D = cfg.d_model // cfg.n_heads
        theta = cfg.rope_base ** (-np.arange(0, D, 2, dtype=np.float64) / D)  # (D/2,)
        rel = np.arange(n)[:, None] - np.arange(n)[None, :]  # (n, n) m - n
        return kind, np.cos(rel[..., None] * theta).mean(-1).astype(np.float32)
    return kind, None
