"""``emb get``, ``emb search`` and ``emb store`` through the real console script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

EMB = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "emb")


def _emb(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [EMB, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def env(populated) -> dict[str, str]:
    return {"EMB_REGISTRY_URL": populated.registry_url, "EMB_STORE": str(populated.store_dir)}


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
def test_get_and_search_json(populated, env):
    ids = [int(populated.ids[3]), int(populated.ids[1])]
    r = _emb("get", *map(str, ids), "--version", "production", "--json", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["generation"] == "unified-v1" and [it["item_id"] for it in data["items"]] == ids
    assert data["items"][0]["code_hex"] == populated.codes[3].tobytes().hex()
    r = _emb(
        "search",
        "--id",
        str(ids[0]),
        "--version",
        "unified-v1",
        "-k",
        "5",
        "--include-self",
        "--json",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    ref = np.sort(np.unpackbits(populated.codes[3] ^ populated.codes, axis=1).sum(1))[:5]
    assert res["hamming"] == ref.tolist() and ids[0] in res["ids"]
    r = _emb("search", "--id", str(ids[0]), "-v", "unified-v1", "-k", "5", "--json", env=env)
    assert (
        json.loads(r.stdout)["hamming"]
        == np.sort(np.unpackbits(populated.codes[3] ^ populated.codes, axis=1).sum(1))[1:6].tolist()
        and ids[0] not in json.loads(r.stdout)["ids"]
    )  # the query item itself is left out
    human = _emb("search", "--id", str(ids[0]), "--version", "unified-v1", "-k", "3", env=env)
    assert human.returncode == 0 and "rank" in human.stdout and f"({ids[0]} itself left out" in human.stdout


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
def test_store_info_verify_compact(populated, env):
    r = _emb("store", "info", "--version", "unified-v1", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["items"] == len(populated.ids)
    r = _emb("store", "verify", "--version", "production", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True
    r = _emb("store", "compact", "--version", "unified-v1", "--publish", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["items"] == len(populated.ids)
    shard = next((populated.store_dir / "unified-v1" / "shards").iterdir())
    names = {a.name for a in populated.registry.get("unified-v1").artifacts}
    assert f"store/{shard.name}/codes.npy" in names
    data = bytearray((shard / "codes.npy").read_bytes())
    data[-3] ^= 0xFF
    (shard / "codes.npy").write_bytes(bytes(data))
    r = _emb("store", "verify", "--version", "unified-v1", env=env)
    assert r.returncode == 1 and "checksum mismatch" in r.stdout and "damaged" in r.stderr


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
def test_cli_errors_are_one_line(populated, env):
    cases = [
        (("get", str(10**15 + 7), "--version", "unified-v1"), "not in the store"),
        (("get", "1", "--version", "nope-v1"), "No generation or alias named 'nope-v1'"),
        (("search", "--version", "unified-v1"), "exactly one of --id"),
        (("search", "--id", str(10**15 + 7), "--version", "unified-v1"), "emb backfill"),
        (
            ("search", "--id", str(int(populated.ids[0])), "--version", "unified-v1", "--approx"),
            "emb store index",
        ),
    ]
    for args, needle in cases:
        r = _emb(*args, env=env)
        assert r.returncode != 0, args
        assert needle in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
