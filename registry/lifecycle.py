"""The generation lifecycle: statuses and the only legal transitions between them.

=============  =====================================  ==================================================
from           to                                     why
=============  =====================================  ==================================================
candidate      staging, retired                       evaluated and shortlisted; or abandoned
staging        production, candidate, retired         go live; sent back for more work; or abandoned
production     deprecated                             a successor is live; consumers should move off
deprecated     production, retired                    roll back to it; or switch it off for good
retired        (none: final)                          its embeddings must not be served any more
=============  =====================================  ==================================================

Deprecating or retiring a generation that consumers still read (directly or through an alias that points
at it) is refused unless forced with a reason; retiring one that an alias still points at is refused too.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["TRANSITIONS", "Status", "allowed_next", "is_legal"]


class Status(StrEnum):
    CANDIDATE = "candidate"
    STAGING = "staging"
    PRODUCTION = "production"
    DEPRECATED = "deprecated"
    RETIRED = "retired"


TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    Status.CANDIDATE: (Status.STAGING, Status.RETIRED),
    Status.STAGING: (Status.PRODUCTION, Status.CANDIDATE, Status.RETIRED),
    Status.PRODUCTION: (Status.DEPRECATED,),
    Status.DEPRECATED: (Status.PRODUCTION, Status.RETIRED),
    Status.RETIRED: (),
}


def allowed_next(current: str) -> tuple[str, ...]:
    """Statuses reachable from *current* in one step."""
    return tuple(s.value for s in TRANSITIONS[Status(current)])


def is_legal(current: str, target: str) -> bool:
    return target in allowed_next(current)
