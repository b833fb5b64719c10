"""The installed (non-editable) package: ``pip install .`` must carry the shipped models and the app.

``make app`` and ``make test`` install in editable mode, where the Predictor finds the repository's ``models/``;
a wheel must carry them as package data instead, or an installed ``melanoma predict`` finds no model.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from conftest import REPO_ROOT

PACKAGED = ("pyproject.toml", "README.md", "LICENSE", "src", "models", "configs")


def test_the_wheel_carries_the_models_the_app_and_the_licence(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in PACKAGED:
        copy = shutil.copytree if (REPO_ROOT / name).is_dir() else shutil.copy
        copy(REPO_ROOT / name, source / name)
    for leftover in source.glob("src/*.egg-info"):  # the editable install's metadata: not part of the source
        shutil.rmtree(leftover)
    command = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q"]
    build = subprocess.run([*command, "-w", str(tmp_path / "wheel")], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    assert "is absent from the packages configuration" not in build.stderr  # setuptools' warning of dropped data
    (wheel,) = (tmp_path / "wheel").glob("melanoma-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    models = REPO_ROOT / "models"
    shipped = [p.relative_to(models).as_posix() for p in models.rglob("*") if p.is_file()]
    assert {f"melanoma/shipped_models/{name}" for name in shipped} <= names
    assert {"melanoma/app/streamlit_app.py", "melanoma/py.typed", "melanoma/cli.py"} <= names
    recipes = {f"melanoma/recipes/{p.name}" for p in (REPO_ROOT / "configs").glob("*.yaml")}
    assert recipes and recipes <= names  # `--config classification` works without the repository
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert not any(name.endswith((".pt", ".pth")) or "/runs/" in name for name in names)
