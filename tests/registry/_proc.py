"""Helpers to drive the registry from real child processes (for race, reader and kill -9 tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A child registers NAME with one artifact. HOOK names a crash point (embsdk._faults.POINTS) where it prints
# "<hook>-reached" and then sleeps SLEEP seconds; GO is a file it waits for before starting (a start barrier).
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from embsdk import _faults
    from registry import Registry
    url, art_dir, name, artifact, hook, sleep, go = sys.argv[1:8]
    def pause(*_):
        print(f"{hook}-reached", flush=True)
        time.sleep(float(sleep))
    if hook != "none":
        _faults.arm(hook, pause)
    print("ready", flush=True)
    while go != "none" and not os.path.exists(go):
        time.sleep(0.005)
    reg = Registry(url, artifact_dir=Path(art_dir))  # after the barrier: a fresh registry is created by both
    try:
        gen = reg.register(name, artifacts=[Path(artifact)], code_version="test")
        print(json.dumps({"ok": gen.name, "sha256": gen.artifacts[0].sha256}), flush=True)
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
        sys.exit(3)
    """
)


def spawn(
    url: str,
    artifact_dir: Path,
    name: str,
    artifact: Path,
    *,
    hook: str = "none",
    sleep: float = 0,
    go: Path | None = None,
) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            url,
            str(artifact_dir),
            name,
            str(artifact),
            hook,
            str(sleep),
            str(go or "none"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def wait_for_line(proc: subprocess.Popen[str], expected: str, timeout: float = 60) -> None:
    """Read the child's stdout until *expected* appears (fails with its stderr otherwise)."""
    import selectors
    import time

    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None
    sel.register(proc.stdout, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if sel.select(timeout=0.2):
            line = proc.stdout.readline()
            if line.strip() == expected:
                return
            if not line and proc.poll() is not None:
                break
    raise AssertionError(
        f"child never printed {expected!r}; stderr: {proc.stderr.read() if proc.stderr else ''}"
    )


# A child points each of ALIASES (comma-separated, all new) at generation NAME, after the start barrier GO,
# then records team "race-team" as a consumer of each. It pauses PAUSE seconds between finding that an alias
# (or the consumer) does not exist and inserting it: the race window.
ALIAS_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from embsdk import _faults
    from registry import Registry
    url, name, aliases, go, pause = sys.argv[1:6]
    for point in ("registry.before_alias_insert", "registry.before_consumer_insert"):
        _faults.arm(point, lambda: time.sleep(float(pause)))
    reg = Registry(url)
    reg.resolve(name)  # connected and warm before the barrier
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    try:
        for alias in aliases.split(","):
            reg.set_alias(alias, name, reason=f"set by {os.getpid()}")
        for alias in aliases.split(","):
            reg.add_consumer("race-team", alias)  # idempotent: every process adds the same consumer
        print(json.dumps({"ok": name}), flush=True)
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
        sys.exit(3)
    """
)


def spawn_alias_setter(
    url: str, name: str, aliases: list[str], go: Path, *, pause: float = 0
) -> subprocess.Popen[str]:
    """A real process that sets every alias in *aliases* to *name* once *go* exists."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", ALIAS_CHILD, url, name, ",".join(aliases), str(go), str(pause)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
