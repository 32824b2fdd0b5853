"""Bearer tokens of the HTTP service (``emb server``) and its aggregated usage counters.

A token reads ``emb_<id>_<secret>``. The registry keeps ``id`` (the primary key: verification is one indexed
lookup), the team, the scope, expiry and revocation, and a salted scrypt hash of ``secret``; the token itself is
shown once, when issued, and never stored or logged. Comparison is constant time (:func:`hmac.compare_digest`).

Usage is aggregated: one ``usage_counters`` row per (team, generation, UTC day), incremented by the server in
batches (:meth:`TokensMixin.record_usage`), never a row per request.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from embsdk.errors import InvalidRegistryInput, RegistryError
from registry._core import RegistryCore
from registry.entities import _Dict
from registry.models import ApiToken, UsageCounter, utcnow
from registry.validation import check_name

__all__ = [
    "SCOPES",
    "IssuedToken",
    "TokenInfo",
    "TokenNotFound",
    "TokenRejected",
    "TokensMixin",
    "UsageInfo",
    "parse_token",
]

#: Scopes, weakest first: each one includes the ones before it.
SCOPES: tuple[str, ...] = ("read", "publish", "admin")
PREFIX = "emb"
# scrypt cost: 16 MiB, ~30-60 ms per verification (the server caches verified tokens for a short TTL).
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32


class TokenRejected(RegistryError, PermissionError):
    """A bearer token is malformed, unknown, wrong, revoked or expired (the HTTP service answers 401)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"Token rejected: {reason}.")


class TokenNotFound(RegistryError, LookupError):
    """No token has this id."""

    def __init__(self, token_id: str) -> None:
        self.token_id = token_id
        super().__init__(f"No token with id {token_id!r}. List them with: emb registry consumers tokens")


@dataclass(frozen=True)
class TokenInfo(_Dict):
    """A token's record (never its secret)."""

    id: str
    team: str
    scope: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None

    def allows(self, scope: str) -> bool:
        """Whether this token's scope includes *scope* (admin ⊇ publish ⊇ read)."""
        return SCOPES.index(self.scope) >= SCOPES.index(scope)

    def active(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class IssuedToken(_Dict):
    """What :meth:`TokensMixin.issue_token` returns: the record and the token, shown this once."""

    info: TokenInfo
    token: str


@dataclass(frozen=True)
class UsageInfo(_Dict):
    """Requests of one team on one generation (summed over the days asked for) and the last one's time."""

    team: str
    generation: str
    requests: int
    last_used_at: datetime


def parse_token(token: str) -> tuple[str, str]:
    """``emb_<id>_<secret>`` → ``(id, secret)``.

    Raises:
        TokenRejected: not of that form.
    """
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2] or len(parts[1]) > 32:
        raise TokenRejected("malformed token (expected emb_<id>_<secret>)")
    return parts[1], parts[2]


def _hash(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN).hex()


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(
        row.id, row.team, row.scope, row.created_at, row.created_by, row.expires_at, row.revoked_at
    )


class TokensMixin(RegistryCore):
    """issue_token / verify_token / revoke_token / tokens / has_active_tokens / record_usage / usage."""

    def issue_token(
        self, team: str, scope: str = "read", *, expires_days: float | None = None
    ) -> IssuedToken:
        """Create a token for *team* with *scope*; the returned ``token`` is the only copy of its secret.

        Raises:
            InvalidRegistryInput: bad team name, unknown scope, or a non-positive expiry.
        """
        check_name(team, "team")
        if scope not in SCOPES:
            raise InvalidRegistryInput(f"Unknown scope {scope!r}; expected one of {', '.join(SCOPES)}.")
        if expires_days is not None and not expires_days > 0:
            raise InvalidRegistryInput(f"--expires-days must be positive, not {expires_days!r}.")
        token_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_bytes(16)
        now = utcnow()
        row = ApiToken(
            id=token_id,
            team=team,
            scope=scope,
            salt=salt.hex(),
            secret_hash=_hash(secret, salt),
            created_at=now,
            created_by=self.user,
            expires_at=now + timedelta(days=expires_days) if expires_days is not None else None,
            revoked_at=None,
        )
        with self._write(f"issue a {scope} token for {team}") as session:
            session.add(row)
            session.flush()
            info = _info(row)
        return IssuedToken(info, f"{PREFIX}_{token_id}_{secret}")

    def verify_token(self, token: str) -> TokenInfo:
        """The record of a valid token (one primary-key lookup, one scrypt).

        Raises:
            TokenRejected: malformed, unknown, wrong secret, revoked or expired (``reason`` says which).
        """
        token_id, secret = parse_token(token)
        with self._read("verify a token") as session:
            row = session.get(ApiToken, token_id)
            if row is None:
                raise TokenRejected("unknown token")
            info, salt, stored = _info(row), bytes.fromhex(row.salt), row.secret_hash
        if not hmac.compare_digest(_hash(secret, salt), stored):
            raise TokenRejected("unknown token")
        if info.revoked_at is not None:
            raise TokenRejected("token revoked")
        if info.expires_at is not None and info.expires_at <= utcnow():
            raise TokenRejected("token expired")
        return info

    def revoke_token(self, token_or_id: str) -> TokenInfo:
        """Revoke a token, given by id or as the whole token (idempotent: the first revocation time is kept).

        Raises:
            TokenNotFound: no token has this id.
        """
        token_id = parse_token(token_or_id)[0] if token_or_id.startswith(f"{PREFIX}_") else token_or_id
        with self._write(f"revoke token {token_id}") as session:
            row = session.get(ApiToken, token_id, with_for_update=True)
            if row is None:
                raise TokenNotFound(token_id)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            session.flush()
            return _info(row)

    def tokens(self, team: str | None = None) -> builtins.list[TokenInfo]:
        """Every token's record (no secrets), or one team's, oldest first."""
        with self._read("list tokens") as session:
            stmt = sa.select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
            if team is not None:
                stmt = stmt.where(ApiToken.team == team)
            return [_info(r) for r in session.scalars(stmt)]

    def has_active_tokens(self) -> bool:
        """Whether any token is neither revoked nor expired (``emb server`` off loopback needs one)."""
        now = utcnow()
        with self._read("count tokens") as session:
            stmt = (
                sa.select(ApiToken.id)
                .where(ApiToken.revoked_at.is_(None))
                .where(sa.or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))
                .limit(1)
            )
            return session.scalars(stmt).first() is not None

    def record_usage(self, counts: Mapping[tuple[str, str, str], tuple[int, datetime]]) -> None:
        """Add batched request counts: ``{(team, generation, 'YYYY-MM-DD'): (requests, last_used_at)}``."""
        if not counts:
            return
        with self._write(f"record usage ({len(counts)} counters)") as session:
            for (team, generation, day), (n, last) in sorted(counts.items()):
                key = {"team": team, "generation": generation, "day": day}
                row = session.get(UsageCounter, key, with_for_update=True)
                if row is None:
                    try:
                        with session.begin_nested():  # another server process may insert it first
                            session.add(UsageCounter(**key, requests=n, last_used_at=last))
                        continue
                    except sa.exc.IntegrityError:
                        row = session.get(UsageCounter, key, with_for_update=True, populate_existing=True)
                        assert row is not None
                row.requests += n
                row.last_used_at = max(row.last_used_at, last)

    def usage(self, team: str | None = None, *, days: int | None = None) -> builtins.list[UsageInfo]:
        """Requests per (team, generation), summed over the last *days* UTC days (``None``: all), newest first."""
        u = UsageCounter
        stmt = sa.select(u.team, u.generation, sa.func.sum(u.requests), sa.func.max(u.last_used_at)).group_by(
            u.team, u.generation
        )
        if team is not None:
            stmt = stmt.where(u.team == team)
        if days is not None:
            since = (utcnow() - timedelta(days=days)).date().isoformat()
            stmt = stmt.where(u.day > since)
        with self._read("read usage") as session:
            rows = session.execute(stmt).all()
        out = []
        for t, g, n, last in rows:
            last_at = last if isinstance(last, datetime) else datetime.fromisoformat(str(last))
            if last_at.tzinfo is None:
                from datetime import UTC

                last_at = last_at.replace(tzinfo=UTC)
            out.append(UsageInfo(t, g, int(n), last_at))
        return sorted(out, key=lambda x: (x.team, x.generation))
