"""Aliases (movable names with history and protection) and consumers (teams pinning a name or alias)."""

from __future__ import annotations

import builtins

import sqlalchemy as sa
from sqlalchemy.orm import Session

from embsdk._faults import crash_point
from embsdk.errors import (
    AliasNotFound,
    ConsumerNotFound,
    InvalidRegistryInput,
    ProtectedAlias,
    RetiredGeneration,
)
from registry._core import RegistryCore
from registry.entities import AliasEvent, ConsumerInfo
from registry.lifecycle import Status
from registry.models import Alias, Consumer, Generation, utcnow
from registry.models import AliasEvent as AliasEventRow
from registry.validation import check_name

__all__ = ["AliasesMixin"]


class _AliasCreatedConcurrently(Exception):
    """Internal: inserting a new alias hit its primary key (another writer created it first); never escapes."""


class AliasesMixin(RegistryCore):
    """set_alias / alias_history / aliases / add_consumer / remove_consumer / consumers."""

    def set_alias(
        self, alias: str, name: str, *, protect: bool = False, force: bool = False, reason: str | None = None
    ) -> AliasEvent:
        """Point *alias* at generation *name* (creating it), recording the move as an event.

        Args:
            protect: mark the alias protected: later moves need ``force=True`` and a reason.
            force: move a protected alias (requires *reason*).
            reason: why (kept in the history).

        Raises:
            ProtectedAlias: the alias is protected and ``force``/``reason`` is missing.
            GenerationNotFound: no such generation. RetiredGeneration: it is retired.
            InvalidRegistryInput: the alias name is malformed or is a generation's name.
        """
        check_name(alias, "alias")
        try:
            return self._set_alias_once(alias, name, protect=protect, force=force, reason=reason)
        except _AliasCreatedConcurrently:
            # Another process created the alias between our lookup and our insert (PostgreSQL: the primary key
            # decided). It exists now, so the second try takes the ordinary move path: row lock, protection
            # rules, one more event. Last writer wins; both moves are in the history.
            return self._set_alias_once(alias, name, protect=protect, force=force, reason=reason)

    def _set_alias_once(
        self, alias: str, name: str, *, protect: bool, force: bool, reason: str | None
    ) -> AliasEvent:
        """One transaction of :meth:`set_alias`; raises :class:`_AliasCreatedConcurrently` when it lost a race."""
        with self._write(f"set alias {alias}") as session:
            if session.execute(sa.select(Generation.id).where(Generation.name == alias)).first():
                raise InvalidRegistryInput(f"{alias!r} is a generation's name; an alias cannot shadow it.")
            gen = self._gen(session, name)
            if gen.status == Status.RETIRED:
                raise RetiredGeneration(name)
            row = session.get(Alias, alias, with_for_update=True)
            if row is not None and row.protected and row.generation_id != gen.id and not (force and reason):
                raise ProtectedAlias(alias)
            now = utcnow()
            if row is not None and row.generation_id == gen.id:
                row.protected = row.protected or protect
                last = self._history(session, alias)[-1]
                return last  # already there: nothing moved, nothing to record
            previous = None if row is None else row.generation_id
            if row is None:
                crash_point("registry.before_alias_insert")
                session.add(Alias(name=alias, generation_id=gen.id, protected=protect, updated_at=now))
                try:
                    session.flush()
                except sa.exc.IntegrityError:
                    raise _AliasCreatedConcurrently(alias) from None
            else:
                row.generation_id, row.updated_at, row.protected = gen.id, now, row.protected or protect
            session.add(
                AliasEventRow(
                    alias=alias,
                    generation_id=gen.id,
                    previous_generation_id=previous,
                    at=now,
                    who=self.user,
                    reason=reason,
                )
            )
            session.flush()
            return self._history(session, alias)[-1]

    def alias_history(self, alias: str) -> builtins.list[AliasEvent]:
        """Every move of *alias*, oldest first.

        Raises:
            AliasNotFound: the alias was never set.
        """
        with self._read(f"read alias {alias}") as session:
            events = self._history(session, alias)
        if not events:
            raise AliasNotFound(alias)
        return events

    def aliases(self) -> dict[str, str]:
        """Every alias and the generation it points at now."""
        with self._read("list aliases") as session:
            rows = session.execute(
                sa.select(Alias.name, Generation.name)
                .join(Generation, Generation.id == Alias.generation_id)
                .order_by(Alias.name)
            ).all()
        return {a: g for a, g in rows}

    @staticmethod
    def _history(session: Session, alias: str) -> builtins.list[AliasEvent]:
        new, old = sa.orm.aliased(Generation), sa.orm.aliased(Generation)
        rows = session.execute(
            sa.select(AliasEventRow, new.name, old.name)
            .join(new, new.id == AliasEventRow.generation_id)
            .outerjoin(old, old.id == AliasEventRow.previous_generation_id)
            .where(AliasEventRow.alias == alias)
            .order_by(AliasEventRow.at, AliasEventRow.id)
        ).all()
        return [AliasEvent(alias, n, o, e.at, e.who, e.reason) for e, n, o in rows]

    # ------------------------------------------------------------------ consumers

    def add_consumer(self, team: str, ref: str) -> ConsumerInfo:
        """Record that *team* reads generation-or-alias *ref* (idempotent).

        Raises:
            GenerationNotFound: *ref* is neither a generation nor an alias.
        """
        check_name(team, "team")
        with self._write(f"add consumer {team}") as session:
            gen, _ = self._resolve_row(session, ref)
            find = sa.select(Consumer).where(Consumer.team == team, Consumer.ref == ref)
            row = session.scalars(find).one_or_none()
            if row is None:
                crash_point("registry.before_consumer_insert")
                try:
                    with session.begin_nested():  # a savepoint absorbs another process adding it first
                        row = Consumer(team=team, ref=ref, created_at=utcnow(), created_by=self.user)
                        session.add(row)
                except sa.exc.IntegrityError:
                    row = session.scalars(find).one()
            return ConsumerInfo(team, ref, gen.name, row.created_at, row.created_by)

    def remove_consumer(self, team: str, ref: str) -> None:
        """Forget that *team* reads *ref*.

        Raises:
            ConsumerNotFound: no such registration.
        """
        with self._write(f"remove consumer {team}") as session:
            row = session.scalars(
                sa.select(Consumer).where(Consumer.team == team, Consumer.ref == ref)
            ).one_or_none()
            if row is None:
                raise ConsumerNotFound(team, ref)
            session.delete(row)

    def consumers(self, ref: str | None = None) -> builtins.list[ConsumerInfo]:
        """All consumers, or those that read the generation *ref* resolves to (directly or by alias)."""
        with self._read("list consumers") as session:
            target = None if ref is None else self._resolve_row(session, ref)[0].id
            rows = session.scalars(sa.select(Consumer).order_by(Consumer.team, Consumer.ref)).all()
            out = []
            for c in rows:
                gen = self._current_target(session, c.ref)
                if target is None or (gen is not None and gen.id == target):
                    out.append(
                        ConsumerInfo(
                            c.team, c.ref, None if gen is None else gen.name, c.created_at, c.created_by
                        )
                    )
            return out

    def _current_target(self, session: Session, ref: str) -> Generation | None:
        try:
            return self._resolve_row(session, ref)[0]
        except LookupError:
            return None

    @staticmethod
    def _affected(session: Session, gen: Generation, *, include_aliases: bool) -> builtins.list[str]:
        """Who reads *gen*: teams pinning it by name or through an alias, and (optionally) the aliases."""
        aliases = session.scalars(sa.select(Alias.name).where(Alias.generation_id == gen.id)).all()
        rows = session.execute(
            sa.select(Consumer.team, Consumer.ref)
            .where(Consumer.ref.in_([gen.name, *aliases]))
            .order_by(Consumer.team)
        ).all()
        who = [team if ref == gen.name else f"{team} (via alias {ref})" for team, ref in rows]
        if include_aliases:
            who += [f"alias {a}" for a in aliases]
        return who
