"""The export folder's format, readable without torch: ``model.onnx`` + ``export.json``.

Used by the exporter (:mod:`trainer.export`), the Triton repository generator and publish.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from embsdk._fileio import sha256_file
from embsdk.errors import ExportError

__all__ = ["read_export", "sha256_file"]


def read_export(export_dir: str | Path) -> dict[str, Any]:
    """Read and verify an export folder: ``export.json`` present, ``model.onnx`` hashing to its recorded sha256.

    Raises:
        ExportError: the folder is not a complete export, or the model file does not match its hash.
    """
    d = Path(export_dir)
    meta_path = d / "export.json"
    if not meta_path.is_file():
        raise ExportError(
            f"{d} is not an export folder (no export.json). Create one with: emb export RUN --out {d}"
        )
    info = json.loads(meta_path.read_text())
    model_path = d / info["model"]["file"]
    if not model_path.is_file():
        raise ExportError(f"{model_path} is missing; re-run emb export.")
    actual = sha256_file(model_path)
    if actual != info["model"]["sha256"]:
        raise ExportError(
            f"{model_path} hashes to {actual[:12]}…, but export.json records {info['model']['sha256'][:12]}…"
        )
    return info
