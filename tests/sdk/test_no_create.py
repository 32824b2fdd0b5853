"""A read never creates a registry: a mistyped registry path is a typed error naming it, and nothing appears.

Writers (register, migrate, ``emb registry migrate``) still create a missing registry.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import embsdk
from embsdk.errors import RegistryError
from registry import Registry
from registry.db import RegistryNotFound


def _typo(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "typo"
    return folder, f"sqlite:///{folder / 'registry.db'}"


def test_client_read_on_a_missing_registry_creates_nothing(tmp_path: Path, emb_home: Path) -> None:
    folder, url = _typo(tmp_path)
    client = embsdk.Client(registry_url=url, store=tmp_path / "store")
    with pytest.raises(RegistryNotFound) as err:
        client.get_embedding(123, version="unified-v1")
    assert isinstance(err.value, RegistryError) and isinstance(err.value, embsdk.errors.EmbsdkError)
    assert str(folder / "registry.db") in str(err.value)
    with pytest.raises(RegistryNotFound):
        client.search(123, version="unified-v1", k=3)
    assert not folder.exists()  # no registry.db, no lock file, not even the folder
    assert not (tmp_path / "store").exists()


def test_embed_resolve_on_a_missing_registry_creates_nothing(tmp_path: Path, emb_home: Path) -> None:
    from embsdk.serving.resolve import resolve_target

    folder, url = _typo(tmp_path)
    with pytest.raises(RegistryNotFound, match="No registry at"):
        resolve_target("unified-v1", registry_url=url)
    assert not folder.exists()


def test_registry_reader_refuses_but_an_existing_empty_folder_is_kept_as_is(tmp_path: Path) -> None:
    folder, url = _typo(tmp_path)
    folder.mkdir()
    with pytest.raises(RegistryNotFound):
        Registry(url, create=False)
    assert list(folder.iterdir()) == []


def test_writers_still_create(tmp_path: Path, emb_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from registry import default_embedding_spec

    folder, url = _typo(tmp_path)
    with Registry(url) as reg:  # register / publish open the registry this way
        reg.register("unified-v1", embedding_spec=default_embedding_spec(64, dim=64))
    assert (folder / "registry.db").is_file()
    with Registry(url, create=False) as reader:  # now it exists: readers open it
        assert reader.get("unified-v1").name == "unified-v1"

    from cli.main import app

    other = tmp_path / "fresh" / "registry.db"
    monkeypatch.setenv("EMB_REGISTRY_URL", f"sqlite:///{other}")
    res = CliRunner().invoke(app, ["registry", "migrate"])
    assert res.exit_code == 0, res.output
    assert other.is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["registry", "list"],
        ["registry", "show", "unified-v1"],
        ["registry", "lineage", "unified-v1"],
        ["registry", "events", "unified-v1"],
        ["registry", "compare", "unified-v1", "unified-v2"],
        ["registry", "alias", "list"],
        ["registry", "alias", "history", "production"],
        ["registry", "consumers", "list"],
        ["registry", "fsck"],
    ],
)
def test_emb_registry_reads_on_a_missing_registry_create_nothing(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.main import main  # the console script's entry: errors become one line and an exit code

    folder, url = _typo(tmp_path)
    monkeypatch.setenv("EMB_REGISTRY_URL", url)
    monkeypatch.setattr("sys.argv", ["emb", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 1, err
    assert "No registry at" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not folder.exists()
