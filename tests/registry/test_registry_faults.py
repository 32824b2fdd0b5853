"""Concurrency and faults with REAL processes: racing registrations, readers during a write, kill -9."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embsdk import _faults
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


# ---------------------------------------------------------------- the fault-injection mechanism itself

ROOT = Path(__file__).resolve().parents[2]


def _child(code: str, crash_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != _faults.ENV}
    if crash_at is not None:
        env[_faults.ENV] = crash_at
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unknown_crash_point_names_are_refused() -> None:
    with (
        pytest.raises(_faults.UnknownCrashPoint, match="registry.befor_commit"),
        _faults.on("registry.befor_commit", lambda: None),
    ):
        pass
    with pytest.raises(_faults.UnknownCrashPoint):
        _faults.arm("publish.after_exprot")
    assert _faults._armed == {}
    # armed: a misspelled call site raises too
    with _faults.on("registry.before_commit", lambda: None), pytest.raises(_faults.UnknownCrashPoint):
        _faults.crash_point("no.such.point")
    # a typo in the environment of a child fails it loudly instead of never firing
    proc = _child("import embsdk._faults; print('alive')", crash_at="publish.after_exprot")
    assert proc.returncode == 1 and "alive" not in proc.stdout
    assert "unknown crash point 'publish.after_exprot'" in proc.stderr


def test_crash_points_are_no_ops_unless_armed(tmp_path: Path, make_file) -> None:
    assert os.environ.get(_faults.ENV) is None and _faults._armed == {}
    for name in _faults.POINTS:
        assert _faults.crash_point(name, "arg") is None
    _faults.crash_point("not.checked.when.disabled")  # disabled: one empty-dict test, nothing else
    calls: list[tuple] = []
    with _faults.on("registry.before_commit", lambda *a: calls.append(a)):
        reg = Registry(f"sqlite:///{tmp_path / 'r.db'}", artifact_dir=tmp_path / "art")
        reg.register("a-v1", artifacts=[make_file("a.onnx")], code_version="test")
    assert calls == [()]
    reg.register("b-v1", code_version="test")  # disarmed on leaving the block
    assert calls == [()] and _faults._armed == {}
    with _faults.on("registry.before_commit", lambda: calls.append("outer")):
        with _faults.on("registry.before_commit", lambda: calls.append("inner")):
            _faults.crash_point("registry.before_commit")
        _faults.crash_point("registry.before_commit")  # the outer callback is restored
    assert calls[1:] == ["inner", "outer"] and _faults._armed == {}


def test_environment_kills_the_process_at_the_named_point() -> None:
    code = "from embsdk._faults import crash_point\ncrash_point('publish.after_export')\nprint('alive')"
    killed = _child(code, crash_at="publish.after_export")
    assert killed.returncode == -signal.SIGKILL and "alive" not in killed.stdout
    other = _child(code, crash_at="publish.after_stage")  # armed elsewhere: passes this point
    assert other.returncode == 0 and "alive" in other.stdout, other.stderr


def _crash_point_calls() -> dict[str, list[str]]:
    """Every ``crash_point("<literal>")`` call in the packages: name -> where."""
    found: dict[str, list[str]] = {}
    for pkg in ("embsdk", "registry", "trainer", "triton_models", "publishing", "cli"):
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", getattr(node.func, "attr", None)) == "crash_point"
                    and node.args
                ):
                    arg = node.args[0]
                    assert isinstance(arg, ast.Constant), (
                        f"{path}:{node.lineno}: crash point name not a literal"
                    )
                    found.setdefault(arg.value, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_crash_point_is_declared_and_used_once() -> None:
    calls = _crash_point_calls()
    assert set(calls) == set(_faults.POINTS), set(calls) ^ set(_faults.POINTS)
    assert {n: w for n, w in calls.items() if len(w) > 1} == {}
    # kept out of the hot paths: no crash point in the SDK's read/search/embed code
    assert not [w for ws in calls.values() for w in ws if w.startswith("embsdk/")]
