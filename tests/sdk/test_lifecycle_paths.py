"""One lifecycle rule on every path: retired is refused and deprecated warns in get, embed and backfill alike."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import embsdk
from embsdk.errors import DeprecatedGenerationWarning, RetiredGeneration
from tests.backfill.conftest import Published, publish_tiny

ROOT = Path(__file__).resolve().parents[2]
EMB = str(Path(sys.executable).with_name("emb"))


@pytest.fixture
def published(tmp_path: Path) -> Published:
    return publish_tiny(tmp_path, n_images=5)


def _emb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EMB, *args], capture_output=True, text=True, cwd=ROOT, env=os.environ.copy(), check=False
    )


def _retire(name: str) -> None:
    from registry import Registry

    with Registry() as reg:
        reg.set_alias("live", name)
        reg.retire(name, reason="replaced", force=True)


def _deprecate(name: str) -> None:
    from registry import Registry

    with Registry() as reg:
        reg.promote(name, to="staging")
        reg.promote(name, to="production")
        reg.deprecate(name, reason="replaced", force=True)


def _store_dir(name: str) -> Path:
    return embsdk.get_settings().store_dir / name


def test_retired_generation_does_not_embed(published: Published) -> None:
    _retire(published.generation)
    image = str(published.paths[0])
    for ref in (published.generation, "live"):  # by name and through an alias
        with pytest.raises(RetiredGeneration, match="retired"):
            embsdk.embed([image], version=ref)
    out = _emb("embed", image, "--version", published.generation)
    assert out.returncode == 1 and out.stdout == ""
    assert (
        out.stderr.startswith(f"error: Generation {published.generation!r} is retired")
        and "Traceback" not in out.stderr
    )


def test_export_folder_has_no_lifecycle(published: Published) -> None:
    _retire(published.generation)
    export = published.manifest.parent / "export"
    assert embsdk.embed([published.paths[0]], version=str(export))[0].bits == 64


def test_retired_generation_does_not_backfill_and_writes_no_shard(published: Published) -> None:
    from embsdk.backfill import backfill

    _retire(published.generation)
    with pytest.raises(RetiredGeneration):
        backfill(published.generation, published.manifest, progress=False)
    out = _emb("backfill", "--version", published.generation, "--manifest", str(published.manifest))
    assert out.returncode == 1
    message = (
        f"error: Generation {published.generation!r} is retired and can no longer be read; "
        f"move to its replacement (emb registry lineage {published.generation})."
    )
    assert out.stderr.strip().splitlines() == [message], out.stderr
    assert not _store_dir(published.generation).exists()  # refused before any shard was written


def test_deprecated_generation_warns_in_embed_and_backfill(published: Published) -> None:
    from embsdk.backfill import backfill

    _deprecate(published.generation)
    with pytest.warns(DeprecatedGenerationWarning, match="deprecated") as caught:
        assert len(embsdk.embed([published.paths[0]], version=published.generation)) == 1
    assert caught[0].filename == __file__  # points at the caller, not inside embsdk
    with pytest.warns(DeprecatedGenerationWarning, match="deprecated") as caught:
        report = backfill(published.generation, published.manifest, progress=False)
    assert report.embedded == len(published.good_ids) and caught[0].filename == __file__
    warning = f"warning: Generation {published.generation!r} is deprecated"
    for args in (
        ("embed", str(published.paths[0])),
        ("backfill", "--resume", "--manifest", str(published.manifest)),
    ):
        out = _emb(*args, "--version", published.generation, "--json")
        assert out.returncode == 0, out.stderr
        shown = [line for line in out.stderr.splitlines() if "deprecated" in line]
        assert len(shown) == 1 and shown[0].startswith(warning), out.stderr  # one line, no source echo


def test_backfill_resolves_the_generation_once(published: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    import embsdk.resolver
    from embsdk.backfill import backfill

    checked: list[tuple[str, str | None]] = []
    rule = embsdk.resolver.check_lifecycle
    monkeypatch.setattr(
        embsdk.resolver,
        "check_lifecycle",
        lambda name, status, **kw: (checked.append((name, status)), rule(name, status, **kw)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a candidate: no lifecycle warning
        backfill(published.generation, published.manifest, progress=False)
    assert checked == [(published.generation, "candidate")]


def test_embed_reuses_one_registry_and_still_sees_a_retirement_at_once(
    published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    """resolve_target used to open (and close) a new registry on every embed() call."""
    import registry
    from embsdk.serving import resolve

    opened: list[str | None] = []
    real_init = registry.Registry.__init__

    def counting_init(self: registry.Registry, *args: object, **kwargs: object) -> None:
        opened.append(str(args[0]) if args else None)
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(resolve, "_REGISTRIES", {})
    monkeypatch.setattr(registry.Registry, "__init__", counting_init)
    for _ in range(3):
        assert len(embsdk.embed([published.paths[0]], version=published.generation)) == 1
    assert len(opened) == 1
    monkeypatch.setattr(registry.Registry, "__init__", real_init)
    _retire(published.generation)
    with pytest.raises(RetiredGeneration):
        embsdk.embed([published.paths[0]], version=published.generation)
