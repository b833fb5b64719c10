"""Shared fixtures: offline mode, the real ISIC data dir, small synthetic images."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # test modules import onnxruntime before melanoma can set it

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str, folder: str = "benchmarks"):
    """A repository script (``benchmarks/NAME.py``, ``scripts/NAME.py``) imported as module ``name``."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _real_data_dir() -> Path:
    from melanoma.data.isic import resolve_data_dir

    path = resolve_data_dir(None)
    if not path.is_absolute():
        path = (REPO_ROOT / path).resolve()
    return path


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def require(module: str):
    """``pytest.importorskip`` that fails under CI: there, every test must run (the extras install them all)."""
    if in_ci():
        try:
            return importlib.import_module(module)
        except ImportError as error:
            pytest.fail(f"{module} is not importable ({error}); CI installs .[train,app,dev], which provides it")
    return pytest.importorskip(module)


@pytest.fixture(scope="session")
def isic_data_dir() -> Path:
    """The real ISIC 2017 data; skipped when absent, a failure under CI=true (CI must test on real data)."""
    path = _real_data_dir()
    if not (path / "images").is_dir():
        message = f"real ISIC 2017 data not found at {path} (set MELANOMA_DATA)"
        if in_ci():
            pytest.fail(message + "; CI requires it")
        pytest.skip(message)
    return path


def synthetic_lesion(size: int = 64, seed: int = 0, radius_fraction: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """A skin-coloured RGB image with a dark elliptical 'lesion' and its binary mask (uint8 0/255)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    cy, cx = size / 2 + rng.uniform(-2, 2), size / 2 + rng.uniform(-2, 2)
    ry, rx = size * radius_fraction, size * radius_fraction * rng.uniform(0.8, 1.2)
    mask = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) <= 1.0
    image = np.empty((size, size, 3), np.float32)
    image[:] = (225, 180, 160)
    image[mask] = (110, 70, 50)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), (mask * 255).astype(np.uint8)


@pytest.fixture
def synthetic_isic_dir(tmp_path: Path) -> Path:
    """A tiny data set in the ISIC 2017 layout: 8 train (3 melanoma), 4 val (2 melanoma), 2 test images."""
    return build_synthetic_isic(tmp_path)


@pytest.fixture(scope="session")
def shared_synthetic_isic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny ISIC-layout data set, built once per session (treat as read-only)."""
    return build_synthetic_isic(tmp_path_factory.mktemp("data"))


def tiny_config(task: str, data_dir: Path, **overrides):
    """configs/tiny.yaml for ``task`` on ``data_dir``, with extra ``section.key=value`` overrides."""
    from melanoma.config import load_config

    root = [] if overrides.get("data.source") == "folder" else [f"data.data_dir={data_dir}"]  # ISIC layout only
    items = [f"task={task}", *root, *(f"{k}={v}" for k, v in overrides.items())]
    return load_config(REPO_ROOT / "configs" / "tiny.yaml", items)


@pytest.fixture(scope="session")
def tiny_segmentation_fold(shared_synthetic_isic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fold 0 of a 2-fold ``benchmarks/cross_validate.py`` study of the tiny segmenter (OUT/base/fold0, read-only)."""
    import contextlib
    import io

    from melanoma.config import save_config

    out = tmp_path_factory.mktemp("cv")
    config_path = out / "segmentation.yaml"
    save_config(tiny_config("segmentation", shared_synthetic_isic_dir), config_path)
    with contextlib.redirect_stdout(io.StringIO()):  # the study's JSON report
        load_script("cross_validate").main(["--config", str(config_path), "--folds", "2", "--out", str(out),
                                            "--setting", "base", "--only-folds", "0"])  # fmt: skip
    return out / "base" / "fold0"


@pytest.fixture(scope="session")
def tiny_runs(shared_synthetic_isic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two-step training runs of both tasks on synthetic data: {task: run_dir}."""
    from melanoma.training.engine import fit

    runs = {}
    for task in ("segmentation", "classification"):
        run_dir = tmp_path_factory.mktemp(f"run-{task}")
        fit(tiny_config(task, shared_synthetic_isic_dir), run_dir)
        runs[task] = run_dir
    return runs


@pytest.fixture(scope="session")
def tiny_models_dir(tiny_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both tiny runs exported (and calibrated) into one model folder, as shipped under models/."""
    import json

    from melanoma.inference.export import export_run

    folder = tmp_path_factory.mktemp("models")
    for run_dir in tiny_runs.values():
        export_run(run_dir, folder)
    # The synthetic validation split has 4 images (2 melanomas), so export warns that both thresholds are noise, and
    # the Predictor repeats that warning wherever the folder is served. This folder stands for a calibrated folder as
    # shipped (150 images, 30 melanomas: no warning): the warnings are dropped here and have tests of their own.
    for task in ("classification", "segmentation"):  # the segmenter's: chosen on 4 images (fewer than 30)
        config_path = folder / f"{task}.json"
        config = json.loads(config_path.read_text())
        assert "fewer than" in config["validation"].pop("warning")
        config_path.write_text(json.dumps(config, indent=2) + "\n")
    return folder


def build_synthetic_isic(base: Path) -> Path:
    """Write the tiny ISIC-layout data set under ``base`` and return its root."""
    from PIL import Image

    counts = {"train": (8, 3), "val": (4, 2), "test": (2, 0)}
    label_files = {
        "train": "ISIC-2017_Training_Part3_GroundTruth.csv",
        "val": "ISIC-2017_Validation_Part3_GroundTruth.csv",
    }
    root = base / "isic2017"
    (root / "labels").mkdir(parents=True)
    index = 0
    for split, (count, positives) in counts.items():
        (root / "images" / split).mkdir(parents=True)
        if split != "test":
            (root / "masks" / split).mkdir(parents=True)
        rows = ["image_id,melanoma,seborrheic_keratosis"]
        for i in range(count):
            image_id = f"ISIC_{index:07d}"
            index += 1
            image, mask = synthetic_lesion(64, seed=index)
            Image.fromarray(image).save(root / "images" / split / f"{image_id}.jpg", quality=95)
            if split != "test":
                Image.fromarray(mask).save(root / "masks" / split / f"{image_id}_segmentation.png")
                # the last (non-melanoma) image of a split is a seborrheic keratosis: model.keratosis_aux needs one
                rows.append(f"{image_id},{int(i < positives)}.0,{int(i == count - 1)}.0")
        if split in label_files:
            (root / "labels" / label_files[split]).write_text("\n".join(rows) + "\n")
    return root
