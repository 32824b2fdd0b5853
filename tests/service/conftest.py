"""A real service over real sockets: uvicorn in a thread on a free loopback port, a small store, real tokens."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service._svc import MAX_BATCH, MAX_BODY, TOKEN_TTL, Service, build_registry_and_store, free_port

uvicorn = pytest.importorskip("uvicorn")


@pytest.fixture
def service(registry_url: str, emb_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    from service import ServiceSettings, create_app

    monkeypatch.setenv("EMB_REGISTRY_URL", registry_url)
    store_dir = emb_home / "store"
    reg, ids, codes = build_registry_and_store(registry_url, store_dir)
    reg.add_consumer("search-team", "production")
    read = reg.issue_token("search-team", "read").token
    admin = reg.issue_token("platform", "admin").token
    settings = ServiceSettings(
        registry_url=registry_url,
        store_dir=store_dir,
        max_batch=MAX_BATCH,
        max_body_bytes=MAX_BODY,
        token_cache_ttl=TOKEN_TTL,
        usage_flush_s=0,  # flushed explicitly (GET /v1/usage) and at shutdown
        resolve_ttl=0.5,
    )
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield Service(f"http://127.0.0.1:{port}", reg, registry_url, store_dir, ids, codes, read, admin, app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        reg.close()
