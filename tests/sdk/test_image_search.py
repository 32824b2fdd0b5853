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
    info = export_model(make_tiny_model(0), export, input_spec=InputSpec(image_size=32), parity_images=images[:4])
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("EMB_REGISTRY_URL", url)
    reg = Registry(url)
    reg.register("tiny-v1", artifacts=[export / info["model"]["file"]], embedding_spec=info["embedding_spec"],
                 input_spec=info["input_spec"])
    reg.close()
    embs = embsdk.embed(images, version="tiny-v1", return_float=True)
    ids = np.arange(100, 110)
    w = StoreWriter(emb_home / "store", "tiny-v1", info["embedding_spec"])
    w.upsert(ids, np.stack([e.code for e in embs]), np.stack([e.vector for e in embs]))
    w.commit()
    from embsdk.client import _DEFAULT

    _DEFAULT.clear()
    return images, ids, url


def test_search_by_image_path_finds_itself(image_generation):
    images, ids, _ = image_generation
    res = embsdk.search(str(images[3]), version="tiny-v1", k=3)
    assert res.ids[0] == ids[3] and res.distances[0] == 0
    reranked = embsdk.search(images[3], version="tiny-v1", k=3, rerank=True)
    assert reranked.ids[0] == ids[3] and reranked.scores[0] == pytest.approx(1.0, abs=1e-2)


def test_emb_search_image_cli(image_generation):
    images, ids, url = image_generation
    emb = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "emb")
    r = subprocess.run([emb, "search", "--image", str(images[5]), "--version", "tiny-v1", "-k", "5", "--json"],
                       env={**os.environ, "EMB_REGISTRY_URL": url}, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ids"][0] == ids[5] and out["hamming"][0] == 0 and len(out["ids"]) == 5
    bad = images[0].parent / "broken.jpg"
    bad.write_bytes(b"not an image")
    r = subprocess.run([emb, "search", "--image", str(bad), "--version", "tiny-v1"],
                       env={**os.environ, "EMB_REGISTRY_URL": url}, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 1 and "Cannot read image" in r.stderr and "Traceback" not in r.stderr
