"""Cache hits and 304s are answered on the event loop, never queued behind renders."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import anyio
import anyio.to_thread
import httpx
import mercantile
import pytest

from ingest.pipeline import ingest_file
from tests.conftest import T0, radar_file
from tileserver.http.app import create_app
from tileserver.core.layers import LAYERS
from tileserver.core.settings import Settings
from tileserver.store.storage import open_storage
from tileserver.store import Store

STORM = mercantile.tile(-100.0, 43.0, 5)
OTHER = mercantile.tile(-95.0, 40.0, 6)


@pytest.mark.anyio
async def test_hits_and_304s_are_served_while_every_render_thread_is_busy(tmp_path: Path) -> None:
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    ingest_file(store, radar_file(tmp_path, T0), LAYERS["reflectivity"])
    app = create_app(Settings(store=str(tmp_path / "store"), catalog_ttl_s=3600.0))
    url = f"/tiles/reflectivity/2026-11-27T21:00:00Z/{STORM.z}/{STORM.x}/{STORM.y}.png"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        first = await client.get(url)  # renders, in the thread pool; loads the catalog
        assert first.status_code == 200
        limiter = anyio.to_thread.current_default_thread_limiter()
        held = [object() for _ in range(int(limiter.total_tokens))]
        for borrower in held:  # every thread the server may use is now "busy"
            await limiter.acquire_on_behalf_of(borrower)
        try:
            with anyio.fail_after(20):  # a hang here means a hit waited for a thread
                hit = await client.get(url)
                revalidated = await client.get(url, headers={"If-None-Match": first.headers["etag"]})
            assert hit.status_code == 200 and hit.content == first.content
            assert hit.headers["etag"] == first.headers["etag"]
            assert revalidated.status_code == 304
            # A miss does need a thread: it waits until one is free.
            miss_url = f"/tiles/reflectivity/2026-11-27T21:00:00Z/{OTHER.z}/{OTHER.x}/{OTHER.y}.png"
            with anyio.move_on_after(0.5) as waited:
                await client.get(miss_url)
            assert waited.cancelled_caught
        finally:
            for borrower in held:
                limiter.release_on_behalf_of(borrower)
        assert (await client.get(miss_url)).status_code == 200


@pytest.mark.anyio
async def test_past_its_ttl_the_catalog_still_answers_hits_and_refreshes_itself(tmp_path: Path) -> None:
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    ingest_file(store, radar_file(tmp_path, T0), LAYERS["reflectivity"])
    app = create_app(Settings(store=str(tmp_path / "store"), catalog_ttl_s=0.2))
    service = app.state.service
    url = f"/tiles/reflectivity/2026-11-27T21:00:00Z/{STORM.z}/{STORM.x}/{STORM.y}.png"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get(url)).status_code == 200
        ingest_file(store, radar_file(tmp_path, T0 + timedelta(minutes=5), shift_cols=5), LAYERS["reflectivity"])
        limiter = anyio.to_thread.current_default_thread_limiter()
        held = [object() for _ in range(int(limiter.total_tokens))]
        for borrower in held:
            await limiter.acquire_on_behalf_of(borrower)
        try:
            await anyio.sleep(0.3)  # the catalog is past its TTL now
            with anyio.fail_after(20):
                assert (await client.get(url)).status_code == 200  # on the stale catalog, no thread needed
                # ...which a background read (not the render threads) brings up to date.
                while len(service.catalogs.fresh_catalog("reflectivity").frames) < 2:
                    await anyio.sleep(0.05)
                ready = await client.get("/readyz")  # probes have threads of their own
            assert ready.status_code == 200
        finally:
            for borrower in held:
                limiter.release_on_behalf_of(borrower)
        latest = await client.get(f"/tiles/reflectivity/latest/{STORM.z}/{STORM.x}/{STORM.y}.png")
        assert latest.headers["x-frame-time"] == "2026-11-27T21:05:00Z"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
