# syntax=docker/dockerfile:1
#
# wxtiles image: `docker run IMAGE` runs `wxtiles serve` on port 8000; any other
# wxtiles command runs with `docker run IMAGE fetch mrms`, `... prune`, `... ingest FILE --layer ID`.
#
# Layout in the final image:
#   /opt/venv   the dependencies, the `wxtiles` entry point and the project's metadata
#   /app        tileserver/ renderers/ colormaps/ ingest/ frontend/ laid out as in the
#               repository, on PYTHONPATH: tileserver/http/app.py finds the viewer at
#               the package's parent / "frontend" = /app/frontend
#   /data       the default local store (WXTILES_STORE); mount a volume or use s3://
#
# Runs as uid 10001 and works with a read-only root filesystem as long as /tmp is
# writable (an emptyDir in Kubernetes, `--tmpfs /tmp` with docker run --read-only).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim

# --- Leaflet for the viewer (node exists in this stage only) -----------------
FROM ${NODE_IMAGE} AS frontend
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# --- Python dependencies in a venv ---------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tileserver/ tileserver/
COPY renderers/ renderers/
COPY colormaps/ colormaps/
COPY ingest/ ingest/
# `pip install .` resolves the dependencies (all binary wheels: rasterio and pyproj
# bundle GDAL and PROJ, uvicorn[standard] brings uvloop and httptools) and writes the
# `wxtiles` entry point. The installed copy of the packages is then removed: the code
# lives once, in /app, where tileserver/http/app.py finds frontend/ beside it.
RUN pip install . \
 && site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
 && rm -rf "$site/tileserver" "$site/renderers" "$site/colormaps" "$site/ingest" \
 && pip check

# --- Runtime ------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="wxtiles" \
      org.opencontainers.image.description="Weather radar and forecast tile server" \
      org.opencontainers.image.licenses="Apache-2.0"
# rasterio's bundled GDAL links the system libexpat (python:slim has it; made explicit).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libexpat1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 wxtiles \
 && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin wxtiles \
 && install -d -o 10001 -g 10001 -m 0750 /data
# MALLOC_ARENA_MAX: glibc's per-thread arenas grew a loaded server by ~150 MB
# in benchmarks/soak.py; two arenas keep it flat.
ENV PATH=/opt/venv/bin:$PATH \
    MALLOC_ARENA_MAX=2 \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    CPL_TMPDIR=/tmp \
    CURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    WXTILES_STORE=/data
# CURL_CA_BUNDLE: the curl inside rasterio's wheel looks for /etc/pki/tls/certs/ca-bundle.crt
# (a Red Hat path); on Debian GDAL's /vsis3/ needs the bundle pointed at explicitly.
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY tileserver/ /app/tileserver/
COPY renderers/ /app/renderers/
COPY colormaps/ /app/colormaps/
COPY ingest/ /app/ingest/
# frontend/ without node_modules (.dockerignore), then only Leaflet's and uPlot's dist/ and licences.
COPY frontend/ /app/frontend/
COPY --from=frontend /src/frontend/node_modules/leaflet/dist/ /app/frontend/node_modules/leaflet/dist/
COPY --from=frontend /src/frontend/node_modules/leaflet/LICENSE /app/frontend/node_modules/leaflet/LICENSE
COPY --from=frontend /src/frontend/node_modules/uplot/dist/ /app/frontend/node_modules/uplot/dist/
COPY --from=frontend /src/frontend/node_modules/uplot/LICENSE /app/frontend/node_modules/uplot/LICENSE
# Byte-compile now: the root filesystem is read-only at run time.
RUN python -m compileall -q /app \
 && wxtiles --help > /dev/null \
 && python -c "import tileserver.http.app as a; assert all((a.FRONTEND / 'node_modules' / f).is_file() for f in ('leaflet/dist/leaflet.js', 'uplot/dist/uPlot.iife.min.js')), a.FRONTEND"
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["wxtiles"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
