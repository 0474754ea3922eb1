"""Descriptions GIS clients read: TileJSON 3.0.0 and OGC WMTS 1.0.0 capabilities.

Both are built from the layer metadata the service already has; ``base_url`` is
the externally visible root (proxy headers applied), so every URL is absolute
and right behind a reverse proxy.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree as ET

from tileserver.core import grid
from tileserver.service.params import MAX_ZOOM

TILE_MATRIX_SET = "GoogleMapsCompatible"
# The model run as a WMTS dimension, named as OGC 12-111r1 and WMS servers such as
# ECCC GeoMet name it (WMS clients send it as DIM_REFERENCE_TIME).
REFERENCE_TIME = "DIM_REFERENCE_TIME"
NS = {
    "": "http://www.opengis.net/wmts/1.0",
    "ows": "http://www.opengis.net/ows/1.1",
    "xlink": "http://www.w3.org/1999/xlink",
    "gml": "http://www.opengis.net/gml",
}


def tilejson(info: dict[str, Any], base_url: str, time: str, colormap: str | None, run: str | None = None) -> dict[str, Any]:
    """TileJSON 3.0.0 for one layer at one time (``latest`` by default), of one model run if given."""
    options = {key: value for key, value in (("colormap", colormap), ("run", run)) if value}
    query = f"?{urlencode(options)}" if options else ""
    west, south, east, north = info["bounds"]
    zoom = max(info["minzoom"], min(info["maxzoom"], 4))
    legend_url = info["legend"]
    return {
        "tilejson": "3.0.0",
        "name": info["title"],
        "description": f"{info['title']} ({info['units']}), {info['kind']}; frame {time}" + (f", model run {run}" if run else ""),
        "version": "1.0.0",
        "attribution": info["attribution"],
        "scheme": "xyz",
        "tiles": [f"{base_url}tiles/{info['id']}/{time}/{{z}}/{{x}}/{{y}}.png{query}"],
        "minzoom": info["minzoom"],
        "maxzoom": info["maxzoom"],
        "bounds": [west, south, east, north],
        "center": [round((west + east) / 2, 6), round((south + north) / 2, 6), zoom],
        "legend": f'<img src="{legend_url}" alt="{info["title"]} legend, {info["units"]}">',
        # Extensions (TileJSON allows more keys): what the frames are.
        "units": info["units"],
        "time": time,
        "run": run,
        "frames": _run_frames(info, run) if run else info["frames"],
        "nowcast": [n["time"] for n in info.get("nowcast", [])],
    }


def _run_frames(info: dict[str, Any], run: str) -> list[str]:
    return next((r["frames"] for r in info.get("runs", []) if r["run"] == run), [])


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def _sub(parent: ET.Element, prefix: str, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, _q(prefix, tag), {(_q("xlink", k[6:]) if k.startswith("xlink_") else k): v for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def wmts_capabilities(layers: list[dict[str, Any]], base_url: str) -> bytes:
    for prefix, uri in NS.items():
        ET.register_namespace(prefix, uri)
    root = ET.Element(_q("", "Capabilities"), {"version": "1.0.0"})
    identification = _sub(root, "ows", "ServiceIdentification")
    _sub(identification, "ows", "Title", "wxtiles weather radar and forecast tiles")
    _sub(identification, "ows", "ServiceType", "OGC WMTS")
    _sub(identification, "ows", "ServiceTypeVersion", "1.0.0")

    operations = _sub(root, "ows", "OperationsMetadata")
    for operation, restful in (("GetCapabilities", f"{base_url}wmts/1.0.0/WMTSCapabilities.xml"), ("GetTile", f"{base_url}wmts/1.0.0/")):
        op = _sub(operations, "ows", "Operation", name=operation)
        http = _sub(_sub(op, "ows", "DCP"), "ows", "HTTP")
        for encoding, href in (("KVP", f"{base_url}wmts?"), ("RESTful", restful)):
            get = _sub(http, "ows", "Get", xlink_href=href)
            constraint = _sub(get, "ows", "Constraint", name="GetEncoding")
            _sub(_sub(constraint, "ows", "AllowedValues"), "ows", "Value", encoding)

    contents = _sub(root, "", "Contents")
    for info in layers:
        _layer(contents, info, base_url)
    _tile_matrix_set(contents)
    _sub(root, "", "ServiceMetadataURL", xlink_href=f"{base_url}wmts/1.0.0/WMTSCapabilities.xml")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def layer_times(info: dict[str, Any]) -> tuple[list[str], str | None]:
    """Every time a layer can be drawn at (observed, then nowcast) and its default."""
    times = list(info["frames"]) + [n["time"] for n in info.get("nowcast", [])]
    return times, info["latest"]


def _layer(contents: ET.Element, info: dict[str, Any], base_url: str) -> None:
    layer = _sub(contents, "", "Layer")
    _sub(layer, "ows", "Title", info["title"])
    _sub(layer, "ows", "Abstract", f"{info['title']} in {info['units']} ({info['kind']}). {info['attribution']}")
    west, south, east, north = info["bounds"]
    bbox = _sub(layer, "ows", "WGS84BoundingBox")
    _sub(bbox, "ows", "LowerCorner", f"{west} {south}")
    _sub(bbox, "ows", "UpperCorner", f"{east} {north}")
    _sub(layer, "ows", "Identifier", info["id"])
    style = _sub(layer, "", "Style", isDefault="true")
    _sub(style, "ows", "Identifier", "default")
    _sub(style, "", "LegendURL", format="image/png", xlink_href=info["legend"])
    _sub(layer, "", "Format", "image/png")
    times, default = layer_times(info)
    dimension = _sub(layer, "", "Dimension")
    _sub(dimension, "ows", "Identifier", "Time")
    _sub(dimension, "ows", "UOM", "ISO8601")
    _sub(dimension, "", "Default", default or "latest")
    _sub(dimension, "", "Current", "true")
    for value in times or ["latest"]:
        _sub(dimension, "", "Value", value)
    runs = [r["run"] for r in info.get("runs", [])]
    if runs:
        # Forecast layers: the model run next to the valid time; newest by default.
        dimension = _sub(layer, "", "Dimension")
        _sub(dimension, "ows", "Identifier", REFERENCE_TIME)
        _sub(dimension, "ows", "UOM", "ISO8601")
        _sub(dimension, "", "Default", runs[-1])
        for value in runs:
            _sub(dimension, "", "Value", value)
    link = _sub(layer, "", "TileMatrixSetLink")
    _sub(link, "", "TileMatrixSet", TILE_MATRIX_SET)
    run_query = f"?run={{{REFERENCE_TIME}}}" if runs else ""
    _sub(
        layer, "", "ResourceURL", format="image/png", resourceType="tile",
        template=f"{base_url}wmts/1.0.0/{info['id']}/default/{{Time}}/{TILE_MATRIX_SET}/{{TileMatrix}}/{{TileRow}}/{{TileCol}}.png{run_query}",
    )


def _tile_matrix_set(contents: ET.Element) -> None:
    tms = _sub(contents, "", "TileMatrixSet")
    _sub(tms, "ows", "Identifier", TILE_MATRIX_SET)
    _sub(tms, "ows", "SupportedCRS", "urn:ogc:def:crs:EPSG::3857")
    _sub(tms, "", "WellKnownScaleSet", "urn:ogc:def:wkss:OGC:1.0:GoogleMapsCompatible")
    for zoom in range(MAX_ZOOM + 1):
        matrix = _sub(tms, "", "TileMatrix")
        _sub(matrix, "ows", "Identifier", str(zoom))
        _sub(matrix, "", "ScaleDenominator", repr(grid.scale_denominator(zoom)))
        _sub(matrix, "", "TopLeftCorner", "{} {}".format(*grid.top_left()))
        _sub(matrix, "", "TileWidth", "256")
        _sub(matrix, "", "TileHeight", "256")
        _sub(matrix, "", "MatrixWidth", str(2**zoom))
        _sub(matrix, "", "MatrixHeight", str(2**zoom))
