"""Lineage: typed edges between generations, walked with recursive CTEs (one query per direction)."""

from __future__ import annotations

from collections import deque

import sqlalchemy as sa
from sqlalchemy.orm import Session

from embsdk.errors import LineageCycle
from registry._core import RegistryCore
from registry.entities import LineageEdgeInfo, LineageGraph
from registry.models import Generation, LineageEdge, utcnow
from registry.validation import check_kind

__all__ = ["LineageMixin", "ancestor_ids"]

_E = LineageEdge.__table__


def _closure(root_id: int, *, up: bool) -> sa.CTE:
    """Recursive CTE of ids reachable from *root_id* (itself included) along parent (up) or child edges."""
    start, step = (_E.c.child_id, _E.c.parent_id) if up else (_E.c.parent_id, _E.c.child_id)
    anchor = sa.select(Generation.id.label("id")).where(Generation.id == root_id)
    reach = anchor.cte("reach", recursive=True)
    # UNION (not UNION ALL) de-duplicates: the walk terminates and never re-expands a diamond.
    return reach.union(sa.select(step.label("id")).join(reach, start == reach.c.id))


def _prefer_index_walk(session: Session) -> None:
    """PostgreSQL plans the recursive step with no statistics on the work table and tends to hash-join it
    against a full scan of ``lineage_edges`` on every iteration (O(depth x edges)). For this transaction,
    steer it to index lookups (O(depth x log edges)); SQLite already walks the index."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SET LOCAL enable_hashjoin = off"))
        session.execute(sa.text("SET LOCAL enable_mergejoin = off"))
        session.execute(sa.text("SET LOCAL enable_seqscan = off"))


def ancestor_ids(session: Session, root_id: int) -> set[int]:
    """Ids of all ancestors of *root_id* (not itself)."""
    _prefer_index_walk(session)
    reach = _closure(root_id, up=True)
    return {i for i in session.scalars(sa.select(reach.c.id)) if i != root_id}


def _edges(session: Session, root_id: int, *, up: bool) -> list[LineageEdgeInfo]:
    reach = _closure(root_id, up=up)
    child, parent = sa.orm.aliased(Generation), sa.orm.aliased(Generation)
    anchor_col = _E.c.child_id if up else _E.c.parent_id
    rows = session.execute(
        sa.select(child.name, parent.name, _E.c.kind)
        .select_from(_E)
        .join(reach, anchor_col == reach.c.id)
        .join(child, child.id == _E.c.child_id)
        .join(parent, parent.id == _E.c.parent_id)
    ).all()
    return [LineageEdgeInfo(c, p, k) for c, p, k in rows]


def _bfs(root: str, edges: list[LineageEdgeInfo], *, up: bool) -> tuple[str, ...]:
    """Nodes reachable from *root*, nearest first (ties by name)."""
    nxt: dict[str, list[str]] = {}
    for e in edges:
        a, b = (e.child, e.parent) if up else (e.parent, e.child)
        nxt.setdefault(a, []).append(b)
    seen, order, queue = {root}, [], deque([root])
    while queue:
        for n in sorted(nxt.get(queue.popleft(), [])):
            if n not in seen:
                seen.add(n)
                order.append(n)
                queue.append(n)
    return tuple(order)


class LineageMixin(RegistryCore):
    """lineage / add_parent."""

    def lineage(self, name: str) -> LineageGraph:
        """All ancestors and descendants of a generation (or alias target), nearest first, with their edges.

        Raises:
            GenerationNotFound: no such generation or alias.
        """
        with self._read(f"walk lineage of {name}") as session:
            gen, _ = self._resolve_row(session, name)
            _prefer_index_walk(session)
            up, down = _edges(session, gen.id, up=True), _edges(session, gen.id, up=False)
        edges = sorted(set(up) | set(down), key=lambda e: (e.child, e.parent, e.kind))
        return LineageGraph(
            gen.name, _bfs(gen.name, up, up=True), _bfs(gen.name, down, up=False), tuple(edges)
        )

    def add_parent(self, child: str, parent: str, kind: str = "fine-tuned-from") -> LineageEdgeInfo:
        """Add a typed lineage edge ``child → parent`` after registration (idempotent).

        Raises:
            LineageCycle: *parent* is *child* or already descends from it.
            GenerationNotFound: either generation does not exist.
            InvalidRegistryInput: unknown *kind*.
        """
        check_kind(kind)
        with self._write(f"add lineage {child} -> {parent}") as session:
            if self.dialect == "postgresql":  # serialize edge inserts so two cannot form a cycle together
                session.execute(sa.text("SELECT pg_advisory_xact_lock(6647397)"))
            c, p = self._gen(session, child), self._gen(session, parent)
            if c.id == p.id or c.id in ancestor_ids(session, p.id):
                raise LineageCycle(child, parent)
            exists = session.get(LineageEdge, (c.id, p.id, kind))
            if exists is None:
                session.add(
                    LineageEdge(
                        child_id=c.id, parent_id=p.id, kind=kind, created_at=utcnow(), created_by=self.user
                    )
                )
        return LineageEdgeInfo(child, parent, kind)
