"""The layer registry: every layer wxtiles knows, read from TOML.

A layer says what a frame holds (units, observed or forecast), how its values are
stored in the COG (:class:`Encoding`), how they are resampled, which colormap
draws them by default, and how to find the field in a source file
(:class:`FieldSelector`). The built-in layers are ``layers.toml`` beside this
module; ``WXTILES_LAYERS`` names an operator's file that adds layers or replaces
built-in ones by id. A wrong file raises :class:`LayerConfigError`, one line
naming the layer and the key.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

import colormaps

Kind = Literal["observed", "forecast"]
Resampling = Literal["nearest", "bilinear"]


DType = Literal["uint8", "uint16", "int16"]

BUILTIN_LAYERS_FILE = Path(__file__).with_name("layers.toml")
LAYERS_ENV = "WXTILES_LAYERS"


class LayerConfigError(ValueError):
    """A layers file that cannot be used; the message is one line naming the file, layer and key."""


class UnknownLayerError(KeyError):
    def __str__(self) -> str:
        return f"unknown layer {self.args[0]!r}; known layers: {', '.join(LAYERS)}"


@dataclass(frozen=True)
class Encoding:
    """Linear quantisation of physical values into integer codes.

    ``value = code * scale + offset`` for ordinary codes. ``nodata`` is "no
    coverage" (decoded as NaN). ``no_echo`` (optional) is "measured, nothing
    there" (radar below detection), decoded as -inf so it stays distinct from
    no coverage, as MRMS keeps -99 apart from -999.
    """

    dtype: DType
    scale: float
    offset: float
    nodata: int
    no_echo: int | None = None

    @property
    def code_range(self) -> tuple[int, int]:
        info = np.iinfo(self.dtype)
        reserved = {self.nodata, self.no_echo}
        low, high = int(info.min), int(info.max)
        while low in reserved:
            low += 1
        while high in reserved:
            high -= 1
        return low, high

    @property
    def value_range(self) -> tuple[float, float]:
        low, high = self.code_range
        return low * self.scale + self.offset, high * self.scale + self.offset

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Physical float values (NaN = no coverage, -inf = no echo) to codes."""
        low, high = self.code_range
        codes = np.rint((values - self.offset) / self.scale)
        codes = np.clip(np.nan_to_num(codes, nan=low, posinf=high, neginf=low), low, high)
        out = codes.astype(self.dtype)
        out[np.isnan(values)] = self.nodata
        if self.no_echo is not None:
            out[np.isneginf(values)] = self.no_echo
        return out

    def decode(self, codes: np.ndarray) -> np.ndarray:
        values = codes.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)
        values[codes == self.nodata] = np.nan
        if self.no_echo is not None:
            values[codes == self.no_echo] = -np.inf
        return values

    def decode_table(self) -> np.ndarray:
        """Decoded value of every possible code, indexed by ``code - iinfo.min``."""
        info = np.iinfo(self.dtype)
        return self.decode(np.arange(int(info.min), int(info.max) + 1, dtype=np.int64).astype(self.dtype))

    @property
    def table_offset(self) -> int:
        return -int(np.iinfo(self.dtype).min)


@dataclass(frozen=True)
class GribMatch:
    """A GRIB element (GDAL's ``GRIB_ELEMENT``) and the levels it is taken at
    (``GRIB_SHORT_NAME``, such as ``2-HTGL``; empty = any level)."""

    element: str
    levels: tuple[str, ...] = ()

    def matches(self, element: str, level: str) -> bool:
        return element == self.element and (not self.levels or level in self.levels)

    def __str__(self) -> str:
        return f"{self.element} at {'/'.join(self.levels)}" if self.levels else self.element


@dataclass(frozen=True)
class FieldSelector:
    """How to find a layer's field in a source file, in order of preference.

    ``grib`` and ``netcdf`` name the field itself (NetCDF: variable or
    ``standard_name``), ``odim`` the ODIM_H5 quantities. A vector magnitude
    (wind speed) may instead be computed from component pairs, each pair
    naming its eastward and northward components as GRIB elements or NetCDF
    names; a pair is tried before the field itself in GRIB files, where a
    model's own speed field is often a period maximum.
    """

    grib: tuple[GribMatch, ...] = ()
    netcdf: tuple[str, ...] = ()
    odim: tuple[str, ...] = ()
    grib_components: tuple[tuple[GribMatch, GribMatch], ...] = ()
    netcdf_components: tuple[tuple[str, str], ...] = ()

    @property
    def is_vector(self) -> bool:
        return bool(self.grib_components or self.netcdf_components)


@dataclass(frozen=True)
class Layer:
    id: str
    title: str
    units: str
    kind: Kind
    encoding: Encoding
    resampling: Resampling
    colormap: str
    # The range a colour scale spans.
    value_range: tuple[float, float]
    # The range the bulk of a source field must fall in, or the file is refused
    # (a unit mistake, such as Kelvin labelled Celsius, shows up here).
    plausible_range: tuple[float, float]
    selector: FieldSelector
    # Source values below this are "no echo" (MRMS writes -99 dBZ for it).
    no_echo_below: float | None = None
    # Source values in this set mean "no coverage" in addition to the file's nodata.
    missing_values: tuple[float, ...] = ()
    # Nominal time between frames, for viewers and nowcasting.
    cadence_minutes: int = 5
    # Observed radar layers get nowcast frames extrapolated from their motion.
    nowcast: bool = False
    # Event thresholds (in ``units``) at which nowcasts are verified (CSI, POD, FAR).
    thresholds: tuple[float, ...] = ()
    attribution: str = ""
    # The model a forecast layer holds (``hrrr``, ``gfs``), part of its identity: model
    # fetchers fill only their own layers. None: a file of any origin ingested by hand.
    model: str | None = None
    # A seamless view: no frames of its own, each pixel from the first of these
    # layers with data there, at the newest run of each (tileserver/service/blend.py).
    blend: tuple[str, ...] = ()

    @property
    def overview_resampling(self) -> str:
        # Averaging dBZ is wrong (it is logarithmic); averaging linear quantities is right.
        return "nearest" if self.resampling == "nearest" else "average"



# --- reading layers files -------------------------------------------------

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_KEYS = {
    "id", "title", "units", "kind", "colormap", "range", "plausible", "step", "dtype", "offset", "nodata",
    "no_echo", "no_echo_below", "missing_values", "resampling", "cadence_minutes", "nowcast", "thresholds",
    "attribution", "match", "model", "blend",
}
_MATCH_KEYS = {"grib", "grib_level", "netcdf", "odim", "speed_of"}
_DEFAULT_NODATA: dict[str, int] = {"uint8": 255, "uint16": 65535, "int16": -32768}


class _Entry:
    """One ``[[layers]]`` table, read key by key with errors that name both."""

    def __init__(self, table: Mapping[str, Any], where: str) -> None:
        self.table = table
        self.where = where

    def fail(self, key: str, problem: str) -> LayerConfigError:
        return LayerConfigError(f"{self.where}, key {key!r}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        if key not in self.table:
            if required:
                raise self.fail(key, "missing")
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # TOML's true is a Python int too: a number key must not take it.
        wrong_bool = isinstance(value, bool) and bool not in kinds
        if wrong_bool or not isinstance(value, kinds):
            raise self.fail(key, f"expected {_kind_name(kind)}, got {value!r}")
        return value

    def text(self, key: str, required: bool = True, default: str = "") -> str:
        value = self.get(key, str, default, required)
        if required and not value.strip():
            raise self.fail(key, "must not be empty")
        return value

    def number(self, key: str, default: float | None = None, required: bool = False) -> float | None:
        value = self.get(key, (int, float), default, required)
        if value is not None and not math.isfinite(value):
            raise self.fail(key, f"must be a finite number, got {value!r}")
        return None if value is None else float(value)

    def choice(self, key: str, options: tuple[str, ...], default: str | None = None) -> str:
        value = self.get(key, str, default, default is None)
        if value not in options:
            raise self.fail(key, f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def numbers(self, key: str, length: int | None = None) -> tuple[float, ...] | None:
        value = self.get(key, list)
        if value is None:
            return None
        if length is not None and len(value) != length:
            raise self.fail(key, f"expected {length} numbers, got {value!r}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            raise self.fail(key, f"expected numbers, got {value!r}")
        return tuple(float(v) for v in value)

    def span(self, key: str, required: bool) -> tuple[float, float] | None:
        value = self.numbers(key, 2)
        if value is None:
            if required:
                raise self.fail(key, "missing")
            return None
        if not value[0] < value[1]:
            raise self.fail(key, f"expected [min, max] with min < max, got {list(value)}")
        return value[0], value[1]


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "a number", float: "a number", str: "a string", bool: "true or false", list: "a list", dict: "a table"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _encoding(entry: _Entry, value_range: tuple[float, float]) -> Encoding:
    step = entry.number("step", required=True)
    assert step is not None
    if step <= 0:
        raise entry.fail("step", f"must be more than 0, got {step:g}")
    dtype = entry.choice("dtype", ("uint8", "uint16", "int16"), "uint16")
    info = np.iinfo(dtype)
    nodata = entry.get("nodata", int, _DEFAULT_NODATA[dtype])
    no_echo = entry.get("no_echo", int)
    for key, code in (("nodata", nodata), ("no_echo", no_echo)):
        if code is not None and not info.min <= code <= info.max:
            raise entry.fail(key, f"{code} does not fit in {dtype}")
    offset = entry.number("offset")
    if offset is None:
        # Physical zero at code zero for quantities that are never negative;
        # otherwise the colour range sits in the middle of the codes.
        middle = (value_range[0] + value_range[1]) / 2
        centre = (int(info.min) + int(info.max)) // 2
        offset = 0.0 if value_range[0] >= 0 and info.min == 0 else round(middle / step) * step - centre * step
    encoding = Encoding(dtype=dtype, scale=step, offset=offset, nodata=nodata, no_echo=no_echo)
    low, high = encoding.value_range
    if low > value_range[0] + step / 2 or high < value_range[1] - step / 2:
        raise entry.fail("step", f"{dtype} codes of {step:g} from offset {offset:g} reach {low:g} to {high:g}, "
                                 f"short of the range {value_range[0]:g} to {value_range[1]:g}; use a coarser step or a wider dtype")
    return encoding


def _grib_match(entry: _Entry, text: Any, levels: tuple[str, ...], key: str) -> GribMatch:
    if not isinstance(text, str) or not text.strip():
        raise entry.fail(key, f"expected GRIB element names such as \"TMP\" or \"TMP:2-HTGL\", got {text!r}")
    element, _, level = text.partition(":")
    return GribMatch(element.strip(), (level.strip(),) if level else levels)


def _names(entry: _Entry, table: Mapping[str, Any], key: str) -> list[Any]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise entry.fail(key if table is entry.table else f"match.{key}", f"expected a list of names, got {value!r}")
    return value


def _selector(entry: _Entry) -> FieldSelector:
    match = entry.get("match", dict, required=True)
    unknown = sorted(set(match) - _MATCH_KEYS)
    if unknown:
        raise entry.fail(f"match.{unknown[0]}", f"unknown key; match takes {', '.join(sorted(_MATCH_KEYS))}")
    levels = tuple(_names(entry, match, "grib_level"))
    if not all(isinstance(level, str) and level for level in levels):
        raise entry.fail("match.grib_level", f"expected level short names such as \"2-HTGL\", got {list(levels)!r}")
    grib = tuple(_grib_match(entry, name, levels, "match.grib") for name in _names(entry, match, "grib"))
    plain: dict[str, tuple[str, ...]] = {}
    for key in ("netcdf", "odim"):
        names = _names(entry, match, key)
        if not all(isinstance(name, str) and name.strip() for name in names):
            raise entry.fail(f"match.{key}", f"expected a list of names, got {names!r}")
        plain[key] = tuple(name.strip() for name in names)
    pairs = _names(entry, match, "speed_of")
    if pairs and all(isinstance(p, str) for p in pairs):
        pairs = [pairs]  # one pair written flat: speed_of = ["UGRD", "VGRD"]
    grib_pairs: list[tuple[GribMatch, GribMatch]] = []
    netcdf_pairs: list[tuple[str, str]] = []
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) and p.strip() for p in pair)):
            raise entry.fail("match.speed_of", f"expected [eastward, northward] component names, got {pair!r}")
        u, v = (_grib_match(entry, p, levels, "match.speed_of") for p in pair)
        grib_pairs.append((u, v))
        if ":" not in pair[0] + pair[1]:
            netcdf_pairs.append((pair[0].strip(), pair[1].strip()))
    selector = FieldSelector(grib, plain["netcdf"], plain["odim"], tuple(grib_pairs), tuple(netcdf_pairs))
    if not (selector.grib or selector.netcdf or selector.odim or selector.is_vector):
        raise entry.fail("match", "names no field: give grib, netcdf, odim or speed_of names (or make the layer a blend)")
    return selector


def _model(entry: _Entry, kind: str) -> str | None:
    model = entry.get("model", str)
    if model is None:
        return None
    if not _ID.match(model):
        raise entry.fail("model", f"{model!r} must be lower-case letters, digits, '.', '_' or '-'")
    if kind != "forecast":
        raise entry.fail("model", "only forecast layers come from a model; observed layers take observations")
    return model


def parse_layer(table: Mapping[str, Any], where: str) -> Layer:
    """One ``[[layers]]`` table as a :class:`Layer`; ``where`` names it in errors."""
    entry = _Entry(table, where)
    layer_id = entry.text("id")
    if not _ID.match(layer_id):
        raise entry.fail("id", f"{layer_id!r} must be lower-case letters, digits, '.', '_' or '-' (one URL path segment)")
    entry.where = f"{where} (layer {layer_id!r})"
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise entry.fail(unknown[0], "unknown key")
    kind = entry.choice("kind", ("observed", "forecast"))
    value_range = entry.span("range", required=True)
    assert value_range is not None
    span = value_range[1] - value_range[0]
    plausible = entry.span("plausible", required=False) or (value_range[0] - span, value_range[1] + span)
    cadence = entry.get("cadence_minutes", int, 5)
    if not 1 <= cadence <= 1440:
        raise entry.fail("cadence_minutes", f"must be 1 to 1440, got {cadence}")
    blend = tuple(_names(entry, table, "blend"))
    if not all(isinstance(name, str) and name for name in blend) or len(blend) == 1:
        raise entry.fail("blend", f"expected two or more layer ids, most preferred first, got {list(blend)!r}")
    thresholds = entry.numbers("thresholds") or ()
    missing = entry.numbers("missing_values") or ()
    colormap = entry.text("colormap")
    if colormap not in colormaps.names():
        raise entry.fail("colormap", f"unknown colormap {colormap!r}; known: {', '.join(colormaps.names())}")
    units = entry.text("units")
    found = colormaps.get(colormap)
    if found.units is not None and found.units != units:
        raise entry.fail("colormap", f"{colormap!r} is in {found.units}, the layer in {units}; use a normalised scale such as viridis")
    return Layer(
        id=layer_id,
        title=entry.text("title"),
        units=units,
        kind=kind,  # type: ignore[arg-type]
        encoding=_encoding(entry, value_range),
        resampling=entry.choice("resampling", ("nearest", "bilinear"), "bilinear"),  # type: ignore[arg-type]
        colormap=colormap,
        value_range=value_range,
        plausible_range=plausible,
        selector=FieldSelector() if blend else _selector(entry),
        no_echo_below=entry.number("no_echo_below"),
        missing_values=missing,
        cadence_minutes=cadence,
        nowcast=entry.get("nowcast", bool, False),
        thresholds=thresholds,
        attribution=entry.text("attribution", required=False),
        model=_model(entry, kind),
        blend=blend,
    )


def read_layers_file(path: Path, known: Mapping[str, Mapping[str, Any]] | None = None) -> list[Layer]:
    """The layers of one file; ``like`` may name a layer of ``known`` (id -> resolved table) or of the file."""
    return [layer for layer, _ in _read_file(path, dict(known or {}))]


def _read_file(path: Path, known: dict[str, Mapping[str, Any]]) -> list[tuple[Layer, dict[str, Any]]]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LayerConfigError(f"layers file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LayerConfigError(f"layers file {path}: unreadable ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise LayerConfigError(f"layers file {path}: not valid TOML ({exc})") from None
    unknown = sorted(set(document) - {"layers"})
    if unknown:
        raise LayerConfigError(f"layers file {path}: unknown top-level key {unknown[0]!r}; write [[layers]] tables")
    tables = document.get("layers", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise LayerConfigError(f"layers file {path}: 'layers' must be [[layers]] tables")
    out: list[tuple[Layer, dict[str, Any]]] = []
    seen: set[str] = set()
    for number, table in enumerate(tables, 1):
        where = f"layers file {path}, entry {number}"
        resolved = _resolve_like(table, known, where)
        layer = parse_layer(resolved, where)
        if layer.id in seen:
            raise LayerConfigError(f"layers file {path}: layer {layer.id!r} is defined twice")
        seen.add(layer.id)
        known[layer.id] = resolved
        out.append((layer, resolved))
    return out


def _resolve_like(table: Mapping[str, Any], known: Mapping[str, Mapping[str, Any]], where: str) -> dict[str, Any]:
    """``like = "other-id"``: every key of that layer, then this entry's own keys over them."""
    if "like" not in table:
        return dict(table)
    base_id = table["like"]
    if not isinstance(base_id, str) or base_id not in known:
        shown = f" (layer {table['id']!r})" if isinstance(table.get("id"), str) else ""
        raise LayerConfigError(f"{where}{shown}, key 'like': no layer {base_id!r} defined before this one; known: {', '.join(known)}")
    merged = {key: value for key, value in known[base_id].items() if key != "id"}
    merged.update((key, value) for key, value in table.items() if key != "like")
    return merged


def load_layers(extra: Path | None = None) -> dict[str, Layer]:
    """The built-in layers, then ``extra``'s, which add layers or replace built-in ones by id."""
    known: dict[str, Mapping[str, Any]] = {}
    origin: dict[str, Path] = {}
    layers: dict[str, Layer] = {}
    for path in (BUILTIN_LAYERS_FILE, *([extra] if extra is not None else [])):
        for layer, _ in _read_file(path, known):
            layers[layer.id] = layer
            origin[layer.id] = path
    for layer in layers.values():
        if layer.blend:
            _check_blend(layer, layers, f"layers file {origin[layer.id]} (layer {layer.id!r}), key 'blend'")
    return layers


def _check_blend(layer: Layer, layers: Mapping[str, Layer], where: str) -> None:
    """A blend's sources exist, hold frames of their own, and store values as the blend reads them."""
    for source_id in layer.blend:
        source = layers.get(source_id)
        if source is None:
            raise LayerConfigError(f"{where}: no layer {source_id!r}")
        if source.blend:
            raise LayerConfigError(f"{where}: {source_id!r} is a blend itself")
        if source.kind != layer.kind or source.units != layer.units or source.encoding != layer.encoding:
            raise LayerConfigError(f"{where}: {source_id!r} differs in kind, units or storage (step, dtype, offset, nodata); a blend mixes stored codes")


class LayerRegistry(Mapping[str, Layer]):
    """The layers of this process, read on first use from the files the environment names.

    Reading lazily lets the command line report a wrong ``WXTILES_LAYERS`` file as
    one line instead of failing at import.
    """

    def __init__(self) -> None:
        self._layers: dict[str, Layer] | None = None

    def _load(self) -> dict[str, Layer]:
        if self._layers is None:
            extra = os.environ.get(LAYERS_ENV, "").strip()
            self._layers = load_layers(Path(extra) if extra else None)
        return self._layers

    def __getitem__(self, layer_id: str) -> Layer:
        return self._load()[layer_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


LAYERS = LayerRegistry()


def get_layer(layer_id: str) -> Layer:
    try:
        return LAYERS[layer_id]
    except KeyError:
        raise UnknownLayerError(layer_id) from None
