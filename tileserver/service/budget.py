"""A per-process budget for renders whose cost grows with request parameters (loops).

A loop of 1600 px x 20 frames holds tens of MB while it is drawn and encoded:
six at once took a 1 GiB pod to 1.07 GB. Each such request reserves its
megapixels (width x height x frames) before it renders; while the budget is
spent it waits on the event loop (holding no render thread) for up to
``wait_s`` seconds, then gets 503 with ``Retry-After``. A request larger than
the whole budget runs alone.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tileserver.service.errors import Unavailable
from tileserver.service.metrics import Metrics


class RenderBudget:
    def __init__(self, megapixels: float, wait_s: float, metrics: Metrics) -> None:
        self.total = megapixels
        self.wait_s = wait_s
        self.in_use = 0.0
        self.metrics = metrics
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def reserve(self, megapixels: float, what: str) -> AsyncIterator[None]:
        cost = min(megapixels, self.total)
        async with self._changed:
            try:
                if self.in_use + cost > self.total:
                    await asyncio.wait_for(self._changed.wait_for(lambda: self.in_use + cost <= self.total), self.wait_s)
            except TimeoutError:
                self.metrics.renders_refused.inc()
                raise Unavailable(
                    f"the server is busy rendering other {what}s ({self.in_use:g} of {self.total:g} megapixels in flight): "
                    "try again shortly",
                    retry_after_s=max(1, math.ceil(self.wait_s)),
                ) from None
            self.in_use += cost
            self.metrics.render_megapixels.set(self.in_use)
        try:
            yield
        finally:
            async with self._changed:
                self.in_use -= cost
                self.metrics.render_megapixels.set(self.in_use)
                self._changed.notify_all()
