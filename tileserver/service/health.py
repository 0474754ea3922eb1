"""Is the store answering? One small state machine fed by every store read.

A pod stays in service through a store outage (cached tiles and metadata keep
flowing), so readiness cannot be "the store answers now". This object keeps the
store's health apart from readiness: ``/readyz`` reports it in its body,
``/metrics`` as the ``wxtiles_store_up`` gauge, and the log gets one line on
each change instead of one per failed read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from tileserver.core.timeutil import format_utc, utcnow

log = logging.getLogger(__name__)

Status = Literal["unknown", "up", "down"]


class StoreHealth:
    def __init__(self, on_change: Callable[[bool], None] | None = None) -> None:
        self.status: Status = "unknown"
        self.since = utcnow()
        self.error: str | None = None
        self._changed_at = time.monotonic()
        self._lock = threading.Lock()
        self._on_change = on_change

    @property
    def up(self) -> bool:
        return self.status == "up"

    def ok(self) -> None:
        """The store answered (an answer that says "corrupt" or "missing" counts)."""
        if self.status == "up":  # the hot path: no lock, no allocation
            return
        with self._lock:
            if self.status == "up":
                return
            if self.status == "down":
                log.warning("store up again after %.0f s down", time.monotonic() - self._changed_at)
            else:
                log.info("store reached")
            self._set("up", None)

    def failed(self, error: str) -> None:
        """The store did not answer, or refused: uncached reads fail until it does."""
        with self._lock:
            self.error = error
            if self.status == "down":
                return
            log.error("store down: %s", error)
            self._set("down", error)

    def _set(self, status: Status, error: str | None) -> None:
        self.status = status
        self.error = error
        self.since = utcnow()
        self._changed_at = time.monotonic()
        if self._on_change is not None:
            self._on_change(status == "up")

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"status": self.status, "since": format_utc(self.since)}
        if self.error:
            doc["error"] = self.error
        return doc
