"""Lifecycle operations: promote / deprecate / retire, and the event log of every transition."""

from __future__ import annotations

import builtins

import sqlalchemy as sa

from embsdk.errors import ConsumersAffected, IllegalTransition, InvalidRegistryInput
from registry._aliases import AliasesMixin
from registry.entities import LifecycleEvent
from registry.lifecycle import Status, allowed_next, is_legal
from registry.models import StatusEvent, utcnow

__all__ = ["LifecycleMixin"]


class LifecycleMixin(AliasesMixin):
    """promote / deprecate / retire / events (alias: transitions). See ``registry.lifecycle`` for the table."""

    def promote(self, name: str, to: str, reason: str | None = None) -> LifecycleEvent:
        """Move a generation to ``staging`` or ``production`` (or back to ``candidate``).

        Raises:
            IllegalTransition: not allowed from its current status. GenerationNotFound.
        """
        if to not in (Status.CANDIDATE, Status.STAGING, Status.PRODUCTION):
            raise InvalidRegistryInput(
                f"promote --to takes candidate, staging or production, not {to!r}; "
                "use deprecate or retire for the rest."
            )
        return self._transition(name, Status(to), reason=reason, force=False, action="promote")

    def deprecate(self, name: str, *, reason: str | None = None, force: bool = False) -> LifecycleEvent:
        """Mark a production generation deprecated (refused while consumers pin it, unless forced).

        Raises:
            ConsumersAffected: consumers still read it and ``force`` is not set (lists the teams).
            IllegalTransition, GenerationNotFound, InvalidRegistryInput (force without a reason).
        """
        return self._transition(name, Status.DEPRECATED, reason=reason, force=force, action="deprecate")

    def retire(self, name: str, *, reason: str | None = None, force: bool = False) -> LifecycleEvent:
        """Retire a generation for good (refused while consumers or aliases point at it, unless forced).

        Raises:
            ConsumersAffected, IllegalTransition, GenerationNotFound, InvalidRegistryInput.
        """
        return self._transition(name, Status.RETIRED, reason=reason, force=force, action="retire")

    def _transition(
        self, name: str, target: Status, *, reason: str | None, force: bool, action: str
    ) -> LifecycleEvent:
        if force and not reason:
            raise InvalidRegistryInput(
                f"Forcing a {action} needs a reason (--reason TEXT); it is kept in the history."
            )
        with self._write(f"{action} {name}") as session:
            gen = self._gen(session, name, for_update=True)
            if not is_legal(gen.status, target):
                raise IllegalTransition(name, gen.status, target.value, allowed_next(gen.status))
            if target in (Status.DEPRECATED, Status.RETIRED):
                affected = self._affected(session, gen, include_aliases=target == Status.RETIRED)
                if affected and not force:
                    raise ConsumersAffected(name, action, affected)
            previous, now = gen.status, utcnow()
            gen.status = target.value
            session.add(
                StatusEvent(
                    generation_id=gen.id,
                    from_status=previous,
                    to_status=target.value,
                    at=now,
                    who=self.user,
                    reason=reason,
                )
            )
            return LifecycleEvent(name, previous, target.value, now, self.user, reason)

    def events(self, name: str) -> builtins.list[LifecycleEvent]:
        """Every status transition of *name*, oldest first (the first is its registration)."""
        with self._read(f"read events of {name}") as session:
            gen = self._gen(session, name)
            rows = session.scalars(
                sa.select(StatusEvent)
                .where(StatusEvent.generation_id == gen.id)
                .order_by(StatusEvent.at, StatusEvent.id)
            ).all()
            return [LifecycleEvent(name, e.from_status, e.to_status, e.at, e.who, e.reason) for e in rows]

    transitions = events
