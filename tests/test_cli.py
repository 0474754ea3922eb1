"""The ``wxtiles`` command as a user runs it: exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import T0, minutes, radar_file


def wxtiles(*args: str, store: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "WXTILES_STORE": str(store), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tileserver.cli", *args], capture_output=True, text=True, env=environ, timeout=300,
    )


def test_ingest_good_and_bad_files(tmp_path: Path) -> None:
    store = tmp_path / "store"
    good = [radar_file(tmp_path, T0 + minutes(m), m) for m in (0, 5)]
    truncated = tmp_path / "MRMS_MergedReflectivityQCComposite_00.50_20261127-211000.grib2.gz"
    truncated.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 40)
    text = tmp_path / "notes.txt"
    text.write_text("not a raster")
    missing = tmp_path / "missing.grib2"
    result = wxtiles("ingest", str(good[0]), str(truncated), str(text), str(missing), str(good[1]), "--layer", "reflectivity", "--quiet", store=store)
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 4, result.stderr
    assert errors[0].startswith(str(truncated)) and "corrupt gzip" in errors[0]
    assert errors[1] == f"{text}: unsupported format: not a GeoTIFF, NetCDF, GRIB or ODIM_H5 file wxtiles can read"
    assert errors[2].startswith(str(missing)) and "no such file" in errors[2]
    assert errors[3] == "3 of 5 files failed"
    assert "Traceback" not in result.stderr
    catalog = json.loads((store / "catalog" / "reflectivity.json").read_text())
    assert [f["time"] for f in catalog["frames"]] == ["2026-11-27T21:00:00Z", "2026-11-27T21:05:00Z"]
    # Nothing of the failed files was left in the store.
    assert len([p for p in store.rglob("*.tif") if not p.name.endswith(".motion.tif")]) == 2


def test_ingest_reports_each_frame(tmp_path: Path) -> None:
    result = wxtiles("ingest", str(radar_file(tmp_path, T0)), "--layer", "reflectivity", store=tmp_path / "s")
    assert result.returncode == 0, result.stderr
    assert "published: reflectivity 2026-11-27T21:00:00Z" in result.stdout
    again = wxtiles("ingest", str(radar_file(tmp_path, T0)), "--layer", "reflectivity", store=tmp_path / "s")
    assert "unchanged: reflectivity 2026-11-27T21:00:00Z" in again.stdout


def test_time_override_and_bad_arguments(tmp_path: Path) -> None:
    plain = tmp_path / "radar.tif"
    radar_file(tmp_path, T0).rename(plain)
    no_time = wxtiles("ingest", str(plain), "--layer", "reflectivity", "--quiet", store=tmp_path / "s")
    assert no_time.returncode == 1 and "--time" in no_time.stderr
    ok = wxtiles("ingest", str(plain), "--layer", "reflectivity", "--time", "2026-11-27T22:00:00Z", store=tmp_path / "s")
    assert ok.returncode == 0 and "2026-11-27T22:00:00Z" in ok.stdout
    bad_time = wxtiles("ingest", str(plain), "--layer", "reflectivity", "--time", "noon", store=tmp_path / "s")
    assert bad_time.returncode == 2 and bad_time.stderr.strip().count("\n") == 0 and "--time" in bad_time.stderr
    bad_band = wxtiles("ingest", str(plain), "--layer", "reflectivity", "--band", "x", store=tmp_path / "s")
    assert bad_band.returncode == 2 and "--band" in bad_band.stderr
    missing_band = wxtiles("ingest", str(plain), "--layer", "reflectivity", "--band", "4", "--time", "2026-11-27T23:00:00Z", "--quiet", store=tmp_path / "s")
    assert missing_band.returncode == 1 and "band 4 does not exist" in missing_band.stderr
    bad_layer = wxtiles("ingest", str(plain), "--layer", "snow", store=tmp_path / "s")
    assert bad_layer.returncode == 2 and "invalid choice" in bad_layer.stderr


def test_serve_refuses_a_store_folder_that_does_not_exist(tmp_path: Path) -> None:
    """A typo in WXTILES_STORE must not give an empty server that reports ready."""
    missing = tmp_path / "stroe"
    result = wxtiles("serve", "--port", "1", store=missing)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"wxtiles serve: store folder {missing} does not exist")
    assert not missing.exists(), "serve must not create it"
    # ingest (like fetch and demo) creates the folder.
    assert wxtiles("ingest", str(radar_file(tmp_path, T0)), "--layer", "reflectivity", "--quiet", store=missing).returncode == 0
    assert missing.is_dir()


def test_bad_settings_are_one_line(tmp_path: Path) -> None:
    result = wxtiles("prune", store=tmp_path, env={"WXTILES_CACHE_MB": "lots"})
    assert result.returncode == 2
    assert result.stderr.strip() == "wxtiles prune: WXTILES_CACHE_MB='lots' is not a valid int"
    other = wxtiles("prune", store=tmp_path, env={"WXTILES_STORE": "gs://bucket/prefix"})
    assert other.returncode == 2 and "s3://bucket/prefix" in other.stderr


def test_s3_store_errors_name_the_store(tmp_path: Path, s3_server: str) -> None:
    env = {"AWS_ENDPOINT_URL": s3_server}
    source = str(radar_file(tmp_path, T0))
    missing = wxtiles("ingest", source, "--layer", "reflectivity", "--quiet", store=tmp_path, env={**env, "WXTILES_STORE": "s3://no-such-bucket/x"})
    assert missing.returncode == 1
    assert missing.stderr.splitlines()[0] == f"{source}: store s3://no-such-bucket/x: bucket 'no-such-bucket' does not exist"
    serve = wxtiles("serve", "--port", "1", store=tmp_path, env={**env, "WXTILES_STORE": "s3://no-such-bucket/x"})
    assert serve.returncode == 2 and serve.stderr.strip() == "wxtiles serve: store s3://no-such-bucket/x: bucket 'no-such-bucket' does not exist"


def test_prune_command(tmp_path: Path) -> None:
    store = tmp_path / "store"
    files = [str(radar_file(tmp_path, T0 + minutes(m), m)) for m in (0, 5, 10)]
    assert wxtiles("ingest", *files, "--layer", "reflectivity", "--quiet", store=store).returncode == 0
    result = wxtiles("prune", "--layer", "reflectivity", store=store, env={"WXTILES_RETENTION_HOURS": "0.1"})
    assert result.returncode == 0, result.stderr
    assert "reflectivity: pruned 1 frames" in result.stdout
    missing = wxtiles("prune", store=tmp_path / "nowhere")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_fetch_and_watch_from_a_noaa_like_bucket(tmp_path: Path, s3_server: str) -> None:
    import boto3

    from ingest.demo import samples, synthetic
    from tileserver.core.timeutil import utcnow

    admin = boto3.client("s3", endpoint_url=s3_server)
    bucket = f"mrms-{tmp_path.name[-8:].lower().replace('_', '')}"
    admin.create_bucket(Bucket=bucket)
    admin.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:HeadObject", "s3:ListBucket"],
                       "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}],
    }))
    now = utcnow().replace(second=38, microsecond=0)
    _, dbz = next(synthetic.radar_sequence(now, steps=1, shape=(175, 350)))
    for back in (2, 4):
        valid = now - minutes(back)
        name = samples.mrms_filename("MergedReflectivityQCComposite", "00.50", valid)
        samples.write_mrms_grib2(tmp_path / name, dbz, valid)
        admin.put_object(Bucket=bucket, Key=f"CONUS/MergedReflectivityQCComposite_00.50/{valid:%Y%m%d}/{name}", Body=(tmp_path / name).read_bytes())
    env = {"WXTILES_MRMS_BUCKET": bucket, "WXTILES_NOAA_ENDPOINT": s3_server}
    store = tmp_path / "store"
    first = wxtiles("fetch", "mrms", "--since", "30m", "--layer", "reflectivity", "--quiet", store=store, env=env)
    assert first.returncode == 0, first.stderr
    catalog = json.loads((store / "catalog" / "reflectivity.json").read_text())
    assert len(catalog["frames"]) == 2
    again = wxtiles("fetch", "mrms", "--since", "30m", "--layer", "reflectivity", "--quiet", store=store, env=env)
    assert again.returncode == 0 and len(json.loads((store / "catalog" / "reflectivity.json").read_text())["frames"]) == 2
    down = wxtiles("fetch", "mrms", "--quiet", store=store, env={**env, "WXTILES_NOAA_ENDPOINT": "http://127.0.0.1:9"})
    assert down.returncode == 2 and down.stderr.count("\n") == 1 and bucket in down.stderr
    bad = wxtiles("fetch", "hrrr", "--leads", "x-y", store=store, env=env)
    assert bad.returncode == 2 and "--leads" in bad.stderr
