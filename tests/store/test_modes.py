"""Published store files get the umask's normal modes (0644 under 022), like the shards beside them; not mkstemp's 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from embsdk._fileio import current_umask, write_json_atomic
from embsdk.store import StoreWriter
from tests.store.conftest import SPEC, codes_for


@pytest.fixture
def umask():
    def _set(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    yield _set
    os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_store_files_are_world_readable_under_umask_022(store_dir: Path, umask) -> None:
    ids = np.arange(50, dtype=np.int64)
    with StoreWriter(store_dir, "g1", SPEC) as w:
        w.upsert(ids, codes_for(ids))
    with StoreWriter(store_dir, "g1", SPEC) as w:
        w.delete(ids[:5])
    gen = store_dir / "g1"
    manifest = gen / "MANIFEST.json"
    assert _mode(manifest) == 0o644
    files = [p for p in (gen / "shards").rglob("*") if p.is_file()]
    assert any(p.name == "header.json" for p in files) and any(p.name == "codes.npy" for p in files)
    assert {p.name: _mode(p) for p in files} == {p.name: 0o644 for p in files}


def test_atomic_writes_follow_the_umask(tmp_path: Path, umask) -> None:
    umask(0o027)
    assert current_umask() == 0o027
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    assert _mode(tmp_path / "a.json") == 0o640
    umask(0o022)
    write_json_atomic(tmp_path / "a.json", {"x": 2})  # replacing keeps the umask's mode, not the old file's
    assert _mode(tmp_path / "a.json") == 0o644
    write_json_atomic(tmp_path / "secret.json", {"k": 1}, mode=0o600)  # an explicit mode wins
    assert _mode(tmp_path / "secret.json") == 0o600
    assert not list(tmp_path.glob(".*.tmp"))  # no temp file left behind
