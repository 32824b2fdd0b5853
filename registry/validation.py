"""Checks and normalizations for what users hand the registry: names, kinds, metrics, specs, datasets."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from embsdk._fileio import sha256_file
from embsdk.errors import InvalidRegistryInput
from embsdk.names import check_generation_name
from embsdk.spec import EmbeddingSpec
from registry.entities import DatasetRef

__all__ = [
    "ARTIFACT_ROLES",
    "LINEAGE_KINDS",
    "check_code_bits",
    "check_embedding_spec",
    "check_kind",
    "check_metrics",
    "check_name",
    "check_positive_int",
    "dataset_from_path",
    "default_embedding_spec",
    "derive_family",
    "parse_parent_spec",
]

LINEAGE_KINDS: tuple[str, ...] = ("fine-tuned-from", "distilled-from", "replaces", "compatible-with")
ARTIFACT_ROLES: tuple[str, ...] = (
    "model",
    "plan",
    "config",
    "store-shard",
    "index",
    "eval-report",
    "attachment",
)
_KEY_RE = re.compile(r"^[^\s/]+(/[^\s/]+)*$")


def check_name(name: str, what: str = "generation") -> str:
    """Names of generations, aliases, families and teams: the one rule, :func:`embsdk.names.check_generation_name`."""
    return check_generation_name(name, what)


def parse_parent_spec(text: str, default_kind: str = "fine-tuned-from") -> tuple[str, str]:
    """``NAME[:KIND]`` (the CLI's ``--parent``) → ``(name, kind)``, both checked; KIND defaults to *default_kind*.

    Example:
        >>> parse_parent_spec("unified-v1:replaces"), parse_parent_spec("unified-v1")
        (('unified-v1', 'replaces'), ('unified-v1', 'fine-tuned-from'))

    Raises:
        InvalidRegistryInput: a bad name, an unknown kind, or an empty KIND after ``:``.
    """
    if not isinstance(text, str):
        raise InvalidRegistryInput(f"A parent is NAME or NAME:KIND, got {text!r}.")
    name, sep, kind = text.partition(":")
    if sep and not kind:
        raise InvalidRegistryInput(
            f"Parent {text!r} has an empty kind after ':'; use NAME or NAME:KIND, KIND one of: "
            f"{', '.join(LINEAGE_KINDS)}."
        )
    return check_name(name, "parent generation"), check_kind(kind or default_kind)


def check_kind(kind: str) -> str:
    if kind not in LINEAGE_KINDS:
        raise InvalidRegistryInput(f"Unknown lineage kind {kind!r}; use one of: {', '.join(LINEAGE_KINDS)}.")
    return kind


def derive_family(name: str) -> str:
    """``unified-v2`` → ``unified``; a name without ``-v<N>`` is its own family."""
    m = re.match(r"^(?P<family>.+?)-v\d+([._\-].*)?$", name)
    return m.group("family") if m else name


def check_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    """Metric keys look like ``task/dataset/metric/variant``; values must be finite numbers."""
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        if not isinstance(key, str) or len(key) > 255 or not _KEY_RE.match(key):
            raise InvalidRegistryInput(
                f"Invalid metric key {key!r}: use 'task/dataset/metric/variant', e.g. 'coarse/grocery-test/r@1/binary'."
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidRegistryInput(f"Metric {key!r} must be a number, got {value!r}.") from None
        if not math.isfinite(number):
            raise InvalidRegistryInput(f"Metric {key!r} must be finite, got {value!r}.")
        out[key] = number
    return out


def default_embedding_spec(bits: int, *, dim: int | None = None) -> dict[str, Any]:
    """The spec of a unified binarized embedding (LayerNorm, sign at 0, numpy packbits big-endian), serialized.

    ``EmbeddingSpec(bits, dim).to_dict()``; see :class:`embsdk.spec.EmbeddingSpec`.

    Raises:
        InvalidRegistryInput: *bits* is not a positive multiple of 8, or *dim* is not a positive integer.
    """
    check_code_bits(bits, "bits")
    if dim is not None:
        check_positive_int(dim, "dim")
    return EmbeddingSpec(bits=bits, dim=dim if dim is not None else bits).to_dict()


def check_positive_int(value: object, what: str) -> int:
    """*value* as a positive ``int`` (``bool`` is refused), else :class:`InvalidRegistryInput` naming *what*."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidRegistryInput(f"{what} must be a positive integer, got {value!r}.")
    return value


def check_code_bits(value: object, what: str) -> int:
    """A code length: a positive multiple of 8 (codes are packed into whole bytes)."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value % 8:
        raise InvalidRegistryInput(f"{what} must be a positive multiple of 8 (packed bytes), got {value!r}.")
    return value


def check_embedding_spec(spec: EmbeddingSpec | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Validate an embedding spec through :meth:`EmbeddingSpec.from_dict` → the dict the registry stores.

    A dict is stored as given once it passes (records keep their exact bytes; unknown keys are kept), an
    :class:`EmbeddingSpec` as its :meth:`~EmbeddingSpec.to_dict`.

    Raises:
        InvalidEmbeddingSpec (an InvalidRegistryInput): the spec breaks the contract.
    """
    if spec is None:
        return None
    if isinstance(spec, EmbeddingSpec):
        return spec.to_dict()
    EmbeddingSpec.from_dict(spec)
    return dict(spec)


def dataset_from_path(path: Path, *, role: str = "train") -> DatasetRef:
    """A manifest file → DatasetRef(name=file stem, sha256 of the file, row count).

    Rows: data lines of a CSV/TSV (header excluded), lines of JSONL, rows of Parquet (pyarrow metadata).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidRegistryInput(f"Dataset manifest {str(path)!r} does not exist or is not a file.")
    rows: int | None
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            rows = int(pq.ParquetFile(path).metadata.num_rows)
        except ImportError:
            rows = None
    else:
        with open(path, "rb") as fh:
            rows = sum(1 for line in fh if line.strip())
        if suffix in (".csv", ".tsv") and rows:
            rows -= 1
    return DatasetRef(name=path.stem, sha256=sha256_file(path), rows=rows, role=role)
