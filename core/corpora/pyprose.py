"""pyprose: real English prose that ships with Python itself, so it needs no download.

First the language reference topics behind `help()` (pydoc_data.topics, ~0.46 MB: statements,
data model, operators), each a document; beyond that, docstrings of the standard library's
modules, classes and functions, read with `ast` (nothing is imported or executed) from the
source files in sorted order. Deterministic for a given Python version.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import os
import sysconfig
from functools import lru_cache
from pathlib import Path

EOT = "<|endoftext|>"
MAX_BYTES = 1_500_000  # Python 3.11 ships ~1.76 MB of such prose; keep a margin across versions
MIN_DOC = 200  # shorter docstrings are mostly one-liners ("Return x.")


def topics() -> list[str]:
    """The pydoc topic texts, in sorted topic order."""
    from pydoc_data.topics import topics as t

    return [t[k].strip() for k in sorted(t)]


_SKIP_DIRS = {
    "test",
    "tests",
    "idlelib",
    "site-packages",
    "dist-packages",
    "lib2to3",
    "__pycache__",
}
_DEFS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return []
    out = []
    stack: list[ast.AST] = [tree]
    while stack:  # docstrings live only in module, class and function bodies: walk just those
        node = stack.pop()
        doc = ast.get_docstring(node, clean=False)
        if doc and len(doc) >= MIN_DOC:
            out.append(inspect.cleandoc(doc))
        stack.extend(reversed([n for n in node.body if isinstance(n, _DEFS)]))
    return out


def stdlib_docstrings():
    """Docstrings of the standard library, file by file in sorted order (skipping tests)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS]
        files.extend(Path(folder) / n for n in names if n.endswith(".py"))
    for path in sorted(files, key=lambda p: p.relative_to(root).parts):
        yield from _docstrings(path)


@lru_cache(maxsize=4)
def generate(n_bytes: int | None = None) -> str:
    """Topics, then stdlib docstrings, joined by <|endoftext|>; at most n_bytes UTF-8 bytes.

    n_bytes=None gives the topics alone (~0.46 MB). Raises ValueError above MAX_BYTES or
    if this Python ships less than asked. Sizes above the topics parse stdlib files (~4 s/MB).
    """
    if n_bytes is not None and n_bytes > MAX_BYTES:
        raise ValueError(f"pyprose has only about {MAX_BYTES:,} bytes; asked for {n_bytes:,}")
    docs = topics()
    if n_bytes is None:
        return EOT.join(docs)
    out: list[str] = []
    total = 0

    def take(doc: str) -> bool:
        nonlocal total
        cost = len(doc.encode("utf-8")) + (len(EOT) if out else 0)
        if total + cost > n_bytes:
            return False
        out.append(doc)
        total += cost
        return True

    # a document that does not fit is skipped (later ones may); stop once nearly full
    more = stdlib_docstrings() if n_bytes > 480_000 else ()
    for doc in itertools.chain(docs, more):
        if not take(doc) and total > 0.98 * n_bytes:
            return EOT.join(out)
    if not out:  # smaller than any document: the start of the first
        return docs[0].encode("utf-8")[:n_bytes].decode("utf-8", "ignore")
    if total < 0.9 * n_bytes:
        raise ValueError(f"pyprose has only {total} bytes on this Python; asked for {n_bytes}")
    return EOT.join(out)
