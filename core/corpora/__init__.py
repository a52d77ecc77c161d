"""Built-in corpora that need no download, and the user's own text.

- "tinytales": synthetic children's stories with a known lexicon (tinytales.py)
- "pyprose": English prose that ships with Python itself (pyprose.py)
- read_user_text: a user's file, checked (user.py)
"""

from __future__ import annotations

from . import pyprose, tinytales
from .lexicon import LEXICON, category_of
from .user import DEFAULT_MAX_BYTES, CorpusError, read_user_text

__all__ = [
    "CORPORA",
    "DEFAULT_MAX_BYTES",
    "LEXICON",
    "CorpusError",
    "category_of",
    "load_corpus",
    "pyprose",
    "read_user_text",
    "tinytales",
]

CORPORA = {
    "tinytales": "TinyTales: synthetic children's stories (any size, seeded)",
    "pyprose": "English prose shipped with Python: pydoc topics, then stdlib docstrings",
}
TINYTALES_DEFAULT_BYTES = 1_000_000


def load_corpus(name: str, n_bytes: int | None = None, seed: int = 0) -> str:
    """A built-in corpus by name. n_bytes=None: 1 MB of TinyTales, or pyprose's topics."""
    if n_bytes is not None and int(n_bytes) <= 0:
        raise CorpusError("n_bytes must be positive")
    if name == "tinytales":
        n = TINYTALES_DEFAULT_BYTES if n_bytes is None else int(n_bytes)
        return tinytales.generate(n, seed=seed)
    if name == "pyprose":
        try:
            return pyprose.generate(n_bytes)
        except ValueError as e:
            raise CorpusError(str(e)) from None
    raise CorpusError(f"unknown corpus {name!r}; built in: {', '.join(CORPORA)}")
