"""The layer registry as data: the packaged TOML file, an operator's file, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tileserver.core.layers import BUILTIN_LAYERS_FILE, Encoding, LayerConfigError, load_layers, read_layers_file

MSLP = """
[[layers]]
id = "mslp"
title = "Mean sea-level pressure"
units = "hPa"
kind = "forecast"
colormap = "viridis"
range = [950, 1050]
step = 0.1
match = { grib = ["PRMSL", "MSLET"], netcdf = ["air_pressure_at_sea_level"] }
"""


def test_builtin_encodings_are_those_frames_were_stored_with() -> None:
    """Changing these would make every stored frame read wrongly."""
    layers = load_layers()
    dbz = Encoding(dtype="uint8", scale=0.5, offset=-32.5, nodata=255, no_echo=0)
    centi = Encoding(dtype="uint16", scale=0.01, offset=0.0, nodata=65535)
    assert layers["reflectivity"].encoding == dbz
    assert layers["reflectivity-model"].encoding == dbz
    assert layers["precip-rate"].encoding == centi
    assert layers["wind-speed-10m"].encoding == centi
    assert layers["temperature-2m"].encoding == Encoding(dtype="int16", scale=0.01, offset=0.0, nodata=-32768)
    assert list(layers)[:5] == ["reflectivity", "precip-rate", "reflectivity-model", "temperature-2m", "wind-speed-10m"]
    for model in ("hrrr", "gfs"):  # each model's layers store values as the generic ones do
        for variable in ("temperature-2m", "wind-speed-10m"):
            assert layers[f"{model}-{variable}"].encoding == layers[variable].encoding
            assert layers[f"{model}-{variable}"].model == model


def test_observed_layers_take_no_model_fields() -> None:
    layers = load_layers()
    for layer in layers.values():
        if layer.kind == "observed":
            assert not {"REFC", "PRATE"} & {m.element for m in layer.selector.grib}, layer.id


def test_an_operators_file_adds_a_layer_with_a_derived_encoding(tmp_path: Path) -> None:
    extra = tmp_path / "layers.toml"
    extra.write_text(MSLP)
    layers = load_layers(extra)
    mslp = layers["mslp"]
    assert len(layers) == len(load_layers()) + 1 and mslp.units == "hPa" and mslp.kind == "forecast"
    assert mslp.encoding.dtype == "uint16" and mslp.encoding.scale == 0.1
    low, high = mslp.encoding.value_range
    # The colour range sits inside the codes with room for deep lows and strong highs.
    assert low < 700 and high > 1300
    assert mslp.plausible_range == (850.0, 1150.0)
    assert [str(m) for m in mslp.selector.grib] == ["PRMSL", "MSLET"]


def test_an_operators_file_replaces_a_layer_by_id(tmp_path: Path) -> None:
    extra = tmp_path / "layers.toml"
    builtin = BUILTIN_LAYERS_FILE.read_text()
    extra.write_text(builtin.split("[[layers]]")[4].join(["[[layers]]", ""]).replace('"Temperature 2 m (model)"', '"2 m air temperature"'))
    layers = load_layers(extra)
    assert layers["temperature-2m"].title == "2 m air temperature"
    assert len(layers) == len(load_layers())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('units = "hPa"\n', ""), "layer 'mslp'), key 'units': missing"),
        (lambda t: t.replace("step = 0.1", "step = 0.1\nstpe = 2"), "layer 'mslp'), key 'stpe': unknown key"),
        (lambda t: t.replace("step = 0.1", 'step = "fine"'), "key 'step': expected a number, got 'fine'"),
        (lambda t: t.replace("step = 0.1", "step = 0.0001"), "key 'step': uint16 codes of 0.0001"),
        (lambda t: t.replace("range = [950, 1050]", "range = [1050, 950]"), "key 'range': expected [min, max] with min < max"),
        (lambda t: t.replace('"viridis"', '"viridian"'), "key 'colormap': unknown colormap 'viridian'"),
        (lambda t: t.replace('"viridis"', '"temperature"'), "key 'colormap': 'temperature' is in degC, the layer in hPa"),
        (lambda t: t.replace('"forecast"', '"analysis"'), "key 'kind': must be one of observed, forecast"),
        (lambda t: t.replace('id = "mslp"', 'id = "Sea Level"'), "key 'id': 'Sea Level' must be lower-case"),
        (lambda t: t.replace("match = {", "match = { grbi = [], "), "key 'match.grbi': unknown key"),
        (lambda t: t + t, "layer 'mslp' is defined twice"),
        (lambda t: t.replace("[[layers]]", "[layers"), "not valid TOML"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_wrong_file_names_the_layer_and_the_key(tmp_path: Path, edit, message: str) -> None:  # noqa: ANN001
    path = tmp_path / "layers.toml"
    path.write_text(edit(MSLP))
    with pytest.raises(LayerConfigError) as caught:
        read_layers_file(path)
    text = str(caught.value)
    assert message in text and str(path) in text
    assert "\n" not in text


def test_a_layer_like_another_takes_its_keys_and_overrides_some(tmp_path: Path) -> None:
    extra = tmp_path / "layers.toml"
    extra.write_text(MSLP + """
[[layers]]
id = "ecmwf-mslp"
like = "mslp"
model = "ecmwf"
title = "Mean sea-level pressure (ECMWF)"
match = { grib = ["MSL"] }
""")
    layers = load_layers(extra)
    assert layers["ecmwf-mslp"].encoding == layers["mslp"].encoding and layers["ecmwf-mslp"].model == "ecmwf"
    assert [m.element for m in layers["ecmwf-mslp"].selector.grib] == ["MSL"]


@pytest.mark.parametrize(
    ("blend", "message"),
    [
        ('["hrrr-temperature-2m", "nope"]', "no layer 'nope'"),
        ('["hrrr-temperature-2m", "hrrr-wind-speed-10m"]', "'hrrr-wind-speed-10m' differs in kind, units or storage"),
        ('["hrrr-temperature-2m"]', "expected two or more layer ids"),
    ],
)
def test_a_wrong_blend_is_refused(tmp_path: Path, blend: str, message: str) -> None:
    extra = tmp_path / "layers.toml"
    extra.write_text(f'[[layers]]\nid = "my-best"\nlike = "temperature-2m"\nblend = {blend}\n')
    with pytest.raises(LayerConfigError, match=message):
        load_layers(extra)


@pytest.mark.parametrize("command", [["ingest", "x.grib2", "--layer", "mslp"], ["serve", "--port", "1"], ["prune"]])
def test_commands_stop_on_a_wrong_layers_file_in_one_line(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "layers.toml"
    path.write_text(MSLP.replace("step = 0.1", "step = -1"))
    env = {**os.environ, "WXTILES_LAYERS": str(path), "WXTILES_STORE": str(tmp_path / "store")}
    done = subprocess.run([sys.executable, "-m", "tileserver.cli", *command], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "key 'step': must be more than 0" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "store").exists()


def test_a_missing_layers_file_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "WXTILES_LAYERS": str(tmp_path / "nope.toml"), "WXTILES_STORE": str(tmp_path / "store")}
    done = subprocess.run([sys.executable, "-m", "tileserver.cli", "prune"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and done.stderr.strip() == f"wxtiles: layers file {tmp_path / 'nope.toml'}: no such file"
