"""Scratch folders owned by a live process, and the removal of those whose owner died (SIGKILL, OOM, reboot).

A folder made by :func:`owned_workdir` holds ``.owner``: the owner's pid, ``flock``-ed for as long as the folder
is in use. The kernel drops the lock when the process dies, however it dies, so a folder whose lock can be taken
is *stale*: nothing will ever finish or remove it. A folder whose lock is held (a live owner) is never touched;
one without an owner yet (being created, or left by an older embsdk) counts as stale only after a grace period.

``emb publish`` works in ``$EMB_HOME/tmp/publish-*``; every publish and ``emb registry fsck --repair`` sweep them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from embsdk.config import get_settings

__all__ = [
    "OWNER_FILE",
    "PUBLISH_PREFIX",
    "UNOWNED_GRACE_SECONDS",
    "owned_workdir",
    "scratch_root",
    "sweep_stale_workdirs",
]

OWNER_FILE = ".owner"
PUBLISH_PREFIX = "publish-"
UNOWNED_GRACE_SECONDS = 15 * 60
"""A folder without an owner pid younger than this may be one being created: it is kept."""


def scratch_root() -> Path:
    """``$EMB_HOME/tmp``: where commands keep their scratch folders."""
    return get_settings().home / "tmp"


@contextlib.contextmanager
def owned_workdir(parent: Path, prefix: str) -> Iterator[Path]:
    """A fresh folder ``parent/prefix*``, locked by this process while the block runs and removed after it."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    fd = os.open(path / OWNER_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        with contextlib.suppress(OSError):  # no flock on this filesystem: sweepers can't judge it, so keep it
            fcntl.flock(
                fd, fcntl.LOCK_EX
            )  # may wait a moment for a sweeper probing the new, still empty file
        os.write(fd, f"{os.getpid()}\n".encode())  # written under the lock: a pid means "locked by its owner"
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)  # releases the lock, after the folder is gone


def sweep_stale_workdirs(
    parent: Path, prefix: str, *, remove: bool, grace_seconds: float = UNOWNED_GRACE_SECONDS
) -> list[Path]:
    """The folders ``parent/prefix*`` whose owner died; with *remove*, delete them (under their lock).

    Folders of live owners are never listed nor touched.
    """
    stale = []
    for path in sorted(parent.glob(f"{prefix}*")) if parent.is_dir() else []:
        if path.is_symlink() or not path.is_dir():
            continue
        with _locked_if_stale(path, grace_seconds) as is_stale:
            if is_stale:
                stale.append(path)
                if remove:
                    shutil.rmtree(path, ignore_errors=True)
    return stale


@contextlib.contextmanager
def _locked_if_stale(path: Path, grace_seconds: float) -> Iterator[bool]:
    """Whether *path* is stale; when it is, its owner lock is held until the block ends."""
    with contextlib.ExitStack() as stack:
        yield _probe(path, grace_seconds, stack)


def _probe(path: Path, grace_seconds: float, stack: contextlib.ExitStack) -> bool:
    try:
        fd = os.open(path / OWNER_FILE, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:  # no owner yet (being created), or made by an older embsdk
        return _older_than(path, grace_seconds)
    except OSError:  # e.g. a symlink planted as the owner file: not ours to judge
        return False
    stack.callback(os.close, fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: the owner is alive (or this filesystem has no flock: keep what we can't judge)
        return False
    has_pid = bool(os.read(fd, 64).strip())  # empty: the owner is between creating and locking the file
    return has_pid or _older_than(path, grace_seconds)


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return path.stat().st_mtime < time.time() - seconds
    except FileNotFoundError:
        return False
