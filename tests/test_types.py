"""The public packages type-check (``[tool.mypy]`` in pyproject.toml), ship ``py.typed``, and the SDK's public
signatures name their types: no ``Any`` in what ``import embsdk`` exposes."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import embsdk

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_passes_on_the_public_packages(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Success: no issues found" in r.stdout


def test_public_packages_ship_py_typed() -> None:
    for package in ("embsdk", "registry"):
        assert (ROOT / package / "py.typed").is_file(), package


def _public_callables() -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for name in embsdk.__all__:
        value = getattr(embsdk, name)
        if inspect.isclass(value):
            out += [
                (f"{name}.{attr}", member)
                for attr, member in vars(value).items()
                if not attr.startswith("_") and (inspect.isfunction(member) or isinstance(member, property))
            ]
            for base in value.__mro__[1:]:  # public methods inherited from embsdk mixins (Client's search)
                if base.__module__.startswith("embsdk."):
                    out += [
                        (f"{name}.{attr}", member)
                        for attr, member in vars(base).items()
                        if not attr.startswith("_") and inspect.isfunction(member)
                    ]
        elif inspect.isfunction(value):
            out.append((name, value))
    return out


def _mentions_any(hint: object) -> bool:
    if hint is typing.Any:
        return True
    return any(_mentions_any(arg) for arg in typing.get_args(hint))


# Where Any is the honest type: JSON-like payloads (to_dict), and **params forwarded to faiss index builders.
_ALLOWED = {"to_dict", "params"}


def _type_checking_names() -> dict[str, object]:
    """Names the SDK imports only under ``TYPE_CHECKING`` (to keep ``import embsdk`` light)."""
    from bitarray import bitarray

    from embsdk.client import Resolved
    from embsdk.hamming.index import BinaryIndex
    from registry import Registry

    return {"Registry": Registry, "BinaryIndex": BinaryIndex, "Resolved": Resolved, "bitarray": bitarray}


def test_no_any_in_the_sdk_public_signatures() -> None:
    offenders = []
    extra = _type_checking_names()
    for qualname, member in _public_callables():
        func = member.fget if isinstance(member, property) else member
        hints = typing.get_type_hints(func, localns=extra)
        for arg, hint in hints.items():
            if qualname.rsplit(".", 1)[-1] in _ALLOWED or arg in _ALLOWED:
                continue
            if _mentions_any(hint):
                offenders.append(f"{qualname}({arg}: {hint})")
    assert not offenders, "Any in public SDK signatures:\n" + "\n".join(offenders)


def test_the_any_check_sees_an_any() -> None:
    def leaky(x: typing.Any, y: list[int]) -> dict[str, typing.Any]:
        return {}

    hints = typing.get_type_hints(leaky)
    assert _mentions_any(hints["x"]) and not _mentions_any(hints["y"]) and _mentions_any(hints["return"])
