"""The real tritonserver (nvidia-pytriton wheel, CPU Python backend): same codes over HTTP, gRPC and in-process."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from embsdk.errors import ConfigError, ImageDecodeError, InferenceError, ModelNotLoaded, ServerUnavailable

from .procs import children

pytestmark = pytest.mark.triton
pytest.importorskip("tritonclient")
pytest.importorskip("pytriton", reason="nvidia-pytriton (tritonserver) is not installed")

GENERATIONS = ("unified-v1", "unified-v2")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_exports: list[Path]) -> Iterator[dict[str, Any]]:
    """One server for the module: two generations of two different tiny models, versions 1 and 2."""
    from embsdk.serving.server import TritonServer
    from triton_models.repository import ModelRepository

    root = tmp_path_factory.mktemp("served")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMB_HOME", str(root / "home"))
        exports = {}
        repo = ModelRepository(root / "repo")
        for name, src in zip(GENERATIONS, tiny_exports):
            exports[name] = root / "exports" / name  # an export folder named after its generation
            shutil.copytree(src, exports[name])
            repo.add(exports[name], generation=name)
        server = TritonServer(repo.root, http_port=0, grpc_port=0)
        server.start()
        try:
            yield {
                "server": server,
                "exports": exports,
                "repo": repo,
                "urls": {"http": server.endpoints.http_url, "grpc": server.endpoints.grpc_url},
            }
        finally:
            server.stop()
            assert server.shm_files() == []


def test_identical_codes_over_http_grpc_and_in_process(served: dict[str, Any], images: list[Path]) -> None:
    from embsdk.embed import embed

    codes = {}
    for name, export in served["exports"].items():
        local = embed(images, str(export), return_float=True)
        assert {e.generation for e in local} == {name} and local[0].bits == 64
        for protocol, url in served["urls"].items():
            remote = embed(images, str(export), url=url, protocol=protocol, return_float=True, batch_size=5)
            assert [e.generation for e in remote] == [name] * len(images)
            np.testing.assert_array_equal(
                np.stack([e.code for e in remote]), np.stack([e.code for e in local])
            )
            np.testing.assert_allclose(
                np.stack([e.vector for e in remote]), np.stack([e.vector for e in local]), atol=1e-5
            )
        codes[name] = np.stack([e.code for e in local])
    assert not np.array_equal(*codes.values())  # each generation is served by its own version


def test_server_maps_generations_to_versions(served: dict[str, Any]) -> None:
    from embsdk.serving.client import TritonClient

    for protocol, url in served["urls"].items():
        with TritonClient(url, protocol=protocol) as client:  # type: ignore[arg-type]
            assert client.generations("unified") == {"unified-v1": 1, "unified-v2": 2}
            assert client.version_for("unified", "unified-v2") == 2


def test_malformed_requests_get_clear_errors_and_server_stays_up(
    served: dict[str, Any], images: list[Path], corrupt_image: Path, tmp_path: Path
) -> None:
    from embsdk.embed import embed
    from embsdk.serving.client import TritonClient
    from embsdk.serving.health import check_server

    good = np.zeros((2, 3, 32, 32), np.float32)
    for protocol, url in served["urls"].items():
        with TritonClient(url, protocol=protocol, retries=0) as client:  # type: ignore[arg-type]
            with pytest.raises(
                InferenceError, match=r"unexpected shape.*Expected \[-1,3,32,32\], got \[2,3,16,16\]"
            ):
                client.infer("unified", 1, np.zeros((2, 3, 16, 16), np.float32))
            with pytest.raises(
                InferenceError, match="data-type is 'FP64', but model 'unified' expects 'FP32'"
            ):
                client.infer("unified", 1, good.astype(np.float64))
            with pytest.raises(InferenceError, match="batch-size must be <= 64"):
                client.infer("unified", 1, np.zeros((65, 3, 32, 32), np.float32))
            with pytest.raises(ModelNotLoaded, match="version 9 is not found"):
                client.infer("unified", 9, good)
            with pytest.raises(ModelNotLoaded, match="unknown model"):
                client.infer("flashlight", 1, good)
        other = tmp_path / "unified-v7"
        shutil.copytree(served["exports"]["unified-v1"], other, dirs_exist_ok=True)
        with pytest.raises(
            ModelNotLoaded, match=r"does not serve generation 'unified-v7'.*serves: unified-v1, unified-v2"
        ):
            embed(images[:1], str(other), url=url, protocol=protocol)
        with pytest.raises(ImageDecodeError, match="truncated.jpg"):
            embed(
                [images[0], corrupt_image], str(served["exports"]["unified-v1"]), url=url, protocol=protocol
            )
        report = check_server(url, protocol=protocol)  # type: ignore[arg-type]
        assert [(r["generation"], r["version"], r["ok"]) for r in report["generations"]] == [
            ("unified-v1", 1, True),
            ("unified-v2", 2, True),
        ]
    assert served["server"].running


def test_cli_serve_check_and_embed(served: dict[str, Any], images: list[Path]) -> None:
    from cli.main import app
    from embsdk.embed import embed

    runner = CliRunner()
    res = runner.invoke(
        app, ["serve", "--check", "--url", served["urls"]["grpc"], "--protocol", "grpc", "--json"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert [(g["generation"], g["ok"], g["code_bytes"]) for g in data["generations"]] == [
        ("unified-v1", True, 8),
        ("unified-v2", True, 8),
    ]
    export = served["exports"]["unified-v2"]
    res = runner.invoke(
        app,
        ["embed", *map(str, images[:3]), "--version", str(export), "--url", served["urls"]["http"], "--json"],
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    expected = [e.code.tobytes().hex() for e in embed(images[:3], str(export))]
    assert [r["code_hex"] for r in rows] == expected and {r["generation"] for r in rows} == {"unified-v2"}


def test_server_down_is_a_clear_error(tiny_exports: list[Path], images: list[Path]) -> None:
    from embsdk.embed import embed
    from embsdk.serving.server import free_port

    for protocol in ("http", "grpc"):
        with pytest.raises(ServerUnavailable, match="unreachable.*emb serve"):
            embed(
                images[:1], str(tiny_exports[0]), url=f"127.0.0.1:{free_port()}", protocol=protocol, retries=1
            )


def test_off_loopback_a_key_guards_the_repository_api(
    served: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from embsdk.serving.client import TritonClient
    from embsdk.serving.server import TritonServer

    monkeypatch.delenv("EMB_TRITON_ADMIN_KEY", raising=False)
    unset = [TritonServer(served["repo"].root, host="0.0.0.0", http_port=0, grpc_port=0) for _ in range(2)]
    assert all(s.key_generated for s in unset) and unset[0].admin_key != unset[1].admin_key  # one per start
    monkeypatch.setenv("EMB_TRITON_ADMIN_KEY", "not a header value")
    with pytest.raises(ConfigError, match="EMB_TRITON_ADMIN_KEY"):
        TritonServer(served["repo"].root, host="0.0.0.0", http_port=0, grpc_port=0)
    monkeypatch.setenv("EMB_TRITON_ADMIN_KEY", "s3cret-key")
    with TritonServer(served["repo"].root, host="0.0.0.0", http_port=0, grpc_port=0) as server:
        for protocol, url in (("http", server.endpoints.http_url), ("grpc", server.endpoints.grpc_url)):
            with TritonClient(url, protocol=protocol, admin_key="") as anonymous:  # type: ignore[arg-type]
                with pytest.raises(
                    InferenceError,
                    match="refused repository index: the API is restricted.*EMB_TRITON_ADMIN_KEY",
                ):
                    anonymous.models()
                _, code = anonymous.infer(
                    "unified", 1, np.zeros((1, 3, 32, 32), np.float32)
                )  # inference stays open
                assert code.shape == (1, 8)
            with TritonClient(url, protocol=protocol) as admin:  # type: ignore[arg-type]
                assert {(m["name"], m["state"]) for m in admin.models()} == {("unified", "READY")}
        stubs = children(server.proc.pid)
        assert stubs, "the Python backend runs its model in stub processes"
    assert not any(Path(f"/proc/{pid}").exists() for pid in [server.proc.pid, *stubs])
    assert server.shm_files() == []


def test_a_server_that_never_answers_times_out(tiny_exports: list[Path], images: list[Path]) -> None:
    import socket
    import time

    from embsdk.embed import embed

    with socket.socket() as listener:  # accepts connections, never answers a byte
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        url = f"127.0.0.1:{listener.getsockname()[1]}"
        for protocol in ("http", "grpc"):
            t0 = time.monotonic()
            with pytest.raises(ServerUnavailable, match=r"timed out after 0.5 s"):
                embed(images[:1], str(tiny_exports[0]), url=url, protocol=protocol, timeout=0.5, retries=1)
            assert time.monotonic() - t0 < 10  # 2 attempts of 0.5 s plus backoff, not forever
