"""Live NOAA fetchers against a real S3 protocol server (moto_server on loopback).

Buckets are laid out like NOAA's and filled with GRIB2 files written here by
:mod:`ingest.demo.samples`; the ``.idx`` inventories are made by walking the GRIB2
message boundaries (section 0) and naming each message from GDAL's band tags.
Every HTTP request the fetcher makes is recorded with a botocore event hook,
so the tests check what went over the wire, not what the code says it did.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import numpy as np
import pytest
import rasterio

from ingest.demo import samples
from ingest.pipeline import ingest_file
from ingest.sources import (
    SOURCES,
    FetchError,
    FetchOptions,
    SourceUnavailable,
    UnknownSourceError,
    fetch,
    get_source,
    make_client,
    parse_leads,
    watch,
)
from ingest.sources import idx as idxmod
from ingest.sources.models import GFS, HRRR
from tileserver.core.layers import LAYERS
from tileserver.core.settings import Settings
from tileserver.store.storage import open_storage
from tileserver.store import Store

MOTO = Path(sys.executable).with_name("moto_server")
ADMIN_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
LEVEL_TEXT = {
    "2-HTGL": "2 m above ground",
    "10-HTGL": "10 m above ground",
    "80-HTGL": "80 m above ground",
    "0-EATM": "entire atmosphere",
    "85000-ISBL": "850 mb",
    "50000-ISBL": "500 mb",
    "25000-ISBL": "250 mb",
}
HRRR_LAYERS = ["hrrr-temperature-2m", "hrrr-wind-speed-10m"]
GFS_LAYERS = ["gfs-temperature-2m", "gfs-wind-speed-10m"]
NEEDED = {"TMP:2-HTGL", "UGRD:10-HTGL", "VGRD:10-HTGL"}
HRRR_SHAPE = (40, 56)
GFS_SHAPE = (37, 72)
MRMS_SHAPE = (35, 70)


# --------------------------------------------------------------------------
# moto_server
# --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(MOTO), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not start")
                time.sleep(0.05)
        self.admin = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", **ADMIN_KEYS)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def public_bucket(self, prefix: str) -> str:
        """A new bucket readable and listable anonymously, like NOAA's."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.admin.create_bucket(Bucket=name)
        # moto checks an anonymous HEAD as s3:HeadObject (AWS: s3:GetObject), hence both.
        policy = {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:HeadObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
            }],
        }
        self.admin.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
        return name

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.admin.put_object(Bucket=bucket, Key=key, Body=data)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def dead_endpoint() -> str:
    """An endpoint where a moto_server ran and was stopped (not the shared one)."""
    server = MotoServer()
    endpoint = server.endpoint
    server.stop()
    return endpoint


@dataclass
class Recorder:
    """Every request the client sends, as (operation, key or prefix, Range header)."""

    calls: list[tuple[str, str, str | None]] = field(default_factory=list)

    def attach(self, client) -> None:  # noqa: ANN001
        for op in ("GetObject", "HeadObject", "ListObjectsV2"):
            client.meta.events.register(f"before-send.s3.{op}", self._hook(op))

    def _hook(self, op: str):  # noqa: ANN202
        def record(request, **_: object) -> None:  # noqa: ANN001
            url = urlsplit(request.url)
            if op == "ListObjectsV2":
                what = parse_qs(url.query).get("prefix", [""])[0]
            else:
                what = unquote(url.path).split("/", 2)[2]  # /bucket/key
            value = request.headers.get("Range")
            if isinstance(value, bytes):
                value = value.decode()
            self.calls.append((op, what, value))

        return record

    def gets(self, suffix: str = "") -> list[tuple[str, str | None]]:
        return [(key, rng) for op, key, rng in self.calls if op == "GetObject" and key.endswith(suffix)]

    def reset(self) -> None:
        self.calls.clear()


@pytest.fixture
def client_for(moto: MotoServer):  # noqa: ANN201
    def make(settings: Settings, **kwargs: object):  # noqa: ANN202
        client = make_client(settings, **kwargs)  # type: ignore[arg-type]
        recorder = Recorder()
        recorder.attach(client)
        return client, recorder

    return make


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# --------------------------------------------------------------------------
# GRIB2 objects and .idx inventories
# --------------------------------------------------------------------------


def split_messages(data: bytes) -> list[bytes]:
    """GRIB2 messages by section 0: "GRIB", then the total length (8 bytes, big-endian) at offset 8."""
    out, offset = [], 0
    while offset < len(data):
        assert data[offset : offset + 4] == b"GRIB", offset
        length = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        out.append(data[offset : offset + length])
        offset += length
    return out


@dataclass(frozen=True)
class Message:
    key: str  # "TMP:2-HTGL"
    data: bytes
    run: datetime
    lead_s: int


def read_messages(path: Path) -> list[Message]:
    """The file's messages, each named from GDAL's band tags (one field per message)."""
    data = path.read_bytes()
    chunks = split_messages(data)
    with rasterio.Env(GRIB_NORMALIZE_UNITS="YES", USE_IDX="NO"), rasterio.open(path) as src:
        assert src.count == len(chunks)
        tags = [src.tags(b) for b in range(1, src.count + 1)]
    return [
        Message(
            f"{t['GRIB_ELEMENT']}:{t['GRIB_SHORT_NAME']}", chunk,
            datetime.fromtimestamp(int(t["GRIB_REF_TIME"].split()[0]), tz=timezone.utc),
            int(t["GRIB_FORECAST_SECONDS"].split()[0]),
        )
        for chunk, t in zip(chunks, tags)
    ]


@dataclass(frozen=True)
class ModelObject:
    data: bytes
    idx: str
    spans: dict[str, tuple[int, int]]  # message key -> (offset, length)
    messages: list[Message]

    def needed_bytes(self, keys: set[str]) -> int:
        return sum(self.spans[k][1] for k in keys)


def build_object(messages: list[Message], order: list[str]) -> ModelObject:
    """Concatenate messages in ``order`` (message keys) and write their wgrib2-style inventory."""
    by_key = {m.key: m for m in messages}
    data, lines, spans, offset = b"", [], {}, 0
    for n, key in enumerate(order, start=1):
        m = by_key[key]
        element, short = key.split(":")
        hours = m.lead_s // 3600
        fcst = "anl" if hours == 0 else f"{hours} hour fcst"
        lines.append(f"{n}:{offset}:d={m.run:%Y%m%d%H}:{element}:{LEVEL_TEXT[short]}:{fcst}:")
        spans[key] = (offset, len(m.data))
        data += m.data
        offset += len(m.data)
    return ModelObject(data, "\n".join(lines) + "\n", spans, [by_key[k] for k in order])


# Distractors beyond the sample writers' own: other levels of the same variables.
EXTRA = (
    samples.GribMessage("TMP", "85000-ISBL", 0, 0, 100, 85000, 2, "K"),
    samples.GribMessage("TMP", "25000-ISBL", 0, 0, 100, 25000, 2, "K"),
    samples.GribMessage("UGRD", "25000-ISBL", 2, 2, 100, 25000, 2, "m/s"),
    samples.GribMessage("VGRD", "25000-ISBL", 2, 3, 100, 25000, 2, "m/s"),
    samples.GribMessage("VGRD", "80-HTGL", 2, 3, 103, 80, 2, "m/s"),
)
# The needed messages (TMP 2 m, UGRD / VGRD 10 m) sit among 11, some apart, VGRD 10 m last in HRRR.
HRRR_ORDER = [
    "REFC:0-EATM", "TMP:85000-ISBL", "TMP:2-HTGL", "TMP:50000-ISBL", "TMP:25000-ISBL", "UGRD:10-HTGL",
    "UGRD:80-HTGL", "UGRD:25000-ISBL", "VGRD:25000-ISBL", "VGRD:80-HTGL", "VGRD:10-HTGL",
]
GFS_ORDER = [
    "TMP:50000-ISBL", "TMP:2-HTGL", "UGRD:80-HTGL", "UGRD:10-HTGL", "VGRD:10-HTGL", "REFC:0-EATM",
    "TMP:85000-ISBL", "TMP:25000-ISBL", "UGRD:25000-ISBL", "VGRD:25000-ISBL", "VGRD:80-HTGL",
]


def write_messages(path: Path, messages: tuple, crs, transform, lon: np.ndarray, lat: np.ndarray,  # noqa: ANN001
                   run: datetime, lead: int, given: dict, gen_process: int) -> Path:
    """A model GRIB2 of any :class:`samples.GribMessage` list, through the sample writers' own helpers."""
    bands = samples._model_fields(messages, lon, lat, run, timedelta(hours=lead), lead, given, with_radar=False)
    options = samples._model_options(messages, run, timedelta(hours=lead), gen_process=gen_process)
    return samples._write_grib(path, bands, crs, transform, options)


def hrrr_object(tmp: Path, run: datetime, lead: int) -> tuple[ModelObject, Path]:
    """An HRRR-like wrfsfc file (small grid) plus distractors, reordered so the needed messages are apart."""
    path = tmp / f"src-hrrr-{run:%Y%m%d%H}-f{lead:02d}.grib2"
    ny, nx = HRRR_SHAPE
    refc = (np.add.outer(np.arange(ny), np.arange(nx)) % 60 - 10).astype(np.float32)
    samples.write_hrrr_grib2(path, run, timedelta(hours=lead), fields={"REFC:0-EATM": refc}, shape=HRRR_SHAPE, seed=lead)
    transform = samples.hrrr_transform(HRRR_SHAPE)
    lon, lat = samples._cell_lonlat(samples.HRRR_CRS, transform, HRRR_SHAPE)
    extra = write_messages(tmp / f"extra-{path.name}", EXTRA, samples.HRRR_CRS, transform, lon, lat, run, lead, {}, 83)
    return build_object(read_messages(path) + read_messages(extra), HRRR_ORDER), path


GFS_ALL = (
    *samples.GFS_MESSAGES,
    samples.GribMessage("TMP", "50000-ISBL", 0, 0, 100, 50000, 2, "K"),
    samples.GribMessage("UGRD", "80-HTGL", 2, 2, 103, 80, 2, "m/s"),
    samples.GribMessage("REFC", "0-EATM", 16, 196, 10, 0, 1, "dB"),
    *EXTRA,
)


def gfs_object(tmp: Path, run: datetime, lead: int) -> tuple[ModelObject, Path]:
    """A GFS-like pgrb2 file on a 5-degree global grid (0..360 like NOAA's) with distractor messages."""
    path = tmp / f"src-gfs-{run:%Y%m%d%H}-f{lead:03d}.grib2"
    ny, nx = GFS_SHAPE
    lon, lat = np.meshgrid(np.arange(nx) * (360.0 / nx), 90.0 - np.arange(ny) * (180.0 / (ny - 1)))
    refc = {"REFC:0-EATM": np.where(np.abs(lat) < 20, 35.0, -10.0).astype(np.float32)}
    write_messages(path, GFS_ALL, samples.GFS_CRS, samples.gfs_transform(GFS_SHAPE), lon, lat, run, lead, refc, 96)
    return build_object(read_messages(path), GFS_ORDER), path


def range_bytes(header: str, object_size: int) -> int:
    start, _, end = header.removeprefix("bytes=").partition("-")
    return (int(end) if end else object_size - 1) - int(start) + 1


def store_at(tmp_path: Path, name: str = "store") -> Store:
    return Store(open_storage(str(tmp_path / name), create=True))


# --------------------------------------------------------------------------
# .idx parsing (no server)
# --------------------------------------------------------------------------

IDX_TEXT = """\
1:0:d=2026112717:REFC:entire atmosphere:2 hour fcst:
2:1000:d=2026112717:TMP:500 mb:2 hour fcst:
3:1800:d=2026112717:TMP:2 m above ground:2 hour fcst:
4:2600:d=2026112717:UGRD:10 m above ground:2 hour fcst:
4.2:2600:d=2026112717:VGRD:10 m above ground:2 hour fcst:
5:3900:d=2026112717:APCP:surface:0-2 hour acc fcst:
6:4200:d=2026112717:UGRD:80 m above ground:2 hour fcst:ens mean:
"""


def test_idx_parse_levels_ranges_and_layer_fields() -> None:
    entries = idxmod.parse_idx(IDX_TEXT)
    assert [e.number for e in entries] == ["1", "2", "3", "4", "4.2", "5", "6"]
    assert entries[6].extra == ("ens mean",)
    assert [e.short_name for e in entries] == ["0-EATM", "50000-ISBL", "2-HTGL", "10-HTGL", "10-HTGL", "0-SFC", "80-HTGL"]
    assert entries[0].run == utc(2026, 11, 27, 17)
    assert idxmod.level_short_name("1000 mb") == "100000-ISBL"
    assert idxmod.level_short_name("0.5 mb") == "50-ISBL"
    assert idxmod.level_short_name("some new level") is None

    # Sub-messages share one message; the last message runs to the object's end.
    assert idxmod.message_range(entries, entries[4]) == idxmod.ByteRange(2600, 3900)
    assert idxmod.message_range(entries, entries[6]) == idxmod.ByteRange(4200, None)
    assert idxmod.ByteRange(4200, None).header == "bytes=4200-"
    assert idxmod.ByteRange(1800, 2600).header == "bytes=1800-2599"

    temperature = idxmod.fields_for_layer(entries, LAYERS["temperature-2m"])
    wind = idxmod.fields_for_layer(entries, LAYERS["wind-speed-10m"])
    assert [e.describe() for e in temperature] == ["TMP:2 m above ground"]
    assert [e.describe() for e in wind] == ["UGRD:10 m above ground", "VGRD:10 m above ground"]
    ranges = [idxmod.message_range(entries, e) for e in temperature + wind]
    assert idxmod.merge_ranges(ranges) == [idxmod.ByteRange(1800, 3900)]
    assert idxmod.merge_ranges([idxmod.ByteRange(0, 10), idxmod.ByteRange(20, None), idxmod.ByteRange(10, 15)]) == [
        idxmod.ByteRange(0, 15), idxmod.ByteRange(20, None)]

    no_vgrd = [e for e in entries if e.variable != "VGRD"]
    with pytest.raises(idxmod.MissingFieldError, match="no VGRD at 10-HTGL"):
        idxmod.fields_for_layer(no_vgrd, LAYERS["wind-speed-10m"])
    with pytest.raises(idxmod.IdxError, match="line 2"):
        idxmod.parse_idx("1:0:d=2026112717:TMP:2 m above ground:anl:\nnot an inventory line\n")


def test_source_registry_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(SOURCES) == {"mrms", "hrrr", "gfs"}
    # The store's S3 endpoint (AWS_ENDPOINT_URL) never redirects the NOAA buckets.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert make_client(Settings()).meta.endpoint_url == "https://s3.amazonaws.com"
    assert make_client(Settings(noaa_endpoint="http://mirror:9000")).meta.endpoint_url == "http://mirror:9000"
    assert get_source("HRRR") is SOURCES["hrrr"]
    with pytest.raises(UnknownSourceError, match="known sources: mrms, hrrr, gfs"):
        get_source("nexrad")
    assert parse_leads("0-6,9-24/3") == [0, 1, 2, 3, 4, 5, 6, 9, 12, 15, 18, 21, 24]
    assert parse_leads("0,3,6") == [0, 3, 6]
    with pytest.raises(FetchError):
        parse_leads("6-0")
    assert HRRR.default_leads == tuple(range(19)) and GFS.default_leads == (0, 3, 6, 9, 12, 15, 18, 21, 24)
    assert HRRR.key(utc(2026, 11, 27, 7), 3) == "hrrr.20261127/conus/hrrr.t07z.wrfsfcf03.grib2"
    assert GFS.key(utc(2026, 11, 27, 18), 3) == "gfs.20261127/18/atmos/gfs.t18z.pgrb2.0p25.f003"
    assert HRRR.produces(utc(2026, 11, 27, 6), 48) and not HRRR.produces(utc(2026, 11, 27, 7), 19)
    assert GFS.produces(utc(2026, 11, 27, 6), 117) and not GFS.produces(utc(2026, 11, 27, 6), 121)


# --------------------------------------------------------------------------
# MRMS
# --------------------------------------------------------------------------

MRMS_NOW = utc(2026, 11, 28, 0, 30)
# Every 10 minutes (2 in NOAA's bucket; fewer keep the test quick) with irregular seconds.
MRMS_TIMES = [
    utc(2026, 11, 26, 23, 52, 38),  # two days back: its day prefix is never listed
    utc(2026, 11, 27, 23, 22, 38), utc(2026, 11, 27, 23, 32, 40), utc(2026, 11, 27, 23, 42, 10),
    utc(2026, 11, 27, 23, 52, 38), utc(2026, 11, 28, 0, 2, 38), utc(2026, 11, 28, 0, 12, 5),
    utc(2026, 11, 28, 0, 22, 38), utc(2026, 11, 28, 0, 32, 38),  # after "now"
]
MRMS_IN_WINDOW = [t for t in MRMS_TIMES if MRMS_NOW - timedelta(hours=1) <= t <= MRMS_NOW]


def mrms_key(product: str, valid: datetime) -> str:
    level = samples.MRMS_PRODUCTS[product].level
    return f"CONUS/{product}_{level}/{valid:%Y%m%d}/{samples.mrms_filename(product, level, valid)}"


def mrms_file(tmp: Path, product: str, valid: datetime, n: int) -> Path:
    ny, nx = MRMS_SHAPE
    rows, cols = np.mgrid[0:ny, 0:nx]
    if product == "PrecipRate":
        values = ((rows + cols + n) % 30 * 0.5).astype(np.float32)
        values[:, :3] = -3.0
    else:
        values = np.where((cols - 2 * n) % 20 < 6, 45.0, -99.0).astype(np.float32)
        values[:, :3] = -999.0
    path = tmp / samples.mrms_filename(product, None, valid)
    return samples.write_mrms_grib2(path, values, valid, product=product)


@pytest.fixture(scope="module")
def mrms_bucket(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    bucket = moto.public_bucket("noaa-mrms-pds")
    tmp = tmp_path_factory.mktemp("mrms")
    for n, valid in enumerate(MRMS_TIMES):
        for product in ("MergedReflectivityQCComposite", "PrecipRate"):
            moto.put(bucket, mrms_key(product, valid), mrms_file(tmp, product, valid, n).read_bytes())
    # Files of other products in the same bucket are never listed or read.
    moto.put(bucket, "CONUS/SeamlessHSR_00.00/20261127/MRMS_SeamlessHSR_00.00_20261127-235238.grib2.gz", b"x")
    return bucket, tmp


def test_mrms_fetches_window_and_skips_stored_frames(moto: MotoServer, mrms_bucket: tuple[str, Path], tmp_path: Path, client_for) -> None:  # noqa: ANN001
    bucket, sources = mrms_bucket
    settings = Settings(store=str(tmp_path / "store"), mrms_bucket=bucket, noaa_endpoint=moto.endpoint)
    store = store_at(tmp_path)
    # One frame of the window is already in the store (ingested by hand).
    preloaded = MRMS_IN_WINDOW[2]
    ingest_file(store, sources / samples.mrms_filename("MergedReflectivityQCComposite", None, preloaded), LAYERS["reflectivity"])
    client, rec = client_for(settings)

    report = fetch("mrms", store, settings, FetchOptions(now=MRMS_NOW, since=timedelta(hours=1), progress=False), client=client)

    assert report.ok, [str(f) for f in report.failures]
    # Only the day prefixes the window touches, per product.
    assert sorted(what for op, what, _ in rec.calls if op == "ListObjectsV2") == sorted(
        f"CONUS/{p}/{d}/" for p in ("MergedReflectivityQCComposite_00.50", "PrecipRate_00.00") for d in ("20261127", "20261128"))
    refl = {r.time for r in report.ingested if r.layer == "reflectivity"}
    rate = {r.time for r in report.ingested if r.layer == "precip-rate"}
    assert refl == set(MRMS_IN_WINDOW) - {preloaded}
    assert rate == set(MRMS_IN_WINDOW)
    assert [(r.layer, r.time) for r in report.skipped] == [("reflectivity", preloaded)]
    assert all(r.run is None for r in report.ingested)
    # The catalog times are the file-name times, seconds included.
    assert [f.time for f in store.load_catalog("reflectivity").frames] == MRMS_IN_WINDOW
    assert [f.time for f in store.load_catalog("precip-rate").frames] == MRMS_IN_WINDOW
    assert store.load_catalog("precip-rate").frames[-1].source == samples.mrms_filename("PrecipRate", None, MRMS_IN_WINDOW[-1])
    gets = rec.gets()
    assert len(gets) == report.requests == len(refl) + len(rate)
    assert all(rng is None for _, rng in gets)  # whole .grib2.gz files
    assert report.bytes_downloaded == report.object_bytes > 0

    # A second run finds everything stored: lists, downloads nothing.
    rec.reset()
    again = fetch("mrms", store, settings, FetchOptions(now=MRMS_NOW, since=timedelta(hours=1), progress=False), client=client)
    assert again.ingested == [] and again.failures == [] and again.bytes_downloaded == 0
    assert rec.gets() == []
    assert len(again.skipped) == 2 * len(MRMS_IN_WINDOW)

    # A later "now" picks up only the newer file.
    rec.reset()
    later = fetch("mrms", store, settings, FetchOptions(now=MRMS_NOW + timedelta(minutes=5), since=timedelta(hours=1), layers=["reflectivity"], progress=False), client=client)
    assert [(r.layer, r.time) for r in later.ingested] == [("reflectivity", MRMS_TIMES[-1])]
    assert [k for k, _ in rec.gets()] == [mrms_key("MergedReflectivityQCComposite", MRMS_TIMES[-1])]


def test_mrms_bad_file_is_one_line_and_the_rest_go_in(moto: MotoServer, tmp_path: Path, client_for) -> None:  # noqa: ANN001
    bucket = moto.public_bucket("noaa-mrms-pds")
    times = [utc(2026, 11, 27, 21, m, s) for m, s in ((30, 38), (32, 40), (34, 36))]
    for n, valid in enumerate(times):
        data = mrms_file(tmp_path, "MergedReflectivityQCComposite", valid, n).read_bytes()
        moto.put(bucket, mrms_key("MergedReflectivityQCComposite", valid), data[: len(data) // 2] if n == 1 else data)
    settings = Settings(mrms_bucket=bucket, noaa_endpoint=moto.endpoint)
    store = store_at(tmp_path)
    client, _ = client_for(settings)
    report = fetch("mrms", store, settings, FetchOptions(now=utc(2026, 11, 27, 21, 40), progress=False), client=client)
    assert {r.time for r in report.ingested if r.layer == "reflectivity"} == {times[0], times[2]}
    assert len(report.failures) == 1
    line = str(report.failures[0])
    assert "\n" not in line and mrms_key("MergedReflectivityQCComposite", times[1]) in line
    assert "truncated or corrupt gzip" in line and line.endswith("[reflectivity]")
    with pytest.raises(FetchError, match="no model run"):
        fetch("mrms", store, settings, FetchOptions(run=utc(2026, 11, 27, 18)), client=client)


# --------------------------------------------------------------------------
# HRRR
# --------------------------------------------------------------------------

HRRR_NOW = utc(2026, 11, 27, 18, 55)
HRRR_RUNS = {utc(2026, 11, 27, 16): [0, 1, 2], utc(2026, 11, 27, 17): [0, 1, 2], utc(2026, 11, 27, 18): [0, 1]}


@pytest.fixture(scope="module")
def hrrr_bucket(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, dict]:
    """Runs 16Z and 17Z complete to f02; 18Z only to f01 (still running)."""
    bucket = moto.public_bucket("noaa-hrrr-bdp-pds")
    tmp = tmp_path_factory.mktemp("hrrr")
    objects, files = {}, {}
    for run, leads in HRRR_RUNS.items():
        for lead in leads:
            obj, path = hrrr_object(tmp, run, lead)
            key = HRRR.key(run, lead)
            moto.put(bucket, key, obj.data)
            moto.put(bucket, key + ".idx", obj.idx.encode())
            objects[(run, lead)], files[(run, lead)] = obj, path
    return bucket, objects, files


def test_hrrr_latest_run_reads_only_the_needed_messages(moto: MotoServer, hrrr_bucket, tmp_path: Path, client_for) -> None:  # noqa: ANN001
    bucket, objects, files = hrrr_bucket
    settings = Settings(hrrr_bucket=bucket, noaa_endpoint=moto.endpoint)
    store = store_at(tmp_path)
    client, rec = client_for(settings)

    report = fetch("hrrr", store, settings, FetchOptions(now=HRRR_NOW, leads=range(0, 3), layers=HRRR_LAYERS, progress=False), client=client)

    run = utc(2026, 11, 27, 17)  # 18Z has no f02 yet
    assert report.ok, [str(f) for f in report.failures]
    assert report.run == run
    expected = {(layer, run + timedelta(hours=lead), run) for layer in HRRR_LAYERS for lead in range(3)}
    assert set(report.ingested) == expected and report.skipped == []
    for layer in HRRR_LAYERS:
        frames = store.load_catalog(layer).frames
        assert [(f.time, f.run) for f in frames] == [(run + timedelta(hours=h), run) for h in range(3)]
        assert frames[-1].source == "hrrr.t17z.wrfsfcf02.grib2"

    # On the wire: one .idx per lead, then byte ranges of exactly the needed messages.
    assert [k for k, _ in rec.gets(".idx")] == [HRRR.key(run, h) + ".idx" for h in range(3)]
    fetched_total = object_total = needed_total = 0
    for lead in range(3):
        obj, key = objects[(run, lead)], HRRR.key(run, lead)
        ranges = [rng for k, rng in rec.gets() if k == key]
        assert all(ranges), "every data request is a range request"
        # TMP 2 m, UGRD 10 m and VGRD 10 m are apart: three requests, the last open-ended.
        assert ranges == [
            f"bytes={obj.spans['TMP:2-HTGL'][0]}-{obj.spans['TMP:50000-ISBL'][0] - 1}",
            f"bytes={obj.spans['UGRD:10-HTGL'][0]}-{obj.spans['UGRD:80-HTGL'][0] - 1}",
            f"bytes={obj.spans['VGRD:10-HTGL'][0]}-",
        ]
        fetched = sum(range_bytes(r, len(obj.data)) for r in ranges)
        assert fetched == obj.needed_bytes(NEEDED)
        fetched_total += fetched
        object_total += len(obj.data)
        needed_total += obj.needed_bytes(NEEDED)
    idx_total = sum(len(objects[(run, h)].idx) for h in range(3))
    assert report.bytes_downloaded == needed_total + idx_total
    assert report.object_bytes == object_total
    assert fetched_total < 0.35 * object_total
    print(f"\nHRRR: fetched {fetched_total} of {object_total} bytes ({fetched_total / object_total:.0%}) + {idx_total} idx bytes")

    # The frames are the very frames the whole file gives.
    reference = store_at(tmp_path, "reference")
    for layer in HRRR_LAYERS:
        whole = ingest_file(reference, files[(run, 2)], LAYERS[layer]).frame
        assert whole.digest == store.load_catalog(layer).find(run + timedelta(hours=2), run).digest

    # Again: everything is stored, no data is read (one HEAD finds the run).
    rec.reset()
    again = fetch("hrrr", store, settings, FetchOptions(now=HRRR_NOW, leads=range(0, 3), layers=HRRR_LAYERS, progress=False), client=client)
    assert again.ingested == [] and again.failures == [] and len(again.skipped) == 6
    assert rec.gets() == [] and again.bytes_downloaded == 0

    # An explicit run, leads the run has: the 18Z f00 and f01.
    rec.reset()
    explicit = fetch("hrrr", store, settings, FetchOptions(run=utc(2026, 11, 27, 18), leads=[0, 1], layers=["hrrr-temperature-2m"], progress=False), client=client)
    assert sorted(r.time for r in explicit.ingested) == [utc(2026, 11, 27, 18), utc(2026, 11, 27, 19)]
    assert all(rng == f"bytes={objects[(utc(2026, 11, 27, 18), 0)].spans['TMP:2-HTGL'][0]}-"
               f"{objects[(utc(2026, 11, 27, 18), 0)].spans['TMP:50000-ISBL'][0] - 1}"
               for k, rng in rec.gets() if k.endswith("f00.grib2"))


def test_hrrr_option_errors(moto: MotoServer, hrrr_bucket, tmp_path: Path, client_for) -> None:  # noqa: ANN001
    bucket, _, _ = hrrr_bucket
    settings = Settings(hrrr_bucket=bucket, noaa_endpoint=moto.endpoint)
    store = store_at(tmp_path)
    client, _ = client_for(settings)
    with pytest.raises(FetchError, match="has no lead 19 h"):
        fetch("hrrr", store, settings, FetchOptions(run=utc(2026, 11, 27, 17), leads=[0, 19]), client=client)
    with pytest.raises(FetchError, match="not a run time"):
        fetch("hrrr", store, settings, FetchOptions(run=utc(2026, 11, 27, 17, 30)), client=client)
    with pytest.raises(FetchError, match="no run in the 12 h .* has lead 2 h"):
        fetch("hrrr", store, settings, FetchOptions(now=utc(2026, 11, 27, 15, 50), leads=[0, 2]), client=client)
    with pytest.raises(FetchError, match="layer reflectivity is not a hrrr layer; a hrrr fetch fills hrrr-temperature-2m"):
        fetch("hrrr", store, settings, FetchOptions(layers=["reflectivity"]), client=client)


def test_model_failures_are_one_line_and_the_rest_go_in(moto: MotoServer, tmp_path: Path, client_for) -> None:  # noqa: ANN001
    """f00 fine; f01 .idx without data object; f02 object cut inside its last message;
    f03 .idx without VGRD 10 m."""
    bucket = moto.public_bucket("noaa-hrrr-bdp-pds")
    run = utc(2026, 11, 27, 17)
    for lead in range(4):
        obj, _ = hrrr_object(tmp_path, run, lead)
        key = HRRR.key(run, lead)
        data, idx = obj.data, obj.idx
        if lead == 1:
            data = None
        elif lead == 2:
            data = data[: obj.spans["VGRD:10-HTGL"][0] + 100]
        elif lead == 3:
            idx = "".join(line + "\n" for line in idx.splitlines() if ":VGRD:10 m" not in line)
        if data is not None:
            moto.put(bucket, key, data)
        moto.put(bucket, key + ".idx", idx.encode())
    settings = Settings(hrrr_bucket=bucket, noaa_endpoint=moto.endpoint)
    store = store_at(tmp_path)
    client, _ = client_for(settings)

    report = fetch("hrrr", store, settings, FetchOptions(run=run, leads=range(4), layers=HRRR_LAYERS, progress=False), client=client)

    hours = lambda layer: sorted(int((r.time - run).total_seconds() // 3600) for r in report.ingested if r.layer == layer)  # noqa: E731
    assert hours("hrrr-temperature-2m") == [0, 2, 3]
    assert hours("hrrr-wind-speed-10m") == [0]
    lines = [str(f) for f in report.failures]
    assert len(lines) == 3 and all("\n" not in line for line in lines)
    assert lines[0] == f"s3://{bucket}/{HRRR.key(run, 1)}: missing object [hrrr-temperature-2m, hrrr-wind-speed-10m]"
    assert lines[1].startswith(f"s3://{bucket}/{HRRR.key(run, 2)}: VGRD:10 m above ground: truncated")
    assert lines[1].endswith("[hrrr-wind-speed-10m]")
    assert lines[2] == f"s3://{bucket}/{HRRR.key(run, 3)}.idx: the .idx lists no VGRD at 10-HTGL [hrrr-wind-speed-10m]"


def test_forecast_layers_come_from_the_registry(moto: MotoServer, hrrr_bucket, tmp_path: Path, client_for) -> None:  # noqa: ANN001
    """Model layers are fetched from their registry selectors: hrrr-reflectivity
    (REFC) needs no fetcher code of its own."""
    bucket, objects, files = hrrr_bucket
    model_layer = LAYERS["hrrr-reflectivity"]
    settings = Settings(hrrr_bucket=bucket, noaa_endpoint=moto.endpoint)
    store = store_at(tmp_path)
    client, rec = client_for(settings)
    run = utc(2026, 11, 27, 16)
    report = fetch("hrrr", store, settings, FetchOptions(run=run, leads=[1], layers=["hrrr-reflectivity", "hrrr-wind-speed-10m"], progress=False), client=client)
    assert report.ok, [str(f) for f in report.failures]
    assert {r.layer for r in report.ingested} == {"hrrr-reflectivity", "hrrr-wind-speed-10m"}
    obj = objects[(run, 1)]
    # REFC is the first message: its range stands alone; UGRD/VGRD 10 m are apart.
    assert [rng for k, rng in rec.gets(".grib2")] == [
        f"bytes=0-{obj.spans['TMP:85000-ISBL'][0] - 1}",
        f"bytes={obj.spans['UGRD:10-HTGL'][0]}-{obj.spans['UGRD:80-HTGL'][0] - 1}",
        f"bytes={obj.spans['VGRD:10-HTGL'][0]}-",
    ]
    whole = ingest_file(store_at(tmp_path, "reference"), files[(run, 1)], model_layer).frame
    assert store.load_catalog("hrrr-reflectivity").frames[0].digest == whole.digest


# --------------------------------------------------------------------------
# GFS
# --------------------------------------------------------------------------


def test_gfs_latest_run_by_ranges(moto: MotoServer, tmp_path: Path, client_for) -> None:  # noqa: ANN001
    bucket = moto.public_bucket("noaa-gfs-bdp-pds")
    run12, run18 = utc(2026, 11, 27, 12), utc(2026, 11, 27, 18)
    objects, files = {}, {}
    for run, leads in ((run12, [0, 3]), (run18, [0])):
        for lead in leads:
            obj, path = gfs_object(tmp_path, run, lead)
            moto.put(bucket, GFS.key(run, lead), obj.data)
            moto.put(bucket, GFS.key(run, lead) + ".idx", obj.idx.encode())
            objects[(run, lead)], files[(run, lead)] = obj, path
    settings = Settings(gfs_bucket=bucket, noaa_endpoint=moto.endpoint)
    store = store_at(tmp_path)
    client, rec = client_for(settings)

    report = fetch("gfs", store, settings, FetchOptions(now=utc(2026, 11, 27, 20, 0), leads=[0, 3], layers=GFS_LAYERS, progress=False), client=client)

    assert report.ok, [str(f) for f in report.failures]
    assert report.run == run12  # 18Z has no f003 yet
    assert set(report.ingested) == {(layer, run12 + timedelta(hours=h), run12) for layer in GFS_LAYERS for h in (0, 3)}
    fetched_total = object_total = 0
    for lead in (0, 3):
        obj, key = objects[(run12, lead)], GFS.key(run12, lead)
        ranges = [rng for k, rng in rec.gets() if k == key]
        # TMP 2 m alone; UGRD and VGRD 10 m are adjacent: one request.
        assert ranges == [
            f"bytes={obj.spans['TMP:2-HTGL'][0]}-{obj.spans['UGRD:80-HTGL'][0] - 1}",
            f"bytes={obj.spans['UGRD:10-HTGL'][0]}-{obj.spans['REFC:0-EATM'][0] - 1}",
        ]
        fetched = sum(range_bytes(r, len(obj.data)) for r in ranges)
        assert fetched == obj.needed_bytes(NEEDED)
        fetched_total += fetched
        object_total += len(obj.data)
    assert fetched_total < 0.35 * object_total
    print(f"\nGFS: fetched {fetched_total} of {object_total} bytes ({fetched_total / object_total:.0%})")
    # Rewrapped to -180..180 like the whole file, and the same frames.
    reference = store_at(tmp_path, "reference")
    for layer in GFS_LAYERS:
        frame = store.load_catalog(layer).find(run12 + timedelta(hours=3), run12)
        assert frame is not None and frame.bounds[0] == pytest.approx(-180, abs=3)
        assert frame.digest == ingest_file(reference, files[(run12, 3)], LAYERS[layer]).frame.digest


@pytest.mark.parametrize("order", [("hrrr", "gfs"), ("gfs", "hrrr")], ids=["hrrr-first", "gfs-first"])
def test_both_models_into_one_store_lose_nothing(moto: MotoServer, hrrr_bucket, tmp_path: Path, client_for, order) -> None:  # noqa: ANN001
    """HRRR and GFS runs at the same hour, fetched into one store in either order and again:
    each model keeps its own frames, runs and retention, and nothing is refused or skipped wrongly."""
    hrrr, _, _ = hrrr_bucket
    gfs = moto.public_bucket(f"noaa-gfs-{order[0]}")
    run = utc(2026, 11, 27, 12)
    for lead in (0, 3):
        obj, _ = gfs_object(tmp_path, run, lead)
        moto.put(gfs, GFS.key(run, lead), obj.data)
        moto.put(gfs, GFS.key(run, lead) + ".idx", obj.idx.encode())
    settings = Settings(hrrr_bucket=hrrr, gfs_bucket=gfs, noaa_endpoint=moto.endpoint)
    store = store_at(tmp_path)
    client, _ = client_for(settings)
    hrrr_run = utc(2026, 11, 27, 16)
    options = {
        "hrrr": FetchOptions(run=hrrr_run, leads=[0, 1], progress=False),
        "gfs": FetchOptions(run=run, leads=[0, 3], progress=False),
    }
    for model in order:
        report = fetch(model, store, settings, options[model], client=client)
        assert report.ok and report.skipped == [], [str(f) for f in report.failures]
        assert {r.layer for r in report.ingested} == set(forecast_layer_ids(model))
    for model in order:  # again: everything is there already
        again = fetch(model, store, settings, options[model], client=client)
        assert again.ingested == [] and again.ok and len(again.skipped) == 2 * len(forecast_layer_ids(model))
    for layer in forecast_layer_ids("gfs"):
        assert [(f.time, f.run) for f in store.load_catalog(layer).frames] == [(run, run), (run + timedelta(hours=3), run)]
    for layer in forecast_layer_ids("hrrr"):
        assert [(f.time, f.run) for f in store.load_catalog(layer).frames] == [(hrrr_run, hrrr_run), (hrrr_run + timedelta(hours=1), hrrr_run)]
    assert not store.load_catalog("temperature-2m").frames  # the generic layer is for files ingested by hand


def forecast_layer_ids(model: str) -> list[str]:
    return [layer.id for layer in LAYERS.values() if layer.model == model]


# --------------------------------------------------------------------------
# Endpoint down, watch
# --------------------------------------------------------------------------


def test_endpoint_down_is_one_clear_line(dead_endpoint: str, tmp_path: Path) -> None:
    settings = Settings(noaa_endpoint=dead_endpoint, mrms_bucket="noaa-mrms-pds", hrrr_bucket="noaa-hrrr-bdp-pds")
    store = store_at(tmp_path)
    client = make_client(settings, max_attempts=2, connect_timeout=1)
    sends: list[str] = []
    client.meta.events.register("before-send.s3", lambda request, **_: sends.append(request.url))
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as caught:
        fetch("mrms", store, settings, FetchOptions(now=MRMS_NOW, progress=False), client=client)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot reach bucket noaa-mrms-pds at {dead_endpoint}: connection failed")
    assert "after 2 attempts" in message and len(sends) == 2  # retried once
    with pytest.raises(SourceUnavailable, match=f"cannot reach bucket noaa-hrrr-bdp-pds at {dead_endpoint}"):
        fetch("hrrr", store, settings, FetchOptions(now=HRRR_NOW, progress=False), client=client)
    assert time.monotonic() - started < 15
    assert store.load_catalog("reflectivity").frames == ()


def test_watch_fetches_prunes_and_survives_failed_cycles(
    moto: MotoServer, mrms_bucket: tuple[str, Path], dead_endpoint: str, tmp_path: Path, client_for, caplog: pytest.LogCaptureFixture,  # noqa: ANN001
) -> None:
    bucket, _ = mrms_bucket
    settings = Settings(mrms_bucket=bucket, noaa_endpoint=moto.endpoint)
    store = store_at(tmp_path)
    client, _ = client_for(settings)
    caplog.set_level(logging.INFO, logger="wxtiles.watch")
    seen: list[int] = []
    stop = threading.Event()

    def on_cycle(cycle: int, results: dict) -> None:
        seen.append(len(results["mrms"].ingested))
        if cycle == 2:
            stop.set()

    cycles = watch(["mrms"], store, settings, 0.05, stop, since=timedelta(minutes=20), client=client,
                   clock=lambda: MRMS_NOW, on_cycle=on_cycle)
    assert cycles == 2 and seen == [4, 0]  # 2 files x 2 products, then nothing new
    lines = [r.getMessage() for r in caplog.records if r.name == "wxtiles.watch"]
    assert len(lines) == 2 and "mrms +4 =0 !0" in lines[0] and "mrms +0 =4 !0" in lines[1]

    # Endpoint down: each cycle logs one warning line and the loop goes on.
    caplog.clear()
    down = Settings(mrms_bucket=bucket, noaa_endpoint=dead_endpoint)
    cycles = watch(["mrms", "gfs"], store, down, 0, max_cycles=2, client=make_client(down, max_attempts=1))
    lines = [r for r in caplog.records if r.name == "wxtiles.watch"]
    assert cycles == 2 and len(lines) == 2
    assert all(r.levelno == logging.WARNING and "mrms failed: cannot reach bucket" in r.getMessage()
               and "gfs failed: cannot reach bucket noaa-gfs-bdp-pds" in r.getMessage() for r in lines)
    with pytest.raises(UnknownSourceError):
        watch(["radar"], store, settings, 60, max_cycles=1)
