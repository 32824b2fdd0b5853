"""Concurrency and faults with REAL processes: racing registrations, readers during a write, kill -9."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from registry import Registry
from tests.registry._proc import spawn, spawn_alias_setter, wait_for_line

pytestmark = pytest.mark.timeout(120)


def test_two_processes_register_the_same_name(
    registry_url: str, artifact_dir: Path, tmp_path: Path, make_file
) -> None:
    Registry(registry_url, artifact_dir=artifact_dir).close()  # schema exists before the race
    go = tmp_path / "go"
    arts = [make_file("a.onnx"), make_file("b.onnx")]
    # both pause after writing their blobs, so both have passed the early name check before either commits
    procs = [
        spawn(registry_url, artifact_dir, "race-v1", a, hook="registry.after_blobs_written", sleep=0.5, go=go)
        for a in arts
    ]
    for p in procs:
        wait_for_line(p, "ready")
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        results.append((p.returncode, json.loads(out.strip().splitlines()[-1]), err))
    winners = [r for rc, r, _ in results if rc == 0]
    losers = [r for rc, r, _ in results if rc != 0]
    assert len(winners) == 1 and len(losers) == 1, results
    assert losers[0]["error"] == "DuplicateGeneration"
    assert "already exists" in losers[0]["message"] and "race-v1" in losers[0]["message"]
    reg = Registry(registry_url, artifact_dir=artifact_dir)
    gen = reg.get("race-v1")
    assert [g.name for g in reg.list()] == ["race-v1"]
    assert gen.artifacts[0].sha256 == winners[0]["sha256"]
    report = reg.fsck()
    assert report.ok and len(report.orphans) == 1  # the loser's blob: harmless, removable


def test_two_processes_open_a_fresh_registry_at_once(
    registry_url: str, artifact_dir: Path, tmp_path: Path, make_file
) -> None:
    """Both create-and-migrate on first use (serialized by a lock), then both register: no error, no loss."""
    go = tmp_path / "go"
    procs = [
        spawn(registry_url, artifact_dir, f"fresh{i}-v1", make_file(f"f{i}.onnx"), go=go) for i in range(2)
    ]
    go.touch()
    for p in procs:
        _out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err
    reg = Registry(registry_url, artifact_dir=artifact_dir)
    assert sorted(g.name for g in reg.list()) == ["fresh0-v1", "fresh1-v1"]
    assert reg.fsck().clean


def test_readers_and_writers_keep_working_while_a_writer_writes(
    registry_url: str, artifact_dir: Path, make_file
) -> None:
    reg = Registry(registry_url, artifact_dir=artifact_dir)
    reg.register("base-v1", code_version="test")
    reg.set_alias("production", "base-v1")
    writer = spawn(
        registry_url, artifact_dir, "slow-v1", make_file("slow.onnx"), hook="registry.before_commit", sleep=3
    )
    wait_for_line(writer, "registry.before_commit-reached")  # the child now holds an open write transaction
    t0 = time.monotonic()
    for _ in range(20):
        assert reg.resolve("production").name == "base-v1"
        assert [g.name for g in reg.list()] == ["base-v1"]  # the uncommitted generation is invisible
        assert reg.lineage("base-v1").descendants == ()
    reads = time.monotonic() - t0
    assert writer.poll() is None, "the writer finished before the reads: the test proved nothing"
    assert reads < 2.5, f"reads blocked behind the writer ({reads:.2f}s)"
    # a second writer queues behind the first instead of failing
    reg.register("queued-v1", parents=["base-v1"], code_version="test")
    _out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert [g.name for g in reg.list()] == ["base-v1", "slow-v1", "queued-v1"]


@pytest.mark.parametrize(
    "point", ["registry.during_blob_write", "registry.after_blobs_written", "registry.before_commit"]
)
def test_kill_9_mid_register_leaves_registry_consistent(
    registry_url: str, artifact_dir: Path, make_file, point: str
) -> None:
    reg = Registry(registry_url, artifact_dir=artifact_dir)
    reg.register("base-v1", artifacts=[make_file("base.onnx")], code_version="test")
    big = make_file("victim.onnx", os.urandom(3 << 20))
    child = spawn(registry_url, artifact_dir, "victim-v1", big, hook=point, sleep=60)
    wait_for_line(child, f"{point}-reached")
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    assert [g.name for g in reg.list()] == ["base-v1"]  # no row for the killed registration
    report = reg.fsck()
    assert report.ok, report  # nothing referenced is missing or corrupt
    if point == "registry.during_blob_write":
        assert len(report.temp_files) == 1 and report.orphans == ()
    else:
        assert report.temp_files == () and len(report.orphans) == 1
    repaired = reg.fsck(repair=True, grace_seconds=0)
    assert repaired.ok and len(repaired.removed) == 1
    assert reg.fsck().clean
    # the registry is fully usable afterwards: the name is free and the write lock was released
    assert reg.register("victim-v1", artifacts=[big], code_version="test").status == "candidate"
    assert reg.fsck().clean


def test_processes_creating_the_same_new_aliases_at_once_all_succeed(
    registry_url: str, tmp_path: Path
) -> None:
    """On PostgreSQL the loser of a race to CREATE an alias got ``duplicate key ... "pk_aliases"``.

    Four processes point the same 5 new aliases at four different generations, released by one barrier; each
    pauses between finding an alias missing and inserting it, so all four try to create every alias. Every
    set must succeed (the losers move the alias the winner just created: last writer wins) and every move must
    be in the history, each event's ``previous`` being the event before it. Then all four add the same
    consumers at once: idempotent, so all succeed and each is recorded once.
    """
    gens, aliases = [f"g{i}-v1" for i in range(4)], [f"new-{j}" for j in range(5)]
    with Registry(registry_url) as reg:
        for g in gens:
            reg.register(g, code_version="test")
    go = tmp_path / "go"
    procs = [spawn_alias_setter(registry_url, g, aliases, go, pause=0.2) for g in gens]
    for p in procs:
        wait_for_line(p, "ready")
    go.touch()
    results = [(p.communicate(timeout=90), p.returncode) for p in procs]
    assert all(rc == 0 for _, rc in results), [(out, err[-2000:]) for (out, err), _ in results]
    with Registry(registry_url) as reg:
        current = reg.aliases()
        for alias in aliases:
            history = reg.alias_history(alias)
            assert sorted(e.generation for e in history) == gens  # one recorded move per process
            assert [e.previous for e in history] == [None, *(e.generation for e in history[:-1])]
            assert current[alias] == history[-1].generation == reg.resolve(alias).name
        # every process added the same consumers: idempotent, one row each
        assert sorted(c.ref for c in reg.consumers() if c.team == "race-team") == sorted(aliases)
