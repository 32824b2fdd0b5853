"""Turn library errors into one clear line on stderr and a non-zero exit code (tracebacks only with EMB_DEBUG=1)."""

from __future__ import annotations

import sys
import traceback

from embsdk.config import get_settings, redact_url
from embsdk.errors import EmbsdkError

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "report_error"]

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def report_error(exc: BaseException) -> int:
    """Print *exc* as ``error: <message>`` (redacted) and return the exit code to use."""
    debug = get_settings().debug
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, KeyboardInterrupt):
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    kind = "" if isinstance(exc, EmbsdkError) else f"{type(exc).__name__}: "
    message = str(exc) or type(exc).__name__
    sys.stderr.write(redact_url(f"error: {kind}{message}").splitlines()[0] + "\n")
    if not isinstance(exc, EmbsdkError) and not debug:
        sys.stderr.write("(unexpected error; rerun with EMB_DEBUG=1 for the traceback)\n")
    return EXIT_ERROR
