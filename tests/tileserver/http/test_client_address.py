"""The client address in logs is the rightmost X-Forwarded-For entry that is not a
trusted proxy (WXTILES_FORWARDED_ALLOW_IPS): entries to its left are the client's
own words. Over real HTTP, read back from the JSON access log."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer
from tileserver.core.settings import Settings

REAL = "203.0.113.7"  # the address the edge proxy saw
FORGED = "6.6.6.6"  # what the client wrote into its own X-Forwarded-For


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("client") / "store"
    folder.mkdir()
    return str(folder)


def logged_client(caplog: pytest.LogCaptureFixture, store_url: str, trusted: str, headers: list[tuple[str, str]]) -> str:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="wxtiles.access"), LiveServer(Settings(store=store_url, forwarded_allow_ips=trusted)) as live:
        response = httpx.get(f"{live.url}/healthz", headers=headers)
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
    # Access lines come in batches, one JSON object per line.
    lines = [line for r in caplog.records if r.name == "wxtiles.access" for line in r.getMessage().splitlines()]
    (line,) = [json.loads(line) for line in lines if request_id in line]
    return str(line["client"])


@pytest.mark.parametrize(
    ("trusted", "forwarded_for", "client"),
    [
        # The edge proxy (loopback here) appended the address it saw; the client forged the rest.
        ("127.0.0.1", f"{FORGED}, {REAL}", REAL),
        # Two proxies in a private network: both skipped.
        ("127.0.0.1,10.0.0.0/8", f"{FORGED}, {REAL}, 10.1.2.3", REAL),
        # `*` trusts the peer but names no proxy: the entry it appended is the client.
        ("*", f"{FORGED}, {REAL}", REAL),
        # `*` with a CDN's network: the CDN's edge is skipped too.
        ("*, 198.51.100.0/24", f"{FORGED}, {REAL}, 198.51.100.9", REAL),
        # Every entry a trusted proxy: the leftmost is the best there is.
        ("127.0.0.1,10.0.0.0/8", "10.0.0.1, 10.0.0.2", "10.0.0.1"),
        # An untrusted peer's headers are ignored: the TCP peer is the client.
        ("10.0.0.0/8", f"{FORGED}, {REAL}", "127.0.0.1"),
        # IPv6 entries.
        ("127.0.0.1", f"{FORGED}, 2001:db8::7", "2001:db8::7"),
    ],
)
def test_client_is_the_rightmost_untrusted_address(
    caplog: pytest.LogCaptureFixture, store_url: str, trusted: str, forwarded_for: str, client: str,
) -> None:
    assert logged_client(caplog, store_url, trusted, [("X-Forwarded-For", forwarded_for)]) == client


def test_several_forwarded_for_lines_are_one_list(caplog: pytest.LogCaptureFixture, store_url: str) -> None:
    headers = [("X-Forwarded-For", FORGED), ("X-Forwarded-For", f"{REAL}, 10.9.9.9")]
    assert logged_client(caplog, store_url, "127.0.0.1,10.0.0.0/8", headers) == REAL


def test_garbage_in_forwarded_for_is_not_logged_as_a_client(caplog: pytest.LogCaptureFixture, store_url: str) -> None:
    assert logged_client(caplog, store_url, "127.0.0.1", [("X-Forwarded-For", f"{REAL}, <script>")]) == "127.0.0.1"


def test_a_bad_trusted_proxy_list_is_one_line(tmp_path: Path) -> None:
    from tests.test_cli import wxtiles

    for env, option in (({"WXTILES_FORWARDED_ALLOW_IPS": "10.0.0.0/33"}, []), ({}, ["--forwarded-allow-ips", "*,proxy.local"])):
        result = wxtiles("serve", "--port", "1", *option, store=tmp_path, env=env)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "WXTILES_FORWARDED_ALLOW_IPS" in result.stderr and "not an address or network" in result.stderr


def test_access_lines_are_batched_and_none_is_lost(caplog: pytest.LogCaptureFixture, store_url: str) -> None:
    """Every request has its own JSON line, written in batches (fewer records than requests),
    and the last batch is written when the server stops."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="wxtiles.access"), LiveServer(Settings(store=store_url)) as live:
        with httpx.Client(base_url=live.url) as client:
            ids = [client.get("/healthz").headers["x-request-id"] for _ in range(200)]
    records = [r for r in caplog.records if r.name == "wxtiles.access"]
    lines = [json.loads(line) for r in records for line in r.getMessage().splitlines()]
    assert sorted(line["request_id"] for line in lines) == sorted(ids)
    assert all(line["route"] == "/healthz" and line["status"] == 200 for line in lines)
    assert len(records) < len(ids)
