"""``import embsdk`` and the get_embedding path never import torch (fresh interpreters, real modules)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from embsdk.store import StoreWriter

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "sqlalchemy", "faiss", "tritonclient", "onnxruntime")


def _modules_after(code: str, env: dict[str, str]) -> dict[str, bool]:
    probe = code + f"\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_embsdk_is_light():
    loaded = _modules_after("import embsdk; embsdk.Embedding; embsdk.Client", {})
    assert not any(loaded.values()), loaded


def test_get_embedding_path_never_imports_torch(populated):
    code = f"import embsdk\ne = embsdk.get_embedding({int(populated.ids[0])}, version='production')\nassert e.generation == 'unified-v1'"
    loaded = _modules_after(
        code, {"EMB_REGISTRY_URL": populated.registry_url, "EMB_STORE": str(populated.store_dir)}
    )
    assert not loaded["torch"] and not loaded["faiss"] and not loaded["onnxruntime"]
    assert loaded["sqlalchemy"]  # the registry is reached lazily, on the first call that resolves a version


def test_standalone_store_read_imports_only_numpy(tmp_path):
    with StoreWriter(tmp_path, "g1", {"bits": 64}) as w:
        w.upsert([1, 2], np.zeros((2, 8), np.uint8))
    code = (
        f"import embsdk\nc = embsdk.Client(store={str(tmp_path)!r}, use_registry=False)\n"
        "assert c.get_embeddings([2, 1], 'g1').ids.tolist() == [2, 1]"
    )
    assert not any(_modules_after(code, {}).values())


def test_public_names_resolve():
    import embsdk

    assert sorted(embsdk.__all__) == sorted([*embsdk._LAZY, "embed", "__version__"])
    for name in embsdk.__all__:
        assert getattr(embsdk, name) is not None, name
    assert callable(embsdk.embed)  # the function, never shadowed by the embsdk.embed submodule
