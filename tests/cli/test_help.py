"""Every leaf command of ``emb`` documents itself the same way: an example in --help, one option name per concept."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from tests.cli._walk import leaf_commands, options

LEAVES = list(leaf_commands())


def test_the_walk_finds_every_command() -> None:
    paths = {p for p, _ in LEAVES}
    assert len(paths) >= 36
    assert {"emb train", "emb search", "emb registry alias set", "emb registry consumers list"} <= paths


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=[p for p, _ in LEAVES])
def test_every_leaf_command_help_has_an_example(path: str, cmd) -> None:
    text = cmd.help or ""
    assert re.search(r"^\s*Examples?:", text, re.MULTILINE), f"{path} --help has no 'Example:' line"
    example = text[re.search(r"Examples?:", text).end() :]
    assert path in example, f"{path}: the example does not run {path!r}"


# Options that take an existing generation (name or alias); what they are called is what this test pins.
GENERATION_HELP = re.compile(r"^generation name or alias", re.IGNORECASE)


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=[p for p, _ in LEAVES])
def test_a_generation_is_version_v_everywhere(path: str, cmd) -> None:
    for opt in options(cmd):
        names = [*opt.opts, *opt.secondary_opts]
        takes_generation = GENERATION_HELP.search(opt.help or "") or "--version" in names
        if takes_generation:
            assert sorted(opt.opts) == ["--version", "-v"], f"{path}: generation option is {opt.opts}"
        assert not {"--generation", "--gen", "-g"} & set(names), f"{path}: {names}"
        if "-v" in names:
            assert "--version" in names, f"{path}: -v must mean --version, not {names}"


def test_generation_commands_take_version_and_default_to_production() -> None:
    taking = {}
    for path, cmd in LEAVES:
        for opt in options(cmd):
            if "--version" in opt.opts:
                taking[path] = opt
    expected = {
        "emb embed",
        "emb get",
        "emb search",
        "emb backfill",
        "emb store info",
        "emb store verify",
        "emb store compact",
        "emb store index",
    }
    assert expected <= set(taking)
    for path in expected - {"emb backfill"}:  # backfill writes a store: it needs an explicit --version
        assert taking[path].default == "production", path


def test_report_is_a_folder_and_workers_are_dataloader_workers() -> None:
    seen = {"--report": 0, "--workers": 0}
    for path, cmd in LEAVES:
        for opt in options(cmd):
            if "--report" in opt.opts:
                seen["--report"] += 1
                assert "folder" in (opt.help or "").lower(), f"{path} --report: {opt.help}"
            if "--workers" in opt.opts:
                seen["--workers"] += 1
                assert "dataloader" in (opt.help or "").lower(), f"{path} --workers: {opt.help}"
    assert seen["--report"] >= 2 and seen["--workers"] >= 2


def test_sdk_and_cli_default_to_the_same_version() -> None:
    from cli._sdk import DEFAULT_VERSION as CLI_DEFAULT
    from embsdk.client import DEFAULT_VERSION

    assert CLI_DEFAULT == DEFAULT_VERSION == "production"


def test_shell_completion_is_offered() -> None:
    from cli.main import app

    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0 and "--install-completion" in res.stdout and "--show-completion" in res.stdout
    res = CliRunner().invoke(app, ["--show-completion", "bash"])
    assert res.exit_code == 0 and "emb" in res.stdout and "complete" in res.stdout
