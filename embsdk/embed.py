"""``embed()``: compute binary codes for new images with a generation, over Triton or in-process.

Example:
    >>> import embsdk
    >>> codes = embsdk.embed(["cat.jpg"], version="unified-v1", url="127.0.0.1:8001", protocol="grpc")  # doctest: +SKIP
    >>> codes[0].generation, codes[0].bits                                                              # doctest: +SKIP
    ('unified-v1', 256)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from embsdk.errors import GenerationNotFound, InferenceError
from embsdk.preprocess import load_images
from embsdk.types import Embedding

__all__ = ["ImageInput", "embed"]

ImageInput = str | Path | bytes | np.ndarray


def _as_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    if isinstance(images, (str, Path, bytes)):
        return [images]
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    return list(images)


def embed(
    images: ImageInput | Sequence[ImageInput],
    version: str = "production",
    *,
    url: str | None = None,
    protocol: Literal["http", "grpc"] = "http",
    return_float: bool = False,
    batch_size: int = 32,
    timeout: float = 30.0,
    retries: int = 2,
    registry_url: str | None = None,
) -> list[Embedding]:
    """Embed images with a generation; one :class:`~embsdk.types.Embedding` per image, in order.

    Args:
        images: image files, encoded bytes, uint8 HxWx3 pixel arrays or preprocessed float (3, S, S)
            arrays (or one of them). Preprocessing follows the generation's input spec.
        version: generation name or alias (resolved through the registry), or an ``emb export`` folder;
            default: the ``production`` alias (DefaultAliasNotSet when it is not set).
        url: Triton address ``host:port``; None runs the generation's ONNX model in-process.
        protocol: ``"http"`` or ``"grpc"`` (with ``url``).
        return_float: also return the float embedding (``Embedding.vector``).
        batch_size: images per request.
        timeout: seconds per request (Triton).
        retries: extra attempts when the server is unreachable or times out.
        registry_url: registry to resolve ``version`` in (default ``EMB_REGISTRY_URL``).

    Returns:
        Embeddings stamped with the resolved generation name.

    Raises:
        ImageDecodeError: an image is missing, truncated or not an image.
        GenerationNotFound: no such generation or alias (DefaultAliasNotSet: no ``production`` alias).
        RetiredGeneration: the generation is retired (a deprecated one warns: DeprecatedGenerationWarning).
        ServerUnavailable: the server cannot be reached (after the retries).
        ModelNotLoaded: the server does not serve this generation.
        InferenceError: the request was rejected, or no local ONNX model exists for in-process use.
    """
    from embsdk.serving.resolve import resolve_target

    if batch_size <= 0:
        raise InferenceError(f"batch_size must be positive, got {batch_size}.")
    items = _as_list(images)
    try:  # retired refused, deprecated warns
        target = resolve_target(version, registry_url=registry_url, stacklevel=2)
    except GenerationNotFound as exc:
        from embsdk.hamming._client_search import default_alias_error

        raise default_alias_error(str(version), exc) from None
    if not items:
        return []
    spec = target.spec if target.embedding_spec else None  # the graph's tensor names
    if url is None:
        from embsdk.serving.local import LocalRunner

        if target.onnx_path is None:
            raise InferenceError(
                f"Generation {target.generation!r} has no local ONNX model; pass url= to use Triton."
            )
        runner = LocalRunner(target.onnx_path, spec=spec)
        run = runner.run
        close = None
    else:
        from embsdk.serving.client import TritonClient

        client = TritonClient(url, protocol=protocol, timeout=timeout, retries=retries)
        try:
            number = client.version_for(target.family, target.generation)
        except BaseException:
            client.close()
            raise

        def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return client.infer(target.family, number, batch, spec=spec)

        close = client.close
    out: list[Embedding] = []
    try:
        for start in range(0, len(items), batch_size):
            batch = load_images(items[start : start + batch_size], target.input_spec)
            emb, code = run(batch)
            if code.shape != (len(batch), (target.bits + 7) // 8) or code.dtype != np.uint8:
                raise InferenceError(
                    f"The model returned codes of shape {code.shape} ({code.dtype}); "
                    f"generation {target.generation!r} has {target.bits}-bit codes."
                )
            for i in range(len(batch)):
                out.append(
                    Embedding(
                        code=code[i],
                        bits=target.bits,
                        generation=target.generation,
                        vector=np.array(emb[i], np.float32) if return_float else None,
                    )
                )
    finally:
        if close is not None:
            close()
    return out
