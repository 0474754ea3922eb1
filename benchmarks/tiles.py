"""Tile throughput, latency, bytes and memory: wxtiles against TiTiler on a COG.

Run by hand (see benchmarks/README.md for the peer's separate venv):

    .venv/bin/python benchmarks/tiles.py [--peer-venv /work/peer-venv] [--workers 2] [--quick]

One synthetic continental-US reflectivity grid at 0.01 deg (7000 x 3500, mostly no
echo or no coverage, some storms) is written as an MRMS GRIB2 file. It is ingested
into wxtiles with ``wxtiles ingest`` and made into a COG the way TiTiler's docs
recommend (``rio cogeo create --web-optimized``: float32, nodata -999, zstd).

Servers, all on loopback with the same number of uvicorn workers (uvloop, httptools):

- ``wxtiles serve``;
- TiTiler (``titiler.application``, in its own venv), asked for the same tiles with
  the NWS 5-dBZ interval colormap registered server side (``COLORMAP_DIRECTORY``), with
  the GDAL settings TiTiler's docs recommend;
- in the cached phase, a bare Starlette app (:func:`bare_app`, defined here) that
  returns the PNG bytes and headers wxtiles returned for the same URLs, from a dict.

Load: ``wrk`` (Debian's package) with a Lua script (:data:`WRK_SCRIPT`). Each
connection is its own wrk thread, so every request's latency is timed exactly
(wrk's own percentiles add coordinated-omission "corrections"). All connections
share one cursor over the same shuffled tile list (zoom 3 to 10) and start together.

- **Cold**: each tile once (the list once, then wrk stops), wxtiles with its tile
  cache off (``WXTILES_CACHE_MB=0``). Both servers are restarted before each
  concurrency, so every pass starts with empty GDAL caches; each worker first gets a
  few requests for tiles outside the list (imports, first-request set-up). The list
  is sent in ``--segments`` parts, the servers taking turns, so that both see the
  same background load.
- **Cached**: fresh servers, wxtiles with its default cache. The list is requested
  until the caches are warm, then each server gets ``--duration`` seconds of the list
  in a loop, in ``--rounds`` turns. TiTiler has no tile cache: its "cached" numbers
  are repeated tiles with warm GDAL and page caches.

wxtiles runs as shipped, writing its JSON request log line for every request (to a
file); TiTiler and the bare app have their access logs off, so the ratios carry
wxtiles' logging. Reported: tiles/s, p50, p99, mean bytes per tile, the wxtiles/TiTiler ratios and wxtiles/bare-Starlette (cached); the server CPU time
per tile (user + system time of the workers, which the machine's other load does
not change much, unlike tiles/s) and how many cores other processes kept busy; the
peak resident memory (VmHWM) of every worker, and what a full default tile cache
adds to a worker (:func:`probe_full_cache`). Not a test: on a shared 2-core
machine numbers move between runs; compare the ratios measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.servers import free_port, wait_ready  # noqa: E402

LAYER = "reflectivity"
TITILER_COLORMAP = "nws_reflectivity"
# What TiTiler's docs recommend for GDAL (docs/src/advanced/performance_tuning.md and
# the Helm chart; see shared/notes/peers.md section 3). The curl settings do not
# matter for a local file but are what a deployment would carry.
TITILER_GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_VERSION": "2",
    "GDAL_CACHEMAX": "200",
    "CPL_VSIL_CURL_CACHE_SIZE": "200000000",
    "GDAL_BAND_BLOCK_CACHE": "HASHSET",
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": "5000000",
    "GDAL_INGESTED_BYTES_AT_OPEN": "32768",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff",
    "CPL_TMPDIR": "/tmp",
    "PYTHONWARNINGS": "ignore",
}
MEMORY_TARGET_MB = 400
# wxtiles from this checkout (the script's own folder), run by this interpreter.
WXTILES = [sys.executable, "-m", "tileserver.cli"]

# The load script. wrk runs one Lua state per thread; tiles.py starts one thread per
# connection, so a thread's request() and response() alternate and every latency is
# exact. The threads share a cursor over the list (a counter behind a mutex, through
# LuaJIT's FFI) that starts at BENCH_START. In "once" mode it stops at BENCH_STOP,
# each thread stops when it finds it exhausted, and the last one interrupts wrk's
# main thread (which otherwise sleeps for the whole -d). In "cycle" mode the list
# repeats (index modulo its length) until -d.
# done() writes every response's latency (microseconds) and list index for tiles.py.
WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *out);
typedef struct { unsigned char opaque[64]; } bench_mutex;
int pthread_mutex_init(bench_mutex *mutex, const void *attr);
int pthread_mutex_lock(bench_mutex *mutex);
int pthread_mutex_unlock(bench_mutex *mutex);
typedef struct { bench_mutex lock; int64_t next; int64_t finished; int64_t initialised; } bench_shared;
int usleep(unsigned int usec);
void *malloc(size_t size);
int getpid(void);
int kill(int pid, int sig);
]]
local C = ffi.C

-- Main state: setup() once per thread before it starts, done() at the end.
local threads = {}
local shared_block = nil

function setup(thread)
  if shared_block == nil then
    shared_block = ffi.cast("bench_shared *", C.malloc(ffi.sizeof("bench_shared")))
    C.pthread_mutex_init(ffi.cast("bench_mutex *", shared_block), nil)
    shared_block.next = tonumber(os.getenv("BENCH_START"))
    shared_block.finished = 0
    shared_block.initialised = 0
  end
  thread:set("shared_address", tonumber(ffi.cast("uintptr_t", shared_block)))
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  local e = summary.errors
  out:write(string.format("errors %d %d %d %d %d\n", e.connect, e.read, e.write, e.timeout, e.status))
  for _, thread in ipairs(threads) do
    out:write(string.format("thread %.1f %.1f %d %d %d\n", thread:get("first_us"), thread:get("last_us"),
      thread:get("answered"), thread:get("bad"), thread:get("body_bytes")))
    local lat, index = thread:get("latencies"), thread:get("indexes")
    for i = 1, #lat do
      out:write(string.format("%.1f %d\n", lat[i], index[i]))
    end
  end
  out:close()
end

-- Thread states.
local paths, shared, lock, mode, stop, nthreads
local clock = ffi.new("bench_timespec")
local current, started, thread_number, calls, released = nil, 0, 0, 0, false
latencies, indexes, first_us, last_us, answered, bad, body_bytes = {}, {}, -1, -1, 0, 0, 0

local function now_us()
  C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000000 + tonumber(clock.tv_nsec) / 1000
end

function init(args)
  paths = {}
  for line in io.lines(os.getenv("BENCH_PATHS")) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  mode = os.getenv("BENCH_MODE")
  stop = tonumber(os.getenv("BENCH_STOP"))
  nthreads = tonumber(os.getenv("BENCH_THREADS"))
  shared = ffi.cast("bench_shared *", shared_address)
  lock = ffi.cast("bench_mutex *", shared)
  C.pthread_mutex_lock(lock)
  thread_number = tonumber(shared.initialised)
  shared.initialised = thread_number + 1
  C.pthread_mutex_unlock(lock)
end

local function take()  -- the next position in the list (0-based, growing), or nil
  C.pthread_mutex_lock(lock)
  local index = tonumber(shared.next)
  local ok = mode == "cycle" or index < stop
  if ok then shared.next = index + 1 end
  C.pthread_mutex_unlock(lock)
  if ok then return index end
  return nil
end

local function finish()
  C.pthread_mutex_lock(lock)
  shared.finished = shared.finished + 1
  local last = tonumber(shared.finished) == nthreads
  C.pthread_mutex_unlock(lock)
  wrk.thread:stop()
  if last then C.kill(C.getpid(), 2) end  -- SIGINT ends wrk's sleep in main()
end

function request()
  -- wrk calls this once more in thread 0, from main() before the run, to check the
  -- request: that call takes the first index, and the real first request reuses it.
  calls = calls + 1
  if not released and not (calls == 1 and thread_number == 0) then
    -- Start together: wrk creates its threads one by one, and the first ones could
    -- otherwise run through a short list before the last one exists.
    while tonumber(shared.initialised) < nthreads do C.usleep(200) end
    released = true
  end
  if current == nil then current = take() or 0 end
  started = now_us()
  return wrk.format("GET", paths[current % #paths + 1])
end

function response(status, headers, body)
  local now = now_us()
  answered = answered + 1
  latencies[answered] = now - started
  indexes[answered] = current
  if first_us < 0 then first_us = started end
  last_us = now
  if status ~= 200 then bad = bad + 1 end
  body_bytes = body_bytes + #body
  current = take()
  if current == nil then finish() end
end
"""


# -- the bare Starlette peer ------------------------------------------------------


def bare_app():  # noqa: ANN201 - a Starlette app, built lazily in each uvicorn worker
    """A bare Starlette app: the URL's bytes and headers from a dict, nothing else.

    ``uvicorn tiles:bare_app --factory --app-dir benchmarks`` with
    ``BENCH_BARE_TILES`` naming a pickle of ``{path: (body, headers)}``.
    """
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    with open(os.environ["BENCH_BARE_TILES"], "rb") as handle:
        table: dict[str, tuple[bytes, dict[str, str]]] = pickle.load(handle)

    async def tile(request):  # noqa: ANN001, ANN202
        found = table.get(request.url.path)
        if found is None:
            return Response(b"", status_code=404)
        body, headers = found
        return Response(body, media_type="image/png", headers=headers)

    async def healthz(request):  # noqa: ANN001, ANN202
        return Response(b"ok")

    return Starlette(routes=[Route("/tiles/{rest:path}", tile), Route("/healthz", healthz)])


# -- data -----------------------------------------------------------------------


@dataclass
class Dataset:
    store: Path
    grib: Path
    cog: Path
    colormaps: Path


def build_data(folder: Path, peer_python: Path) -> Dataset:
    from ingest.demo import samples, synthetic
    from tileserver.core.timeutil import utcnow

    end = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=10)
    valid = end - timedelta(minutes=end.minute % 5)
    _, dbz = next(synthetic.radar_sequence(valid, steps=1))
    grib = folder / samples.mrms_filename("MergedReflectivityQCComposite", "00.50", valid)
    samples.write_mrms_grib2(grib, dbz, valid)
    echo = float((dbz >= 5).mean())
    covered = float((dbz > -999).mean())
    print(f"grid {dbz.shape[1]}x{dbz.shape[0]} at 0.01 deg: {covered:.0%} covered, {echo:.1%} with echo >= 5 dBZ ({grib.name})")
    del dbz

    store = folder / "store"
    began = time.perf_counter()
    subprocess.run([*WXTILES, "ingest", str(grib), "--layer", LAYER, "--quiet"], env=wxtiles_env(WXTILES_STORE=str(store)), check=True)
    print(f"wxtiles ingest: {time.perf_counter() - began:.1f} s")

    # TiTiler's COG: rio-cogeo's web-optimized COG (GoogleMapsCompatible grid, overviews),
    # float32 (GDAL reads the GRIB as float64), MRMS's -999 as nodata, zstd.
    plain = folder / grib.name.removesuffix(".gz")
    with open(plain, "wb") as out:
        subprocess.run(["gzip", "-dc", str(grib)], stdout=out, check=True)
    cog = folder / "titiler-cog.tif"
    began = time.perf_counter()
    subprocess.run(
        [str(peer_python.parent / "rio"), "cogeo", "create", str(plain), str(cog), "--web-optimized",
         "--cog-profile", "zstd", "--dtype", "float32", "--nodata", "-999", "--resampling", "nearest",
         "--overview-resampling", "nearest", "--zoom-level-strategy", "auto", "--quiet"],
        check=True, stderr=subprocess.DEVNULL,
    )
    print(f"rio cogeo create --web-optimized: {time.perf_counter() - began:.1f} s, {cog.stat().st_size / 1e6:.2f} MB")

    # The NWS 5-dBZ classes of colormaps/data/nws-reflectivity.json as a rio-tiler
    # interval colormap (values below 5 dBZ, the -99 "no echo" code included, fall in
    # no interval and are transparent, as in wxtiles).
    colormap_dir = folder / "colormaps"
    colormap_dir.mkdir(exist_ok=True)
    stops = json.loads((REPO / "colormaps/data/nws-reflectivity.json").read_text())["stops"]
    intervals = []
    for index, stop in enumerate(stops):
        upper = stops[index + 1]["value"] if index + 1 < len(stops) else 1000
        rgb = stop["color"].lstrip("#")
        intervals.append([[stop["value"], upper], [int(rgb[i:i + 2], 16) for i in (0, 2, 4)] + [255]])
    (colormap_dir / f"{TITILER_COLORMAP}.json").write_text(json.dumps(intervals))
    return Dataset(store, grib, cog, colormap_dir)


def tile_list(count: int, seed: int = 1) -> list[tuple[int, int, int]]:
    """Distinct tiles over the storm area, zoom 3 to 10, shuffled: nowcast_tiles.py's list."""
    from benchmarks.nowcast_tiles import tile_list as storm_tiles

    return [(t.z, t.x, t.y) for t in storm_tiles(count, seed)]


def warmup_tiles() -> list[tuple[int, int, int]]:
    """Tiles for first-request set-up: inside both COGs, away from the list's blocks."""
    import mercantile

    return [(t.z, t.x, t.y) for t in (mercantile.tile(-128.5 + i * 0.4, 53.5, 9 + i % 2) for i in range(12))]


# -- servers ----------------------------------------------------------------------


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    ready_path: str
    port: int = 0
    process: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, logs: Path) -> None:
        self.port = free_port()
        self.log = logs / f"{self.name}-{self.port}.log"
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 180) -> None:
        assert self.process is not None
        wait_ready(self.base + self.ready_path, self.process, timeout, what=f"{self.name} (log: {self.log})")

    def workers(self) -> list[int]:
        """The uvicorn worker processes: children of the process started, not helpers."""
        assert self.process is not None
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.process.pid and "resource_tracker" not in cmdline:
                found.append(int(entry.name))
        return sorted(found)

    def peak_rss_mb(self) -> list[float]:
        """Peak resident set (VmHWM) of each worker so far, in MB."""
        peaks = []
        for pid in self.workers():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) / 1024)
            except OSError:
                pass
        return peaks

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@contextmanager
def running(servers: list[Server], logs: Path) -> Iterator[None]:
    try:
        for server in servers:
            server.start(logs)
        for server in servers:
            server.wait_ready()
        yield
    finally:
        for server in servers:
            server.stop()


def wxtiles_env(**settings: str) -> dict[str, str]:
    """The environment for wxtiles commands: this checkout first on the path, no stray WXTILES_*."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WXTILES_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**env, **settings}


def wxtiles_server(store: Path, workers: int, cache_mb: int | None) -> Server:
    # As shipped: one JSON request log line per request, to a file as a pod's stdout would be.
    settings = {"WXTILES_STORE": str(store)}
    if cache_mb is not None:
        settings["WXTILES_CACHE_MB"] = str(cache_mb)
    return Server("wxtiles", [*WXTILES, "serve", "--port", "{port}", "--workers", str(workers)], wxtiles_env(**settings), "/readyz")


def titiler_server(peer_python: Path, colormaps: Path, workers: int) -> Server:
    env = {**os.environ, **TITILER_GDAL_ENV, "COLORMAP_DIRECTORY": str(colormaps)}
    command = [str(peer_python), "-m", "uvicorn", "titiler.application.main:app", "--host", "127.0.0.1", "--port", "{port}",
               "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    return Server("titiler", command, env, "/healthz")


def bare_server(tiles: Path, workers: int) -> Server:
    env = {**os.environ, "BENCH_BARE_TILES": str(tiles)}
    command = [sys.executable, "-m", "uvicorn", "tiles:bare_app", "--factory", "--app-dir", str(REPO / "benchmarks"),
               "--host", "127.0.0.1", "--port", "{port}", "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    return Server("starlette", command, env, "/healthz")


def warm_workers(server: Server, paths: list[str]) -> None:
    """First requests on new connections, so that every worker is past its set-up."""
    import httpx

    for path in paths:
        response = httpx.get(server.base + path, headers={"Connection": "close"}, timeout=60)
        if response.status_code not in (200, 404):
            raise SystemExit(f"{server.name} {path}: {response.status_code} {response.text[:200]}")


# -- load -------------------------------------------------------------------------


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0  # first request sent to last response received, summed over runs
    bad: int = 0
    body_bytes: int = 0
    server_cpu_s: float = 0.0  # user + system time of the server's workers
    client_cpu_s: float = 0.0  # of wrk
    machine_cpu_s: float = 0.0  # every process on the machine
    load_average: list[float] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    @property
    def mean_bytes(self) -> float:
        return self.body_bytes / self.count if self.count else 0.0

    @property
    def others_cores(self) -> float:
        """CPU cores that other processes (not this server, not wrk) kept busy during the run, on average."""
        if self.seconds <= 0:
            return 0.0
        return max(0.0, self.machine_cpu_s - self.server_cpu_s - self.client_cpu_s) / self.seconds

    @property
    def cpu_ms(self) -> float:
        """Server CPU per tile: independent of what else the machine runs, unlike tiles/s."""
        return 1000 * self.server_cpu_s / self.count if self.count else 0.0

    def add(self, other: Run) -> None:
        self.latencies_ms += other.latencies_ms
        self.seconds += other.seconds
        self.bad += other.bad
        self.body_bytes += other.body_bytes
        self.server_cpu_s += other.server_cpu_s
        self.client_cpu_s += other.client_cpu_s
        self.machine_cpu_s += other.machine_cpu_s
        self.load_average += other.load_average


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time spent by everything on the machine (all cores, not idle or waiting on I/O)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def load(wrk: str, script: Path, server: Server, paths_file: Path, connections: int, *, start: int = 0,
         stop: int | None = None, duration: float | None = None, out: Path) -> Run:
    """One wrk run over the list from index ``start``: up to ``stop`` (once), or for ``duration`` seconds (cycle)."""
    if stop is not None and stop - start < connections:
        raise SystemExit(f"need at least {connections} requests for {connections} connections")
    env = {
        **os.environ, "BENCH_PATHS": str(paths_file), "BENCH_OUT": str(out), "BENCH_THREADS": str(connections),
        "BENCH_MODE": "once" if stop is not None else "cycle", "BENCH_START": str(start), "BENCH_STOP": str(stop or 0),
    }
    seconds = duration if duration is not None else 900
    command = [wrk, "-t", str(connections), "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "60s",
               "-s", str(script), server.base + "/"]
    out.unlink(missing_ok=True)
    workers = server.workers()
    cpu_before, client_before, machine_before = cpu_seconds(workers), resource.getrusage(resource.RUSAGE_CHILDREN), machine_busy_seconds()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=seconds + 120, check=True)
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = Run(server_cpu_s=cpu_seconds(workers) - cpu_before, load_average=[os.getloadavg()[0]], machine_cpu_s=machine_busy_seconds() - machine_before,
              client_cpu_s=(client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime))
    first, last, indexes = [], [], []
    errors: dict[str, int] = {}
    for line in out.read_text().splitlines():
        if line.startswith("errors"):
            errors = dict(zip(("connect", "read", "write", "timeout", "status"), map(int, line.split()[1:]), strict=True))
        elif line.startswith("thread"):
            t_first, t_last, answered, t_bad, t_body = line.split()[1:]
            if int(answered):
                first.append(float(t_first))
                last.append(float(t_last))
            run.bad += int(t_bad)
            run.body_bytes += int(t_body)
        elif line:
            latency, index = line.split()
            run.latencies_ms.append(float(latency) / 1000)
            indexes.append(int(index))
    run.seconds = (max(last) - min(first)) / 1e6 if first else 0.0
    if stop is not None and (run.count != stop - start or len(set(indexes)) != run.count):
        print(f"  warning: {server.name}: {run.count} responses, {len(set(indexes))} distinct tiles, for {stop - start} "
              f"requests (wrk errors {errors})")
    if run.bad:
        print(f"  warning: {server.name}: {run.bad} responses were not 200")
    return run


# -- a full tile cache ----------------------------------------------------------------


def probe_full_cache(store: Path, captured: Path) -> None:
    """In a fresh process: fill a real TileService's tile cache as serving would, report RSS growth.

    The benchmark's list fills a small part of the default cache; this says what a
    worker holds once the cache is full of tiles like them. Keys are the tiles' ETags,
    as ``Tiles.render_tile`` keeps them, for distinct tiles of zoom 3 to 14; bodies
    are drawn from the list's real PNGs (the shared transparent tile stays one object,
    as ``transparent_png`` returns it). Prints one JSON line.
    """
    import mercantile

    from renderers.png import transparent_png
    from tileserver.http.app import build_service
    from tileserver.core.layers import LAYERS
    from tileserver.service.params import TileRequest
    from tileserver.core.settings import Settings

    def rss_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    service = build_service(Settings(store=str(store)))
    bodies = [body for body, _ in pickle.loads(captured.read_bytes()).values()]
    empty = transparent_png(256)
    bodies = [empty if body == empty else body for body in bodies]
    frame = service.store.load_catalog(LAYER).frames[-1]
    target = service.catalogs.target(LAYERS[LAYER], frame.time)
    colormap = LAYERS[LAYER].colormap
    rng = random.Random(0)
    before = rss_mb()
    cache = service.tiles.cache
    layer = LAYERS[LAYER]
    while cache.currsize < cache.maxsize - 64 * 1024:
        z = rng.randint(3, 14)
        tile = mercantile.Tile(rng.randrange(2**z), rng.randrange(2**z), z)
        body = rng.choice(bodies)
        if body is not empty:
            body = bytes(bytearray(body))  # its own object, as a rendered tile is
        request = TileRequest(layer=layer, time=frame.time, run=None, tile=tile, size=256, format="png", colormap=colormap)
        service.tiles.keep(service.tiles.tile_etag(request, target), body)
    grown = rss_mb() - before
    held = sum(len(v) for v in cache.values() if v is not empty)
    print(json.dumps({"entries": len(cache), "configured_mb": cache.maxsize / 2**20, "counted_mb": cache.currsize / 2**20,
                      "distinct_body_mb": held / 2**20, "rss_growth_mb": grown}))


# -- main -------------------------------------------------------------------------


def url_lists(tiles: list[tuple[int, int, int]], frame_time: str, cog: Path) -> tuple[list[str], list[str]]:
    wx = [f"/tiles/{LAYER}/{frame_time}/{z}/{x}/{y}.png" for z, x, y in tiles]
    query = f"url={urllib.parse.quote(str(cog), safe='/')}&colormap_name={TITILER_COLORMAP}"
    ti = [f"/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png?{query}" for z, x, y in tiles]
    return wx, ti


def frame_time_of(server: Server) -> str:
    import httpx

    info = httpx.get(f"{server.base}/api/layers/{LAYER}", timeout=30).json()
    return info["frames"][-1]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [fmt_row(header, widths), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [fmt_row(r, widths) for r in rows]
    return "\n".join(lines)


def check_equivalence(wx: Server, ti: Server, wx_paths: list[str], ti_paths: list[str], sample: int = 60) -> str:
    """Do both servers draw the same echoes? Compare the opaque pixels of some tiles."""
    import io

    import httpx
    import numpy as np
    from PIL import Image

    agree = total = opaque_wx = opaque_ti = 0
    for wx_path, ti_path in list(zip(wx_paths, ti_paths, strict=True))[:sample]:
        a = np.asarray(Image.open(io.BytesIO(httpx.get(wx.base + wx_path, timeout=60).content)).convert("RGBA"))[..., 3] > 0
        b = np.asarray(Image.open(io.BytesIO(httpx.get(ti.base + ti_path, timeout=60).content)).convert("RGBA"))[..., 3] > 0
        agree += int((a == b).sum())
        total += a.size
        opaque_wx += int(a.sum())
        opaque_ti += int(b.sum())
    return (f"same tiles, both servers ({sample} tiles): coloured pixels wxtiles {opaque_wx}, TiTiler {opaque_ti}; "
            f"coloured/transparent agree on {agree / total:.2%} of pixels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-venv", type=Path, default=Path("/work/peer-venv"), help="venv with titiler.application, uvicorn[standard], rio-cogeo")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of every server")
    parser.add_argument("--tiles", type=int, default=2000, help="distinct tiles in the list (cold: each once)")
    parser.add_argument("--concurrency", default="1,8,64", help="connections, comma separated")
    parser.add_argument("--segments", type=int, default=2, help="cold: the list in this many parts, servers alternating")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of each server's cached run, per concurrency")
    parser.add_argument("--rounds", type=int, default=4, help="cached: each duration in this many slices, servers alternating")
    parser.add_argument("--warm-passes", type=int, default=4, help="passes over the list before the cached runs")
    parser.add_argument("--quick", action="store_true", help="500 tiles, 4 s cached runs")
    parser.add_argument("--workdir", type=Path, help="keep data and logs here (default: a temporary folder)")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    parser.add_argument("--probe-full-cache", nargs=2, type=Path, metavar=("STORE", "TILES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_full_cache:
        probe_full_cache(*args.probe_full_cache)
        return
    if args.quick:
        args.tiles, args.duration, args.warm_passes, args.rounds = 500, 4.0, 3, 2
    levels = [int(c) for c in args.concurrency.split(",")]
    peer_python = args.peer_venv / "bin" / "python"
    if not peer_python.exists():
        raise SystemExit(f"no peer venv at {args.peer_venv}: python3 -m venv {args.peer_venv} && "
                         f"{args.peer_venv}/bin/pip install titiler.application 'uvicorn[standard]' rio-cogeo")
    if not shutil.which(args.wrk):
        raise SystemExit("wrk not found: apt-get install -y wrk")

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        logs = folder / "logs"
        logs.mkdir(exist_ok=True)
        script = folder / "bench.lua"
        script.write_text(WRK_SCRIPT)
        out = folder / "wrk.out"
        versions = subprocess.run([str(peer_python), "-c", "import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in "
                                   "('titiler.application', 'rio-tiler', 'rasterio', 'uvicorn')))"], capture_output=True, text=True).stdout.strip()
        print(f"peer: {versions}; load generator: {subprocess.run([args.wrk, '-v'], capture_output=True, text=True).stdout.split(' Copyright')[0]}")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; {args.workers} workers per server")
        data = build_data(folder, peer_python)
        tiles = tile_list(args.tiles)
        warm = warmup_tiles()

        # ---- cold: each tile once, fresh servers for every concurrency ----
        cold: dict[int, dict[str, Run]] = {}
        cold_memory: dict[str, list[float]] = {"wxtiles": [], "titiler": []}
        equivalence = ""
        bounds = [round(i * len(tiles) / args.segments) for i in range(args.segments + 1)]
        for connections in levels:
            wx = wxtiles_server(data.store, args.workers, cache_mb=0)
            ti = titiler_server(peer_python, data.colormaps, args.workers)
            with running([wx, ti], logs):
                frame_time = frame_time_of(wx)
                wx_paths, ti_paths = url_lists(tiles, frame_time, data.cog)
                wx_warm, ti_warm = url_lists(warm, frame_time, data.cog)
                files = {"wxtiles": write_lines(folder / "wxtiles.paths", wx_paths), "titiler": write_lines(folder / "titiler.paths", ti_paths)}
                warm_workers(wx, wx_warm)
                warm_workers(ti, ti_warm)
                cold[connections] = {"wxtiles": Run(), "titiler": Run()}
                for segment in range(args.segments):
                    order = (wx, ti) if segment % 2 == 0 else (ti, wx)
                    for server in order:
                        cold[connections][server.name].add(load(args.wrk, script, server, files[server.name], connections,
                                                                start=bounds[segment], stop=bounds[segment + 1], out=out))
                for server in (wx, ti):
                    run = cold[connections][server.name]
                    cold_memory[server.name] += server.peak_rss_mb()
                    print(f"cold   c={connections:<3} {server.name:<9} {run.rate:8.1f} tiles/s  p50 {run.percentile(0.5):7.1f} ms  "
                          f"p99 {run.percentile(0.99):7.1f} ms  {run.cpu_ms:5.2f} CPU ms/tile  {run.mean_bytes:6.0f} B/tile  "
                          f"({run.count} tiles in {run.seconds:.1f} s; other processes busy {run.others_cores:.1f} cores)")
                if not equivalence:
                    equivalence = check_equivalence(wx, ti, wx_paths, ti_paths)

        # ---- cached: warm caches, then the list in a loop ----
        cached: dict[int, dict[str, Run]] = {}
        wx = wxtiles_server(data.store, args.workers, cache_mb=None)
        ti = titiler_server(peer_python, data.colormaps, args.workers)
        with running([wx, ti], logs):
            import httpx

            frame_time = frame_time_of(wx)
            wx_paths, ti_paths = url_lists(tiles, frame_time, data.cog)
            files = {"wxtiles": write_lines(folder / "wxtiles.paths", wx_paths), "titiler": write_lines(folder / "titiler.paths", ti_paths)}
            files["starlette"] = files["wxtiles"]
            # Each wxtiles worker has its own cache and a connection stays with one worker:
            # several passes on many connections warm both. TiTiler caches no tiles: one
            # pass warms its GDAL block cache and the page cache.
            for server, passes in ((wx, args.warm_passes), (ti, 1)):
                began = time.perf_counter()
                load(args.wrk, script, server, files[server.name], 64, stop=passes * len(tiles), out=out)
                print(f"warmed {server.name}: {passes} pass(es) over the list in {time.perf_counter() - began:.1f} s")
            captured = {}
            with httpx.Client(base_url=wx.base, timeout=60) as client:
                for path in wx_paths:
                    response = client.get(path)
                    keep = ("etag", "cache-control", "x-frame-time")
                    captured[path] = (response.content, {k: response.headers[k] for k in keep if k in response.headers})
            bare_tiles = folder / "bare-tiles.pickle"
            bare_tiles.write_bytes(pickle.dumps(captured))
            bare = bare_server(bare_tiles, args.workers)
            with running([bare], logs):
                warm_workers(bare, wx_paths[:8])
                offsets = {"wxtiles": 0, "starlette": 0, "titiler": 0}
                for connections in levels:
                    cached[connections] = {name: Run() for name in offsets}
                    servers = [wx, bare, ti]
                    for index in range(args.rounds):
                        for server in servers[index % 3:] + servers[:index % 3]:
                            run = load(args.wrk, script, server, files[server.name], connections, start=offsets[server.name],
                                       duration=args.duration / args.rounds, out=out)
                            offsets[server.name] += run.count
                            cached[connections][server.name].add(run)
                    for name, run in cached[connections].items():
                        print(f"cached c={connections:<3} {name:<9} {run.rate:8.1f} tiles/s  p50 {run.percentile(0.5):7.2f} ms  "
                              f"p99 {run.percentile(0.99):7.2f} ms  {run.cpu_ms:5.2f} CPU ms/tile  {run.mean_bytes:6.0f} B/tile  "
                              f"(wrk {1000 * run.client_cpu_s / max(run.count, 1):.2f} CPU ms/tile; other processes busy {run.others_cores:.1f} cores)")
                bare_memory = bare.peak_rss_mb()
            cached_memory = {"wxtiles": wx.peak_rss_mb(), "titiler": ti.peak_rss_mb()}
            cache_bytes = sum(len(body) for body, _ in captured.values())
            distinct = len({body for body, _ in captured.values()})
            print(f"wxtiles bytes for the list: {cache_bytes / 1e6:.2f} MB in {len(captured)} tiles ({distinct} distinct bodies)")

        probe = subprocess.run([sys.executable, __file__, "--probe-full-cache", str(data.store), str(bare_tiles)],
                               env=wxtiles_env(), capture_output=True, text=True, check=True)
        full_cache = json.loads(probe.stdout.strip().splitlines()[-1])
        report(args, tiles, cold, cached, cold_memory, cached_memory, bare_memory, equivalence, full_cache)


def report(args: argparse.Namespace, tiles: list[tuple[int, int, int]], cold: dict[int, dict[str, Run]], cached: dict[int, dict[str, Run]],
           cold_memory: dict[str, list[float]], cached_memory: dict[str, list[float]], bare_memory: list[float], equivalence: str,
           full_cache: dict[str, float]) -> None:
    print()
    busy = [run.others_cores for runs in (*cold.values(), *cached.values()) for run in runs.values()]
    print(f"{len(tiles)} distinct tiles, zoom 3-10, {args.workers} workers per server; other processes kept "
          f"{min(busy):.1f} to {max(busy):.1f} of the {os.cpu_count()} cores busy during the runs")
    print(equivalence)
    print()
    print("Cold tiles: each tile once, wxtiles' cache off, fresh servers for every concurrency")
    rows = []
    for c, runs in cold.items():
        wx, ti = runs["wxtiles"], runs["titiler"]
        rows.append([str(c), f"{wx.rate:.0f}", f"{ti.rate:.0f}", f"**{wx.rate / ti.rate:.1f}x**",
                     f"{wx.percentile(0.5):.1f} / {ti.percentile(0.5):.1f}", f"{wx.percentile(0.99):.1f} / {ti.percentile(0.99):.1f}",
                     f"{wx.percentile(0.99) / ti.percentile(0.99):.2f}", f"{wx.cpu_ms:.2f} / {ti.cpu_ms:.2f}", f"{ti.cpu_ms / wx.cpu_ms:.1f}x"])
    print(table(["conns", "wxtiles tiles/s", "TiTiler tiles/s", "ratio", "p50 ms wx / Ti", "p99 ms wx / Ti", "p99 wx/Ti",
                 "CPU ms/tile wx / Ti", "CPU ratio Ti/wx"], rows))
    print()
    print("Cached tiles: wxtiles' default cache, warm; bare Starlette returns wxtiles' bytes and headers from a dict;")
    print("TiTiler has no tile cache (repeated tiles, warm GDAL cache)")
    rows = []
    for c, runs in cached.items():
        wx, bare, ti = runs["wxtiles"], runs["starlette"], runs["titiler"]
        rows.append([str(c), f"{wx.rate:.0f}", f"{bare.rate:.0f}", f"**{wx.rate / bare.rate:.2f}**", f"{ti.rate:.0f}", f"{wx.rate / ti.rate:.0f}x",
                     f"{wx.percentile(0.5):.2f} / {bare.percentile(0.5):.2f} / {ti.percentile(0.5):.1f}",
                     f"{wx.percentile(0.99):.2f} / {bare.percentile(0.99):.2f} / {ti.percentile(0.99):.1f}",
                     f"{wx.cpu_ms:.3f} / {bare.cpu_ms:.3f} / {ti.cpu_ms:.1f}"])
    print(table(["conns", "wxtiles tiles/s", "Starlette tiles/s", "wx/Starlette", "TiTiler tiles/s", "wx/TiTiler",
                 "p50 ms wx / St / Ti", "p99 ms wx / St / Ti", "CPU ms/tile wx / St / Ti"], rows))
    print()
    first = next(iter(cold.values()))
    wx_b, ti_b = first["wxtiles"], first["titiler"]
    print(f"Bytes per tile (mean over the list): wxtiles {wx_b.mean_bytes:.0f} B (palette PNG; one shared 8-bit transparent PNG for empty tiles), "
          f"TiTiler {ti_b.mean_bytes:.0f} B (RGBA PNG): wxtiles/TiTiler {wx_b.mean_bytes / ti_b.mean_bytes:.2f}")
    print()
    print("Peak resident memory of each worker (VmHWM, MB)")
    rows = [
        ["wxtiles, cache off (cold runs)", " ".join(f"{m:.0f}" for m in cold_memory["wxtiles"])],
        ["wxtiles, default cache (cached runs)", " ".join(f"{m:.0f}" for m in cached_memory["wxtiles"])],
        ["TiTiler (cold runs)", " ".join(f"{m:.0f}" for m in cold_memory["titiler"])],
        ["TiTiler (cached runs)", " ".join(f"{m:.0f}" for m in cached_memory["titiler"])],
        ["bare Starlette", " ".join(f"{m:.0f}" for m in bare_memory)],
    ]
    print(table(["server", "each worker"], rows))
    worst = max(cached_memory["wxtiles"])
    projected = worst + full_cache["rss_growth_mb"]
    print(f"A full default cache of tiles like these ({full_cache['entries']:.0f} entries counted as {full_cache['counted_mb']:.0f} MB, "
          f"{full_cache['distinct_body_mb']:.0f} MB of distinct PNGs) adds {full_cache['rss_growth_mb']:.0f} MB to a worker "
          f"({full_cache['rss_growth_mb'] / full_cache['configured_mb']:.1f}x the configured size): about {projected:.0f} MB per worker")
    print()
    print("Targets")
    if 8 in cold:
        wx, ti = cold[8]["wxtiles"], cold[8]["titiler"]
        ratio = wx.rate / ti.rate
        print(f"- cold, 8 connections: {ratio:.1f}x TiTiler's tiles/s (target >= 5x): {'met' if ratio >= 5 else 'MISSED'}; "
              f"p99 {wx.percentile(0.99):.1f} ms against {ti.percentile(0.99):.1f} ms: {'met' if wx.percentile(0.99) < ti.percentile(0.99) else 'MISSED'}")
    for c, runs in cached.items():
        ratio = runs["wxtiles"].rate / runs["starlette"].rate
        print(f"- cached, {c} connections: {ratio:.2f} of bare Starlette's tiles/s (target >= 0.5): {'met' if ratio >= 0.5 else 'MISSED'}")
    print(f"- memory: largest wxtiles worker with the default cache {worst:.0f} MB while serving this benchmark "
          f"(target < {MEMORY_TARGET_MB} MB): {'met' if worst < MEMORY_TARGET_MB else 'MISSED'}; with that cache full, about {projected:.0f} MB: "
          f"{'met' if projected < MEMORY_TARGET_MB else 'MISSED'}")


if __name__ == "__main__":
    main()
