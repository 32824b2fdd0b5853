"""Lineage: typed edges, ancestor/descendant walks (recursive CTE), cycles refused."""

from __future__ import annotations

import pytest

from embsdk.errors import GenerationNotFound, InvalidRegistryInput, LineageCycle
from registry import LineageEdgeInfo, Registry


def test_lineage_walks_both_ways_nearest_first(reg: Registry) -> None:
    #   base-v1 <- base-v2 <- unified-v1 <- unified-v2
    #                 ^-- distilled-from --- tiny-v1
    reg.register("base-v1")
    reg.register("base-v2", parents=[("base-v1", "fine-tuned-from")])
    reg.register("unified-v1", parents=[("base-v2", "fine-tuned-from")])
    v2 = reg.register(
        "unified-v2",
        parents=[("unified-v1", "replaces"), ("unified-v1", "fine-tuned-from")],
        metrics={"z/b/c/d": 1.0, "a/b/c/d": 2.0},
    )
    assert reg.get("unified-v2") == v2  # the view register() returns is exactly what is stored
    reg.register("tiny-v1", parents=[("base-v2", "distilled-from")])
    g = reg.lineage("base-v2")
    assert g.ancestors == ("base-v1",)
    assert g.descendants == ("tiny-v1", "unified-v1", "unified-v2")
    assert LineageEdgeInfo("tiny-v1", "base-v2", "distilled-from") in g.edges
    top = reg.lineage("unified-v2")
    assert top.ancestors == ("unified-v1", "base-v2", "base-v1") and top.descendants == ()
    assert {e.kind for e in top.edges if e.child == "unified-v2"} == {"fine-tuned-from", "replaces"}
    assert reg.get("unified-v1").children == (
        LineageEdgeInfo("unified-v2", "unified-v1", "fine-tuned-from"),
        LineageEdgeInfo("unified-v2", "unified-v1", "replaces"),
    )


def test_diamond_is_visited_once(reg: Registry) -> None:
    reg.register("a-v1")
    reg.register("b-v1", parents=["a-v1"])
    reg.register("c-v1", parents=["a-v1"])
    reg.register("d-v1", parents=["b-v1", "c-v1"])
    g = reg.lineage("d-v1")
    assert g.ancestors == ("b-v1", "c-v1", "a-v1")
    assert len(g.edges) == 4
    assert reg.lineage("a-v1").descendants == ("b-v1", "c-v1", "d-v1")


def test_cycles_are_refused(reg: Registry) -> None:
    for name, parents in (("a-v1", []), ("b-v1", ["a-v1"]), ("c-v1", ["b-v1"])):
        reg.register(name, parents=parents)
    with pytest.raises(LineageCycle):
        reg.add_parent("a-v1", "a-v1")
    with pytest.raises(LineageCycle):
        reg.add_parent("a-v1", "b-v1")
    with pytest.raises(LineageCycle, match="cycle"):
        reg.add_parent("a-v1", "c-v1", "compatible-with")
    assert reg.lineage("a-v1").ancestors == ()
    edge = reg.add_parent("c-v1", "a-v1", "compatible-with")
    assert edge in reg.lineage("c-v1").edges
    assert reg.add_parent("c-v1", "a-v1", "compatible-with") == edge  # idempotent
    assert len(reg.lineage("c-v1").edges) == 3


def test_add_parent_bad_input(reg: Registry) -> None:
    reg.register("a-v1")
    with pytest.raises(GenerationNotFound):
        reg.add_parent("a-v1", "ghost")
    with pytest.raises(InvalidRegistryInput, match="lineage kind"):
        reg.add_parent("a-v1", "a-v1", "adopted-by")
    with pytest.raises(GenerationNotFound):
        reg.lineage("ghost")


def test_deep_chain(reg: Registry) -> None:
    depth = 120
    reg.register("g-v0")
    for i in range(1, depth + 1):
        reg.register(f"g-v{i}", parents=[f"g-v{i - 1}"], code_version="test")
    tail = reg.lineage(f"g-v{depth}")
    assert tail.ancestors == tuple(f"g-v{i}" for i in range(depth - 1, -1, -1))
    assert reg.lineage("g-v0").descendants[-1] == f"g-v{depth}"
    with pytest.raises(LineageCycle):
        reg.add_parent("g-v0", f"g-v{depth}")


def test_walks_take_a_constant_number_of_queries(reg: Registry) -> None:
    """Lineage is a recursive CTE per direction, not one query per hop; resolve is a fixed handful."""
    import sqlalchemy as sa

    for depth in (5, 60):
        prefix = f"d{depth}"
        reg.register(f"{prefix}-v0", code_version="test")
        for i in range(1, depth + 1):
            reg.register(f"{prefix}-v{i}", parents=[f"{prefix}-v{i - 1}"], code_version="test")
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    sa.event.listen(reg._engine, "before_cursor_execute", count)
    try:
        per_depth = {}
        for depth in (5, 60):
            statements.clear()
            assert len(reg.lineage(f"d{depth}-v{depth}").ancestors) == depth
            per_depth[depth] = len(statements)
        statements.clear()
        reg.resolve("d60-v30")
        resolve_queries = len(statements)
    finally:
        sa.event.remove(reg._engine, "before_cursor_execute", count)
    assert per_depth[5] == per_depth[60] <= 10, per_depth
    assert resolve_queries <= 6
