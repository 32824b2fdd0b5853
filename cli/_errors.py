"""Turn library errors into one clear line on stderr and a non-zero exit code (tracebacks only with EMB_DEBUG=1)."""

from __future__ import annotations

import sys
import traceback
import warnings
from typing import Any

from embsdk.config import get_settings, redact_url
from embsdk.errors import DeprecatedGenerationWarning, EmbsdkError

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "one_line_warnings",
    "report_error",
    "usage_error_line",
]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def usage_error_line(exc: Any) -> str:
    """A Click usage error (unknown option, missing value, bad choice) as one ``error: …`` line.

    Names the command and where its help is, e.g.
    ``error: emb search: No such option: --kk (Possible options: --k, --kind). See: emb search --help``.
    """
    message = " ".join(str(exc.format_message()).split())  # Click may wrap suggestions over lines
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    see = f" See: {ctx.command_path} --help" if ctx is not None else ""
    return redact_url(f"error: {where}{message}.{see}".replace("..", "."))


def report_error(exc: BaseException) -> int:
    """Print *exc* as ``error: <message>`` (redacted) and return the exit code to use."""
    debug = get_settings().debug
    if debug:
        sys.stderr.write(redact_url("".join(traceback.format_exception(exc))))
    if isinstance(exc, KeyboardInterrupt):
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    kind = "" if isinstance(exc, EmbsdkError) else f"{type(exc).__name__}: "
    message = str(exc) or type(exc).__name__
    sys.stderr.write(redact_url(f"error: {kind}{message}").splitlines()[0] + "\n")
    if not isinstance(exc, EmbsdkError) and not debug:
        sys.stderr.write("(unexpected error; rerun with EMB_DEBUG=1 for the traceback)\n")
    return EXIT_ERROR


def one_line_warnings() -> None:
    """Show embsdk's warnings (a deprecated generation) as one ``warning: <message>`` line on stderr.

    Other warnings keep Python's format. Idempotent; installed when the ``emb`` command loads this module.
    """
    original = warnings.formatwarning
    if getattr(original, "_emb_one_line", False):
        return

    def formatwarning(message, category, filename, lineno, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, DeprecatedGenerationWarning):
            return redact_url(f"warning: {message}") + "\n"
        return original(message, category, filename, lineno, line)

    formatwarning._emb_one_line = True  # type: ignore[attr-defined]
    warnings.formatwarning = formatwarning


one_line_warnings()
