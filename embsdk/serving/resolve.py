"""Resolve what to run: a generation name or alias (through the registry), or an export folder.

A :class:`ServingTarget` says everything a caller needs to embed with a generation: its resolved name,
the family (Triton model name), the input spec for preprocessing, the code length and embedding spec,
and the local ONNX file for in-process inference. A name or alias is resolved once, through the one
lifecycle rule (:func:`embsdk.resolver.resolve_generation`: retired is refused, deprecated warns); an
export folder has no lifecycle. The Triton version number is not here: the server says which number
serves which generation (see :mod:`embsdk.serving.client`), the registry never guesses it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embsdk.config import get_settings
from embsdk.errors import ExportError, InferenceError
from embsdk.preprocess import InputSpec
from embsdk.resolver import resolve_generation
from embsdk.spec import EmbeddingSpec

if TYPE_CHECKING:
    from registry import Registry

__all__ = ["ONNX_ARTIFACT", "ServingTarget", "registry_target", "resolve_target"]

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
        embedding_spec: the generation's embedding spec as recorded (its store is written with it); checked
            by :meth:`EmbeddingSpec.from_dict` when the target was resolved. :attr:`spec` is its typed view.
    """

    generation: str
    family: str
    input_spec: InputSpec
    bits: int
    onnx_path: Path | None = None
    resolved_from: str | None = None
    embedding_spec: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> EmbeddingSpec:
        """The typed :class:`~embsdk.spec.EmbeddingSpec` (tensor names, code bytes, dim).

        Raises:
            InvalidEmbeddingSpec: :attr:`embedding_spec` breaks the contract (or is empty).
        """
        return EmbeddingSpec.from_dict(self.embedding_spec)


def _from_export_dir(path: Path) -> ServingTarget:
    meta = path / "export.json"
    try:
        info: dict[str, Any] = json.loads(meta.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"{meta} is unreadable: {exc}") from None
    try:
        spec = EmbeddingSpec.from_dict(info["embedding_spec"])
    except (KeyError, ValueError) as exc:  # InvalidEmbeddingSpec is a ValueError
        raise ExportError(f"{meta} records no valid embedding spec: {exc}") from None
    return ServingTarget(
        generation=str(info.get("generation") or path.name),
        family=str(info.get("family") or "unified"),
        input_spec=InputSpec.from_dict(info["input_spec"]),
        bits=spec.bits,
        onnx_path=path / info["model"]["file"],
        resolved_from=str(path),
        embedding_spec=dict(info["embedding_spec"]),
    )


_REGISTRIES: dict[str, Registry] = {}
_REGISTRIES_LOCK = threading.Lock()


def _registry(registry_url: str | None) -> Registry:
    """The registry at *registry_url* (default: the configured one), opened once per process and URL.

    Every call still resolves the name anew (a retired generation is refused at once); only the engine and its
    connection pool are reused. A read never creates a registry.
    """
    url = registry_url or get_settings().registry_url
    reg = _REGISTRIES.get(url)
    if reg is None:
        from registry import Registry  # lazy: SQLAlchemy only when a name must be resolved

        with _REGISTRIES_LOCK:
            reg = _REGISTRIES.get(url)
            if reg is None:
                reg = _REGISTRIES[url] = Registry(url, create=False)
    return reg


def registry_target(version: str, *, registry_url: str | None = None, stacklevel: int = 1) -> ServingTarget:
    """Resolve a generation name or alias in the registry, applying the lifecycle rule.

    Args:
        stacklevel: where a deprecation warning points, counted from the caller (1: the caller).

    Raises:
        GenerationNotFound / AliasNotFound: the registry has no such name.
        RetiredGeneration: it is retired.
        InferenceError: it records no embedding/input spec, or one that breaks the contract.
    """
    reg = _registry(registry_url)
    gen = resolve_generation(reg, version, stacklevel=stacklevel + 1)
    try:
        gen.artifact(ONNX_ARTIFACT)
        onnx_path: Path | None = Path(reg.artifact_path(gen.name, ONNX_ARTIFACT))
    except (LookupError, OSError):  # KeyError is a LookupError
        onnx_path = None
    spec = gen.embedding_spec or {}
    if "bits" not in spec or not gen.input_spec:
        raise InferenceError(f"Generation {gen.name!r} records no embedding/input spec; it cannot be served.")
    try:
        typed = EmbeddingSpec.from_dict(spec)
    except ValueError as exc:  # InvalidEmbeddingSpec
        raise InferenceError(f"Generation {gen.name!r} cannot be served: {exc}") from None
    return ServingTarget(
        generation=gen.name,
        family=gen.family,
        input_spec=InputSpec.from_dict(gen.input_spec),
        bits=typed.bits,
        onnx_path=onnx_path,
        resolved_from=version if version != gen.name else None,
        embedding_spec=dict(spec),
    )


def resolve_target(
    version: str | Path, *, registry_url: str | None = None, stacklevel: int = 1
) -> ServingTarget:
    """Resolve ``version``: an ``emb export`` folder, or a generation name/alias in the registry.

    Args:
        stacklevel: where a deprecation warning points, counted from the caller (1: the caller).

    Raises:
        GenerationNotFound / AliasNotFound: the registry has no such name.
        RetiredGeneration: it is retired.
        ExportError: a folder was given that is not a readable export.
    """
    path = Path(version)
    if path.is_dir() and (path / "export.json").is_file():
        return _from_export_dir(path)
    return registry_target(str(version), registry_url=registry_url, stacklevel=stacklevel + 1)
