"""One output sink for every command: data to stdout (human text or ``--json``), diagnostics to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from embsdk.config import redact_url

__all__ = ["JsonOpt", "emit", "info", "to_jsonable"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout (data only).")]


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, paths, datetimes, numpy scalars/arrays into JSON-ready values."""
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return to_jsonable(asdict(obj))
    return obj


def emit(data: Any, *, as_json: bool, human: Callable[[Any], str] | str | None = None) -> None:
    """Print *data*: JSON when ``as_json``; otherwise ``human(data)`` (or *human* itself when a string)."""
    if as_json or human is None:
        text = json.dumps(to_jsonable(data), indent=2)
    elif callable(human):
        text = human(data)
    else:
        text = human
    sys.stdout.write(redact_url(text).rstrip("\n") + "\n")


def info(message: str) -> None:
    """A diagnostic line on stderr (never mixed into ``--json`` output)."""
    sys.stderr.write(redact_url(message).rstrip("\n") + "\n")
