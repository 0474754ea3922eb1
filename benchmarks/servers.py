"""Servers for the benchmarks: a free loopback port, `wxtiles serve` in its own
process, and waiting until a server answers (or saying why it never will)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 60.0, what: str = "server") -> None:
    """Until ``url`` answers 200; SystemExit if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with status {process.returncode}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer {url} within {timeout:g} s")


@contextmanager
def wxtiles_serving(store: str, env: dict[str, str] | None = None, port: int | None = None,
                    code: Path | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """`wxtiles serve` on ``store``, ready: yields its process and base URL, and stops it after.

    ``code``: a source tree to serve from (e.g. an older commit) instead of this one.
    """
    port = port or free_port()
    paths = {"PYTHONPATH": str(code)} if code is not None else {}
    process = subprocess.Popen(
        [sys.executable, "-m", "tileserver.cli", "serve", "--port", str(port)], cwd=code,
        env={**os.environ, **(env or {}), **paths, "WXTILES_STORE": store}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + "/readyz", process, what="wxtiles serve")
        yield process, base
    finally:
        process.terminate()
        process.wait(timeout=15)
