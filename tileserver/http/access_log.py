"""One JSON line per request, and the request's latency in the metrics.

One ASGI middleware times every request, gives it a request id (an incoming
``X-Request-ID`` is kept, so ids follow a request through Traefik), records the
latency histogram by route template, and logs a JSON line.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tileserver.core.logs import ACCESS_LOGGER
from tileserver.service.metrics import Metrics

Scope = MutableMapping[str, Any]
log = logging.getLogger(ACCESS_LOGGER)


class AccessLog:
    """Request log lines, handed to logging in batches: one record and one write per batch.

    One record per request (a LogRecord, the handler's lock, a write and a flush)
    cost a fifth of a cached tile's time; batches of the lines of up to
    ``FLUSH_S`` seconds keep every line, each its own JSON object. Used from the
    event loop only; ``flush`` at shutdown writes what is left.
    """

    FLUSH_S = 0.05
    MAX_LINES = 1000

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._scheduled = False

    def add(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) >= self.MAX_LINES:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self.FLUSH_S, self._flush_later)

    def _flush_later(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            log.info("\n".join(lines))


class RequestLogMiddleware:
    """Times, counts and logs each request; it must sit inside ForwardedHeadersMiddleware,
    which copies the scope, so that it sees the route the router records in it."""

    def __init__(self, app: Callable[..., Awaitable[None]], metrics: Metrics, access_log: AccessLog) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        # Request ids: a random per-process prefix and a counter, unique without a uuid4 per request.
        self._prefix = os.urandom(6).hex()
        self._count = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = next((value for name, value in scope.get("headers") or () if name == b"x-request-id"), b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else f"{self._prefix}{next(self._count):08x}"
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - started
            route = str(getattr(scope.get("route"), "path", "unmatched"))
            self.metrics.observe_request(route, status, duration)
            if log.isEnabledFor(logging.INFO):
                self.access_log.add(json.dumps({
                    "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "request_id": request_id,
                    "method": scope.get("method"), "route": route, "path": scope.get("path"), "status": status,
                    "duration_ms": round(duration * 1000, 2), "client": (scope.get("client") or ["-"])[0],
                }))
