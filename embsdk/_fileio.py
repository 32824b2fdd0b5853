"""Durable file primitives shared by the registry, the store, the exporter and the Triton repository.

Every durable write in embsdk follows one pattern: write a temp file in the target folder, flush + fsync,
``os.replace`` onto the final name, then fsync the folder so the rename itself survives a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "current_umask",
    "fsync_dir",
    "fsync_tree",
    "sha256_file",
    "write_json_atomic",
    "write_text_atomic",
]

_CHUNK = 4 << 20


def current_umask() -> int:
    """The process umask, read without changing it (``/proc/self/status``; else a set-and-restore)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, streamed in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: str | Path) -> None:
    """fsync a folder, so that renames and new entries inside it are durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | Path) -> None:
    """fsync every file below *root*, then *root* itself."""
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(root)


def write_text_atomic(path: str | Path, text: str, *, mode: int | None = None) -> None:
    """Replace *path* with *text* atomically: readers see the old or the new content, never a mix.

    The file gets *mode*, by default what ``open(path, "w")`` would give it: ``0o666`` less the umask
    (``0644`` under the usual ``022``), not the ``0600`` of :func:`tempfile.mkstemp`, so that other users
    can read published files (store manifests, eval reports) exactly as they read the files beside them.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, (0o666 & ~current_umask()) if mode is None else mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_json_atomic(path: str | Path, data: Any, *, mode: int | None = None) -> None:
    """:func:`write_text_atomic` of ``json.dumps(data, indent=2)``."""
    write_text_atomic(path, json.dumps(data, indent=2), mode=mode)
