"""The embedding contract: one frozen, typed :class:`EmbeddingSpec`, built once, serialized once, checked once.

Every layer speaks it: the trainer records it in ``run.json`` and ``export.json``, the registry stores it
with each generation, the embedding store writes it into its manifest and shard headers, serving reads the
tensor names and sizes from it, and the Triton repository renders ``config.pbtxt`` from it. Its preprocessing
twin is :class:`embsdk.preprocess.InputSpec`.

The serialized form (:meth:`EmbeddingSpec.to_dict`) is exactly the ``embedding_spec`` dict that
``export.json``, registries and stores already hold::

    {"dim": 256, "bits": 256, "binarization": "layernorm-sign", "threshold": 0.0,
     "bit_order": "numpy-packbits-big", "float_dtype": "float32", "code_bytes": 32}

Older records that lack some keys (``{"bits": 256, "dim": 256}``) still load: the missing ones take their
defaults (``dim`` defaults to ``bits``). The ONNX tensor names (:data:`INPUT_NAME`,
:data:`EMBEDDING_OUTPUT`, :data:`CODE_OUTPUT`) are part of the contract; they are written only when they
differ from these standard names, so every existing record keeps its exact bytes. Unknown keys are kept
as given (after the known ones, in key order).

Two specs compare as specs: ``EmbeddingSpec.coerce(a) == EmbeddingSpec.coerce(b)`` whatever subset of the
default keys each dict spelled out.

Example:
    >>> spec = EmbeddingSpec(bits=256)
    >>> spec.code_bytes, spec.dim, spec.output_names
    (32, 256, ('embedding', 'code'))
    >>> EmbeddingSpec.from_dict(spec.to_dict()) == spec
    True
    >>> EmbeddingSpec.from_dict({"bits": 12})
    Traceback (most recent call last):
    ...
    embsdk.spec.InvalidEmbeddingSpec: Invalid embedding spec: bits must be a positive multiple of 8 (packed bytes), got 12.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from embsdk.codes import BIT_ORDER, THRESHOLD
from embsdk.errors import InvalidEmbeddingSpec

__all__ = [
    "BINARIZATION",
    "BIT_ORDER",
    "CODE_OUTPUT",
    "EMBEDDING_OUTPUT",
    "FLOAT_DTYPES",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "TENSOR_NAMES",
    "THRESHOLD",
    "EmbeddingSpec",
    "InvalidEmbeddingSpec",
]

INPUT_NAME = "image"
"""The ONNX / Triton input tensor: float32 ``(N, 3, S, S)``, preprocessed by :mod:`embsdk.preprocess`."""
EMBEDDING_OUTPUT = "embedding"
"""The float output tensor: the LayerNorm-ed embedding ``(N, dim)``."""
CODE_OUTPUT = "code"
"""The packed-code output tensor: uint8 ``(N, code_bytes)`` in :data:`BIT_ORDER`."""
OUTPUT_NAMES: tuple[str, str] = (EMBEDDING_OUTPUT, CODE_OUTPUT)
TENSOR_NAMES: tuple[str, str, str] = (INPUT_NAME, EMBEDDING_OUTPUT, CODE_OUTPUT)
"""The standard ``(input, embedding output, code output)`` names."""

BINARIZATION = "layernorm-sign"
"""The one binarization: LayerNorm (no affine), bit = value > :data:`THRESHOLD`."""
FLOAT_DTYPES: tuple[str, ...] = ("float32", "float16")

# Serialized keys, in the order every existing record has them; the tensor names follow only when not standard.
_KEYS = ("dim", "bits", "binarization", "threshold", "bit_order", "float_dtype", "code_bytes")
_NAME_KEYS = ("input_name", "embedding_output", "code_output")
_DEFAULT_NAMES = {"input_name": INPUT_NAME, "embedding_output": EMBEDDING_OUTPUT, "code_output": CODE_OUTPUT}


def _fail(why: str) -> InvalidEmbeddingSpec:
    return InvalidEmbeddingSpec(f"Invalid embedding spec: {why}.")


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class EmbeddingSpec:
    """What a generation's codes and float embeddings are, and which tensors carry them.

    Attributes:
        bits: code length; a positive multiple of 8 (codes are packed into whole bytes).
        dim: float embedding dimension (the default, 0, means ``bits``: one bit per dimension).
        binarization: always :data:`BINARIZATION` (``layernorm-sign``).
        threshold: a dimension's bit is 1 when its value is > threshold (:data:`THRESHOLD`, 0.0).
        bit_order: always :data:`BIT_ORDER` (``numpy.packbits`` big-endian).
        float_dtype: dtype of the float embedding the model outputs (``float32`` or ``float16``).
        input_name, embedding_output, code_output: ONNX / Triton tensor names.
        extra: keys this version does not know, kept as given (sorted by key).
    """

    bits: int
    dim: int = 0  # the default 0 means "same as bits" (filled in by __post_init__)
    binarization: str = BINARIZATION
    threshold: float = THRESHOLD
    bit_order: str = BIT_ORDER
    float_dtype: str = "float32"
    input_name: str = INPUT_NAME
    embedding_output: str = EMBEDDING_OUTPUT
    code_output: str = CODE_OUTPUT
    extra: tuple[tuple[str, Any], ...] = field(default=(), compare=True)

    def __post_init__(self) -> None:
        if not _int(self.bits) or self.bits <= 0 or self.bits % 8:
            raise _fail(f"bits must be a positive multiple of 8 (packed bytes), got {self.bits!r}")
        if self.dim == 0 and _int(self.dim):
            object.__setattr__(self, "dim", self.bits)
        if not _int(self.dim) or self.dim <= 0:
            raise _fail(f"dim must be a positive integer, got {self.dim!r}")
        if self.binarization != BINARIZATION:
            raise _fail(f"binarization must be {BINARIZATION!r}, got {self.binarization!r}")
        if (
            isinstance(self.threshold, bool)
            or not isinstance(self.threshold, (int, float))
            or not math.isfinite(self.threshold)
        ):
            raise _fail(f"threshold must be a finite number, got {self.threshold!r}")
        object.__setattr__(self, "threshold", float(self.threshold))
        if self.bit_order != BIT_ORDER:
            raise _fail(
                f"bit_order must be {BIT_ORDER!r} (numpy.packbits big-endian), got {self.bit_order!r}"
            )
        if self.float_dtype not in FLOAT_DTYPES:
            raise _fail(f"float_dtype must be one of {', '.join(FLOAT_DTYPES)}, got {self.float_dtype!r}")
        names = (self.input_name, self.embedding_output, self.code_output)
        if not all(isinstance(n, str) and n for n in names) or len(set(names)) != 3:
            raise _fail(f"tensor names must be three different non-empty strings, got {names!r}")
        if not isinstance(self.extra, tuple) or not all(
            isinstance(kv, tuple) and len(kv) == 2 and isinstance(kv[0], str) for kv in self.extra
        ):
            raise _fail(f"extra must be (key, value) pairs, got {self.extra!r}")
        clash = {k for k, _ in self.extra} & {*_KEYS, *_NAME_KEYS}
        if clash:
            raise _fail(f"extra repeats known keys {sorted(clash)}")
        object.__setattr__(self, "extra", tuple(sorted(self.extra, key=lambda kv: kv[0])))

    def __hash__(self) -> int:  # extra values may be lists or dicts: hash their JSON text
        extra = json.dumps(self.extra, sort_keys=True, default=repr)
        return hash((self.bits, self.dim, self.threshold, self.float_dtype, self.tensor_names, extra))

    # ------------------------------------------------------------------ derived
    @property
    def code_bytes(self) -> int:
        """Bytes per packed code: ``bits / 8``."""
        return self.bits // 8

    @property
    def float_dim(self) -> int:
        """The float embedding dimension (same as :attr:`dim`)."""
        return self.dim

    @property
    def output_names(self) -> tuple[str, str]:
        """``(embedding_output, code_output)``, the order every runtime asks for them."""
        return (self.embedding_output, self.code_output)

    @property
    def tensor_names(self) -> tuple[str, str, str]:
        """``(input_name, embedding_output, code_output)``."""
        return (self.input_name, self.embedding_output, self.code_output)

    # ------------------------------------------------------------------ (de)serialization
    def to_dict(self) -> dict[str, Any]:
        """The one serialization (what ``export.json``, the registry and the store record; see module doc)."""
        d: dict[str, Any] = {
            "dim": self.dim,
            "bits": self.bits,
            "binarization": self.binarization,
            "threshold": self.threshold,
            "bit_order": self.bit_order,
            "float_dtype": self.float_dtype,
            "code_bytes": self.code_bytes,
        }
        for key in _NAME_KEYS:
            if getattr(self, key) != _DEFAULT_NAMES[key]:
                d[key] = getattr(self, key)
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EmbeddingSpec:
        """Parse and check a serialized spec (missing keys take their defaults; unknown ones go to ``extra``).

        Raises:
            InvalidEmbeddingSpec: not a mapping, no ``bits``, or a value that breaks the contract
                (also when a recorded ``code_bytes`` disagrees with ``bits``).
        """
        if isinstance(d, EmbeddingSpec):
            return d
        if not isinstance(d, Mapping):
            raise _fail(f"expected a mapping like {{'bits': 256, 'dim': 256}}, got {type(d).__name__}")
        if "bits" not in d:
            raise _fail(f"no 'bits' in {dict(d)!r}; give at least {{'bits': N}}")
        known = {k: d[k] for k in (*_KEYS, *_NAME_KEYS) if k in d and k != "code_bytes"}
        extra = tuple((str(k), v) for k, v in d.items() if k not in _KEYS and k not in _NAME_KEYS)
        if "dim" in known and (not _int(known["dim"]) or known["dim"] <= 0):
            raise _fail(f"dim must be a positive integer, got {known['dim']!r}")
        spec = cls(**known, extra=extra)
        if "code_bytes" in d and d["code_bytes"] != spec.code_bytes:
            raise _fail(
                f"code_bytes {d['code_bytes']!r} disagrees with bits {spec.bits} (expected {spec.code_bytes})"
            )
        return spec

    @classmethod
    def coerce(cls, spec: EmbeddingSpec | Mapping[str, Any]) -> EmbeddingSpec:
        """An :class:`EmbeddingSpec` from either a spec or its dict (what public APIs accept)."""
        return spec if isinstance(spec, EmbeddingSpec) else cls.from_dict(spec)

    def with_dim(self, dim: int) -> EmbeddingSpec:
        """The spec of a sign-binarized model with ``dim`` float dimensions: ``bits = dim``."""
        return replace(self, bits=dim, dim=dim)
