"""The package layers of ARCHITECTURE.md hold: import-linter checks the contracts in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tileserver", "renderers", "colormaps", "ingest")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300, check=False)


def test_every_import_goes_one_way() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def copy_of_the_project(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "node_modules", "*.json"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_a_wrong_way_import_fails_and_names_the_rule(tmp_path: Path) -> None:
    root = copy_of_the_project(tmp_path)
    png = root / "renderers" / "png.py"
    png.write_text(png.read_text() + "\nfrom tileserver.core.layers import LAYERS  # noqa: E402\n")
    done = lint_imports(root)
    assert done.returncode != 0
    assert "renderers are pure: arrays and images in and out, no tileserver, no ingest BROKEN" in done.stdout
    assert "renderers.png -> tileserver.core.layers" in done.stdout


def test_a_lower_layer_importing_a_higher_one_fails(tmp_path: Path) -> None:
    root = copy_of_the_project(tmp_path)
    reader = root / "tileserver" / "core" / "reader.py"
    reader.write_text(reader.read_text() + "\nfrom tileserver.service.errors import NotFound  # noqa: E402\n")
    done = lint_imports(root)
    assert done.returncode != 0
    assert "tileserver layers: cli over http over service over store over core BROKEN" in done.stdout
