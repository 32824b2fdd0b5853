"""Health check of a running Triton server: which generations are loaded, each answering a real inference."""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np

from embsdk.errors import InferenceError, ServerUnavailable
from embsdk.serving.client import IMAGE_SIZE_PARAM_PREFIX, TritonClient, param_value

__all__ = ["check_server"]


def check_server(
    url: str, *, protocol: Literal["http", "grpc"] = "http", timeout: float = 10.0
) -> dict[str, Any]:
    """Ask the server at ``url`` what it serves, and run one real inference per loaded generation.

    A stub that died still reports READY, so only an inference proves a version works.

    Returns:
        ``{"url", "protocol", "ready" (False while a model loads), "generations": [{"family", "version", "generation", "ok", "latency_ms",
        "code_bytes", "error"}]}``; ``ok`` is False for a version that failed its inference.

    Raises:
        ServerUnavailable: the server cannot be reached or is not ready.
    """
    with TritonClient(url, protocol=protocol, timeout=timeout, retries=0) as client:
        if not client.is_live():
            raise ServerUnavailable(
                f"Triton at {url} ({protocol}) is not reachable. Start it with: emb serve"
            )
        ready = client.is_ready()  # False while a model (re)loads; loaded versions keep serving
        loaded: dict[str, set[int]] = {}
        for model in client.models():
            if model["state"] == "READY":
                versions = loaded.setdefault(model["name"], set())
                if str(model["version"]).isdigit():
                    versions.add(int(model["version"]))
        rows: list[dict[str, Any]] = []
        for family in sorted(loaded):
            params = client.model_config(family, refresh=True).get("parameters", {}) or {}
            for generation, version in sorted(client.generations(family).items(), key=lambda kv: kv[1]):
                if loaded[family] and version not in loaded[family]:
                    continue
                size = int(param_value(params.get(f"{IMAGE_SIZE_PARAM_PREFIX}{version}", {})) or 0)
                row: dict[str, Any] = {
                    "family": family,
                    "version": version,
                    "generation": generation,
                    "ok": False,
                    "latency_ms": None,
                    "code_bytes": None,
                    "error": None,
                }
                try:
                    if size <= 0:
                        raise InferenceError(
                            f"the config of {family!r} records no image size for version {version}"
                        )
                    t0 = time.perf_counter()
                    _, code = client.infer(family, version, np.zeros((1, 3, size, size), np.float32))
                    row.update(
                        ok=True,
                        latency_ms=round((time.perf_counter() - t0) * 1e3, 2),
                        code_bytes=int(code.shape[1]),
                    )
                except InferenceError as exc:
                    row["error"] = str(exc)
                rows.append(row)
    return {"url": url, "protocol": protocol, "ready": ready, "generations": rows}
