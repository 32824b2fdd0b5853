"""Search by image, end to end: a real exported model in the registry, embedded in-process with ONNX Runtime."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import embsdk
from embsdk.store import StoreWriter

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


@pytest.fixture
def image_generation(tmp_path: Path, emb_home: Path, monkeypatch: pytest.MonkeyPatch):
    """Generation ``tiny-v1`` with a real ONNX model; its store holds the codes of 10 image files."""
    from embsdk.preprocess import InputSpec
    from registry import Registry
    from tests.serving.conftest import make_tiny_model, write_images
    from trainer.export import export_model

    images = write_images(tmp_path / "images", 10)
    export = tmp_path / "export"
    info = export_model(
        make_tiny_model(0), export, input_spec=InputSpec(image_size=32), parity_images=images[:4]
    )
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("EMB_REGISTRY_URL", url)
    reg = Registry(url)
    reg.register(
        "tiny-v1",
        artifacts=[export / info["model"]["file"]],
        embedding_spec=info["embedding_spec"],
        input_spec=info["input_spec"],
    )
    reg.close()
    embs = embsdk.embed(images, version="tiny-v1", return_float=True)
    ids = np.arange(100, 110)
    w = StoreWriter(emb_home / "store", "tiny-v1", info["embedding_spec"])
    w.upsert(ids, np.stack([e.code for e in embs]), np.stack([e.vector for e in embs]))
    w.commit()
    from embsdk.client import _DEFAULT

    _DEFAULT.clear()
    return images, ids, url


EMB = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "emb")


def _emb(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``emb`` command on the fixture's registry."""
    return subprocess.run(
        [EMB, *args],
        env={**os.environ, "EMB_REGISTRY_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _deprecate(url: str, name: str) -> None:
    from registry import Registry

    with Registry(url) as reg:
        reg.promote(name, to="staging")
        reg.promote(name, to="production")
        reg.deprecate(name, reason="replaced", force=True)


def test_search_by_image_path_finds_itself(image_generation):
    images, ids, _ = image_generation
    res = embsdk.search(str(images[3]), version="tiny-v1", k=3)
    assert res.ids[0] == ids[3] and res.distances[0] == 0
    reranked = embsdk.search(images[3], version="tiny-v1", k=3, rerank=True)
    assert reranked.ids[0] == ids[3] and reranked.scores[0] == pytest.approx(1.0, abs=1e-2)


def test_emb_search_image_cli(image_generation):
    images, ids, url = image_generation
    r = _emb(url, "search", "--image", str(images[5]), "--version", "tiny-v1", "-k", "5", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ids"][0] == ids[5] and out["hamming"][0] == 0 and len(out["ids"]) == 5
    bad = images[0].parent / "broken.jpg"
    bad.write_bytes(b"not an image")
    r = _emb(url, "search", "--image", str(bad), "--version", "tiny-v1")
    assert r.returncode == 1 and "Cannot read image" in r.stderr and "Traceback" not in r.stderr


def test_search_by_image_of_a_deprecated_generation_warns_once(image_generation):
    """Search resolves the generation, then embeds the image with it: one warning, not one per step."""
    images, ids, url = image_generation
    _deprecate(url, "tiny-v1")
    r = _emb(url, "search", "--image", str(images[2]), "--version", "tiny-v1", "-k", "3", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ids"][0] == ids[2]
    shown = [line for line in r.stderr.splitlines() if "deprecated" in line]
    assert len(shown) == 1, r.stderr


def test_search_of_a_deprecated_generation_warns_once_per_call(image_generation):
    import warnings

    from embsdk.errors import DeprecatedGenerationWarning

    images, ids, url = image_generation
    _deprecate(url, "tiny-v1")
    client = embsdk.Client(url, resolve_ttl=0)
    for query in (int(ids[4]), str(images[4])):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = client.search(query, version="tiny-v1", k=2)
        assert res.ids[0] == ids[4]
        assert [w.category for w in caught] == [DeprecatedGenerationWarning], query
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client.search_batch(
            np.stack([client.get_embeddings([int(ids[1])], "tiny-v1").codes[0]]), "tiny-v1", k=1
        )
    assert (
        len([w for w in caught if w.category is DeprecatedGenerationWarning]) == 2
    )  # get_embeddings + search_batch
