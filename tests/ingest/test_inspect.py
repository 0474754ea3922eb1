"""``wxtiles inspect`` on real files: what a user runs before ingesting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ingest.real_cases import DATA, ERA5, GFS_25, NCEP, ODIM, REDUCED

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside the project")


def inspect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tileserver.cli", "inspect", *args], capture_output=True, text=True,
                          env={**os.environ}, timeout=120)


def test_text_lists_every_message_and_where_each_layer_comes_from() -> None:
    done = inspect(str(GFS_25), str(ERA5), str(NCEP), str(ODIM))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "GRIB, 144 x 73 cells" in out
    assert "  217       TMP             2-HTGL        [K]               2011-01-15T12:00:00Z  2011-01-10T12:00:00Z" in out
    assert "temperature-2m: band 217" in out and "wind-speed-10m: speed of bands 222 and 223" in out
    # ERA5's 2T is in Kelvin whatever GDAL's GRIB1 table says.
    assert "2T              0-SFC         [K]" in out
    assert "temperature-2m: band 1, 20 time steps" in out
    assert "ODIM_H5 COMP, 710 x 640 cells" in out and "precip-rate: band dataset1/data1" in out
    assert "reflectivity: no (no ODIM_H5 quantity for layer reflectivity (looked for DBZH, TH, DBZ; file has RATE))" in out


def test_json_for_scripts() -> None:
    done = inspect("--json", str(GFS_25))
    assert done.returncode == 0
    (info,) = json.loads(done.stdout)["files"]
    assert info["format"] == "GRIB" and (info["width"], info["height"]) == (144, 73)
    assert len(info["fields"]) == 343
    prmsl = next(f for f in info["fields"] if f["name"] == "PRMSL")
    assert prmsl["units"] == "[Pa]" and prmsl["level"] == "0-MSL" and prmsl["reference"] == "2011-01-10T12:00:00Z"
    assert info["layers"]["wind-speed-10m"] == {"bands": ["222", "223"], "steps": 1, "speed": True}
    assert "no GRIB message for layer reflectivity" in info["layers"]["reflectivity"]["reason"]


def test_a_file_that_cannot_be_read_is_one_line_and_exit_1(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    done = inspect(str(REDUCED), str(text), str(tmp_path / "missing.nc"))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3 and "Traceback" not in done.stderr
    assert "reduced Gaussian grid" in lines[0]
    assert lines[1] == f"{text}: unsupported format: not a GeoTIFF, NetCDF, GRIB or ODIM_H5 file wxtiles can read"
    assert lines[2] == f"{tmp_path / 'missing.nc'}: no such file"
