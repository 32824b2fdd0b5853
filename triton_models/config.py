"""Write Triton ``config.pbtxt`` files by code, and validate them against Triton's own schema.

Three backends, one model per family (e.g. ``unified``), one numbered version per generation:

* ``python``: a Python-backend model running ONNX Runtime on CPU (what runs here and in the tests);
* ``onnxruntime``: Triton's ``onnxruntime_onnx`` platform (GPU servers);
* ``tensorrt``: Triton's ``tensorrt_plan`` platform (GPU servers, FP16 engine + compatibility manifest).

The generation ↔ version mapping is written into the config as parameters
(``generation:<name>`` → version number), so a client can ask the server which version serves a
generation without reading the repository's files.

Example:
    >>> spec = ModelSpec(family="unified")
    >>> text = render_config(spec, {1: ServedVersion("unified-v1", image_size=32, dim=64)})
    >>> validate_config(text).max_batch_size
    64
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from embsdk.errors import ConfigError
from embsdk.names import NAME_RULE, is_generation_name
from embsdk.serving.client import GENERATION_PARAM_PREFIX, IMAGE_SIZE_PARAM_PREFIX
from embsdk.spec import CODE_OUTPUT, EMBEDDING_OUTPUT, INPUT_NAME, TENSOR_NAMES, EmbeddingSpec

__all__ = [
    "BACKENDS",
    "GENERATION_PARAM_PREFIX",
    "IMAGE_SIZE_PARAM_PREFIX",
    "INPUT_NAME",
    "OUTPUT_CODE",
    "OUTPUT_EMBEDDING",
    "Backend",
    "ModelSpec",
    "ServedVersion",
    "check_name",
    "render_config",
    "validate_config",
]

Backend = Literal["python", "onnxruntime", "tensorrt"]
BACKENDS: tuple[str, ...] = ("python", "onnxruntime", "tensorrt")
OUTPUT_EMBEDDING, OUTPUT_CODE = EMBEDDING_OUTPUT, CODE_OUTPUT  # the names live in embsdk.spec


def check_name(name: str, what: str = "name") -> str:
    """Family and generation names become directory names and config keys: the one rule of :mod:`embsdk.names`.

    Raises:
        ConfigError: the name breaks the rule.
    """
    if not is_generation_name(name):
        raise ConfigError(f"Invalid {what} {name!r}: use {NAME_RULE}.")
    return name


@dataclass(frozen=True)
class ModelSpec:
    """What a family's Triton model looks like.

    Attributes:
        family: Triton model name (e.g. ``unified``).
        backend: ``python`` (CPU, ONNX Runtime inside), ``onnxruntime`` or ``tensorrt`` (GPU).
        max_batch_size: largest batch Triton accepts (and forms by dynamic batching).
        max_queue_delay_us: how long the dynamic batcher waits to fill a batch.
        instances: model instances (CPU processes for the python backend, per GPU otherwise).
        ort_threads: ONNX Runtime intra-op threads per instance (python backend); 0 lets ONNX Runtime use
            every core. On CPU, more instances with fewer threads serve concurrent clients better.
    """

    family: str
    backend: Backend = "python"
    max_batch_size: int = 64
    max_queue_delay_us: int = 500
    instances: int = 1
    ort_threads: int = 0

    def __post_init__(self) -> None:
        check_name(self.family, "family")
        if self.backend not in BACKENDS:
            raise ConfigError(f"Unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}.")
        if self.max_batch_size <= 0 or self.instances <= 0 or self.ort_threads < 0:
            raise ConfigError(f"max_batch_size and instances must be positive, ort_threads >= 0: {self}")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class ServedVersion:
    """One numbered version of a family's model: the generation it serves and its tensor sizes.

    Attributes:
        generation: the generation name (never an alias).
        image_size: input side S; the input is float32 (3, S, S) per item.
        dim: float embedding dimension D.
        code_bytes: bytes of the packed code (0: ceil(D / 8), the one-bit-per-dimension default).
        tensor_names: ``(input, embedding output, code output)`` (default: :mod:`embsdk.spec`'s names).

    Build one from the generation's spec with :meth:`from_spec`.
    """

    generation: str
    image_size: int
    dim: int
    code_bytes: int = 0
    tensor_names: tuple[str, str, str] = field(default=TENSOR_NAMES)

    def __post_init__(self) -> None:
        check_name(self.generation, "generation")
        if self.image_size <= 0 or self.dim <= 0 or self.code_bytes < 0:
            raise ConfigError(f"image_size and dim must be positive: {self}")
        if not self.code_bytes:
            object.__setattr__(self, "code_bytes", (self.dim + 7) // 8)
        object.__setattr__(self, "tensor_names", tuple(self.tensor_names))

    @classmethod
    def from_spec(
        cls, generation: str, image_size: int, spec: EmbeddingSpec | Mapping[str, Any]
    ) -> ServedVersion:
        """The version serving *generation*, its sizes and tensor names taken from its embedding spec."""
        typed = EmbeddingSpec.coerce(spec)
        return cls(generation, image_size, typed.dim, typed.code_bytes, typed.tensor_names)


def _common(values: set[int]) -> int:
    """A fixed dimension when every version agrees, else -1 (variable)."""
    return values.pop() if len(values) == 1 else -1


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(spec: ModelSpec, versions: Mapping[int, ServedVersion]) -> str:
    """The ``config.pbtxt`` text of ``spec``'s model, serving exactly ``versions`` (number → version).

    Tensor dims are fixed where all versions agree and variable (-1) where generations differ, so one
    Triton model can serve, say, a 256-bit and a 512-bit generation side by side.

    Raises:
        ConfigError: no versions, a bad name, or versions whose tensor names differ (one model, one signature).
    """
    if not versions:
        raise ConfigError(f"Model {spec.family!r} has no versions to serve.")
    s, lines = spec, []
    names = {v.tensor_names for v in versions.values()}
    if len(names) != 1:
        raise ConfigError(f"The versions of {spec.family!r} name their tensors differently: {sorted(names)}.")
    input_name, embedding_name, code_name = names.pop()
    side = _common({v.image_size for v in versions.values()})
    dim = _common({v.dim for v in versions.values()})
    code = _common({v.code_bytes for v in versions.values()})
    lines.append(f"name: {_quote(s.family)}")
    if s.backend == "python":
        lines.append('backend: "python"')
    else:
        lines.append(f'platform: "{"onnxruntime_onnx" if s.backend == "onnxruntime" else "tensorrt_plan"}"')
    lines.append(f"max_batch_size: {s.max_batch_size}")
    lines.append(
        f"input [ {{ name: {_quote(input_name)}, data_type: TYPE_FP32, dims: [ 3, {side}, {side} ] }} ]"
    )
    lines.append("output [")
    lines.append(f"  {{ name: {_quote(embedding_name)}, data_type: TYPE_FP32, dims: [ {dim} ] }},")
    lines.append(f"  {{ name: {_quote(code_name)}, data_type: TYPE_UINT8, dims: [ {code} ] }}")
    lines.append("]")
    numbers = sorted(int(v) for v in versions)
    lines.append(f"version_policy: {{ specific: {{ versions: [ {', '.join(map(str, numbers))} ] }} }}")
    lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {s.max_queue_delay_us} }}")
    kind = "KIND_CPU" if s.backend == "python" else "KIND_GPU"
    lines.append(f"instance_group [ {{ count: {s.instances}, kind: {kind} }} ]")
    params: dict[str, str] = {
        f"{GENERATION_PARAM_PREFIX}{sv.generation}": str(n) for n, sv in versions.items()
    }
    params.update({f"{IMAGE_SIZE_PARAM_PREFIX}{n}": str(sv.image_size) for n, sv in versions.items()})
    if s.backend == "python":
        params["ort_intra_op_threads"] = str(s.ort_threads)
    for key in sorted(params):
        lines.append(f"parameters {{ key: {_quote(key)} value: {{ string_value: {_quote(params[key])} }} }}")
    return "\n".join(lines) + "\n"


def validate_config(text: str, tensor_names: tuple[str, str, str] = TENSOR_NAMES) -> Any:
    """Parse ``text`` with Triton's own ``ModelConfig`` protobuf schema and check our invariants.

    ``tensor_names``: the ``(input, embedding, code)`` names the config must declare (default: embsdk.spec's).

    Returns:
        The parsed ``ModelConfig`` message.

    Raises:
        ConfigError: the text does not parse, or misses an input/output, a version policy or batching.
    """
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    try:
        cfg = text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise ConfigError(f"config.pbtxt does not parse as a Triton ModelConfig: {exc}") from None
    names = {i.name for i in cfg.input}, {o.name for o in cfg.output}
    input_name, embedding_name, code_name = tensor_names
    if names != ({input_name}, {embedding_name, code_name}):
        raise ConfigError(
            f"config.pbtxt has inputs/outputs {names}, expected {input_name} → {embedding_name}, {code_name}."
        )
    if not cfg.HasField("version_policy") or not cfg.HasField("dynamic_batching") or cfg.max_batch_size <= 0:
        raise ConfigError("config.pbtxt needs a version policy, dynamic batching and max_batch_size > 0.")
    if not (cfg.backend == "python" or cfg.platform in {"onnxruntime_onnx", "tensorrt_plan"}):
        raise ConfigError(
            f"config.pbtxt names no known backend/platform (backend={cfg.backend!r}, platform={cfg.platform!r})."
        )
    return cfg
