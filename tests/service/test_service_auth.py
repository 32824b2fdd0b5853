"""The server's token cache: one registry verification per token per TTL; scope checks; header parsing."""

from __future__ import annotations

import time

import pytest

from registry import Registry
from registry._tokens import TokenRejected
from service.auth import TokenCache, bearer
from service.problems import Forbidden


class _Counting:
    def __init__(self, reg: Registry) -> None:
        self.reg, self.calls = reg, 0

    def verify_token(self, token: str):
        self.calls += 1
        return self.reg.verify_token(token)


def test_verified_tokens_are_cached_for_the_ttl(emb_home) -> None:
    reg = Registry()
    token = reg.issue_token("search", "publish").token
    counting = _Counting(reg)
    cache = TokenCache(counting, ttl=0.5)
    for _ in range(20):
        assert cache.authorize(f"Bearer {token}", "read").team == "search"
    assert counting.calls == 1  # one scrypt for twenty requests
    time.sleep(0.6)
    cache.authorize(f"Bearer {token}", "publish")
    assert counting.calls == 2
    with pytest.raises(Forbidden, match="admin"):
        cache.authorize(f"Bearer {token}", "admin")
    uncached = TokenCache(counting, ttl=0)
    uncached.authorize(f"Bearer {token}", "read")
    uncached.authorize(f"Bearer {token}", "read")
    assert counting.calls == 4
    reg.close()


def test_an_expired_token_is_not_served_from_the_cache(emb_home) -> None:
    reg = Registry()
    token = reg.issue_token("temp", "read", expires_days=1 / 86400).token  # 1 s
    cache = TokenCache(reg, ttl=60)
    cache.authorize(f"Bearer {token}", "read")
    time.sleep(1.2)
    with pytest.raises(TokenRejected, match="expired"):
        cache.authorize(f"Bearer {token}", "read")
    reg.close()


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwdw==", "bearer"])
def test_bearer_refuses_what_is_not_a_bearer_token(header: str | None) -> None:
    with pytest.raises(TokenRejected):
        bearer(header)


def test_bearer_reads_the_token() -> None:
    assert bearer("Bearer emb_ab_cd") == "emb_ab_cd" and bearer("bearer  emb_ab_cd ") == "emb_ab_cd"
