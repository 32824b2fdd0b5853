"""Aliases: moves are events, history answers "what did it point to then", protection needs force+reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from embsdk.errors import AliasNotFound, GenerationNotFound, ProtectedAlias, RetiredGeneration
from registry import Registry


def test_alias_moves_and_history(reg: Registry) -> None:
    for n in ("u-v1", "u-v2", "u-v3"):
        reg.register(n)
    e1 = reg.set_alias("production", "u-v1", reason="launch")
    e2 = reg.set_alias("production", "u-v2")
    assert (e2.previous, e2.generation) == ("u-v1", "u-v2")
    assert reg.set_alias("production", "u-v2") == e2  # no move, no new event
    e3 = reg.set_alias("production", "u-v3", reason="v3 wins")
    assert reg.resolve("production").name == "u-v3"
    assert reg.resolve("production").resolved_from == "production"
    hist = reg.alias_history("production")
    assert [(h.previous, h.generation, h.reason) for h in hist] == [
        (None, "u-v1", "launch"),
        ("u-v1", "u-v2", None),
        ("u-v2", "u-v3", "v3 wins"),
    ]
    assert reg.resolve("production", at=e1.at).name == "u-v1"
    assert reg.resolve("production", at=e2.at + (e3.at - e2.at) / 2).name == "u-v2"
    assert reg.resolve("production", at=datetime.now(UTC) + timedelta(days=1)).name == "u-v3"
    naive = e1.at.astimezone(UTC).replace(tzinfo=None)  # naive datetimes are UTC
    assert reg.resolve("production", at=naive).name == "u-v1"
    with pytest.raises(AliasNotFound, match="at"):
        reg.resolve("production", at=e1.at - timedelta(seconds=1))
    assert reg.aliases() == {"production": "u-v3"}
    assert reg.get("u-v3").aliases == ("production",)


def test_unknown_alias(reg: Registry) -> None:
    with pytest.raises(AliasNotFound):
        reg.alias_history("nope")
    with pytest.raises(GenerationNotFound):
        reg.resolve("nope", at=datetime.now(UTC))
    reg.register("u-v1")
    with pytest.raises(GenerationNotFound):
        reg.set_alias("staging", "ghost")


def test_resolve_generation_before_it_existed(reg: Registry) -> None:
    g = reg.register("u-v1")
    with pytest.raises(GenerationNotFound, match="after"):
        reg.resolve("u-v1", at=g.created_at - timedelta(seconds=5))


def test_protected_alias_needs_force_and_reason(reg: Registry) -> None:
    reg.register("u-v1")
    reg.register("u-v2")
    reg.set_alias("production", "u-v1", protect=True)
    with pytest.raises(ProtectedAlias, match="--force --reason"):
        reg.set_alias("production", "u-v2")
    with pytest.raises(ProtectedAlias):
        reg.set_alias("production", "u-v2", force=True)
    assert reg.resolve("production").name == "u-v1"
    ev = reg.set_alias("production", "u-v2", force=True, reason="rollout approved")
    assert ev.reason == "rollout approved" and ev.who == "tester"
    with pytest.raises(ProtectedAlias):  # still protected after a forced move
        reg.set_alias("production", "u-v1")


def test_alias_cannot_point_at_retired(reg: Registry) -> None:
    reg.register("u-v1")
    reg.retire("u-v1")
    with pytest.raises(RetiredGeneration):
        reg.set_alias("production", "u-v1")
