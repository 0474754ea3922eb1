"""``wxtiles``: ingest, prune, serve and demo from the command line.

Errors print one line on stderr and exit non-zero; no tracebacks for bad input.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from tileserver.core.layers import LAYERS, LayerConfigError, get_layer
from tileserver.core.settings import Settings, SettingsError
from tileserver.store.storage import LocalStorage, StorageError, StoreUnreachable, open_storage
from tileserver.store import Retention, Store
from tileserver.core.timeutil import TimeFormatError, format_utc, parse_utc

if TYPE_CHECKING:
    from ingest.sources import FetchOptions


class CliError(Exception):
    pass


def _store(settings: Settings, create: bool) -> Store:
    retention = Retention.from_settings(settings)
    return Store(open_storage(settings.store, create=create), retention)


def _time_arg(text: str | None, name: str):  # noqa: ANN202 - datetime | None
    if text is None:
        return None
    try:
        return parse_utc(text)
    except TimeFormatError as exc:
        raise CliError(f"--{name}: {exc}") from None


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.decode import parse_band_choice
    from ingest.errors import IngestError
    from ingest.pipeline import ingest_files

    layer = get_layer(args.layer)
    try:
        band = parse_band_choice(args.band) if args.band else None
    except IngestError as exc:
        raise CliError(str(exc)) from None
    store = _store(settings, create=True)
    report = ingest_files(
        store, [Path(p) for p in args.files], layer,
        time=_time_arg(args.time, "time"), run=_time_arg(args.run, "run"), band=band,
        progress=not args.quiet,
    )
    for result in report.published:
        frame = result.frame
        run = f" run {format_utc(frame.run)}" if frame.run else ""
        if not args.quiet:
            print(f"{result.status}: {layer.id} {format_utc(frame.time)}{run} <- {frame.source}")
    if report.failed:
        if args.quiet:  # the progress bar already printed them otherwise
            for path, reason in report.failed:
                print(f"{path}: {reason}", file=sys.stderr)
        print(f"{len(report.failed)} of {len(report.failed) + len(report.published)} files failed", file=sys.stderr)
        return 1
    return 0


def cmd_inspect(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from ingest.inspect import as_json, as_text, inspect_file

    files = [inspect_file(Path(p)) for p in args.files]
    if args.json:
        print(json.dumps(as_json(files), indent=2))
    else:
        for info in files:
            print(as_text(info), file=sys.stderr if info.error else sys.stdout)
    return 1 if any(info.error for info in files) else 0


def _duration_arg(text: str | None):  # noqa: ANN202 - timedelta | None
    """``90m``, ``2h``, ``1d`` or seconds."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise CliError(f"--since {text!r}: write a duration such as 90m, 2h or 1d") from None
    if not 0 < seconds <= 30 * 86400:
        raise CliError(f"--since {text!r}: must be more than 0 and at most 30 days")
    return timedelta(seconds=seconds)


def _fetch_options(args: argparse.Namespace) -> FetchOptions:
    from ingest.sources import FetchError, FetchOptions, parse_leads

    run = None if args.run in (None, "latest") else _time_arg(args.run, "run")
    try:
        leads = parse_leads(args.leads) if args.leads else None
    except (FetchError, ValueError) as exc:
        raise CliError(f"--leads {args.leads!r}: {exc}") from None
    return FetchOptions(since=_duration_arg(args.since), run=run, leads=leads, layers=args.layer or None, progress=not args.quiet)


def cmd_fetch(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.sources import FetchError, fetch

    store = _store(settings, create=True)
    options = _fetch_options(args)
    try:
        report = fetch(args.source, store, settings, options)
    except FetchError as exc:
        raise CliError(str(exc)) from None
    print(report.summary())
    for failure in report.failures:
        print(str(failure), file=sys.stderr)
    return 1 if report.failures else 0


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.sources import FetchError, watch

    logging.getLogger("wxtiles.watch").setLevel(logging.INFO)
    store = _store(settings, create=True)
    options = _fetch_options(args)
    try:
        watch(args.sources, store, settings, args.interval, since=options.since, leads=options.leads)
    except FetchError as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings, create=False)
    store.storage.check()
    for layer_id in [args.layer] if args.layer else list(LAYERS):
        get_layer(layer_id)
        removed = store.prune(layer_id)
        print(f"{layer_id}: pruned {len(removed)} frames")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from tileserver.core.logs import configure_json_logging

    # A local store is never created here: a typo in WXTILES_STORE would give an
    # empty server that reports ready. ingest, fetch and demo create it.
    storage = open_storage(settings.store)
    if isinstance(storage, LocalStorage) and not storage.root.is_dir():
        raise CliError(f"store folder {storage.url} does not exist (check WXTILES_STORE; `wxtiles ingest`, `fetch` or `demo` create it)")
    try:
        storage.check()
    except StoreUnreachable as exc:
        # Start anyway: /readyz says "not ready" and the server recovers by itself.
        print(f"wxtiles serve: warning: {exc}", file=sys.stderr)
    if args.forwarded_allow_ips is not None:
        # Read by the app in every worker process (tileserver/http/proxy.py handles the headers).
        os.environ["WXTILES_FORWARDED_ALLOW_IPS"] = args.forwarded_allow_ips
        Settings.from_env()  # checks it
    configure_json_logging(settings.log_level)
    # Worker processes start fresh: create_app sets the same JSON logging up in each.
    os.environ["WXTILES_JSON_LOGS"] = "1"
    uvicorn.run(
        "tileserver.http.app:create_app", factory=True, host=args.host, port=args.port,
        workers=args.workers, root_path=args.root_path, proxy_headers=False, log_level=settings.log_level,
        log_config=None, access_log=False,
    )
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.demo import run_demo

    store = _store(settings, create=True)
    run_demo(store, Path(args.workdir), steps=args.steps, full_size=not args.small)
    if args.no_serve:
        return 0
    print(f"serving the demo at http://{args.host}:{args.port}/  (Ctrl-C stops)")
    return cmd_serve(args, settings)


def _int_in(low: int, high: int):  # noqa: ANN202 - an argparse type
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range {low}..{high}")
        return value

    return parse


def _fetch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", help="backfill window for observations, e.g. 30m, 2h (default 2h) (mrms)")
    parser.add_argument("--leads", help="forecast hours, e.g. 0-18 or 0-24/3 (hrrr, gfs)")


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_int_in(1, 65535), default=8000)
    parser.add_argument("--workers", type=_int_in(1, 64), default=1, help="uvicorn worker processes")
    parser.add_argument("--root-path", default="", help="path prefix when served behind a proxy, e.g. /wx")
    parser.add_argument("--forwarded-allow-ips", help="proxies whose X-Forwarded-* headers are trusted (default WXTILES_FORWARDED_ALLOW_IPS, 127.0.0.1); * in a cluster")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wxtiles", description="Weather radar and forecast tile server.")
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="ingest GRIB2, NetCDF, GeoTIFF or ODIM_H5 files into the store")
    ingest.add_argument("files", nargs="+", metavar="FILE")
    ingest.add_argument("--layer", required=True, choices=list(LAYERS))
    ingest.add_argument("--time", help="valid time, ISO 8601 UTC (default: from the file)")
    ingest.add_argument("--run", help="model run time for forecast layers (default: from the file)")
    ingest.add_argument("--band", help="band (GRIB message) number, or U,V numbers for wind; default: chosen by layer")
    ingest.add_argument("--quiet", action="store_true", help="no progress bar or per-file lines")
    ingest.set_defaults(handler=cmd_ingest)

    inspect = commands.add_parser("inspect", help="list a file's bands or variables and the layer each would go to")
    inspect.add_argument("files", nargs="+", metavar="FILE")
    inspect.add_argument("--json", action="store_true", help="JSON for scripts instead of text")
    inspect.set_defaults(handler=cmd_inspect)

    prune = commands.add_parser("prune", help="delete frames outside the retention window")
    prune.add_argument("--layer", choices=list(LAYERS))
    prune.set_defaults(handler=cmd_prune)

    fetch = commands.add_parser("fetch", help="fetch new frames from NOAA's open-data buckets (mrms, hrrr, gfs)")
    fetch.add_argument("source", help="mrms, hrrr or gfs")
    _fetch_arguments(fetch)
    fetch.add_argument("--run", help="model run, ISO 8601 UTC, or 'latest' (default) (hrrr, gfs)")
    fetch.add_argument("--layer", action="append", choices=list(LAYERS), help="only these layers (repeatable)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    fetch.set_defaults(handler=cmd_fetch)

    watch = commands.add_parser("watch", help="fetch and prune on an interval, for a one-machine setup")
    watch.add_argument("sources", nargs="+", metavar="SOURCE", help="mrms, hrrr, gfs")
    watch.add_argument("--interval", type=_int_in(10, 86400), default=120, help="seconds between cycles (default 120)")
    _fetch_arguments(watch)
    watch.set_defaults(handler=cmd_watch, run=None)

    serve = commands.add_parser("serve", help="run the tile server")
    _serve_options(serve)
    serve.set_defaults(handler=cmd_serve)

    demo = commands.add_parser("demo", help="generate synthetic radar and model files, ingest them, serve")
    _serve_options(demo)
    demo.add_argument("--workdir", default="demo-data", help="where the generated source files go")
    demo.add_argument("--steps", type=_int_in(1, 289), default=25, help="radar frames at 5-minute steps (25 = 2 hours)")
    demo.add_argument("--small", action="store_true", help="a coarse grid, for a quick look")
    demo.add_argument("--no-serve", action="store_true", help="ingest only")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # The parser lists the layers, so a wrong WXTILES_LAYERS file stops every command here.
        parser = build_parser()
    except LayerConfigError as exc:
        print(f"wxtiles: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        return int(args.handler(args, settings))
    except (CliError, SettingsError, StorageError) as exc:
        print(f"wxtiles {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
