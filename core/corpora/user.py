"""The user's own text: a file path, raw bytes, or an upload, checked before anything trains on it.

Checks, each with a message a person can act on: the file exists, it is not too big, not
empty, not binary (NUL bytes), and is UTF-8. A UTF-8 byte-order mark is dropped and Windows
line endings become "\\n".
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_MAX_BYTES = 50_000_000


class CorpusError(ValueError):
    """A corpus that cannot be used, with the reason in plain words."""


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n:,} bytes"


def read_user_text(path_or_bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Return the text of a UTF-8 file (path), bytes, or file-like object (.read()/.getvalue())."""
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        data = bytes(path_or_bytes)
        what = "the text"
    elif hasattr(path_or_bytes, "getvalue") or hasattr(path_or_bytes, "read"):
        data = (
            path_or_bytes.getvalue() if hasattr(path_or_bytes, "getvalue") else path_or_bytes.read()
        )
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        what = f"'{getattr(path_or_bytes, 'name', 'the upload')}'"
    elif isinstance(path_or_bytes, str | Path):
        path = Path(path_or_bytes)
        what = f"'{path.name}'"
        if not path.exists():
            raise CorpusError(f"{path} does not exist")
        if not path.is_file():
            raise CorpusError(f"{path} is not a file")
        size = path.stat().st_size
        if size > max_bytes:
            raise CorpusError(f"{what} is {_mb(size)}; the limit is {_mb(max_bytes)}")
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    else:
        raise CorpusError(
            f"expected a path, bytes or an upload, not {type(path_or_bytes).__name__}"
        )

    if len(data) > max_bytes:
        raise CorpusError(f"{what} is {_mb(len(data))}; the limit is {_mb(max_bytes)}")
    if b"\x00" in data[:1_000_000] or b"\x00" in data:
        raise CorpusError(f"{what} looks like a binary file (it contains NUL bytes), not text")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise CorpusError(
            f"{what} is not UTF-8 text (byte 0x{data[e.start]:02X} at line {line}); "
            "save it as UTF-8 and try again"
        ) from None
    text = text.replace("\r\n", "\n")
    if not text.strip():
        raise CorpusError(f"{what} is empty" if not text else f"{what} holds only whitespace")
    return text
