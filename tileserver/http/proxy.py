"""Honour reverse-proxy headers, so every absolute URL we write is the one clients used.

Behind Traefik (or nginx) a request arrives as ``http://pod:8000/tiles/...`` while
the client asked for ``https://wx.example.org/radar/tiles/...``. The proxy says
so in ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and ``X-Forwarded-Prefix``
(Traefik sends the prefix when its ``stripPrefix`` middleware removed it). This
ASGI middleware puts them back into the scope, for trusted proxies only, so
``request.base_url`` is right everywhere: TileJSON, WMTS, layer metadata.

The client address (logs, anything keyed per client) is the rightmost
``X-Forwarded-For`` entry that is not a trusted proxy: each proxy appends the
address it saw, so entries left of the last untrusted one were written by the
client and prove nothing. ``*`` trusts the peer's headers without naming any
proxy, so the rightmost entry (what the peer saw) is the client; networks listed
beside ``*`` (a CDN's or load balancer's) are skipped as proxies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class ForwardedHeadersMiddleware:
    def __init__(self, app: ASGIApp, trusted: str = "127.0.0.1") -> None:
        self.app = app
        parts = [part.strip() for part in trusted.split(",") if part.strip()]
        self.trust_all = "*" in parts
        self.networks = [ipaddress.ip_network(part, strict=False) for part in parts if part != "*"]
        # Parsing the client address costs more than serving a cached tile; the
        # peers are a handful of proxies, so remember the answer per address.
        self._verdicts: dict[str, bool] = {}

    def _trusted(self, scope: Scope) -> bool:
        if self.trust_all:
            return True
        client = scope.get("client")
        return bool(client) and self._is_proxy(client[0])

    def _is_proxy(self, host: str) -> bool:
        verdict = self._verdicts.get(host)
        if verdict is None:
            try:
                address = ipaddress.ip_address(host)
                verdict = any(address in network for network in self.networks)
            except ValueError:
                verdict = False
            if len(self._verdicts) >= 4096:
                self._verdicts.clear()
            self._verdicts[host] = verdict
        return verdict

    def client_address(self, forwarded_for: str) -> str | None:
        """The rightmost address that is not a trusted proxy (the leftmost if all are)."""
        hops = [hop.strip() for hop in forwarded_for.split(",")]
        hops = [hop for hop in hops if hop]
        for hop in reversed(hops):
            if not self._is_proxy(hop):
                return hop if _plausible_address(hop) else None
        return hops[0] if hops and _plausible_address(hops[0]) else None

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if (
            scope["type"] in ("http", "websocket")
            and any(name.startswith(b"x-forwarded-") for name, _ in scope["headers"])
            and self._trusted(scope)
        ):
            headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
            scope = dict(scope)
            proto = _first(headers.get("x-forwarded-proto"))
            if proto in ("http", "https"):
                scope["scheme"] = proto
            host = _first(headers.get("x-forwarded-host"))
            if host and _plausible_host(host):
                scope["headers"] = [(n, v) for n, v in scope["headers"] if n.lower() != b"host"] + [(b"host", host.encode("latin-1"))]
            prefix = _first(headers.get("x-forwarded-prefix"))
            if prefix and prefix.startswith("/") and _plausible_path(prefix):
                prefix = prefix.rstrip("/")
                scope["root_path"] = prefix + scope.get("root_path", "")
                # Starlette routes on path minus root_path; keep the path consistent with it.
                scope["path"] = prefix + scope["path"] if not scope["path"].startswith(prefix + "/") else scope["path"]
            # Several X-Forwarded-For lines are one list, in order (RFC 9110 field combining).
            forwarded_for = ",".join(v.decode("latin-1") for n, v in scope["headers"] if n.lower() == b"x-forwarded-for")
            client = self.client_address(forwarded_for) if forwarded_for else None
            if client:
                scope["client"] = (client, 0)
        await self.app(scope, receive, send)


def _first(value: str | None) -> str | None:
    # With several proxies each appends; the first is the one the client reached.
    return value.split(",")[0].strip() if value else None


def _plausible_address(text: str) -> bool:
    # An IP address, or an obfuscated identifier (RFC 7239 allows "unknown", "_hidden").
    return len(text) <= 64 and all(c.isalnum() or c in ".:[]_-" for c in text)


def _plausible_host(host: str) -> bool:
    return len(host) < 256 and all(c.isalnum() or c in "-.:[]_" for c in host)


def _plausible_path(path: str) -> bool:
    return len(path) < 256 and all(c.isalnum() or c in "/-._~" for c in path) and ".." not in path
