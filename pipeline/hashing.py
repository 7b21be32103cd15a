"""Content hashes of files and folders, for cache keys that change when the bytes change."""
from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def digest_paths(root: Path, paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        try:
            with path.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()


def visible_files(folder: Path) -> list[Path]:
    """Files under `folder`, sorted, without hidden ones (.DS_Store and the like)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def digest(path: Path) -> str:
    """A file's or a whole folder's (e.g. a SavedModel's) content hash."""
    if path.is_dir():
        return digest_paths(path, visible_files(path))
    return digest_paths(path.parent, [path])
