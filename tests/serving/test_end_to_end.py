"""Done-when: train a tiny model, publish it, serve it with the real tritonserver, same codes everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from embsdk.errors import ModelNotLoaded

pytestmark = pytest.mark.triton
pytest.importorskip("torch")
pytest.importorskip("tritonclient")
pytest.importorskip("pytriton", reason="nvidia-pytriton (tritonserver) is not installed")


def test_train_publish_serve_embed(tiny_run: Path, images: list[Path], tmp_path: Path) -> None:
    import embsdk
    from cli.main import app
    from embsdk.serving.server import TritonServer

    runner = CliRunner()
    res = runner.invoke(
        app, ["publish", str(tiny_run), "--name", "unified-v1", "--alias", "staging", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["triton_version"] == 1
    with TritonServer(http_port=0, grpc_port=0) as server:  # the default repository that publish filled
        ep = server.endpoints
        local = embsdk.embed(images, "staging", return_float=True)  # alias → registry → in-process ORT
        assert {e.generation for e in local} == {"unified-v1"} and local[0].bits == 64
        for protocol, url in (("http", ep.http_url), ("grpc", ep.grpc_url)):
            remote = embsdk.embed(
                images, "staging", url=url, protocol=protocol, return_float=True, batch_size=4
            )
            assert [e.generation for e in remote] == ["unified-v1"] * len(images)
            np.testing.assert_array_equal(
                np.stack([e.code for e in remote]), np.stack([e.code for e in local])
            )
            np.testing.assert_allclose(
                np.stack([e.vector for e in remote]), np.stack([e.vector for e in local]), atol=1e-5
            )
        # CLI: emb embed over gRPC by generation name prints the same codes
        res = runner.invoke(
            app,
            [
                "embed",
                str(images[0]),
                "--version",
                "unified-v1",
                "--url",
                ep.grpc_url,
                "-p",
                "grpc",
                "--json",
            ],
        )
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)[0]["code_hex"] == local[0].code.tobytes().hex()
        # a generation published after the server started is served once the model is reloaded
        res = runner.invoke(app, ["publish", str(tiny_run), "--name", "unified-v2", "--parent", "unified-v1"])
        assert res.exit_code == 0, res.output
        with pytest.raises(ModelNotLoaded, match="does not serve generation 'unified-v2'"):
            embsdk.embed(images[:1], "unified-v2", url=ep.http_url)
        server.load("unified")  # what emb serve does by itself when the repository changes
        v2 = embsdk.embed(images, "unified-v2", url=ep.grpc_url, protocol="grpc")
        assert {e.generation for e in v2} == {"unified-v2"}
        assert [e.code.tobytes() for e in v2] == [
            e.code.tobytes() for e in embsdk.embed(images, "unified-v2")
        ]
    assert server.shm_files() == []
