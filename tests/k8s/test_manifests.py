"""k8s/: the kustomize builds, their schemas and the deployment's invariants.

Sources checked:

* ``base-raw``: k8s/base's files as written (plus the ConfigMap its generator makes),
  always, with no tool but PyYAML;
* ``base``, ``dev``, ``prod``: ``kubectl kustomize`` of k8s/base and each overlay,
  offline (skipped, with the reason, where kubectl is not installed).

Kubernetes resources are validated against the Kubernetes OpenAPI schemas bundled
in ``kubernetes-validate`` (strict: unknown fields fail) for the oldest and newest
versions we claim; Traefik's against tests/k8s/traefik_schema.py.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.k8s import support
from tests.k8s.support import (
    CONFIG_NAME,
    SECRET_NAME,
    Resource,
    config_map,
    labels_match,
    of_kind,
    one,
    quantity,
    resources_for,
    server,
    workloads,
)
from tests.k8s.traefik_schema import SCHEMAS as TRAEFIK_SCHEMAS
from tileserver.cli import build_parser
from tileserver.core.settings import Settings

# Oldest Kubernetes the manifests are written for (CronJob timeZone, podFailurePolicy,
# PDB unhealthyPodEvictionPolicy, autoscaling/v2), and the newest schema bundled.
K8S_VERSIONS = ("1.29", kubernetes_validate.latest_version())
SOURCES = ["base-raw", "base", "dev", "prod"]
BUILDS = ["base", "dev", "prod"]
UID = 10001  # the Dockerfile's USER (test_dockerfile checks the same number)
EXPECTED_CRONJOBS = {
    # name: (command line, period in minutes)
    "wxtiles-fetch-mrms": (["fetch", "mrms"], 2),
    "wxtiles-fetch-hrrr": (["fetch", "hrrr"], 60),
    "wxtiles-prune": (["prune"], 60),
}
PREFIX = "/wx"
# Resident memory of loops in flight, per megapixel of the render budget: 3.5 (WebP)
# to 5 (APNG), measured by benchmarks/loop_memory.py (benchmarks/README.md).
LOOP_MB_PER_MEGAPIXEL = 5
CRD_GROUPS = ("traefik.io/", "monitoring.coreos.com/")
HOST_PROBE = {"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/healthz"}


def load(source: str) -> list[Resource]:
    if source != "base-raw" and support.kubectl() is None:
        pytest.skip(support.NO_KUBECTL)
    return resources_for(source)


@pytest.fixture(params=SOURCES)
def resources(request: pytest.FixtureRequest) -> list[Resource]:
    return load(request.param)


@pytest.fixture(params=BUILDS)
def built(request: pytest.FixtureRequest) -> list[Resource]:
    return load(request.param)


def serve_args(resources: list[Resource]) -> Any:
    container = server(resources).main
    assert "command" not in container, "keep the image's ENTRYPOINT (wxtiles); set args only"
    return build_parser().parse_args(container["args"])


def strip_prefixes(resources: list[Resource]) -> list[str]:
    return [p for m in of_kind(resources, "Middleware") if "stripPrefix" in m["spec"] for p in m["spec"]["stripPrefix"]["prefixes"]]


# --- The files themselves ------------------------------------------------------------

def test_every_yaml_file_parses_into_resources() -> None:
    files = support.yaml_files()
    assert any(p.name == "kustomization.yaml" for p in files)
    for path in files:
        documents = support.load_yaml_documents(path)
        assert documents, f"{path}: empty"
        for doc in documents:
            assert isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc, f"{path}: not a Kubernetes object"
            if doc["kind"] not in ("Kustomization", "Component"):
                assert doc.get("metadata", {}).get("name"), f"{path}: {doc['kind']} without a name"


def test_every_kustomization_lists_files_that_exist() -> None:
    for path in support.K8S.rglob("kustomization.yaml"):
        kustomization = yaml.safe_load(path.read_text())
        for entry in kustomization.get("resources", []):
            assert (path.parent / entry).exists(), f"{path}: resource {entry} does not exist"
        for entry in kustomization.get("components", []):
            assert (path.parent / entry / "kustomization.yaml").is_file(), f"{path}: component {entry} does not exist"
        for patch in kustomization.get("patches", []):
            if "path" in patch:
                assert (path.parent / patch["path"]).is_file(), f"{path}: patch {patch['path']} does not exist"
        for generator in kustomization.get("configMapGenerator", []):
            for env in generator.get("envs", []):
                support.read_env_file(path.parent / env)  # parses, no duplicates


def test_each_overlay_builds_from_the_base() -> None:
    for name, folder in support.OVERLAYS.items():
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        assert "../../base" in kustomization["resources"], name
        assert kustomization.get("namespace"), f"{name}: set a namespace"


# --- Schemas ------------------------------------------------------------------------

@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_resources_match_the_api_schema(resources: list[Resource], version: str) -> None:
    checked = 0
    for resource in resources:
        if resource["apiVersion"].startswith(CRD_GROUPS):
            continue  # CRDs: validated against their own schemas (Traefik here, monitoring in test_monitoring.py)
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{resource['kind']}/{resource['metadata']['name']} (Kubernetes {version}): {where}: {exc.message}")
        checked += 1
    assert checked >= 8


def test_traefik_resources_match_their_schema(resources: list[Resource]) -> None:
    traefik = [r for r in resources if r["apiVersion"].startswith("traefik.")]
    assert {r["kind"] for r in traefik} == {"IngressRoute", "Middleware"}
    for resource in traefik:
        assert resource["apiVersion"] == "traefik.io/v1alpha1", "traefik.containo.us is Traefik v2's group, gone in v3"
        problem = support.schema_violation(resource, TRAEFIK_SCHEMAS[resource["kind"]])
        assert problem is None, problem


def test_the_traefik_schema_rejects_what_traefik_rejects() -> None:
    """The hand-written schema is strict where it matters."""
    middleware = {"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware", "metadata": {"name": "m"}}
    bad = [
        {"stripPrefix": {"prefixes": ["/wx"], "forceSlash": True}},  # v2 only
        {"compress": {"excludedContentTypes": ["image/png"], "includedContentTypes": ["application/json"]}},
        {"rateLimit": {"average": 10, "burts": 5}},
        {"stripPrefix": {"prefixes": ["/wx"]}, "compress": {}},  # two middlewares in one
        {"headers": {"sslRedirect": True}},  # removed in v3
    ]
    for spec in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**middleware, "spec": spec}, TRAEFIK_SCHEMAS["Middleware"])


# --- What a deploy creates ------------------------------------------------------------

def test_no_secret_is_generated_or_applied(resources: list[Resource]) -> None:
    """Credentials never come from the repository: a deploy must not overwrite the real Secret."""
    assert not of_kind(resources, "Secret")


def test_the_s3_secret_template_is_clearly_a_template() -> None:
    text = support.SECRET_TEMPLATE.read_text()
    assert "NOT APPLIED" in text
    (secret,) = support.load_yaml_documents(support.SECRET_TEMPLATE)
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == SECRET_NAME
    data = secret["stringData"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"} <= set(data)
    for key, value in data.items():
        assert "CHANGE-ME" in value, f"{key}: a template value must be an obvious placeholder"
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(secret, version, strict=True)
    kustomization = (support.OVERLAYS["prod"] / "kustomization.yaml").read_text()
    assert support.SECRET_TEMPLATE.name not in yaml.safe_load(kustomization)["resources"]


def test_every_resource_is_labelled(resources: list[Resource]) -> None:
    for resource in resources:
        if resource["kind"] in ("Namespace",):
            continue
        labels = resource["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/name") == "wxtiles" or resource["kind"] == "ConfigMap", resource["metadata"]["name"]


# --- The server Deployment ---------------------------------------------------------

def test_server_runs_one_uvicorn_process_behind_the_proxy(resources: list[Resource]) -> None:
    args = serve_args(resources)
    assert args.command == "serve"
    assert args.workers == 1, "one process per pod: scale with replicas (each worker would hold its own caches)"
    assert args.host == "0.0.0.0"
    assert args.forwarded_allow_ips is None, "set in the ConfigMap (WXTILES_FORWARDED_ALLOW_IPS), one place for overlays"
    trusted = [part.strip() for part in config_map(resources)["data"]["WXTILES_FORWARDED_ALLOW_IPS"].split(",")]
    assert "*" in trusted, "trust X-Forwarded-* from the ingress controller, whose pod IP varies"
    ports = {p["name"]: p["containerPort"] for p in server(resources).main["ports"]}
    assert ports == {"http": args.port}


def test_probes_hit_the_apps_health_routes(resources: list[Resource], tmp_path: Path) -> None:
    from tileserver.http.app import create_app

    container = server(resources).main
    routes = {getattr(r, "path", None) for r in create_app(Settings(store=str(tmp_path))).routes}
    for probe, path in HOST_PROBE.items():
        assert probe in container, f"{probe} missing"
        get = container[probe]["httpGet"]
        assert get["path"] == path, f"{probe} should ask {path}"
        assert get["port"] in ("http", serve_args(resources).port)
        assert path in routes, f"{path} is not a route of the app"
    # A store that was never reached makes /readyz fail; that must never restart pods: liveness is /healthz.
    assert container["livenessProbe"]["httpGet"]["path"] != "/readyz"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30, "give the process time to import GDAL and start"


def test_pods_are_locked_down(resources: list[Resource]) -> None:
    """The Pod Security Standard "restricted", plus a read-only root and a writable /tmp."""
    found = workloads(resources)
    assert {w.kind for w in found} == {"Deployment", "CronJob"}
    for w in found:
        pod_sc = w.spec.get("securityContext", {})
        assert w.spec.get("automountServiceAccountToken") is False, f"{w.name}: no API token needed"
        assert pod_sc.get("runAsNonRoot") is True, w.name
        assert pod_sc.get("runAsUser") == UID, f"{w.name}: run as the image's user {UID}"
        assert not w.spec.get("hostNetwork") and not w.spec.get("hostPID") and not w.spec.get("hostIPC"), w.name
        for volume in w.spec.get("volumes", []):
            assert "hostPath" not in volume, f"{w.name}: hostPath volume {volume['name']}"
        for c in w.containers:
            sc = c.get("securityContext", {})
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", f"{w.name}/{c['name']}: seccomp"
            assert sc.get("allowPrivilegeEscalation") is False, f"{w.name}/{c['name']}"
            assert sc.get("readOnlyRootFilesystem") is True, f"{w.name}/{c['name']}"
            assert sc.get("privileged", False) is False
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{w.name}/{c['name']}: drop ALL capabilities"
            assert not sc.get("capabilities", {}).get("add"), f"{w.name}/{c['name']}: adds capabilities"
            assert sc.get("runAsUser", UID) == UID
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{w.name}/{c['name']}: a read-only root needs a writable /tmp (CPL_TMPDIR, HOME)"
            volume = next(v for v in w.spec["volumes"] if v["name"] == mounts["/tmp"])
            assert "emptyDir" in volume and volume["emptyDir"].get("sizeLimit"), f"{w.name}: /tmp should be a bounded emptyDir"


def test_every_container_has_requests_and_limits(resources: list[Resource]) -> None:
    for w in workloads(resources):
        for c in w.containers:
            res = c.get("resources", {})
            for kind in ("cpu", "memory"):
                request, limit = res.get("requests", {}).get(kind), res.get("limits", {}).get(kind)
                assert request and limit, f"{w.name}/{c['name']}: {kind} request and limit"
                assert quantity(request) <= quantity(limit), f"{w.name}/{c['name']}: {kind} request above limit"


def test_the_server_memory_limit_covers_the_configured_caches(resources: list[Resource]) -> None:
    """Per pod: tile cache + GDAL block cache + /vsis3/ cache + the process."""
    data = config_map(resources)["data"]
    process_mb = 200  # measured: 125 to 193 MB per worker through benchmarks/tiles.py with the tile cache off
    idle_handles_mb = 2 * int(data["WXTILES_OPEN_DATASETS"]) * 0.35  # TileService's DatasetPool bound
    assert "VSI_CACHE" not in data, "per-handle VSI caches grew pods by hundreds of MB (benchmarks/soak.py)"
    budget_mb = (
        int(data["WXTILES_CACHE_MB"])
        + int(data["GDAL_CACHEMAX"])
        + int(data["CPL_VSIL_CURL_CACHE_SIZE"]) / 1e6
        + idle_handles_mb
        + process_mb
        + LOOP_MB_PER_MEGAPIXEL * float(data["WXTILES_RENDER_BUDGET_MP"])
    )
    limits = server(resources).main["resources"]["limits"]
    assert budget_mb * 2**20 <= 0.9 * quantity(limits["memory"]), f"caches need ~{budget_mb:.0f} MB, limit {limits['memory']}"
    assert quantity(server(resources).main["resources"]["requests"]["memory"]) >= 0.6 * budget_mb * 2**20


def test_the_server_restarts_gracefully(resources: list[Resource]) -> None:
    d = server(resources)
    prestop = d.main.get("lifecycle", {}).get("preStop", {})
    assert prestop, "a preStop pause lets endpoints drop the pod before uvicorn stops accepting"
    assert d.spec.get("terminationGracePeriodSeconds", 30) >= 15


# --- Settings ---------------------------------------------------------------------

GDAL_KEYS = {
    "GDAL_DISABLE_READDIR_ON_OPEN", "GDAL_CACHEMAX", "GDAL_BAND_BLOCK_CACHE", "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES",
    "GDAL_INGESTED_BYTES_AT_OPEN", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS", "VSI_CACHE", "VSI_CACHE_SIZE",
    "CPL_VSIL_CURL_CACHE_SIZE", "GDAL_HTTP_CONNECTTIMEOUT", "GDAL_HTTP_TIMEOUT", "GDAL_HTTP_MAX_RETRY",
    "GDAL_HTTP_RETRY_DELAY", "CPL_TMPDIR", "GDAL_HTTP_MULTIPLEX", "GDAL_HTTP_VERSION",
}
AWS_KEYS = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_S3_ENDPOINT", "AWS_VIRTUAL_HOSTING", "AWS_HTTPS"}


def test_configmap_holds_valid_settings(resources: list[Resource]) -> None:
    data = config_map(resources)["data"]
    known = set(Settings.variable_names())
    for key in data:
        if key.startswith("WXTILES_"):
            assert key in known, f"{key} is not a wxtiles setting (tileserver/core/settings.py)"
        else:
            assert key in GDAL_KEYS | AWS_KEYS, f"{key}: not a setting wxtiles or GDAL reads (add it to the known list)"
    settings = Settings.from_env(data)  # raises SettingsError on a bad value
    assert settings.store, "WXTILES_STORE"
    from tileserver.http.app import GDAL_SERVE_CONFIG
    from tileserver.store.s3 import GDAL_S3_READ_CONFIG

    used = set(GDAL_SERVE_CONFIG) | set(GDAL_S3_READ_CONFIG)
    assert used <= set(data), "list every GDAL setting the server uses, so the ConfigMap is the one place to tune them"
    assert data["CPL_TMPDIR"] == "/tmp"


def test_every_workload_reads_the_same_settings(resources: list[Resource]) -> None:
    for w in workloads(resources):
        refs = w.main.get("envFrom", [])
        config = [r["configMapRef"]["name"] for r in refs if "configMapRef" in r]
        secret = [r["secretRef"] for r in refs if "secretRef" in r]
        assert config == [config_map(resources)["metadata"]["name"]], w.name
        assert [s["name"] for s in secret] == [SECRET_NAME], f"{w.name}: S3 credentials come from {SECRET_NAME}"
        env = {e["name"] for e in w.main.get("env", [])}
        assert not env & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, f"{w.name}: credentials inline"


def test_one_image_for_every_workload(built: list[Resource]) -> None:
    images = {c["image"] for w in workloads(built) for c in w.containers}
    assert len(images) == 1, images
    (image,) = images
    assert not image.endswith(":latest")


# --- CronJobs --------------------------------------------------------------------

def test_cronjobs_fetch_and_prune_on_schedule(resources: list[Resource]) -> None:
    cronjobs = {c["metadata"]["name"]: c for c in of_kind(resources, "CronJob")}
    assert set(cronjobs) == set(EXPECTED_CRONJOBS)
    parser = build_parser()
    for name, (command, period) in EXPECTED_CRONJOBS.items():
        spec = cronjobs[name]["spec"]
        assert support.cron_period_minutes(spec["schedule"]) == period, f"{name}: {spec['schedule']}"
        assert spec.get("timeZone") == "Etc/UTC", f"{name}: NOAA's clock is UTC"
        assert spec["concurrencyPolicy"] == "Forbid", f"{name}: never two runs at once"
        starting = spec.get("startingDeadlineSeconds")
        assert starting and 0 < starting <= period * 60, f"{name}: startingDeadlineSeconds within one period"
        assert spec.get("successfulJobsHistoryLimit") is not None and spec.get("failedJobsHistoryLimit") is not None
        job = spec["jobTemplate"]["spec"]
        assert job.get("activeDeadlineSeconds", 0) > 0, f"{name}: a hung run must end"
        assert job.get("backoffLimit") is not None and job["backoffLimit"] <= 3
        pod = job["template"]["spec"]
        assert pod["restartPolicy"] in ("Never", "OnFailure")
        args = pod["containers"][0]["args"]
        assert "command" not in pod["containers"][0], f"{name}: keep the image's ENTRYPOINT"
        assert args[: len(command)] == command, f"{name}: runs {args}"
        parser.parse_args(args)  # a real wxtiles command line


def test_fetch_jobs_can_finish_a_normal_run(resources: list[Resource]) -> None:
    """A deadline at least a few periods long: MRMS runs take ~10 s per file here."""
    for cronjob in of_kind(resources, "CronJob"):
        deadline = cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
        assert deadline >= 300, cronjob["metadata"]["name"]


# --- Service, HPA, PDB ---------------------------------------------------------------

def test_service_selects_the_server_pods(resources: list[Resource]) -> None:
    service = one(resources, "Service", "wxtiles")
    d = server(resources)
    assert labels_match(service["spec"]["selector"], d.pod["metadata"]["labels"])
    assert labels_match(d.resource["spec"]["selector"]["matchLabels"], d.pod["metadata"]["labels"])
    port_names = {p["name"] for p in d.main["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in port_names
    for w in workloads(resources):
        if w.kind == "CronJob":
            assert not labels_match(service["spec"]["selector"], w.pod["metadata"]["labels"]), f"{w.name} would receive traffic"


def _hpa_checks(resources: list[Resource]) -> None:
    hpa = one(resources, "HorizontalPodAutoscaler", "wxtiles")
    d = server(resources)
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", d.name)
    metrics = hpa["spec"]["metrics"]
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" and m["resource"]["target"]["type"] == "Utilization" for m in metrics)
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in d.resource["spec"], "the HPA owns the replica count; a fixed one is reset by every apply"
    pdb = one(resources, "PodDisruptionBudget", "wxtiles")
    assert labels_match(pdb["spec"]["selector"]["matchLabels"], d.pod["metadata"]["labels"])
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "the PDB must leave room for drains"


def test_base_scales_with_the_hpa_and_keeps_a_pod_through_disruptions() -> None:
    _hpa_checks(load("base-raw"))


@pytest.mark.parametrize("source", ["base", "prod"])
def test_built_scaling(source: str) -> None:
    _hpa_checks(load(source))


# --- Traefik --------------------------------------------------------------------------

def test_ingressroute_reaches_the_service_through_existing_middlewares(resources: list[Resource]) -> None:
    route = one(resources, "IngressRoute", "wxtiles")
    middlewares = {m["metadata"]["name"]: m for m in of_kind(resources, "Middleware")}
    service = one(resources, "Service", "wxtiles")
    used: set[str] = set()
    for rule in route["spec"]["routes"]:
        for ref in rule.get("middlewares", []):
            assert ref["name"] in middlewares, f"Middleware {ref['name']} does not exist"
            assert "namespace" not in ref, "same namespace as the route: no namespace, so overlays can move both"
            used.add(ref["name"])
        for svc in rule["services"]:
            assert svc["name"] == service["metadata"]["name"]
            assert svc["port"] in {p["name"] for p in service["spec"]["ports"]} | {p["port"] for p in service["spec"]["ports"]}
    assert used == set(middlewares), f"unused Middlewares: {set(middlewares) - used}"


def test_the_prefix_is_stripped_and_reaches_the_app_as_a_header(resources: list[Resource]) -> None:
    """Traefik strips /wx and sends X-Forwarded-Prefix; the app (trusting the proxy) writes /wx URLs.

    `--root-path` as well would apply the prefix twice (every route 404s), so it stays unset.
    """
    assert strip_prefixes(resources) == [PREFIX]
    args = serve_args(resources)
    assert args.root_path == "", "the prefix comes from X-Forwarded-Prefix; --root-path too would double it"
    route = one(resources, "IngressRoute", "wxtiles")
    (rule,) = route["spec"]["routes"]
    (host,) = support.traefik_rule_hosts(rule["match"])
    matches = lambda path: support.traefik_rule_matches(rule["match"], host, path)  # noqa: E731
    assert matches("/wx") and matches("/wx/") and matches("/wx/tiles/reflectivity/latest/3/1/2.png")
    assert not matches("/wxtiles") and not matches("/") and not matches("/healthz")
    assert not support.traefik_rule_matches(rule["match"], "other.example.org", "/wx/")
    # The strip runs after every middleware that still needs the full path (the /wx -> /wx/ redirect).
    names = [m["name"] for m in rule["middlewares"]]
    assert names.index("wxtiles-strip-prefix") == len(names) - 1


def test_the_bare_prefix_redirects_to_the_viewer_folder(resources: list[Resource]) -> None:
    """Without the slash the viewer's relative URLs would resolve outside /wx."""
    redirects = [m["spec"]["redirectRegex"] for m in of_kind(resources, "Middleware") if "redirectRegex" in m["spec"]]
    assert len(redirects) == 1
    regex = re.compile(redirects[0]["regex"])
    replacement = re.sub(r"\$\{(\d+)\}", r"\\\1", redirects[0]["replacement"])
    assert regex.sub(replacement, "https://wx.example.com/wx") == "https://wx.example.com/wx/"
    for url in ("https://wx.example.com/wx/", "https://wx.example.com/wx/api/layers", "https://wx.example.com/wxx"):
        assert not regex.search(url), url


def test_compression_skips_png(resources: list[Resource]) -> None:
    (compress,) = [m["spec"]["compress"] for m in of_kind(resources, "Middleware") if "compress" in m["spec"]]
    assert "image/png" in compress.get("excludedContentTypes", [])
    assert "includedContentTypes" not in compress


def test_rate_limit_and_security_headers(resources: list[Resource]) -> None:
    (limit,) = [m["spec"]["rateLimit"] for m in of_kind(resources, "Middleware") if "rateLimit" in m["spec"]]
    assert limit["average"] >= 20 and limit["burst"] >= limit["average"], "a map view asks for dozens of tiles at once"
    check_rate_limit_key(limit, config_map(resources)["data"]["WXTILES_FORWARDED_ALLOW_IPS"])
    (headers,) = [m["spec"]["headers"] for m in of_kind(resources, "Middleware") if "headers" in m["spec"]]
    assert headers["contentTypeNosniff"] is True
    assert headers.get("frameDeny") or "frame-ancestors" in headers.get("contentSecurityPolicy", "")
    assert headers.get("referrerPolicy")
    # CORS stays with the app (WXTILES_CORS_ORIGINS): two sources of truth would disagree.
    assert not [k for k in headers if k.startswith("accessControl")]
    assert "Cross-Origin-Resource-Policy" not in headers.get("customResponseHeaders", {}), "tiles are used cross-origin"


def check_rate_limit_key(limit: dict[str, Any], trusted: str) -> None:
    """The limit is keyed on the client address the app logs: the rightmost X-Forwarded-For
    address not a known proxy. Traefik's ipStrategy.excludedIPs is that rule (depth is not:
    it counts hops, so one more proxy in front shifts it onto a proxy or a forged entry;
    requestHeaderName trusts whatever header the client sends)."""
    criterion = limit.get("sourceCriterion", {})
    assert set(criterion) == {"ipStrategy"}, f"key the limit on the client address, not {criterion}"
    strategy = criterion["ipStrategy"]
    assert not strategy.get("depth"), "excludedIPs (the app's rule), not depth"
    networks = [ipaddress.ip_network(n.strip(), strict=False) for n in trusted.split(",") if n.strip() not in ("", "*")]
    for excluded in strategy.get("excludedIPs", []):
        network = ipaddress.ip_network(excluded, strict=False)
        assert any(network.subnet_of(n) for n in networks if n.version == network.version), (
            f"excludedIPs {excluded} is a proxy to Traefik but not to the app: add it to WXTILES_FORWARDED_ALLOW_IPS"
        )
    for network in networks:
        assert str(network) in {str(ipaddress.ip_network(e, strict=False)) for e in strategy.get("excludedIPs", [])}, (
            f"WXTILES_FORWARDED_ALLOW_IPS names {network}, the rate limit's excludedIPs does not: they would key on different clients"
        )


def test_the_rate_limit_key_check_catches_disagreement() -> None:
    agreeing = {"average": 100, "burst": 200, "sourceCriterion": {"ipStrategy": {"excludedIPs": ["198.51.100.0/24"]}}}
    check_rate_limit_key(agreeing, "*,198.51.100.0/24")
    for limit, trusted in (
        (agreeing, "*"),  # Traefik skips the CDN, the app logs it
        ({**agreeing, "sourceCriterion": {"ipStrategy": {}}}, "*,198.51.100.0/24"),  # the app skips it, Traefik keys on it
        ({**agreeing, "sourceCriterion": {"ipStrategy": {"depth": 1}}}, "*"),
        ({**agreeing, "sourceCriterion": {"requestHeaderName": "X-Real-Ip"}}, "*"),
        ({"average": 100, "burst": 200}, "*"),
    ):
        with pytest.raises(AssertionError):
            check_rate_limit_key(limit, trusted)


# --- Overlays ----------------------------------------------------------------------

def test_dev_runs_one_replica_on_a_volume_store() -> None:
    resources = load("dev")
    d = server(resources)
    assert d.resource["spec"]["replicas"] == 1
    assert d.resource["spec"]["strategy"]["type"] == "Recreate", "a ReadWriteOnce volume cannot surge to another node"
    assert not of_kind(resources, "HorizontalPodAutoscaler") and not of_kind(resources, "PodDisruptionBudget")
    (pvc,) = of_kind(resources, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    store = config_map(resources)["data"]["WXTILES_STORE"]
    assert store == "/data"
    for w in workloads(resources):
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in w.spec["volumes"] if "persistentVolumeClaim" in v}
        mounts = {m["mountPath"]: m["name"] for m in w.main["volumeMounts"]}
        assert store in mounts and claims.get(mounts[store]) == pvc["metadata"]["name"], f"{w.name}: the store's PVC at {store}"
        if w.kind == "CronJob":
            # ReadWriteOnce: the job must run on the node that has the volume, the server's.
            (term,) = w.spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            assert term["topologyKey"] == "kubernetes.io/hostname"
            assert labels_match(term["labelSelector"]["matchLabels"], d.pod["metadata"]["labels"])
    route = one(resources, "IngressRoute", "wxtiles")
    assert route["spec"]["entryPoints"] == ["web"] and "tls" not in route["spec"]


def test_prod_runs_replicas_on_the_s3_store() -> None:
    resources = load("prod")
    assert config_map(resources)["data"]["WXTILES_STORE"].startswith("s3://")
    assert not of_kind(resources, "PersistentVolumeClaim")
    for w in workloads(resources):
        assert {m["mountPath"] for m in w.main["volumeMounts"]} == {"/tmp"}, f"{w.name}: stateless on S3"
        (secret,) = [r["secretRef"] for r in w.main["envFrom"] if "secretRef" in r]
        assert secret["optional"] is False, f"{w.name}: fail visibly when the credentials Secret is missing"
    hpa = one(resources, "HorizontalPodAutoscaler", "wxtiles")
    assert hpa["spec"]["minReplicas"] >= 3
    route = one(resources, "IngressRoute", "wxtiles")
    assert route["spec"]["entryPoints"] == ["websecure"] and "tls" in route["spec"]


@pytest.mark.parametrize("overlay", list(support.OVERLAYS))
def test_overlays_use_one_namespace_under_the_restricted_pod_security_standard(overlay: str) -> None:
    resources = load(overlay)
    (namespace,) = of_kind(resources, "Namespace")
    name = namespace["metadata"]["name"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for resource in resources:
        if resource["kind"] != "Namespace":
            assert resource["metadata"].get("namespace") == name, f"{resource['kind']}/{resource['metadata']['name']}"


def test_the_configmap_name_is_hashed_so_changes_roll_out() -> None:
    resources = load("prod")
    name = config_map(resources)["metadata"]["name"]
    assert re.fullmatch(rf"{CONFIG_NAME}-[a-z0-9]{{10}}", name)
