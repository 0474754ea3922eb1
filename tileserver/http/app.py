"""The Starlette application: thin handlers over :class:`TileService`."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import anyio.to_thread
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import colormaps
from tileserver.core.layers import LAYERS
from tileserver.core.logs import configure_json_logging
from tileserver.core.settings import Settings
from tileserver.core.timeutil import format_utc
from tileserver.http import ogc, openapi
from tileserver.http.access_log import AccessLog, RequestLogMiddleware
from tileserver.http.limits import RequestLimitsMiddleware
from tileserver.http.proxy import ForwardedHeadersMiddleware
from tileserver.service import TileService, loops, params
from tileserver.service.budget import RenderBudget
from tileserver.service.errors import ApiError, BadRequest, NotFound
from tileserver.service.tiles import MEDIA_TYPES, check_colormap
from tileserver.store import Retention, Store
from tileserver.store.storage import open_storage

log = logging.getLogger("wxtiles")
T = TypeVar("T")

# Layer listings change with every frame (2 to 5 minutes): caches keep them
# briefly, and revalidate by ETag after.
METADATA_MAX_AGE_S = 10


def _viewer_folder() -> Path:
    """The viewer's files: tileserver/viewer in an installed wheel, frontend/ in a checkout."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "viewer"
    return packaged if (packaged / "index.html").is_file() else package.parent / "frontend"


FRONTEND = _viewer_folder()
FRONTEND_TYPES = {".html", ".js", ".css", ".svg", ".png", ".ico", ".json", ".webmanifest"}
# GDAL settings for serving many small windowed reads; env vars so every thread sees them.
GDAL_SERVE_CONFIG = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_CACHEMAX": "128",
    "GDAL_BAND_BLOCK_CACHE": "HASHSET",
    # No per-handle VSI_CACHE: with dozens of open frames its 5 MB per handle grew
    # the process by hundreds of MB under load (benchmarks/soak.py); S3 reads use
    # the one global curl cache below, local files the OS page cache.
    "CPL_VSIL_CURL_CACHE_SIZE": "200000000",
    # With an S3 store, S3Storage adds GDAL_S3_READ_CONFIG: bounded waits, so a
    # slow or dead store fails a request within seconds instead of hanging a worker.
}


def _service(request: Request) -> TileService:
    return request.app.state.service  # type: ignore[no-any-return]


def _query(request: Request) -> dict[str, str]:
    return dict(request.query_params)


def _base_url(request: Request) -> str:
    return str(request.base_url)


async def tile(request: Request) -> Response:
    p = request.path_params
    return await _tile_response(request, params.tile_params(p["layer"], p["time"], p["z"], p["x"], p["y"], _query(request)))


async def _tile_response(request: Request, tile_request: params.TileRequest) -> Response:
    """A cache hit or a 304 is answered on the event loop; only store reads and
    rendering go to the thread pool, whose hand-off costs more than a hit."""
    service = _service(request)
    catalog = service.catalogs.fresh_catalog(tile_request.layer.id)
    if catalog is None:
        catalog = await run_in_threadpool(service.catalogs.catalog, tile_request.layer.id)
    target, etag, cache_control = service.tiles.prepare_tile(tile_request, catalog)
    headers = {"ETag": etag, "Cache-Control": cache_control, "X-Frame-Time": format_utc(target.time)}
    if target.is_nowcast:
        headers["X-Nowcast-From"] = format_utc(target.frame.time)
    validators = _etags(request.headers.get("if-none-match", ""))
    if etag in validators or "*" in validators:
        return Response(status_code=304, headers=headers)
    body = service.tiles.cached_tile(etag)
    if body is None:
        body = await run_in_threadpool(service.tiles.render_tile, tile_request, target, etag)
    return Response(body, media_type=MEDIA_TYPES[tile_request.format], headers=headers)


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}


def tilejson(request: Request) -> JSONResponse:
    found = params.layer_param(request.path_params["layer"])
    query = _query(request)
    time = query.get("time", "latest")
    resolved = params.time_param(time)
    colormap = query.get("colormap")
    service = _service(request)
    if colormap is not None:
        check_colormap(found.id, params.colormap_name_param(colormap, found))
    run = params.run_param(query.get("run"))
    if run is not None and found.kind != "forecast":
        raise BadRequest(f"run= applies to forecast layers; {found.id} is {found.kind}")
    info = service.metadata.layer_info(found, _base_url(request))
    if resolved != "latest" or run is not None:
        target = service.catalogs.target(found, resolved, run)  # 404 now rather than from every tile
        time = format_utc(target.time) if resolved != "latest" else time
    return JSONResponse(
        ogc.tilejson(info, _base_url(request), time, colormap, format_utc(run) if run else None),
        headers={"Cache-Control": "public, max-age=60"},
    )


def wmts_capabilities(request: Request) -> Response:
    service = _service(request)
    base = _base_url(request)
    body = ogc.wmts_capabilities([service.metadata.layer_info(layer, base) for layer in LAYERS.values()], base)
    return Response(body, media_type="application/xml", headers={"Cache-Control": "public, max-age=60"})


async def wmts_tile(request: Request) -> Response:
    """RESTful GetTile: /wmts/1.0.0/{layer}/{style}/{Time}/{TileMatrixSet}/{TileMatrix}/{TileRow}/{TileCol}.png"""
    p = request.path_params
    _check_wmts_names(p["style"], p["tms"])
    return await _tile_response(request, params.tile_params(p["layer"], p["time"], p["z"], p["col"], f"{p['row']}.png", _query(request)))


async def wmts_kvp(request: Request) -> Response:
    """KVP binding: ?SERVICE=WMTS&REQUEST=GetCapabilities|GetTile&... (keys in any case)."""
    query = {key.upper(): value for key, value in request.query_params.items()}
    if query.get("SERVICE", "WMTS").upper() != "WMTS":
        raise BadRequest("SERVICE must be WMTS")
    operation = query.get("REQUEST", "").lower()
    if operation == "getcapabilities":
        return await run_in_threadpool(wmts_capabilities, request)
    if operation != "gettile":
        raise BadRequest("REQUEST must be GetCapabilities or GetTile")
    missing = [k for k in ("LAYER", "TILEMATRIX", "TILEROW", "TILECOL") if k not in query]
    if missing:
        raise BadRequest(f"GetTile needs {', '.join(missing)}")
    _check_wmts_names(query.get("STYLE", "default"), query.get("TILEMATRIXSET", ogc.TILE_MATRIX_SET))
    if query.get("FORMAT", "image/png") != "image/png":
        raise BadRequest("FORMAT must be image/png")
    extra = {k.lower(): v for k, v in query.items() if k in ("COLORMAP", "RUN")}
    # The run dimension, under its capabilities name or WMS's; "default" means the newest run.
    for name in (ogc.REFERENCE_TIME, ogc.REFERENCE_TIME.removeprefix("DIM_")):
        if query.get(name) and query[name].lower() not in ("default", "current"):
            extra["run"] = query[name]
    tile_request = params.tile_params(
        query["LAYER"], query.get("TIME", "latest"), query["TILEMATRIX"], query["TILECOL"], f"{query['TILEROW']}.png", extra,
    )
    return await _tile_response(request, tile_request)


def _check_wmts_names(style: str, matrix_set: str) -> None:
    if style not in ("default", ""):
        raise BadRequest("STYLE must be default")
    if matrix_set != ogc.TILE_MATRIX_SET:
        raise BadRequest(f"TileMatrixSet must be {ogc.TILE_MATRIX_SET}")


def openapi_document(request: Request) -> JSONResponse:
    return JSONResponse(openapi.document(_base_url(request)))


def layers(request: Request) -> Response:
    service = _service(request)
    hours = params.hours_param(_query(request))
    return _validated_json(request, {"layers": [service.metadata.layer_info(layer, _base_url(request), hours) for layer in LAYERS.values()]})


def layer(request: Request) -> Response:
    found = params.layer_param(request.path_params["layer"])
    hours = params.hours_param(_query(request))
    return _validated_json(request, _service(request).metadata.layer_info(found, _base_url(request), hours))


def _validated_json(request: Request, content: object) -> Response:
    """JSON with a strong ETag of its bytes, and a 304 for a client that has them.

    Metadata changes with every new frame, so the ETag is of the body itself;
    viewers poll with If-None-Match and skip the transfer when nothing changed.
    """
    body = JSONResponse(content).body
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={METADATA_MAX_AGE_S}"}
    validators = _etags(request.headers.get("if-none-match", ""))
    if etag in validators or "*" in validators:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def point(request: Request) -> JSONResponse:
    found = params.layer_param(request.path_params["layer"])
    query = _query(request)
    lon, lat = params.lonlat_params(query)
    result = _service(request).points.point(found, lon, lat, params.time_param(query.get("time")), params.run_param(query.get("run")))
    return JSONResponse(result, headers={"Cache-Control": "public, max-age=60"})


def verification(request: Request) -> JSONResponse:
    found = params.layer_param(request.path_params["layer"])
    return JSONResponse(_service(request).metadata.verification(found), headers={"Cache-Control": "public, max-age=60"})


def series(request: Request) -> Response:
    found = params.layer_param(request.path_params["layer"])
    query = _query(request)
    lon, lat = params.lonlat_params(query)
    start, end = (params.run_param(query.get(name)) for name in ("start", "end"))
    if start and end and start > end:
        raise BadRequest("start is after end")
    fmt = query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("format must be json or csv")
    result = _service(request).points.series(found, lon, lat, start, end, params.run_param(query.get("run")))
    headers = {"Cache-Control": "public, max-age=60"}
    if fmt == "json":
        return JSONResponse(result, headers=headers)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time", "value", "units", "status", "kind", "lead_minutes", "run"])
    for item in result["values"]:
        writer.writerow([item["time"], "" if item["value"] is None else item["value"], result["units"], item["status"],
                         item["kind"], item.get("lead_minutes", ""), item.get("run", "")])
    headers["Content-Disposition"] = f'attachment; filename="{found.id}-series.csv"'
    return Response(out.getvalue(), media_type="text/csv", headers=headers)


async def loop(request: Request) -> Response:
    """An animated loop image of past and nowcast frames over a bbox.

    304s and cached loops are answered at once; a render first reserves its
    megapixels from the process's budget (waiting without a render thread)."""
    service = _service(request)
    p = request.path_params
    loop_request = loops.loop_params(p["layer"], p["fmt"], _query(request), horizon_min=service.settings.nowcast_horizon_min)
    plan = await run_in_threadpool(loops.plan_loop, service, loop_request)
    validators = _etags(request.headers.get("if-none-match", ""))
    if plan.etag in validators or "*" in validators:
        return Response(status_code=304, headers=plan.headers)
    media_type = loops.MEDIA_TYPES[loop_request.format]
    body = service.tiles.cached(plan.etag)
    if body is None:
        budget: RenderBudget = request.app.state.render_budget
        async with budget.reserve(loops.megapixels(loop_request, plan), "loop"):
            body, media_type, _ = await run_in_threadpool(loops.render_loop, service, loop_request, plan)
    return Response(body, media_type=media_type, headers=plan.headers)


def colormap_list(request: Request) -> JSONResponse:
    return JSONResponse({"colormaps": [colormaps.get(name).to_json() for name in colormaps.names()]})


def _colormap(request: Request) -> colormaps.Colormap:
    try:
        return colormaps.get(request.path_params["name"])
    except colormaps.UnknownColormapError:
        raise NotFound(f"unknown colormap; known colormaps: {', '.join(colormaps.names())}") from None


def colormap(request: Request) -> JSONResponse:
    return JSONResponse(_colormap(request).to_json(), headers={"Cache-Control": "public, max-age=3600"})


def legend(request: Request) -> Response:
    found = _colormap(request)
    query = _query(request)
    width = params.size_param(query, "width", 300, 2000)
    height = params.size_param(query, "height", 50, 500)
    value_range = None
    if found.units is None:
        # A normalised scale has no values of its own: label it with a layer's range.
        layer_id = query.get("layer")
        if layer_id is None:
            raise BadRequest(f"colormap {found.name!r} is normalised: add ?layer= to label it with that layer's range")
        try:
            value_range = params.layer_param(layer_id).value_range
        except NotFound as exc:
            raise BadRequest(f"layer: {exc.message}") from None
    try:
        body = found.legend_png(width=width, height=height, value_range=value_range)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return Response(body, media_type="image/png", headers={"Cache-Control": "public, max-age=3600"})


async def metrics(request: Request) -> Response:
    return await _off_the_render_threads(request, _metrics)


def _metrics(request: Request) -> Response:
    service = _service(request)
    for layer in LAYERS.values():  # fresh catalog and verification gauges, within the catalog TTL
        with contextlib.suppress(ApiError):
            service.catalogs.catalog(layer.id)
        if layer.nowcast:
            with contextlib.suppress(ApiError):
                service.metadata.verification(layer)
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    ok, body = await _off_the_render_threads(request, lambda request: _service(request).catalogs.ready())
    return JSONResponse(body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


async def _off_the_render_threads(request: Request, work: Callable[[Request], T]) -> T:
    """Probes and scrapes read the store too, but on threads of their own: with
    every render thread busy, a readiness probe that waits would take the pod
    out of service exactly when it is loaded."""
    return await anyio.to_thread.run_sync(work, request, limiter=request.app.state.probe_threads)


async def api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 304:
        return Response(status_code=304, headers=exc.headers)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def server_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    return JSONResponse({"error": "internal error"}, status_code=500)


def _frontend_routes() -> list[Route | Mount]:
    routes: list[Route | Mount] = []
    index = FRONTEND / "index.html"
    if index.is_file():
        routes.append(Route("/", lambda request: FileResponse(index), methods=["GET", "HEAD"]))
    # Only the files that are in frontend/ now: nothing a client names is looked up.
    for path in sorted(FRONTEND.glob("*")) if FRONTEND.is_dir() else []:
        if path.is_file() and path.suffix in FRONTEND_TYPES and path.name not in ("package.json", "package-lock.json"):
            routes.append(Route(f"/{path.name}", (lambda p: lambda request: FileResponse(p))(path), methods=["GET", "HEAD"], name=f"frontend:{path.name}"))
    # The viewer's npm libraries (Leaflet for the map, uPlot for the point chart), installed by
    # `npm ci --prefix frontend` (make setup): only their dist/ folders are served.
    for package, needed_for in (("leaflet", "its map"), ("uplot", "its point forecast chart")):
        dist = FRONTEND / "node_modules" / package / "dist"
        if dist.is_dir():
            routes.append(Mount(f"/vendor/{package}", StaticFiles(directory=dist), name=package))
        else:
            log.warning("frontend/node_modules/%s is missing: run `make setup`; the viewer will not load %s", package, needed_for)
    return routes


def build_service(settings: Settings) -> TileService:
    retention = Retention.from_settings(settings)
    return TileService(Store(open_storage(settings.store), retention), settings)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    if os.environ.get("WXTILES_JSON_LOGS") == "1":
        configure_json_logging(settings.log_level)
    for key, value in GDAL_SERVE_CONFIG.items():
        os.environ.setdefault(key, value)
    service = build_service(settings)
    access_log = AccessLog()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Sync handlers run in anyio's default pool: 40 threads fighting over one
        # GIL cost twice the CPU per tile of 8 (benchmarks/README.md).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        ok, body = service.catalogs.ready()
        if not ok:
            log.warning("not ready at start (the store was not reached; /readyz retries): %s", body["detail"])
        yield
        access_log.flush()
        service.close()

    get = ["GET", "HEAD"]
    routes: list[Route | Mount] = [
        Route("/tiles/{layer}/tilejson.json", tilejson, methods=get),
        Route("/tiles/{layer}/{time}/{z}/{x}/{y}", tile, methods=get),
        Route("/wmts/1.0.0/WMTSCapabilities.xml", wmts_capabilities, methods=get),
        Route("/wmts/1.0.0/{layer}/{style}/{time}/{tms}/{z}/{row}/{col}.png", wmts_tile, methods=get),
        Route("/wmts", wmts_kvp, methods=get),
        Route("/openapi.json", openapi_document, methods=get),
        Route("/loops/{layer}.{fmt}", loop, methods=get),
        Route("/api/layers", layers, methods=get),
        Route("/api/layers/{layer}", layer, methods=get),
        Route("/api/layers/{layer}/point", point, methods=get),
        Route("/api/layers/{layer}/series", series, methods=get),
        Route("/api/layers/{layer}/verification", verification, methods=get),
        Route("/api/colormaps", colormap_list, methods=get),
        Route("/api/colormaps/{name}", colormap, methods=get),
        Route("/api/colormaps/{name}/legend.png", legend, methods=get),
        Route("/healthz", healthz, methods=get),
        Route("/metrics", metrics, methods=get),
        Route("/readyz", readyz, methods=get),
        *_frontend_routes(),
    ]
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    middleware = [
        Middleware(ForwardedHeadersMiddleware, trusted=settings.forwarded_allow_ips),
        Middleware(RequestLogMiddleware, metrics=service.metrics, access_log=access_log),
        Middleware(RequestLimitsMiddleware),
        Middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "HEAD"], allow_headers=["If-None-Match"], expose_headers=["ETag", "X-Frame-Time", "X-Nowcast-From", "X-Loop-Frames", "X-Request-ID"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings
    app.state.probe_threads = anyio.CapacityLimiter(2)
    app.state.render_budget = RenderBudget(settings.render_budget_mp, settings.render_wait_s, service.metrics)
    return app
