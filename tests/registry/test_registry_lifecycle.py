"""Lifecycle: every (from, to) pair is legal exactly when the table says so; events; consumer protection."""

from __future__ import annotations

import itertools

import pytest

from embsdk.errors import ConsumersAffected, GenerationNotFound, IllegalTransition, InvalidRegistryInput
from registry import TRANSITIONS, Registry, Status

# shortest legal path from candidate to each status
_PATH = {
    Status.CANDIDATE: [],
    Status.STAGING: [Status.STAGING],
    Status.PRODUCTION: [Status.STAGING, Status.PRODUCTION],
    Status.DEPRECATED: [Status.STAGING, Status.PRODUCTION, Status.DEPRECATED],
    Status.RETIRED: [Status.RETIRED],
}


def _move(reg: Registry, name: str, to: Status, **kw: object) -> object:
    if to == Status.DEPRECATED:
        return reg.deprecate(name, **kw)
    if to == Status.RETIRED:
        return reg.retire(name, **kw)
    return reg.promote(name, to.value, **kw)


def test_transition_table_is_enforced(registry_url: str, artifact_dir) -> None:
    reg = Registry(registry_url, artifact_dir=artifact_dir)
    for i, (start, target) in enumerate(itertools.product(Status, Status)):
        name = f"t{i}-v1"
        reg.register(name, code_version="test")
        for step in _PATH[start]:
            _move(reg, name, step)
        if target in TRANSITIONS[start]:
            ev = _move(reg, name, target, reason="test")
            assert (ev.from_status, ev.to_status) == (start.value, target.value)
            assert reg.get(name).status == target.value
        else:
            with pytest.raises(IllegalTransition) as err:
                _move(reg, name, target)
            assert err.value.current == start.value and set(err.value.allowed) == {
                s.value for s in TRANSITIONS[start]
            }
            assert reg.get(name).status == start.value


def test_events_record_who_when_why(reg: Registry) -> None:
    reg.register("u-v1")
    reg.promote("u-v1", "staging", reason="passed offline eval")
    reg.promote("u-v1", "production")
    reg.deprecate("u-v1", reason="u-v2 is live")
    evs = reg.events("u-v1")
    assert [(e.from_status, e.to_status) for e in evs] == [
        (None, "candidate"),
        ("candidate", "staging"),
        ("staging", "production"),
        ("production", "deprecated"),
    ]
    assert {e.who for e in evs} == {"tester"}
    assert evs[1].reason == "passed offline eval" and evs[3].reason == "u-v2 is live"
    assert [e.at for e in evs] == sorted(e.at for e in evs)
    assert reg.transitions("u-v1") == evs
    with pytest.raises(GenerationNotFound):
        reg.events("nope")


def test_promote_rejects_non_promotion_targets(reg: Registry) -> None:
    reg.register("u-v1")
    with pytest.raises(InvalidRegistryInput, match="deprecate or retire"):
        reg.promote("u-v1", "retired")


def test_consumers_block_deprecate_and_retire_unless_forced(reg: Registry) -> None:
    reg.register("u-v1")
    reg.promote("u-v1", "staging")
    reg.promote("u-v1", "production")
    reg.set_alias("production", "u-v1")
    reg.add_consumer("ads-ranking", "u-v1")
    reg.add_consumer("visual-search", "production")
    with pytest.raises(ConsumersAffected) as err:
        reg.deprecate("u-v1")
    assert err.value.consumers == ("ads-ranking", "visual-search (via alias production)")
    assert "ads-ranking" in str(err.value) and reg.get("u-v1").status == "production"
    with pytest.raises(InvalidRegistryInput, match="reason"):
        reg.deprecate("u-v1", force=True)
    reg.remove_consumer("ads-ranking", "u-v1")
    with pytest.raises(ConsumersAffected, match="visual-search"):
        reg.deprecate("u-v1")
    ev = reg.deprecate("u-v1", force=True, reason="migration announced")
    assert ev.reason == "migration announced"
    reg.remove_consumer("visual-search", "production")
    with pytest.raises(ConsumersAffected, match="alias production"):  # an alias still points at it
        reg.retire("u-v1")
    reg.retire("u-v1", force=True, reason="superseded")
    assert reg.get("u-v1").status == "retired"


def test_consumer_registry(reg: Registry) -> None:
    from embsdk.errors import ConsumerNotFound

    reg.register("u-v1")
    reg.register("u-v2")
    reg.set_alias("production", "u-v1")
    a = reg.add_consumer("search", "production")
    assert a.generation == "u-v1"
    assert reg.add_consumer("search", "production").created_at == a.created_at  # idempotent
    reg.add_consumer("ads", "u-v2")
    assert [(c.team, c.ref, c.generation) for c in reg.consumers()] == [
        ("ads", "u-v2", "u-v2"),
        ("search", "production", "u-v1"),
    ]
    assert [c.team for c in reg.consumers("u-v1")] == ["search"]
    reg.set_alias("production", "u-v2")
    assert [c.team for c in reg.consumers("u-v2")] == ["ads", "search"]
    with pytest.raises(GenerationNotFound):
        reg.add_consumer("search", "ghost")
    with pytest.raises(ConsumerNotFound):
        reg.remove_consumer("search", "u-v1")
