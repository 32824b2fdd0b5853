"""Registry fixtures: a Registry on each backend (SQLite and the real PostgreSQL) and small files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from registry import Registry


@pytest.fixture
def artifact_dir(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def reg(registry_url: str, artifact_dir: Path) -> Iterator[Registry]:
    """A fresh registry on the parametrized backend."""
    r = Registry(registry_url, artifact_dir=artifact_dir, user="tester")
    yield r
    r.close()


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a small file with the given bytes (default: unique bytes derived from the name)."""
    folder = tmp_path / "inputs"
    folder.mkdir(exist_ok=True)

    def _make(name: str, data: bytes | None = None) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if data is not None else f"bytes of {name}".encode() + os.urandom(8))
        return path

    return _make
