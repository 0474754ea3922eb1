"""Request size limits: a GET API has no use for long URLs or any body."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
MAX_URL_BYTES = 4096
MAX_BODY_BYTES = 0  # every route is GET/HEAD


class RequestLimitsMiddleware:
    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] == "http":
            url_bytes = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
            length = dict(scope.get("headers") or []).get(b"content-length", b"0")
            if url_bytes > MAX_URL_BYTES:
                await _reject(send, 414, f"URL longer than {MAX_URL_BYTES} bytes")
                return
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                await _reject(send, 413, "request bodies are not accepted: the API is GET only")
                return
        await self.app(scope, receive, send)


async def _reject(send: Callable[[Any], Awaitable[None]], status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
