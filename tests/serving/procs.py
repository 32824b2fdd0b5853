"""Process helpers for the serving tests (Linux /proc)."""

from __future__ import annotations

from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields after "pid (comm)": state, ppid, pgrp, ...


def alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _live_where(field: int, value: int) -> list[int]:
    """Live processes whose ``/proc/<pid>/stat`` field ``field`` (1: ppid, 2: pgrp) equals ``value``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[field]) == value and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` that are alive."""
    return _live_where(1, pid)


def in_group(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid``."""
    return _live_where(2, pgid)
