"""Shared fixtures: a local store in a temp folder, source files, a real server on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
import uvicorn
from rasterio.transform import from_origin

from tileserver.core.settings import Settings
from tileserver.store.storage import open_storage
from tileserver.store import Retention, Store

T0 = datetime(2026, 11, 27, 21, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(open_storage(str(tmp_path / "store"), create=True), Retention())


def radar_grid(shift_cols: int = 0, shape: tuple[int, int] = (350, 700)) -> np.ndarray:
    """A 0.1-degree dBZ grid over the US: no echo, two storms, and a strip with no coverage."""
    rows, cols = shape
    values = np.full(shape, -99.0, dtype=np.float32)
    yy, xx = np.mgrid[0:rows, 0:cols]
    for cy, cx, peak in ((120, 300 + shift_cols, 58.0), (220, 500 + shift_cols, 35.0)):
        blob = peak * np.exp(-(((yy - cy) / 25.0) ** 2 + ((xx - cx) / 40.0) ** 2))
        values = np.where(blob > 5.0, np.maximum(values, blob), values)
    values[:, :20] = -999.0
    return values


def write_latlon_geotiff(path: Path, values: np.ndarray, west: float = -130.0, north: float = 55.0, res: float = 0.1, tags: dict[str, str] | None = None) -> Path:
    rows, cols = values.shape
    with rasterio.open(
        path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32",
        crs="EPSG:4326", transform=from_origin(west, north, res, res), nodata=None,
    ) as dst:
        dst.write(values.astype(np.float32), 1)
        if tags:
            dst.update_tags(**tags)
    return path


def radar_file(folder: Path, when: datetime, shift_cols: int = 0) -> Path:
    name = f"MRMS_MergedReflectivityQCComposite_00.50_{when:%Y%m%d-%H%M%S}.tif"
    return write_latlon_geotiff(folder / name, radar_grid(shift_cols))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """The real app under uvicorn on a loopback port, in a background thread."""

    def __init__(self, settings: Settings, root_path: str = "") -> None:
        from tileserver.http.app import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
            root_path=root_path, proxy_headers=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server_for() -> Iterator:
    servers: list[LiveServer] = []

    def start(store_path: str, **overrides: object) -> LiveServer:
        settings = Settings(**{"store": store_path, "catalog_ttl_s": 0.0, **overrides})  # type: ignore[arg-type]
        server = LiveServer(settings).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 protocol server (moto) on loopback; yields its endpoint URL."""
    import os
    import shutil
    import subprocess
    import sys

    executable = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    port = free_port()
    process = subprocess.Popen(
        [executable, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3_store_via_proxy(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    """A fresh bucket reached through a :class:`FaultProxy`: yields (store URL, proxy)."""
    import uuid

    import boto3

    from tests.faultproxy import FaultProxy

    bucket = f"wx-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    proxy = FaultProxy(int(s3_server.rsplit(":", 1)[1]), free_port()).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        yield f"s3://{bucket}/frames", proxy
    finally:
        proxy.close()
