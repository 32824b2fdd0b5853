"""The ``emb registry`` CLI: in-process (CliRunner) for breadth, the real console script for the essentials."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from registry.migrate import head_revision

EMB = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "emb"
runner = CliRunner()


def emb(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console script."""
    return subprocess.run(
        [str(EMB), *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def ok(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, (args, res.output, res.exception)
    return res.stdout


def test_full_flow_in_process(registry_url: str, monkeypatch: pytest.MonkeyPatch, make_file) -> None:
    monkeypatch.setenv("EMB_REGISTRY_URL", registry_url)
    model, manifest = make_file("model.onnx"), make_file("train.csv", b"path,label\na,1\nb,2\n")
    out = json.loads(
        ok(
            "registry",
            "register",
            "unified-v1",
            "--artifact",
            str(model),
            "--dataset",
            str(manifest),
            "--spec-bits",
            "256",
            "--metric",
            "coarse/t/r@1/binary=0.5",
            "--json",
        )
    )
    assert out["name"] == "unified-v1" and out["embedding_spec"]["bits"] == 256
    assert out["datasets"][0]["rows"] == 2
    ok(
        "registry",
        "register",
        "unified-v2",
        "--artifact",
        str(model),
        "--parent",
        "unified-v1:fine-tuned-from",
        "--metric",
        "coarse/t/r@1/binary=0.6",
        "--spec-bits",
        "128",
        "--description",
        "second",
    )
    listed = json.loads(ok("registry", "list", "--json"))
    assert [g["name"] for g in listed] == ["unified-v1", "unified-v2"]
    assert "unified-v2" in ok("registry", "list")
    ok("registry", "promote", "unified-v2", "--to", "staging")
    ok("registry", "promote", "unified-v2", "--to", "production", "--reason", "offline eval")
    assert json.loads(ok("registry", "list", "--status", "production", "--json"))[0]["name"] == "unified-v2"
    ok("registry", "alias", "set", "production", "unified-v2", "--protect")
    ok("registry", "alias", "set", "best", "unified-v1")
    assert "best" in ok("registry", "list")  # the table shows each generation's aliases
    shown = json.loads(ok("registry", "show", "production", "--json"))
    assert (
        shown["name"] == "unified-v2"
        and shown["aliases"] == ["production"]
        and shown["resolved_from"] == "production"
    )
    assert shown["parents"] == [{"child": "unified-v2", "parent": "unified-v1", "kind": "fine-tuned-from"}]
    assert len(shown["artifacts"][0]["sha256"]) == 64
    human = ok("registry", "show", "unified-v2")
    assert shown["artifacts"][0]["sha256"] in human and "coarse/t/r@1/binary" in human
    lin = json.loads(ok("registry", "lineage", "unified-v1", "--json"))
    assert lin["descendants"] == ["unified-v2"]
    cmp = json.loads(ok("registry", "compare", "unified-v1", "unified-v2", "--json"))
    assert cmp["metrics"][0]["delta"] == pytest.approx(0.1) and cmp["spec_differences"]["bits"] == [256, 128]
    assert "+0.1000" in ok("registry", "compare", "unified-v1", "unified-v2")
    ok("registry", "consumers", "add", "search", "production")
    assert json.loads(ok("registry", "consumers", "list", "--json"))[0]["generation"] == "unified-v2"
    refused = runner.invoke(app, ["registry", "deprecate", "unified-v2"])
    assert refused.exit_code == 1 and "search (via alias production)" in str(refused.exception)
    ok("registry", "deprecate", "unified-v2", "--force", "--reason", "test")
    events = json.loads(ok("registry", "events", "unified-v2", "--json"))
    assert [e["to_status"] for e in events] == ["candidate", "staging", "production", "deprecated"]
    hist = json.loads(ok("registry", "alias", "history", "production", "--json"))
    assert hist[0]["generation"] == "unified-v2"
    report = make_file("eval.json", b'{"r@1": 0.6}')
    att = json.loads(ok("registry", "attach", "unified-v2", str(report), "--role", "eval-report", "--json"))
    assert att["role"] == "eval-report" and att["at_creation"] is False
    refused = runner.invoke(app, ["registry", "attach", "unified-v2", str(model)])
    assert refused.exit_code == 1 and "immutable" in str(refused.exception)
    got = json.loads(ok("registry", "add-metrics", "unified-v2", "coarse/t/map@r/binary=0.3", "--json"))
    assert got["coarse/t/map@r/binary"] == pytest.approx(0.3)
    ok("registry", "register", "unified-v3")
    ok("registry", "add-parent", "unified-v3", "unified-v2:replaces")
    cycle = runner.invoke(app, ["registry", "add-parent", "unified-v1", "unified-v3"])
    assert cycle.exit_code == 1 and "cycle" in str(cycle.exception)
    assert json.loads(ok("registry", "lineage", "unified-v1", "--json"))["descendants"] == [
        "unified-v2",
        "unified-v3",
    ]
    assert json.loads(ok("registry", "fsck", "--json"))["ok"] is True
    assert f"at {head_revision()}" in ok("registry", "migrate")  # the newest revision


def test_bad_training_config_is_a_typed_error(make_file) -> None:
    from embsdk.errors import InvalidRegistryInput

    bad = make_file("config.yaml", b"lr: [0.1\n")
    res = runner.invoke(app, ["registry", "register", "x-v1", "--training-config", str(bad)])
    assert res.exit_code == 1 and isinstance(res.exception, InvalidRegistryInput)
    assert "not valid JSON or YAML" in str(res.exception)


def test_real_console_script_happy_path_and_errors(make_file, emb_home: Path) -> None:
    model = make_file("model.onnx")
    res = emb("registry", "register", "unified-v1", "--artifact", str(model), "--spec-bits", "64", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["artifacts"][0]["name"] == "model.onnx"
    assert (emb_home / "registry.db").exists()
    # errors: one line on stderr, exit 1, no traceback
    for args, needle in (
        (("registry", "register", "unified-v1", "--artifact", str(model)), "already exists"),
        (("registry", "show", "ghost"), "No generation or alias named 'ghost'"),
        (("registry", "promote", "unified-v1", "--to", "production"), "cannot move to production"),
        (("registry", "register", "x-v1", "--artifact", "/nonexistent/file.onnx"), "does not exist"),
        (("registry", "register", "x-v1", "--metric", "oops"), "KEY=VALUE"),
        (("registry", "register", "x-v1", "--parent", "unified-v1:married-to"), "Unknown lineage kind"),
        (("registry", "alias", "history", "nothing"), "does not point"),
    ):
        res = emb(*args)
        assert res.returncode == 1, (args, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (args, res.stderr)
        assert "Traceback" not in res.stderr
    # fsck exits 1 when a referenced blob is tampered with
    res = emb("registry", "show", "unified-v1", "--json")
    sha = json.loads(res.stdout)["artifacts"][0]["sha256"]
    blob = emb_home / "artifacts" / "blobs" / "sha256" / sha[:2] / sha[2:]
    blob.chmod(0o644)
    blob.write_bytes(b"tampered")
    res = emb("registry", "fsck", "--json")
    assert res.returncode == 1 and json.loads(res.stdout)["corrupt"] == [sha]


def test_help_explains(emb_home: Path) -> None:
    res = emb("registry", "--help")
    assert res.returncode == 0 and "Examples" in res.stdout and "register" in res.stdout
    res = emb("registry", "register", "--help")
    assert "--parent" in res.stdout and "fine-tuned-from" in res.stdout


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://svc:Sup3rS3cretPW@127.0.0.1:1/registry",  # nothing listens on port 1
        "postgresql+psycopg://postgres:Sup3rS3cretPW@127.0.0.1:5432/no_such_database_here",
        "nosuchdialect://svc:Sup3rS3cretPW@host/db",
    ],
)
def test_password_never_printed(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from embsdk.errors import EmbsdkError
    from registry import Registry

    with pytest.raises(EmbsdkError) as err:
        Registry(url)
    assert "Sup3rS3cretPW" not in str(err.value) and "***" in str(err.value)
    res = emb("registry", "list", "--json", env={"EMB_REGISTRY_URL": url})
    assert res.returncode == 1
    assert "Sup3rS3cretPW" not in res.stdout + res.stderr
    assert res.stderr.startswith("error: ")
    res = emb("registry", "migrate", "--json", env={"EMB_REGISTRY_URL": url, "EMB_DEBUG": "1"})
    assert res.returncode == 1 and "Sup3rS3cretPW" not in res.stdout + res.stderr


@pytest.mark.postgres
def test_migrate_json_redacts_url(monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> None:
    url = postgres_url.replace("postgres@", "postgres:Sup3rS3cretPW@")  # trust auth ignores the password
    res = emb("registry", "migrate", "--json", env={"EMB_REGISTRY_URL": url})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    from registry import Registry

    assert "Sup3rS3cretPW" not in repr(Registry(url)) and "***" in repr(Registry(url))
    assert out["to"] == head_revision() and "Sup3rS3cretPW" not in res.stdout and "***" in out["url"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--spec-bits", "0"], "--spec-bits must be a positive multiple of 8"),
        (["--spec-bits", "-8"], "--spec-bits must be a positive multiple of 8"),
        (["--spec-bits", "12"], "--spec-bits must be a positive multiple of 8"),
        (["--spec-bits", "64", "--spec-dim", "0"], "--spec-dim must be a positive integer"),
        (["--spec-dim", "64"], "--spec-dim needs --spec-bits"),
    ],
)
def test_register_refuses_bad_spec_options(
    registry_url: str, make_file, options: list[str], message: str
) -> None:
    """``--spec-bits 0`` used to register the generation WITHOUT an embedding spec (0 is falsy)."""
    env = {"EMB_REGISTRY_URL": registry_url}
    assert emb("registry", "migrate", env=env).returncode == 0  # the registry exists: only the register fails
    res = emb("registry", "register", "u-v1", "--artifact", str(make_file("m.onnx")), *options, env=env)
    assert res.returncode == 1, res.stdout
    assert res.stderr.startswith("error: ") and len(res.stderr.splitlines()) == 1, res.stderr
    assert message in res.stderr
    listed = emb("registry", "list", "--json", env=env)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


# Passwords with the characters URL parsers trip on; no fragment of them may ever be printed.
TRICKY_PASSWORDS = ["Fr4gA@Fr4gB", "Fr4gA:Fr4gB", "Fr4gA/Fr4gB", "Fr4gA%40Fr4gB", "Fr4gA@Fr4gB:/@Fr4gC"]


def _assert_no_fragment(text: str) -> None:
    assert not any(frag in text for frag in ("Fr4gA", "Fr4gB", "Fr4gC")), text
    assert "***" in text, text


@pytest.mark.parametrize("password", TRICKY_PASSWORDS)
def test_tricky_password_never_printed_when_the_database_is_unreachable(password: str) -> None:
    """``user:se@cret@host`` used to print as ``***@cret@host`` and the driver error named host ``cret@...``."""
    from embsdk.errors import EmbsdkError
    from registry import Registry

    url = f"postgresql+psycopg://svc:{password}@127.0.0.1:1/registry"  # nothing listens on port 1
    with pytest.raises(EmbsdkError) as err:
        Registry(url)
    _assert_no_fragment(str(err.value))
    assert "127.0.0.1" in str(err.value) and "port 1" in str(err.value)  # connected to the right host
    for args, debug in ((("registry", "list"), "0"), (("registry", "migrate", "--json"), "1")):
        res = emb(*args, env={"EMB_REGISTRY_URL": url, "EMB_DEBUG": debug})  # 1: the traceback is printed too
        assert res.returncode == 1
        _assert_no_fragment(res.stdout + res.stderr)


@pytest.mark.postgres
@pytest.mark.parametrize("password", TRICKY_PASSWORDS)
def test_tricky_password_never_printed_by_a_working_registry(
    postgres_url: str, password: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URL reaches the right host (trust auth ignores the password) and every printed form hides it."""
    from cli._output import info
    from embsdk.config import get_settings
    from registry import Registry

    url = postgres_url.replace("postgres@", f"postgres:{password}@")
    res = emb("registry", "migrate", "--json", env={"EMB_REGISTRY_URL": url})
    assert res.returncode == 0, res.stderr
    _assert_no_fragment(json.loads(res.stdout)["url"])
    res = emb("registry", "migrate", env={"EMB_REGISTRY_URL": url})
    assert res.returncode == 0, res.stderr
    _assert_no_fragment(res.stdout + res.stderr)
    with Registry(url) as reg:
        _assert_no_fragment(repr(reg))
        _assert_no_fragment(reg.url_redacted)
    monkeypatch.setenv("EMB_REGISTRY_URL", url)
    _assert_no_fragment(get_settings().registry_url_redacted)
    info(f"registry at {url}")  # the log line every command writes through
    _assert_no_fragment(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql+psycopg://u:se@cret@h/db", "postgresql+psycopg://u:***@h/db"),
        (
            "at pg://u:a:b/c%40d@h:5/db?x=1 failed: bob@example",
            "at pg://u:***@h:5/db?x=1 failed: bob@example",
        ),
        ("'pg://u:p@h/db': bad", "'pg://u:***@h/db': bad"),
        ("pg://h/db?password=s3@cret&sslmode=require", "pg://h/db?password=***&sslmode=require"),
        ("sqlite:////data/a:b@c.db", "sqlite:////data/a:b@c.db"),
        ("http://127.0.0.1:8000/v2/health", "http://127.0.0.1:8000/v2/health"),
        # malformed URLs that SQLAlchemy refuses and echoes back in its error
        ("postgresql//bob:s3cr@t@127.0.0.1/nodb", "postgresql//bob:***@127.0.0.1/nodb"),
        ("'postgresql:/bob:s3cr@t@h/db'", "'postgresql:***@h/db'"),
        ("bob:s3cr@t@127.0.0.1", "bob:***@127.0.0.1"),
        ("postgresql+psycopg:bob:p:w@host", "postgresql+psycopg:***@host"),
        ("mail bob@example.com", "mail bob@example.com"),
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    from embsdk.config import redact_url

    assert redact_url(text) == expected


@pytest.mark.parametrize(
    "url",
    [
        "postgresql//bob:Fr4gA@Fr4gB@127.0.0.1/nodb",
        "postgresql:/bob:Fr4gA@Fr4gB@127.0.0.1/nodb",
        "bob:Fr4gA@Fr4gB@127.0.0.1",
        "postgresql+psycopg:bob:Fr4gA@127.0.0.1/db",
    ],
)
def test_malformed_registry_url_never_prints_its_password(url: str) -> None:
    """A URL SQLAlchemy cannot parse is echoed in the error: the password in it was printed whole."""
    for args, debug in (
        (("registry", "list", "--json"), "0"),
        (("get", "1"), "0"),
        (("registry", "fsck"), "1"),
    ):
        res = emb(*args, env={"EMB_REGISTRY_URL": url, "EMB_DEBUG": debug})
        assert res.returncode != 0
        _assert_no_fragment(res.stdout + res.stderr)


@pytest.mark.parametrize(
    "text", ["a" * 400_000, "x://u:" + "a" * 400_000, ":/" * 200_000, "a" * 400_000 + "@h"]
)
def test_redact_url_is_linear(text: str) -> None:
    """A 120,000-character version name made one `emb server` request take 36 s (and stall the server):
    the patterns rescanned long runs from every position. 400,000 characters now take milliseconds; the
    bound is generous so that only a quadratic pattern (minutes here) can fail it."""
    import time

    from embsdk.config import redact_url

    started = time.perf_counter()
    redact_url(text)
    assert time.perf_counter() - started < 3.0
