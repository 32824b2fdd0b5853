"""Bad usage is one ``error: …`` line on stderr and exit 2, like every other error (no boxed usage panel)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

EMB = str(Path(sys.executable).with_name("emb"))

CASES = [
    (("search", "--kk", "3"), "No such option: --kk"),
    (("get",), "Missing argument"),
    (("registry", "show"), "Missing argument"),
    (("train", "--epochs", "three"), "--epochs"),
    (("store", "info", "--version"), "requires an argument"),
    (("search", "-v", "unified-v1"), "exactly one of --id ID or --image PATH"),
    (("nosuchcommand",), "No such command"),
]


@pytest.mark.parametrize(("args", "needle"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_usage_is_one_line_exit_2(args: tuple[str, ...], needle: str) -> None:
    res = subprocess.run([EMB, *args], capture_output=True, text=True, env=os.environ.copy(), check=False)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert "╭" not in res.stderr and "Usage:" not in res.stderr and res.stdout == ""


def test_bad_usage_in_process_too() -> None:
    from cli.main import app

    res = CliRunner().invoke(app, ["search", "--kk", "3"])
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        "error: emb search: No such option: --kk (Possible options: --k, --kind). See: emb search --help"
    ]


def test_help_and_no_args_still_print_help() -> None:
    ok = subprocess.run([EMB, "search", "--help"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "Usage:" in ok.stdout and "--include-self" in ok.stdout
    group = subprocess.run([EMB, "registry"], capture_output=True, text=True, check=False)
    assert "Usage:" in group.stdout + group.stderr and "error:" not in group.stderr
