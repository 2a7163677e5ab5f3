"""Content digests: one algorithm (SHA-256) for every cache key, one helper for short stable ids.

Cache keys (feature store, text-feature cache, image cache, pretraining runs, predictor caches,
benchmark runs) hash the content of the files and the parameters that made the cached thing, so a
changed input never reads a stale entry. Short ids (address and street ids, generated names) use
`short_id`, whose values must stay the same across versions because datasets store them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """SHA-256 hex digest of a file's content (memoised per path, size and modification time)."""
    path = Path(path)
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _FILE_DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        _FILE_DIGESTS[memo] = digest.hexdigest()
    return _FILE_DIGESTS[memo]


def text_digest(*parts: str | bytes, length: int | None = None) -> str:
    """SHA-256 hex digest of the parts (joined by NUL), cut to `length` characters when given."""
    digest = hashlib.sha256()
    for index, part in enumerate(parts):
        if index:
            digest.update(b"\x00")
        digest.update(part.encode("utf-8") if isinstance(part, str) else part)
    text = digest.hexdigest()
    return text[:length] if length else text


def short_id(text: str | bytes, length: int = 12) -> str:
    """A short stable id of a text (SHA-1 prefix; stored in datasets, so it never changes)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha1(data).hexdigest()[:length]
