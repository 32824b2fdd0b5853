"""The export folder's format, readable without torch: ``model.onnx`` + ``export.json``.

The lowest layer both sides of an export use: the exporter (``trainer``) writes it, the Triton repository
generator (``triton_models``) and the publish orchestration (``publishing``) read it. Standard library only,
so that reading an export never imports torch, the registry or Triton.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from embsdk._fileio import sha256_file
from embsdk.errors import ExportError

__all__ = ["EXPORT_META", "read_export", "sha256_file"]

EXPORT_META = "export.json"
"""The metadata file of an export folder (model file name and sha256, embedding and input specs, parity)."""


def read_export(export_dir: str | Path) -> dict[str, Any]:
    """Read and verify an export folder: ``export.json`` present, ``model.onnx`` hashing to its recorded sha256.

    Raises:
        ExportError: the folder is not a complete export, or the model file does not match its hash.
    """
    d = Path(export_dir)
    meta_path = d / EXPORT_META
    if not meta_path.is_file():
        raise ExportError(
            f"{d} is not an export folder (no {EXPORT_META}). Create one with: emb export RUN --out {d}"
        )
    info = json.loads(meta_path.read_text())
    model_path = d / info["model"]["file"]
    if not model_path.is_file():
        raise ExportError(f"{model_path} is missing; re-run emb export.")
    actual = sha256_file(model_path)
    if actual != info["model"]["sha256"]:
        raise ExportError(
            f"{model_path} hashes to {actual[:12]}…, but {EXPORT_META} records {info['model']['sha256'][:12]}…"
        )
    return info
