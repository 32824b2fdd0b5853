"""Turn library errors into one clear line on stderr and a non-zero exit code (tracebacks only with EMB_DEBUG=1)."""

from __future__ import annotations

import sys
import traceback
import warnings

from embsdk.config import get_settings, redact_url
from embsdk.errors import DeprecatedGenerationWarning, EmbsdkError

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "one_line_warnings", "report_error"]

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


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
