"""Test hooks: points in registration where a fault test can pause a real process (then ``kill -9`` it).

Each hook is a no-op by default; a test's subprocess replaces it, e.g. ``_hooks.after_blobs_written =
lambda: time.sleep(60)``. Library code calls them at the exact points named; they never change behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def _noop(*_args: object) -> None:
    return None


after_blobs_written: Callable[[], None] = _noop
"""Called by ``Registry.register`` after every blob is durable and before the DB transaction starts."""

during_blob_write: Callable[[Path], None] = _noop
"""Called by ``ArtifactStore.put`` with the temp file path after half of the bytes are written."""

before_commit: Callable[[], None] = _noop
"""Called by ``Registry.register`` inside the write transaction, after all rows are flushed, before commit."""

before_alias_insert: Callable[[], None] = _noop
"""Called by ``Registry.set_alias`` inside its write transaction when the alias does not exist yet, just
before inserting it (a race test widens the window in which another process creates the same alias)."""

before_consumer_insert: Callable[[], None] = _noop
"""Called by ``Registry.add_consumer`` inside its write transaction when the (team, ref) pair is new, just before
inserting it (a race test widens the window in which another process adds the same consumer)."""
