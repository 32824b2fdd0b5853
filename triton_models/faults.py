"""Fault injection for crash tests: ``EMBSDK_TEST_CRASH_AT=<step>`` SIGKILLs the process at that step.

Only tests set it; in normal runs :func:`crash_point` is a dictionary lookup and nothing else. (Not an
``EMB_*`` setting: it is a test hook, not configuration.)
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_ENV", "armed", "crash_point"]

CRASH_ENV = "EMBSDK_TEST_CRASH_AT"


def armed(step: str) -> bool:
    """True when the test hook asks to crash at ``step``."""
    return os.environ.get(CRASH_ENV) == step


def crash_point(step: str) -> None:
    """SIGKILL this process right here (no cleanup, no finally blocks) when armed for ``step``."""
    if armed(step):
        os.kill(os.getpid(), signal.SIGKILL)
