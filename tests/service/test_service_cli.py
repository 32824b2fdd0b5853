"""``emb server`` as a real process, and the token commands of ``emb registry consumers``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.service._svc import BITS, build_registry_and_store, free_port

EMB = Path(sys.executable).parent / "emb"


def emb(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EMB), *args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy(), check=False
    )


def ok(*args: str) -> str:
    res = emb(*args)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.fixture
def registry_env(registry_url: str, emb_home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EMB_REGISTRY_URL", registry_url)
    reg, ids, codes = build_registry_and_store(registry_url, emb_home / "store")
    yield reg, ids, codes
    reg.close()


def test_is_loopback() -> None:
    from cli.server import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.com", "192.168.1.2"))


def test_server_off_loopback_refuses_without_a_token(registry_env) -> None:
    reg = registry_env[0]
    res = emb("server", "--host", "0.0.0.0", "--port", str(free_port()), timeout=60)
    assert res.returncode == 1, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing to serve on 0.0.0.0"), res.stderr
    assert "emb registry consumers add" in lines[0]
    # a revoked token is no token: still refused
    issued = reg.issue_token("search", "read")
    reg.revoke_token(issued.info.id)
    res = emb("server", "--host", "0.0.0.0", "--port", str(free_port()), timeout=60)
    assert res.returncode == 1 and "refusing to serve" in res.stderr


def test_consumers_add_issues_a_token_once_and_revoke_token_revokes_it(registry_env) -> None:
    reg = registry_env[0]
    out = json.loads(ok("registry", "consumers", "add", "search", "production", "--scope", "read", "--json"))
    assert (out["team"], out["generation"], out["scope"], out["expires_at"]) == (
        "search",
        "unified-v1",
        "read",
        None,
    )
    token = out["token"]
    assert token.startswith(f"emb_{out['token_id']}_") and reg.verify_token(token).team == "search"
    # the registry keeps only a hash: the secret is nowhere in the listing, the tables or the CLI output
    listed = ok("registry", "consumers", "tokens", "--json")
    assert token.split("_", 2)[2] not in listed and json.loads(listed)[0]["id"] == out["token_id"]
    import sqlalchemy as sa

    with reg._engine.connect() as conn:
        dumped = str(conn.execute(sa.text("SELECT * FROM api_tokens")).all())
    assert token.split("_", 2)[2] not in dumped

    admin = json.loads(
        ok(
            "registry",
            "consumers",
            "add",
            "ops",
            "unified-v1",
            "--scope",
            "admin",
            "--expires-days",
            "1",
            "--json",
        )
    )
    assert admin["scope"] == "admin" and admin["expires_at"] is not None
    bad = emb("registry", "consumers", "add", "x", "production", "--scope", "root")
    assert bad.returncode == 1 and "Unknown scope" in bad.stderr

    revoked = json.loads(ok("registry", "consumers", "revoke-token", out["token_id"], "--json"))
    assert revoked["revoked_at"] is not None
    from registry._tokens import TokenRejected

    with pytest.raises(TokenRejected, match="revoked"):
        reg.verify_token(token)
    missing = emb("registry", "consumers", "revoke-token", "000000000000")
    assert missing.returncode == 1 and "No token" in missing.stderr


def test_emb_server_serves_and_flushes_usage_at_shutdown(registry_env) -> None:
    _reg, ids, codes = registry_env
    token = json.loads(ok("registry", "consumers", "add", "search", "production", "--json"))["token"]
    listed = json.loads(ok("registry", "consumers", "list", "--json"))
    assert [(c["team"], c["requests"], c["last_used_at"]) for c in listed] == [("search", 0, None)]

    port = free_port()
    proc = subprocess.Popen(
        [str(EMB), "server", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "emb server did not answer /healthz"
            time.sleep(0.2)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            assert c.get("/v1/generations").status_code == 200
            got = c.get(f"/v1/items/{ids[3]}").json()
            assert (got["bits"], bytes.fromhex(got["code"])) == (BITS, codes[3].tobytes())
            r = c.post(
                "/v1/items:batch",
                json={"ids": [int(i) for i in ids[:4]]},
                headers={"Accept": "application/octet-stream"},
            )
            rows = np.frombuffer(r.content[4 * 8 :], dtype=np.uint8).reshape(4, BITS // 8)
            np.testing.assert_array_equal(rows, codes[:4])
        assert httpx.get(f"{base}/v1/generations", timeout=5).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, err
    assert token not in err and token.split("_", 2)[2] not in err  # never logged
    listed = json.loads(ok("registry", "consumers", "list", "--json"))
    assert [(c["team"], c["generation"], c["requests"]) for c in listed] == [("search", "unified-v1", 2)]
    assert listed[0]["last_used_at"] is not None
    assert "search" in ok("registry", "consumers", "list")


def test_emb_server_with_two_workers_counts_every_request(registry_env) -> None:
    _reg, ids, _codes = registry_env
    token = json.loads(ok("registry", "consumers", "add", "search", "production", "--json"))["token"]
    port = free_port()
    proc = subprocess.Popen(
        [str(EMB), "server", "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "EMB_SERVER_USAGE_FLUSH_S": "3600"},  # only the shutdown flush
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "emb server --workers 2 did not answer /healthz"
            time.sleep(0.2)
        for i in range(12):  # new connections: spread over the workers by the kernel
            r = httpx.get(
                f"{base}/v1/items/{ids[i]}", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            assert r.status_code == 200, r.text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    listed = json.loads(ok("registry", "consumers", "list", "--json"))
    assert [(c["team"], c["requests"]) for c in listed] == [("search", 12)], err
