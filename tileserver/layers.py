"""The layer registry: every layer wxtiles knows, declared as data in one place.

A layer says what a frame holds (units, observed or forecast), how its values are
stored in the COG (:class:`Encoding`), how they are resampled, which colormap
draws them by default, and how to find the field in a source file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Kind = Literal["observed", "forecast"]
Resampling = Literal["nearest", "bilinear"]


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

    dtype: Literal["uint8", "uint16", "int16"]
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
class FieldSelector:
    """How to find a layer's field in a multi-message GRIB2 file, a NetCDF or an ODIM_H5 file.

    Matched against GDAL's band tags: ``GRIB_ELEMENT`` must be one of
    ``elements`` and, when ``levels`` is set, ``GRIB_SHORT_NAME`` one of them.
    For a vector magnitude (wind speed), ``components`` names the two elements.
    """

    elements: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    components: tuple[str, str] | None = None
    # NetCDF variables tried in order (standard_name or variable name).
    netcdf_names: tuple[str, ...] = ()
    # ODIM_H5 quantities (``what/quantity``) tried in order.
    odim_quantities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Layer:
    id: str
    title: str
    units: str
    kind: Kind
    encoding: Encoding
    resampling: Resampling
    colormap: str
    # The range a colour scale should span; also used to clip bad source values.
    value_range: tuple[float, float]
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
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def overview_resampling(self) -> str:
        # Averaging dBZ is wrong (it is logarithmic); averaging linear quantities is right.
        return "nearest" if self.resampling == "nearest" else "average"


# IEM N0Q style: 0.5 dBZ steps; code 0 = no echo, 255 = no coverage. Radar and
# model reflectivity share it, so one colour table and one legend serve both.
DBZ_ENCODING = Encoding(dtype="uint8", scale=0.5, offset=-32.5, nodata=255, no_echo=0)
# 0.01 steps from 0 to 655.34 (mm/h, m/s).
CENTI_ENCODING = Encoding(dtype="uint16", scale=0.01, offset=0.0, nodata=65535)

LAYERS: dict[str, Layer] = {
    layer.id: layer
    for layer in (
        Layer(
            id="reflectivity",
            title="Radar reflectivity (composite)",
            units="dBZ",
            kind="observed",
            encoding=DBZ_ENCODING,
            resampling="nearest",
            colormap="nws-reflectivity",
            value_range=(-10.0, 75.0),
            selector=FieldSelector(
                elements=("MergedReflectivityQCComposite", "MergedReflectivityQComposite", "REFC", "MergedBaseReflectivityQC"),
                netcdf_names=("equivalent_reflectivity_factor", "reflectivity", "DBZH", "dbz", "REFC"),
                # Corrected reflectivity first, then total (uncorrected) reflectivity.
                odim_quantities=("DBZH", "TH", "DBZ"),
            ),
            no_echo_below=-32.0,
            missing_values=(-999.0,),
            cadence_minutes=5,
            nowcast=True,
            thresholds=(20.0, 30.0, 40.0),
            attribution="NOAA MRMS",
        ),
        Layer(
            id="precip-rate",
            title="Precipitation rate",
            units="mm/h",
            kind="observed",
            encoding=CENTI_ENCODING,
            resampling="bilinear",
            colormap="precip-rate",
            value_range=(0.0, 100.0),
            selector=FieldSelector(
                elements=("PrecipRate", "PRATE", "RadarOnlyQPE01H"),
                netcdf_names=("rainfall_rate", "precipitation_flux", "precip_rate", "RATE", "PrecipRate"),
                odim_quantities=("RATE",),
            ),
            missing_values=(-1.0, -3.0, -999.0),
            cadence_minutes=5,
            nowcast=True,
            thresholds=(1.0, 5.0, 10.0),
            attribution="NOAA MRMS",
        ),
        Layer(
            id="reflectivity-model",
            title="Composite reflectivity (model forecast)",
            units="dBZ",
            kind="forecast",
            encoding=DBZ_ENCODING,
            resampling="nearest",
            colormap="nws-reflectivity",
            value_range=(-10.0, 75.0),
            selector=FieldSelector(elements=("REFC",), levels=("0-EATM",), netcdf_names=("REFC", "refc")),
            no_echo_below=-32.0,
            cadence_minutes=60,
            attribution="NOAA NCEP HRRR",
        ),
        Layer(
            id="temperature-2m",
            title="Temperature 2 m (model)",
            units="degC",
            kind="forecast",
            # 0.01 degC steps from -327 to +327 degC.
            encoding=Encoding(dtype="int16", scale=0.01, offset=0.0, nodata=-32768),
            resampling="bilinear",
            colormap="temperature",
            value_range=(-40.0, 45.0),
            selector=FieldSelector(
                elements=("TMP",),
                levels=("2-HTGL",),
                netcdf_names=("air_temperature", "t2m", "TMP_2maboveground", "temperature"),
            ),
            cadence_minutes=60,
            attribution="NOAA NCEP",
        ),
        Layer(
            id="wind-speed-10m",
            title="Wind speed 10 m (model)",
            units="m/s",
            kind="forecast",
            encoding=CENTI_ENCODING,
            resampling="bilinear",
            colormap="wind-speed",
            value_range=(0.0, 40.0),
            selector=FieldSelector(
                elements=("WIND",),
                levels=("10-HTGL",),
                components=("UGRD", "VGRD"),
                netcdf_names=("wind_speed", "si10", "WIND_10maboveground"),
            ),
            cadence_minutes=60,
            attribution="NOAA NCEP",
        ),
    )
}


def get_layer(layer_id: str) -> Layer:
    try:
        return LAYERS[layer_id]
    except KeyError:
        raise UnknownLayerError(layer_id) from None
