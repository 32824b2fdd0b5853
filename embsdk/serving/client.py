"""One Triton client over HTTP or gRPC; tritonclient's types and exceptions stay inside this module.

Errors are mapped at the boundary: unreachable server → :class:`ServerUnavailable` (retried with
backoff), unknown model/version → :class:`ModelNotLoaded`, anything the server rejects (shape, dtype,
batch size) → :class:`InferenceError` with the server's message. Which version number serves which
generation is read from the model's config parameters (``generation:<name>``), written by
:mod:`triton_models.config`; a client never asks for "latest".

Example:
    >>> with TritonClient("127.0.0.1:8001", protocol="grpc") as c:                 # doctest: +SKIP
    ...     emb, code = c.infer("unified", c.version_for("unified", "unified-v1"), batch)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import numpy as np

from embsdk.config import get_settings
from embsdk.errors import InferenceError, MissingExtraError, ModelNotLoaded, ServerUnavailable
from embsdk.spec import TENSOR_NAMES, EmbeddingSpec

__all__ = ["GENERATION_PARAM_PREFIX", "IMAGE_SIZE_PARAM_PREFIX", "Protocol", "TritonClient", "param_value"]

Protocol = Literal["http", "grpc"]
# config.pbtxt parameter keys, written by triton_models.config and read here: the one home of the protocol
GENERATION_PARAM_PREFIX = "generation:"  # generation name -> version number
IMAGE_SIZE_PARAM_PREFIX = "image_size:"  # version number -> input side S (health checks need it)
T = TypeVar("T")


def param_value(param: dict[str, Any]) -> str:
    """A config parameter's string value, as HTTP (``string_value``) or gRPC JSON (``stringValue``) spells it."""
    return param.get("string_value") or param.get("stringValue") or ""


def _short(message: str) -> str:
    """The server's message without request-id prefix, NOTE paragraphs and tracebacks."""
    if not message:
        return message
    text = message.split(". NOTE:")[0].splitlines()[0].strip()
    return re.sub(r"^\[request id: [^\]]*\]\s*", "", text)


class TritonClient:
    """A Triton client for ``url`` (``host:port``, as tritonclient takes it).

    Args:
        url: server address, e.g. ``127.0.0.1:8000`` (HTTP) or ``127.0.0.1:8001`` (gRPC).
        protocol: ``"http"`` or ``"grpc"``.
        timeout: seconds per request.
        retries: extra attempts when the server is unreachable or times out (backoff 0.2 s, 0.4 s, …).
        admin_key: sent as the ``admin-key`` header on model-repository calls (default ``EMB_TRITON_ADMIN_KEY``).
    """

    def __init__(
        self,
        url: str,
        *,
        protocol: Protocol = "http",
        timeout: float = 30.0,
        retries: int = 2,
        admin_key: str | None = None,
    ) -> None:
        if protocol not in ("http", "grpc"):
            raise InferenceError(f"Unknown protocol {protocol!r}; use 'http' or 'grpc'.")
        if "://" in url:
            url = url.split("://", 1)[1]
        self.url, self.protocol, self.timeout, self.retries = (
            url.rstrip("/"),
            protocol,
            float(timeout),
            int(retries),
        )
        self.admin_key = admin_key if admin_key is not None else get_settings().triton_admin_key
        try:
            if protocol == "http":
                import tritonclient.http as tc
            else:
                import tritonclient.grpc as tc
            from tritonclient.utils import InferenceServerException, np_to_triton_dtype
        except ModuleNotFoundError:
            raise MissingExtraError("tritonclient", "serve") from None
        self._tc, self._exc, self._dtype = tc, InferenceServerException, np_to_triton_dtype
        try:
            if protocol == "http":
                self._client = tc.InferenceServerClient(
                    self.url, connection_timeout=self.timeout, network_timeout=self.timeout
                )
            else:
                self._client = tc.InferenceServerClient(self.url)
        except Exception as exc:  # noqa: BLE001 - bad URL and the like
            raise ServerUnavailable(f"Cannot create a {protocol} client for {url!r}: {exc}") from None
        self._config_cache: dict[str, dict[str, Any]] = {}
        # per-call deadline: the HTTP client has it from its constructor, gRPC takes it on every call
        self._kw: dict[str, Any] = {} if protocol == "http" else {"client_timeout": self.timeout}

    # ------------------------------------------------------------------ plumbing
    def _error(self, exc: BaseException, what: str) -> InferenceError:
        where = f"Triton at {self.url} ({self.protocol})"
        if isinstance(exc, self._exc):
            status, msg = str(exc.status() or ""), _short(exc.message() or str(exc))
            if status == "403" or "restricted" in msg.lower():
                return InferenceError(
                    f"{where} refused {what}: the API is restricted ({msg}). "
                    "Set EMB_TRITON_ADMIN_KEY to the server's key."
                )
            if status in {"StatusCode.UNAVAILABLE"} or "failed to connect" in msg.lower():
                return ServerUnavailable(
                    f"{where} is unreachable ({what}): {msg}. Is it running? Start it with: emb serve"
                )
            if status in {"404", "StatusCode.NOT_FOUND"} or "unknown model" in msg.lower():
                return ModelNotLoaded(f"{where}: {msg}. See what is loaded with: emb serve --check")
            if status in {"StatusCode.DEADLINE_EXCEEDED"} or "timed out" in msg.lower():
                return ServerUnavailable(f"{where} timed out after {self.timeout:g} s ({what}).")
            return InferenceError(f"{where} rejected {what} ({status or 'client'}): {msg}")
        if isinstance(exc, TimeoutError) or type(exc).__name__ == "Timeout":  # socket or gevent timeout
            return ServerUnavailable(f"{where} timed out after {self.timeout:g} s ({what}).")
        if isinstance(exc, (ConnectionError, OSError)):
            return ServerUnavailable(
                f"{where} is unreachable ({what}): {exc}. Is it running? Start it with: emb serve"
            )
        return InferenceError(f"{where}: {what} failed: {type(exc).__name__}: {exc}")

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - mapped below; tritonclient types never escape
                err = self._error(exc, what)
                if not isinstance(err, ServerUnavailable) or attempt == self.retries:
                    raise err from None
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _admin_headers(self) -> dict[str, str] | None:
        if not self.admin_key:
            return None
        # tritonserver checks "admin-key" on HTTP, and the same key with a fixed prefix on gRPC
        return {
            ("admin-key" if self.protocol == "http" else "triton-grpc-protocol-admin-key"): self.admin_key
        }

    # ------------------------------------------------------------------ health and metadata
    def is_ready(self) -> bool:
        """True when the server answers and is ready (never raises)."""
        try:
            return bool(self._client.is_server_ready(**self._kw))
        except Exception:  # noqa: BLE001 - unreachable → not ready
            return False

    def is_live(self) -> bool:
        """True when the server answers (it may still be loading a model; never raises)."""
        try:
            return bool(self._client.is_server_live(**self._kw))
        except Exception:  # noqa: BLE001 - unreachable → not live
            return False

    def model_config(self, family: str, *, refresh: bool = False) -> dict[str, Any]:
        """The model's config as a dict (cached)."""
        if refresh or family not in self._config_cache:
            if self.protocol == "http":
                cfg = self._call(f"config of {family!r}", lambda: self._client.get_model_config(family))
            else:
                cfg = self._call(
                    f"config of {family!r}",
                    lambda: self._client.get_model_config(family, as_json=True, **self._kw),
                )["config"]
            self._config_cache[family] = cfg
        return self._config_cache[family]

    def generations(self, family: str, *, refresh: bool = False) -> dict[str, int]:
        """``{generation name: version number}`` that the server's config for ``family`` declares."""
        params = self.model_config(family, refresh=refresh).get("parameters", {}) or {}
        return {
            k[len(GENERATION_PARAM_PREFIX) :]: int(param_value(v))
            for k, v in params.items()
            if k.startswith(GENERATION_PARAM_PREFIX)
        }

    def models(self) -> list[dict[str, Any]]:
        """The repository index: ``[{"name", "version", "state"}]`` (needs the admin key off loopback)."""
        headers = self._admin_headers()
        if self.protocol == "http":
            rows = self._call(
                "repository index", lambda: self._client.get_model_repository_index(headers=headers)
            )
        else:
            rows = self._call(
                "repository index",
                lambda: self._client.get_model_repository_index(headers=headers, as_json=True, **self._kw),
            ).get("models", [])
        return [
            {"name": r.get("name"), "version": r.get("version", ""), "state": r.get("state", "")}
            for r in rows
        ]

    def is_version_ready(self, family: str, version: int) -> bool:
        return bool(
            self._call("readiness", lambda: self._client.is_model_ready(family, str(version), **self._kw))
        )

    def version_for(self, family: str, generation: str) -> int:
        """The Triton version number serving ``generation`` in ``family``.

        Raises:
            ModelNotLoaded: the server does not serve it (or the model is not loaded).
            ServerUnavailable: the server cannot be reached.
        """
        mapping = self.generations(family)
        if generation not in mapping:
            mapping = self.generations(family, refresh=True)
        if generation not in mapping:
            served = ", ".join(sorted(mapping)) or "none"
            raise ModelNotLoaded(
                f"Triton at {self.url} does not serve generation {generation!r} in model {family!r} "
                f"(it serves: {served}). Publish it (emb publish) and restart or reload the server."
            )
        version = mapping[generation]
        if not self.is_version_ready(family, version):
            raise ModelNotLoaded(
                f"Generation {generation!r} (model {family!r} version {version}) is not ready on {self.url}."
            )
        return version

    # ------------------------------------------------------------------ inference
    def infer(
        self,
        family: str,
        version: int | str,
        batch: np.ndarray,
        *,
        spec: EmbeddingSpec | dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run ``batch`` (N, 3, S, S) through ``family`` version ``version`` → ``(embedding, code)``.

        The array's own dtype is declared to the server, which rejects anything but FP32. The tensor names
        come from *spec* (the generation's :class:`~embsdk.spec.EmbeddingSpec`; default: the standard names).

        Raises:
            InferenceError: the server rejected the request (shape, dtype, batch size).
            ModelNotLoaded: no such model/version on the server.
            ServerUnavailable: unreachable or timed out after the retries.
        """
        batch = np.ascontiguousarray(batch)
        try:
            dtype = self._dtype(batch.dtype)
        except Exception:  # noqa: BLE001
            dtype = None
        if dtype is None:
            raise InferenceError(
                f"Cannot send an array of dtype {batch.dtype} to Triton; the model takes float32."
            )
        names = EmbeddingSpec.coerce(spec).tensor_names if spec is not None else TENSOR_NAMES
        input_name, embedding_name, code_name = names
        inp = self._tc.InferInput(input_name, list(batch.shape), dtype)
        inp.set_data_from_numpy(batch)
        outputs = [self._tc.InferRequestedOutput(embedding_name), self._tc.InferRequestedOutput(code_name)]
        kwargs: dict[str, Any] = {"model_version": str(version), "outputs": outputs, **self._kw}
        result = self._call(
            f"inference on {family!r} v{version}", lambda: self._client.infer(family, [inp], **kwargs)
        )
        return result.as_numpy(embedding_name), result.as_numpy(code_name)

    # ------------------------------------------------------------------ resource
    def close(self) -> None:
        """Close connections (idempotent)."""
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001, S110 - closing twice or a dead connection
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
