"""Prometheus metrics of the service (``GET /metrics``): requests, latency, errors by route; reads per team.

One :class:`prometheus_client.CollectorRegistry` per app (so apps in one process, as in tests, do not collide).
With ``--workers N`` each worker keeps its own counters and ``/metrics`` answers for the worker that took the
scrape (multi-process aggregation is not built yet); the registry's usage counters are exact across workers.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "emb_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "emb_http_errors",
            "HTTP responses with a 4xx/5xx status, by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "emb_http_request_seconds",
            "Request latency by route (seconds).",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.reads = Counter(
            "emb_consumer_reads",
            "Successful reads (fetch, batch, search) by team and generation.",
            ["team", "generation"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def middleware(self, app: Any) -> Any:
        """ASGI middleware recording every HTTP request under its route template (``/v1/items/{item_id}``)."""
        metrics = self

        async def record(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start, status = time.perf_counter(), 500

            async def send_status(message: Any) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                metrics.requests.labels(route, scope.get("method", ""), str(status)).inc()
                metrics.latency.labels(route).observe(time.perf_counter() - start)
                if status >= 400:
                    metrics.errors.labels(route, str(status)).inc()

        return record
