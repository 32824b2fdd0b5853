"""Work folders of killed publishes ($EMB_HOME/tmp/publish-*): found and removed; a live owner's never touched.

Owners are REAL processes: one is SIGKILLed (no cleanup runs), the other stays alive while the sweep runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from registry import Registry
from registry.workdirs import PUBLISH_PREFIX, owned_workdir, scratch_root, sweep_stale_workdirs
from tests.registry._proc import ROOT
from tests.registry.test_registry_cli import emb

pytestmark = pytest.mark.timeout(120)

OWNER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from registry.workdirs import owned_workdir
    with owned_workdir(Path(sys.argv[1]), sys.argv[2]) as work:
        (work / "export").mkdir()
        (work / "export" / "model.onnx").write_bytes(b"x" * 1000)
        print(work, flush=True)
        time.sleep(600)
    """
)


def _owner(parent: Path, prefix: str) -> tuple[subprocess.Popen[str], Path]:
    """A real process holding a work folder; returns it and the folder."""
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(parent), prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, proc.stderr.read() if proc.stderr else ""
    return proc, Path(line)


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_killed_owners_folder_is_swept_and_a_live_owners_is_kept(emb_home: Path) -> None:
    root = scratch_root()
    dead, dead_dir = _owner(root, f"{PUBLISH_PREFIX}dead-v1-")
    live, live_dir = _owner(root, f"{PUBLISH_PREFIX}live-v1-")
    try:
        _kill(dead)
        assert dead_dir.is_dir()  # SIGKILL: nothing cleaned up
        _age(live_dir, 3600)  # age does not matter while the owner lives
        assert sweep_stale_workdirs(root, PUBLISH_PREFIX, remove=False) == [dead_dir]
        assert dead_dir.is_dir()  # only reported
        assert sweep_stale_workdirs(root, PUBLISH_PREFIX, remove=True) == [dead_dir]
        assert not dead_dir.exists() and (live_dir / "export" / "model.onnx").is_file()
        assert sweep_stale_workdirs(root, PUBLISH_PREFIX, remove=True) == []
    finally:
        _kill(live)
    assert sweep_stale_workdirs(root, PUBLISH_PREFIX, remove=True) == [live_dir]  # its owner is gone now
    assert list(root.iterdir()) == []


def test_folder_in_use_by_this_process_is_never_stale(emb_home: Path) -> None:
    """flock is per open file: a sweep in the publishing process itself sees its own folder as live."""
    root = scratch_root()
    with owned_workdir(root, f"{PUBLISH_PREFIX}self-v1-") as work:
        _age(work, 3600)
        assert sweep_stale_workdirs(root, PUBLISH_PREFIX, remove=True, grace_seconds=0) == []
        assert work.is_dir()
    assert not work.exists()


def test_folders_without_an_owner_are_kept_during_the_grace_period(emb_home: Path) -> None:
    """No owner pid: being created right now, or left by an older embsdk; removed only once old."""
    root = scratch_root()
    being_created, empty_owner, legacy = (root / f"{PUBLISH_PREFIX}{n}-v1-x" for n in ("new", "empty", "old"))
    for folder in (being_created, empty_owner, legacy):
        folder.mkdir(parents=True)
    (empty_owner / ".owner").touch()  # created, not locked nor written yet
    _age(legacy, 3600)
    (root / "unrelated").mkdir()
    assert sweep_stale_workdirs(root, PUBLISH_PREFIX, remove=True) == [legacy]
    assert being_created.is_dir() and empty_owner.is_dir() and (root / "unrelated").is_dir()
    _age(empty_owner, 3600)
    assert sweep_stale_workdirs(root, PUBLISH_PREFIX, remove=True) == [empty_owner]


def test_fsck_reports_and_repairs_killed_publish_folders(emb_home: Path) -> None:
    root = scratch_root()
    Registry().close()
    dead, dead_dir = _owner(root, f"{PUBLISH_PREFIX}dead-v1-")
    live, live_dir = _owner(root, f"{PUBLISH_PREFIX}live-v1-")
    try:
        _kill(dead)
        with Registry() as reg:
            report = reg.fsck()
        assert report.stale_workdirs == (str(dead_dir),) and report.ok and not report.clean
        res = emb("registry", "fsck")
        assert res.returncode == 0, res.stderr
        assert f"stale publish folder: {dead_dir}" in res.stdout and str(live_dir) not in res.stdout
        assert dead_dir.is_dir()  # fsck without --repair changes nothing
        res = emb("registry", "fsck", "--repair", "--json")
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["stale_workdirs"] == [str(dead_dir)] and str(dead_dir) in out["removed"]
        assert not dead_dir.exists() and live_dir.is_dir()
        with Registry() as reg:
            assert reg.fsck().clean
    finally:
        _kill(live)
