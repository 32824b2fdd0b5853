"""The layer contract (``[tool.importlinter]`` in pyproject.toml, README "How data flows") holds.

CI runs ``lint-imports`` through this test; the test also proves the linter would catch a violation, and that
the few imports the contract ignores are lazy (inside a function), as the contract's comment says.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("embsdk", "registry", "trainer", "triton_models", "publishing", "service", "cli")


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "lint-imports"
    cmd = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [*cmd, "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_lint_imports_keeps_every_contract() -> None:
    proc = _lint_imports(ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    n = len(_config()["contracts"])
    assert f"Contracts: {n} kept, 0 broken." in out, out[-5000:]


def test_the_contract_states_the_layers() -> None:
    cfg = _config()
    assert sorted(cfg["root_packages"]) == sorted(PACKAGES)
    contracts = {c["id"]: c for c in cfg["contracts"]}
    assert contracts["layers"]["layers"] == [
        "cli",
        "service | publishing",
        "trainer | triton_models",
        "registry",
        "embsdk",
    ]
    forbidden = contracts["trainer-imports-only-embsdk"]
    assert forbidden["source_modules"] == ["trainer"]
    assert set(forbidden["forbidden_modules"]) == {"registry", "triton_models", "publishing", "cli"}
    # the exceptions stay few: each is one lazy name lookup of the SDK in the registry
    assert {i.split("->")[1].strip() for i in contracts["layers"]["ignore_imports"]} == {"registry"}
    assert len(contracts["layers"]["ignore_imports"]) <= 3


def _imports_of(tree: ast.AST, target: str) -> tuple[list[int], list[int]]:
    """Line numbers of imports of ``target`` (or its submodules): (module level, inside a function)."""
    top: list[int] = []
    lazy: list[int] = []

    def names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            return [node.module]
        return []

    def type_checking_only(
        node: ast.AST,
    ) -> bool:  # ``if TYPE_CHECKING:``: never runs, only for type checkers
        test = node.test if isinstance(node, ast.If) else None
        return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        )

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if type_checking_only(child):
                continue
            if any(n == target or n.startswith(target + ".") for n in names(child)):
                (lazy if in_function else top).append(child.lineno)
            visit(
                child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            )

    visit(tree, False)
    return top, lazy


def test_import_scanner_tells_module_level_from_lazy() -> None:
    src = (
        "import registry.x\n"
        "try:\n    from registry import A\nexcept ImportError:\n    pass\n"
        "class C:\n    import registry\n"
        "def f():\n    from registry import Registry\n"
        "import registryish\n"
        "if TYPE_CHECKING:\n    from registry import Registry\n"
        "if typing.TYPE_CHECKING:\n    import registry\n"
    )
    assert _imports_of(ast.parse(src), "registry") == ([1, 3, 7], [9])  # type-checking-only imports never run


@pytest.mark.parametrize("entry", _config()["contracts"][0].get("ignore_imports", []))
def test_ignored_imports_are_lazy(entry: str) -> None:
    """`embsdk imports none of the others at module level`: an ignored import must stay inside a function."""
    importer, imported = (s.strip() for s in entry.split("->"))
    path = ROOT / (importer.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / importer.replace(".", "/") / "__init__.py"
    top, lazy = _imports_of(ast.parse(path.read_text()), imported)
    assert top == [], f"{path.relative_to(ROOT)}:{top[0]} imports {imported} at module level"
    assert lazy, f"{entry} is no longer imported: drop it from ignore_imports"


def _copy_tree(dst: Path) -> None:
    for pkg in PACKAGES:
        shutil.copytree(
            ROOT / pkg,
            dst / pkg,
            ignore=lambda d, names: (
                [n for n in names if not n.endswith(".py") and not (Path(d) / n).is_dir()]
                + [n for n in names if n == "__pycache__"]
            ),
        )
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")


@pytest.mark.parametrize(
    ("module", "line", "expect"),
    [
        ("trainer/run.py", "import registry", "trainer.run -> registry"),
        ("trainer/run.py", "import triton_models.sync", "trainer.run -> triton_models.sync"),
        ("embsdk/codes.py", "import registry", "embsdk.codes -> registry"),
        ("embsdk/client.py", "import trainer.run", "embsdk.client -> trainer.run"),
        ("registry/db.py", "import triton_models.config", "registry.db -> triton_models.config"),
        ("triton_models/sync.py", "import publishing.publish", "triton_models.sync -> publishing.publish"),
        ("publishing/eval_report.py", "import cli._output", "publishing.eval_report -> cli._output"),
    ],
)
def test_a_violation_breaks_the_contract(module: str, line: str, expect: str, tmp_path: Path) -> None:
    """The same check on a copy of the tree with one forbidden import added fails, naming it."""
    _copy_tree(tmp_path)
    target = tmp_path / module
    text = target.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    target.write_text(head + sep + line + "\n" + rest if sep else line + "\n" + text)
    proc = _lint_imports(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "BROKEN" in out and expect in out, out[-3000:]
