"""Resolve what to run: a generation name or alias (through the registry), or an export folder.

A :class:`ServingTarget` says everything a caller needs to embed with a generation: its resolved name,
the family (Triton model name), the input spec for preprocessing, the code length, and the local ONNX
file for in-process inference. The Triton version number is not here: the server says which number
serves which generation (see :mod:`embsdk.serving.client`), the registry never guesses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embsdk.errors import ExportError, InferenceError
from embsdk.preprocess import InputSpec

__all__ = ["ONNX_ARTIFACT", "ServingTarget", "resolve_target"]

ONNX_ARTIFACT = "model.onnx"


@dataclass(frozen=True)
class ServingTarget:
    """A resolved generation, ready to embed with.

    Attributes:
        generation: resolved generation name (never an alias).
        family: Triton model name that serves it (e.g. ``unified``).
        input_spec: the preprocessing the model expects.
        bits: code length in bits.
        onnx_path: the ONNX file for in-process inference (None when not available locally).
        resolved_from: the alias or folder that was given, when not the name itself.
    """

    generation: str
    family: str
    input_spec: InputSpec
    bits: int
    onnx_path: Path | None = None
    resolved_from: str | None = None


def _from_export_dir(path: Path) -> ServingTarget:
    meta = path / "export.json"
    try:
        info: dict[str, Any] = json.loads(meta.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"{meta} is unreadable: {exc}") from None
    return ServingTarget(
        generation=str(info.get("generation") or path.name), family=str(info.get("family") or "unified"),
        input_spec=InputSpec.from_dict(info["input_spec"]), bits=int(info["embedding_spec"]["bits"]),
        onnx_path=path / info["model"]["file"], resolved_from=str(path),
    )


def _from_registry(version: str, registry_url: str | None) -> ServingTarget:
    from registry import Registry  # lazy: SQLAlchemy only when a name must be resolved

    with Registry(registry_url) as reg:
        gen = reg.resolve(version)
        try:
            gen.artifact(ONNX_ARTIFACT)
            onnx_path: Path | None = Path(reg.artifact_path(gen.name, ONNX_ARTIFACT))
        except (LookupError, OSError):  # KeyError is a LookupError
            onnx_path = None
    spec = gen.embedding_spec or {}
    if "bits" not in spec or not gen.input_spec:
        raise InferenceError(f"Generation {gen.name!r} records no embedding/input spec; it cannot be served.")
    return ServingTarget(generation=gen.name, family=gen.family, input_spec=InputSpec.from_dict(gen.input_spec),
                         bits=int(spec["bits"]), onnx_path=onnx_path,
                         resolved_from=version if version != gen.name else None)


def resolve_target(version: str | Path, *, registry_url: str | None = None) -> ServingTarget:
    """Resolve ``version``: an ``emb export`` folder, or a generation name/alias in the registry.

    Raises:
        GenerationNotFound / AliasNotFound: the registry has no such name.
        RetiredGeneration: it is retired.
        ExportError: a folder was given that is not a readable export.
    """
    path = Path(version)
    if path.is_dir() and (path / "export.json").is_file():
        return _from_export_dir(path)
    return _from_registry(str(version), registry_url)
