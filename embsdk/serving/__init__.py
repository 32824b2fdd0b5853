"""Serving: tritonserver process management, Triton HTTP/gRPC clients, in-process ONNX Runtime.

Nothing heavy at import: tritonclient and onnxruntime load on first use.
"""

from __future__ import annotations

__all__ = ["Endpoints", "LocalRunner", "ServingTarget", "TritonClient", "TritonServer", "resolve_target"]


def __getattr__(name: str):
    import importlib

    where = {
        "TritonServer": "server",
        "Endpoints": "server",
        "TritonClient": "client",
        "LocalRunner": "local",
        "resolve_target": "resolve",
        "ServingTarget": "resolve",
    }.get(name)
    if where is None:
        raise AttributeError(f"module 'embsdk.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(f"embsdk.serving.{where}"), name)
