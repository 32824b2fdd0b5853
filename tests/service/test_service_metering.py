"""Usage metering: counted in memory, aggregated, flushed periodically and at stop; a failed flush loses nothing."""

from __future__ import annotations

import time

from registry import Registry
from service.metering import UsageMeter


def test_counts_are_aggregated_and_flushed_periodically(registry_url: str) -> None:
    reg = Registry(registry_url)
    meter = UsageMeter(reg, interval=0.2)
    meter.start()
    try:
        for _ in range(100):
            meter.count("search", "unified-v1")
        meter.count("ads", "unified-v2", n=3)
        deadline = time.monotonic() + 10
        while len(reg.usage()) < 2:
            assert time.monotonic() < deadline, "the flush thread wrote nothing"
            time.sleep(0.05)
        assert [(u.team, u.generation, u.requests) for u in reg.usage()] == [
            ("ads", "unified-v2", 3),
            ("search", "unified-v1", 100),
        ]
        meter.count("search", "unified-v1")
    finally:
        meter.stop()  # the last count is flushed at stop
    assert [(u.team, u.requests) for u in reg.usage("search")] == [("search", 101)]
    assert [u.requests for u in reg.usage("search", days=1)] == [101]
    reg.close()


class _Down:
    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.fail = True

    def record_usage(self, counts: dict) -> None:
        if self.fail:
            raise ConnectionError("registry down")
        self.calls.append(dict(counts))


def test_a_failed_flush_keeps_the_counts_for_the_next_one() -> None:
    down = _Down()
    meter = UsageMeter(down, interval=0)
    meter.count("search", "g", n=2)
    assert meter.flush() == 0
    meter.count("search", "g")
    down.fail = False
    assert meter.flush() == 1
    [(key, (n, _last))] = down.calls[0].items()
    assert (key[:2], n) == (("search", "g"), 3)
    assert meter.flush() == 0  # nothing pending
