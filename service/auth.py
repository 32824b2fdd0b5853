"""Bearer-token authentication with a short-lived cache of verified tokens.

Verification is one indexed registry lookup plus one scrypt (tens of ms), so a verified token is trusted for
``ttl`` seconds; a revocation or expiry therefore takes effect within ``ttl``. The cache is keyed by the token's
SHA-256, never by the token itself, and nothing here logs a token.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

from registry._tokens import SCOPES, TokenInfo, TokenRejected
from registry.models import utcnow
from service.problems import Forbidden

__all__ = ["TokenCache", "bearer"]


def bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header.

    Raises:
        TokenRejected: no header, or not a bearer one.
    """
    if not header:
        raise TokenRejected("missing Authorization: Bearer <token> header")
    kind, _, value = header.strip().partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        raise TokenRejected("the Authorization header must be 'Bearer <token>'")
    return value.strip()


class TokenCache:
    """Verified tokens for ``ttl`` seconds (``ttl=0``: ask the registry on every request)."""

    def __init__(self, registry: Any, ttl: float) -> None:
        self._registry, self.ttl = registry, ttl
        self._hits: dict[bytes, tuple[TokenInfo, float]] = {}
        self._lock = threading.Lock()

    def verify(self, token: str) -> TokenInfo:
        """The token's record. Raises TokenRejected (401)."""
        key = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        hit = self._hits.get(key)
        if hit is not None and now - hit[1] < self.ttl and hit[0].active(utcnow()):
            return hit[0]
        info = self._registry.verify_token(token)
        if self.ttl > 0:
            with self._lock:
                if len(self._hits) > 10_000:  # bounded: forget everything rather than grow
                    self._hits.clear()
                self._hits[key] = (info, now)
        return info

    def authorize(self, header: str | None, scope: str) -> TokenInfo:
        """Verify the header's token and check it allows *scope*. Raises TokenRejected (401), Forbidden (403)."""
        info = self.verify(bearer(header))
        if not info.allows(scope):
            raise Forbidden(
                f"This request needs a token with scope {scope!r}; team {info.team!r}'s token has scope "
                f"{info.scope!r} (scopes: {' < '.join(SCOPES)})."
            )
        return info
