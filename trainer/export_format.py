"""The export folder's format, readable without torch: ``model.onnx`` + ``export.json``.

The reader lives in :mod:`embsdk.export_format` (standard library only); this module keeps the trainer's old
import path and adds the typed view of an export's embedding contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from embsdk.export_format import EXPORT_META, read_export, sha256_file
from embsdk.spec import EmbeddingSpec

__all__ = ["EXPORT_META", "export_spec", "read_export", "sha256_file"]


def export_spec(info: Mapping[str, Any]) -> EmbeddingSpec:
    """The :class:`~embsdk.spec.EmbeddingSpec` an ``export.json`` (as read by :func:`read_export`) records.

    Raises:
        InvalidEmbeddingSpec: the recorded spec breaks the contract.
    """
    return EmbeddingSpec.from_dict(info["embedding_spec"])
