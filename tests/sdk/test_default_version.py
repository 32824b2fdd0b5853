"""With no version given, the SDK and `emb` use the `production` alias and say what it resolved to; with no
`production` alias, a typed error says how to set it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import embsdk
from embsdk.client import DEFAULT_VERSION, DefaultAliasNotSet
from embsdk.errors import AliasNotFound, GenerationNotFound
from tests.backfill.conftest import Published, publish_tiny

EMB = str(Path(sys.executable).with_name("emb"))


NO_ALIAS = (
    "error: The alias 'production' (the default version) is not set. Set it with: emb registry alias set "
    "production NAME (or name a generation: --version NAME, version=NAME)."
)


def _emb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EMB, *args], capture_output=True, text=True, env=os.environ.copy(), check=False)


def _reset_clients() -> None:
    import embsdk.client

    embsdk.client._DEFAULT.clear()


@pytest.fixture
def two_generations(tmp_path: Path) -> tuple[Published, Published]:
    """tiny-v1 and tiny-v2 published and backfilled; no alias yet."""
    from embsdk.backfill import backfill

    v1 = publish_tiny(tmp_path / "a", name="tiny-v1", n_images=4)
    v2 = publish_tiny(tmp_path / "b", name="tiny-v2", n_images=4)
    for p in (v1, v2):
        backfill(p.generation, p.manifest, progress=False)
    _reset_clients()
    yield v1, v2
    _reset_clients()


def _set_production(name: str) -> None:
    from registry import Registry

    with Registry() as reg:
        reg.set_alias("production", name)


def test_the_default_is_the_production_alias() -> None:
    assert DEFAULT_VERSION == "production"
    import inspect

    from embsdk.client import Client

    for fn in (
        embsdk.get_embedding,
        embsdk.get_embeddings,
        embsdk.search,
        embsdk.embed,
        Client.get_embedding,
    ):
        assert inspect.signature(fn).parameters["version"].default == "production", fn


def test_with_production_on_v2_everything_uses_v2_and_says_so(two_generations) -> None:
    v1, v2 = two_generations
    _set_production(v1.generation)
    _set_production(v2.generation)  # moved: v1 → v2
    item = int(v2.good_ids[0])

    e = embsdk.get_embedding(item)
    assert e.generation == "tiny-v2"
    assert embsdk.get_embeddings([item]).generation == "tiny-v2"
    assert embsdk.search(item, k=2).generation == "tiny-v2"
    assert embsdk.embed([v2.paths[0]])[0].generation == "tiny-v2"

    out = _emb("get", str(item))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "production → tiny-v2 (64 bits)"
    data = json.loads(_emb("get", str(item), "--json").stdout)
    assert (data["requested"], data["generation"]) == ("production", "tiny-v2")

    out = _emb("embed", str(v2.paths[0]))
    assert out.returncode == 0, out.stderr
    first, row = out.stdout.splitlines()
    assert first == "production → tiny-v2 (64 bits)" and row.split("\t")[1] == "tiny-v2"
    assert row.split("\t")[3] == e.code.tobytes().hex()  # the same image, the same v2 code as stored

    out = _emb("search", "--id", str(item), "-k", "2")
    assert out.returncode == 0 and out.stdout.startswith("top 2 in production → tiny-v2"), out.stdout
    out = _emb("store", "info")
    assert out.returncode == 0 and out.stdout.startswith("production → tiny-v2: 4 items"), out.stdout

    named = _emb("get", str(item), "-v", "tiny-v1")  # naming a generation prints just its name
    assert named.returncode == 0 and named.stdout.splitlines()[0] == "tiny-v1 (64 bits)"


def test_without_a_production_alias_a_typed_error_says_how_to_set_it(two_generations) -> None:
    v1, _ = two_generations
    item = int(v1.good_ids[0])
    for call in (
        lambda: embsdk.get_embedding(item),
        lambda: embsdk.search(item),
        lambda: embsdk.embed([v1.paths[0]]),
    ):
        with pytest.raises(DefaultAliasNotSet) as info:
            call()
        assert isinstance(info.value, AliasNotFound) and isinstance(info.value, GenerationNotFound)
        assert "emb registry alias set production NAME" in str(info.value)
    for args in (("get", str(item)), ("embed", str(v1.paths[0])), ("search", "--id", str(item))):
        out = _emb(*args)
        assert out.returncode == 1 and out.stdout == ""
        assert out.stderr.splitlines() == [NO_ALIAS], out.stderr
    # a name that is not the default keeps its own error
    with pytest.raises(GenerationNotFound) as other:
        embsdk.get_embedding(item, version="nope-v1")
    assert not isinstance(other.value, DefaultAliasNotSet)


def test_explicit_version_still_wins(two_generations) -> None:
    v1, v2 = two_generations
    _set_production(v2.generation)
    e1 = embsdk.get_embedding(int(v1.good_ids[0]), version="tiny-v1")
    assert e1.generation == "tiny-v1"
    assert np.array_equal(np.asarray(e1), e1.code)
