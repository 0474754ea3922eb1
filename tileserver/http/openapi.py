"""The OpenAPI 3.1 description of the HTTP API, written as data.

A test checks every route of the app against it, so it stays true.
"""

from __future__ import annotations

from typing import Any

from tileserver.core.layers import LAYERS

ISO_TIME = {"type": "string", "description": "`latest` or an ISO 8601 UTC instant such as 2026-11-27T21:40:00Z", "example": "latest"}
ERROR = {"$ref": "#/components/schemas/Error"}


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def _query(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


LAYER = _path("layer", {"type": "string", "enum": list(LAYERS)}, "layer id, see /api/layers")
TIME = _path("time", ISO_TIME, "frame time")
ZOOM = _path("z", {"type": "integer", "minimum": 0, "maximum": 22}, "zoom")
COLORMAP = _query("colormap", {"type": "string"}, "colormap name (see /api/colormaps); default: the layer's")
RUN = _query("run", {"type": "string"}, "model run time (forecast layers), ISO 8601 UTC")
HOURS = _query("hours", {"type": "number", "exclusiveMinimum": 0, "maximum": 87600},
               "only recent frames: those within this many hours of the newest observation; for forecast layers, the runs issued within this many hours of the newest run")
NOT_MODIFIED = {"304": {"description": "not modified (If-None-Match)"}}
LONLAT = [
    _query("lon", {"type": "number", "minimum": -180, "maximum": 180}, "longitude", required=True),
    _query("lat", {"type": "number", "minimum": -85.0511, "maximum": 85.0511}, "latitude", required=True),
]


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "bad parameter", 404: "unknown layer, colormap or frame", 502: "a stored object (frame, catalog, sidecar) is corrupt", 503: "the store is unavailable (Retry-After)"}
    return {str(code): {"description": text[code], "content": {"application/json": {"schema": ERROR}}} for code in codes}


def _binary(media_type: str, description: str) -> dict[str, Any]:
    return {"200": {"description": description, "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}}


def _json(description: str) -> dict[str, Any]:
    return {"200": {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}}


def _get(summary: str, parameters: list[dict[str, Any]], responses: dict[str, Any], *errors: int) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": parameters, "responses": {**responses, **_errors(*errors)}}}


def document(base_url: str = "/") -> dict[str, Any]:
    tile_name = _path("y", {"type": "string", "pattern": r"^[0-9]+(@2x)?\.(png|npy)$"}, "tile row with format: `{y}.png`, `{y}@2x.png` (512 px) or `{y}.npy` (float32 values)")
    paths: dict[str, Any] = {
        "/tiles/{layer}/{time}/{z}/{x}/{y}": _get(
            "An XYZ tile: PNG (256 or 512 px) or raw float32 values (.npy)",
            [LAYER, TIME, ZOOM, _path("x", {"type": "integer", "minimum": 0}, "tile column"), tile_name, COLORMAP, RUN],
            {"200": {"description": "tile", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}, "application/x-npy": {"schema": {"type": "string", "format": "binary"}}}},
             "304": {"description": "not modified (If-None-Match)"}},
            400, 404, 502, 503,
        ),
        "/tiles/{layer}/tilejson.json": _get("TileJSON 3.0.0 of a layer", [LAYER, _query("time", ISO_TIME, "frame time, default latest"), COLORMAP, RUN], _json("TileJSON"), 400, 404, 503),
        "/wmts/1.0.0/WMTSCapabilities.xml": _get("OGC WMTS 1.0.0 capabilities (RESTful)", [], _binary("application/xml", "capabilities"), 503),
        "/wmts/1.0.0/{layer}/{style}/{time}/{tms}/{z}/{row}/{col}.png": _get(
            "WMTS RESTful GetTile",
            [LAYER, _path("style", {"type": "string", "enum": ["default"]}, "style"), TIME,
             _path("tms", {"type": "string", "enum": ["GoogleMapsCompatible"]}, "tile matrix set"), ZOOM,
             _path("row", {"type": "integer", "minimum": 0}, "tile row"), _path("col", {"type": "integer", "minimum": 0}, "tile column"), RUN],
            _binary("image/png", "tile"), 400, 404, 502, 503,
        ),
        "/wmts": _get(
            "WMTS KVP: GetCapabilities or GetTile",
            [_query("SERVICE", {"type": "string", "enum": ["WMTS"]}, "service"),
             _query("REQUEST", {"type": "string", "enum": ["GetCapabilities", "GetTile"]}, "operation", required=True),
             _query("VERSION", {"type": "string", "enum": ["1.0.0"]}, "version"),
             _query("LAYER", {"type": "string"}, "layer (GetTile)"), _query("STYLE", {"type": "string"}, "style"),
             _query("TILEMATRIXSET", {"type": "string"}, "GoogleMapsCompatible"), _query("TILEMATRIX", {"type": "string"}, "zoom"),
             _query("TILEROW", {"type": "string"}, "row"), _query("TILECOL", {"type": "string"}, "column"),
             _query("FORMAT", {"type": "string"}, "image/png"), _query("TIME", {"type": "string"}, "frame time"),
             _query("DIM_REFERENCE_TIME", {"type": "string"}, "model run of a forecast layer (default: the newest)")],
            {"200": {"description": "capabilities or tile", "content": {"application/xml": {"schema": {"type": "string"}}, "image/png": {"schema": {"type": "string", "format": "binary"}}}}},
            400, 404, 502, 503,
        ),
        "/loops/{layer}.{fmt}": _get(
            "An animated loop (WebP, GIF or APNG) of the last observed frames and the nowcast frames over a bbox",
            [LAYER, _path("fmt", {"type": "string", "enum": ["webp", "gif", "png"]}, "image format"),
             _query("bbox", {"type": "string", "example": "-105,33,-90,43"}, "west,south,east,north in degrees", required=True),
             _query("width", {"type": "integer", "minimum": 64, "maximum": 1600}, "pixels (height follows the bbox)"),
             _query("frames", {"type": "integer", "minimum": 1, "maximum": 48}, "observed frames"),
             _query("nowcast", {"type": "integer", "minimum": 0, "maximum": 120}, "minutes of nowcast"),
             _query("delay", {"type": "integer", "minimum": 20, "maximum": 2000}, "ms per frame"),
             _query("hold", {"type": "integer", "minimum": 0, "maximum": 10000}, "extra ms on the last observed frame"),
             _query("outlines", {"type": "integer", "enum": [0, 1]}, "coastlines and borders"),
             COLORMAP, _query("time", ISO_TIME, "last observed frame, default latest")],
            {"200": {"description": "animation", "content": {m: {"schema": {"type": "string", "format": "binary"}} for m in ("image/webp", "image/gif", "image/png")}},
             "304": {"description": "not modified"}},
            400, 404, 502, 503,
        ),
        "/api/layers": _get("All layers with their frames", [HOURS], {**_json("layers"), **NOT_MODIFIED}, 400, 502, 503),
        "/api/layers/{layer}": _get("One layer: metadata, frames, nowcast frames, runs", [LAYER, HOURS], {**_json("layer"), **NOT_MODIFIED}, 400, 404, 502, 503),
        "/api/layers/{layer}/point": _get(
            "The value at a point and time", [LAYER, *LONLAT, _query("time", ISO_TIME, "frame time, default latest"), RUN],
            _json("value, units, status (ok, no-echo, no-coverage)"), 400, 404, 502, 503,
        ),
        "/api/layers/{layer}/series": _get(
            "Values at a point over time: observed frames and nowcasts, or a model run",
            [LAYER, *LONLAT, _query("start", {"type": "string"}, "first time, ISO 8601 UTC"), _query("end", {"type": "string"}, "last time, ISO 8601 UTC"),
             RUN, _query("format", {"type": "string", "enum": ["json", "csv"]}, "json (default) or csv")],
            {"200": {"description": "series", "content": {"application/json": {"schema": {"type": "object"}}, "text/csv": {"schema": {"type": "string"}}}}},
            400, 404, 502, 503,
        ),
        "/api/layers/{layer}/verification": _get(
            "Live verification of a radar layer's nowcasts: CSI, POD and FAR per lead and threshold, pooled over the rolling window",
            [LAYER], _json("leads, each with cases and per threshold the counts (hits, misses, false_alarms, correct_negatives) and csi, pod, far (null: undefined); window; updated"),
            404, 503,
        ),
        "/api/colormaps": _get("All colormaps", [], _json("colormaps")),
        "/api/colormaps/{name}": _get("A colormap: stops, colours, units", [_path("name", {"type": "string"}, "colormap name")], _json("colormap"), 404),
        "/api/colormaps/{name}/legend.png": _get(
            "A legend image",
            [_path("name", {"type": "string"}, "colormap name"),
             _query("width", {"type": "integer", "minimum": 1, "maximum": 2000}, "pixels"),
             _query("height", {"type": "integer", "minimum": 1, "maximum": 500}, "pixels"),
             _query("layer", {"type": "string"}, "label a normalised scale with this layer's range")],
            _binary("image/png", "legend"), 400, 404,
        ),
        "/metrics": _get("Prometheus metrics", [], _binary("text/plain", "metrics")),
        "/healthz": _get("The process is alive", [], _json("ok")),
        "/readyz": _get("Ready once the store was reached and the catalogs read; the store's health (up or down) in the body",
                        [], {**_json("ready"), "503": {"description": "not ready: the store was never reached", "content": {"application/json": {"schema": {"type": "object"}}}}}),
        "/openapi.json": _get("This document", [], _json("OpenAPI")),
        "/": _get("The radar viewer", [], _binary("text/html", "page")),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "wxtiles", "version": "0.1.0", "description": "Weather radar and forecast map tiles: XYZ, TileJSON, WMTS with time, nowcasts."},
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "paths": paths,
        "components": {"schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}}},
    }
