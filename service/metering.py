"""Usage metering: requests per (team, generation, UTC day), counted in memory and flushed in batches.

Counting costs one dict update under a lock; a background thread adds the counts to the registry's
``usage_counters`` every ``interval`` seconds and once more at shutdown (one transaction per flush, one row per
(team, generation, day): aggregated, never a row per request). A failed flush keeps the counts for the next one.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from registry.models import utcnow

__all__ = ["UsageMeter"]

logger = logging.getLogger(__name__)


class UsageMeter:
    def __init__(self, registry: Any, interval: float) -> None:
        self._registry, self.interval = registry, interval
        self._counts: dict[tuple[str, str, str], list[Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self, team: str, generation: str, n: int = 1) -> None:
        now = utcnow()
        key = (team, generation, now.date().isoformat())
        with self._lock:
            slot = self._counts.get(key)
            if slot is None:
                self._counts[key] = [n, now]
            else:
                slot[0] += n
                slot[1] = now

    def flush(self) -> int:
        """Write the pending counts to the registry; returns how many counters were written."""
        with self._lock:
            pending, self._counts = self._counts, {}
        if not pending:
            return 0
        batch: dict[tuple[str, str, str], tuple[int, datetime]] = {
            k: (v[0], v[1]) for k, v in pending.items()
        }
        try:
            self._registry.record_usage(batch)
        except Exception:
            logger.warning(
                "usage flush failed; keeping %d counters for the next one", len(batch), exc_info=True
            )
            with self._lock:
                for key, (n, last) in batch.items():
                    slot = self._counts.setdefault(key, [0, last])
                    slot[0] += n
                    slot[1] = max(slot[1], last)
            return 0
        return len(batch)

    def start(self) -> None:
        if self._thread is None and self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="emb-usage-flush", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def stop(self) -> None:
        """Stop the thread and flush what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()
