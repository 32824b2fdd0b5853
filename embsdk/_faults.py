"""Fault injection for crash tests: one mechanism, named crash points.

Library code marks the exact places where a test may kill or pause a real process with
``crash_point("<name>")``. Disabled (every normal run), a crash point is one truth test of an empty dict.
Two ways to enable one, both for tests only:

* ``EMBSDK_TEST_CRASH_AT=<name>`` in a child process's environment: the process SIGKILLs itself at that point
  (no cleanup, no ``finally``). Read once, when this module is first imported. Not an ``EMB_*`` setting:
  it is a test hook, not configuration.
* In process: ``with on("<name>", fn): ...`` (or :func:`arm` in a child script that never disarms) calls
  ``fn(*args)`` there, e.g. to sleep so that a parent can ``kill -9`` it, or to raise.

Every name must be one of :data:`POINTS`: a misspelled name in the environment, in :func:`on` or
:func:`arm` raises :class:`UnknownCrashPoint` instead of silently never firing.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["ENV", "POINTS", "UnknownCrashPoint", "arm", "crash_point", "disarm", "kill_self", "on"]

ENV = "EMBSDK_TEST_CRASH_AT"

POINTS: dict[str, str] = {
    # registry (registry/artifacts.py, registry/_generations.py, registry/_aliases.py)
    "registry.during_blob_write": "ArtifactStore.put: half of a blob's bytes are in its temp file "
    "(callbacks get the temp file's path)",
    "registry.after_blobs_written": "Registry.register: every blob durable, before the DB transaction",
    "registry.before_commit": "Registry.register: inside the write transaction, rows flushed, before commit",
    "registry.before_alias_insert": "Registry.set_alias: in its transaction, the alias is new, before insert",
    "registry.before_consumer_insert": "Registry.add_consumer: in its transaction, the pair is new, before insert",
    # Triton repository (triton_models/repository.py)
    "repository.before_rename": "ModelRepository.commit: staged folder complete, before it becomes numbered",
    "repository.after_rename": "ModelRepository.commit: numbered folder in place, before generations.json",
    "repository.after_mapping": "ModelRepository.commit: generations.json written, before config.pbtxt",
    # publish orchestration (publishing/publish.py)
    "publish.after_export": "export written and parity-checked, nothing staged or registered",
    "publish.after_stage": "model staged in the Triton repository (hidden), not registered",
    "publish.after_register": "generation registered (the commit point), eval report not attached yet",
    "publish.before_alias": "Triton version committed, aliases not set",
}
"""Every crash point, by name → where it is."""


class UnknownCrashPoint(ValueError):
    """A crash point name that is not in :data:`POINTS` (a typo in a test)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown crash point {name!r}; known: {', '.join(sorted(POINTS))}")


_armed: dict[str, Callable[..., object]] = {}


def kill_self(*_args: object) -> None:
    """SIGKILL this process right here."""
    os.kill(os.getpid(), signal.SIGKILL)


def crash_point(name: str, *args: object) -> None:
    """Mark crash point ``name``: a no-op unless a test armed it (then its callback runs with ``args``)."""
    if _armed:
        fn = _armed.get(name)
        if fn is not None:
            fn(*args)
        elif name not in POINTS:
            raise UnknownCrashPoint(name)


def _check(name: str) -> str:
    if name not in POINTS:
        raise UnknownCrashPoint(name)
    return name


def arm(name: str, fn: Callable[..., object] = kill_self) -> Callable[..., object] | None:
    """Call ``fn`` at crash point ``name`` from now on (default: SIGKILL); returns what was armed before."""
    previous = _armed.get(_check(name))
    _armed[name] = fn
    return previous


def disarm(name: str, previous: Callable[..., object] | None = None) -> None:
    """Make ``name`` a no-op again (or restore ``previous``, as returned by :func:`arm`)."""
    if previous is None:
        _armed.pop(_check(name), None)
    else:
        _armed[_check(name)] = previous


@contextmanager
def on(name: str, fn: Callable[..., object] = kill_self) -> Iterator[None]:
    """Within the block, call ``fn`` at crash point ``name`` (default: SIGKILL this process)."""
    previous = arm(name, fn)
    try:
        yield
    finally:
        disarm(name, previous)


def _arm_from_env() -> None:
    target = os.environ.get(ENV)
    if target:
        arm(target, kill_self)  # UnknownCrashPoint for a typo: the test's child fails loudly


_arm_from_env()
