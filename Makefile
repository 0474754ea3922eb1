# The two commands of the README:
#   make demo   set up, generate synthetic NOAA-format files, ingest them, serve on http://127.0.0.1:8000
#   make test   set up and run the test suite (what CI runs through .ci/run)
#   make dist   build the wheel (viewer and Leaflet included) and sdist into dist/
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup setup-test demo test dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet -e .
	npm ci --prefix frontend --no-audit --no-fund --loglevel=error

setup-test: setup
	$(BIN)/pip install --quiet -e ".[test]"
	@# Headless Chromium for tests/frontend (Debian package; `playwright install` cannot download browsers here).
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes $(SUDO) apt-get install -y -qq chromium >/dev/null)

demo: setup
	$(BIN)/wxtiles demo

test: setup-test
	$(BIN)/python -m pytest -n 2 -q

# The wheel and sdist in dist/, with the viewer and Leaflet inside (npm ci first).
dist: setup
	$(BIN)/pip install --quiet build
	$(BIN)/python -m build

clean:
	rm -rf $(VENV) frontend/node_modules .pytest_cache dist
