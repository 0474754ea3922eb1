"""/openapi.json describes every route, and a schema-driven fuzz finds no 5xx."""

from __future__ import annotations

import re
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from starlette.routing import Mount, Route

from ingest.pipeline import ingest_file
from tests.conftest import T0, minutes
from tests.fixtures.storms import write_step
from tileserver.http.app import create_app
from tileserver.core.layers import LAYERS
from tileserver.http.openapi import document
from tileserver.core.settings import Settings
from tileserver.store.storage import open_storage
from tileserver.store import Store


def _store(folder: Path) -> str:
    store = Store(open_storage(str(folder / "store"), create=True))
    for step in range(2):
        ingest_file(store, write_step(folder, step), LAYERS["reflectivity"], time=T0 + minutes(5 * step))
    return store.storage.url


def _api_routes(app) -> list[Route]:  # noqa: ANN001
    # The viewer's own files (app.js, style.css...) are static assets, not API.
    return [route for route in app.routes if isinstance(route, Route) and not route.name.startswith("frontend:")]


def test_every_route_is_documented_and_every_documented_path_exists(tmp_path: Path) -> None:
    app = create_app(Settings(store=str(tmp_path)))
    doc = document()
    routes = {route.path: route for route in _api_routes(app)}
    assert set(routes) == set(doc["paths"]), set(routes) ^ set(doc["paths"])
    for path, route in routes.items():
        operation = doc["paths"][path]["get"]
        assert "GET" in (route.methods or set()), path
        documented = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
        assert documented == set(re.findall(r"{(\w+)}", path)), path
        assert "200" in operation["responses"]
    assert all(not isinstance(r, Mount) or r.path in ("/vendor/leaflet", "/vendor/uplot") for r in app.routes)


def test_openapi_is_served_and_valid(tmp_path: Path) -> None:
    from openapi_spec_validator import validate

    from starlette.testclient import TestClient

    with TestClient(create_app(Settings(store=str(tmp_path)))) as client:
        doc = client.get("/openapi.json").json()
    validate(doc)


def test_schema_fuzz_finds_no_server_errors(tmp_path: Path) -> None:
    """schemathesis generates requests for every operation from /openapi.json."""
    from hypothesis import given

    app = create_app(Settings(store=_store(tmp_path), catalog_ttl_s=60.0))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    # schemathesis leaves out the schema's own URL; everything else is fuzzed.
    assert {op.path for op in operations} == set(document()["paths"]) - {"/openapi.json"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case) -> None:  # noqa: ANN001
            response = case.call()
            assert response.status_code < 500, (case.path, case.path_parameters, case.query, response.text[:200])
            if 400 <= response.status_code < 500 and response.status_code != 405:
                assert response.headers["content-type"][0].startswith("application/json"), case.path  # header values are lists here
                assert "error" in response.json()

        fuzz()
