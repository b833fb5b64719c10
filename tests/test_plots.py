"""Plots: write non-empty PNGs, validate inputs, and say how to install matplotlib when it is missing."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import require

from melanoma.metrics import youden_threshold
from melanoma.plots import plot_calibration, plot_roc

require("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = (rng.random(80) < 0.3).astype(int)
    probabilities = np.clip(0.4 * labels + 0.6 * rng.random(80), 0, 1)
    probabilities[:2] = [0.0, 1.0]  # the ends of [0, 1] are valid probabilities
    return labels, probabilities


def _assert_png(path):
    assert path.is_file()
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000


def test_plot_roc_writes_a_png(tmp_path, scores):
    labels, probabilities = scores
    path = plot_roc(labels, probabilities, youden_threshold(labels, probabilities), tmp_path / "figures" / "roc.png")
    assert path == tmp_path / "figures" / "roc.png"
    _assert_png(path)


@pytest.mark.parametrize("n_bins", [1, 10, 25])
def test_plot_calibration_writes_a_png(tmp_path, scores, n_bins):
    labels, probabilities = scores
    path = plot_calibration(labels, probabilities, str(tmp_path / "calibration.png"), n_bins=n_bins)
    _assert_png(path)


def test_plots_leave_no_pyplot_figures_open(tmp_path, scores):
    import matplotlib.pyplot as plt

    labels, probabilities = scores
    before = plt.get_fignums()
    plot_roc(labels, probabilities, 0.5, tmp_path / "roc.png")
    plot_calibration(labels, probabilities, tmp_path / "calibration.png")
    assert plt.get_fignums() == before


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda path: plot_roc([1, 1], [0.2, 0.3], 0.5, path), "only one class"),
        (lambda path: plot_roc([0, 1], [0.2, 0.3], float("nan"), path), "threshold must be a finite number"),
        (lambda path: plot_calibration([0, 1], [0.2, float("nan")], path), "NaN"),
        (lambda path: plot_calibration([0, 1], [-2.0, 3.0], path), "apply the sigmoid"),
        (lambda path: plot_calibration([0, 1], [0.2, 0.3], path, n_bins=0), "n_bins"),
    ],
)
def test_bad_inputs_raise_and_write_nothing(tmp_path, call, message):
    path = tmp_path / "figure.png"
    with pytest.raises(ValueError, match=message):
        call(path)
    assert not path.exists()


def test_missing_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib...` raise ImportError
    with pytest.raises(ImportError, match=r"pip install -e '\.\[train\]' in the repository"):
        plot_roc([0, 1], [0.2, 0.8], 0.5, tmp_path / "roc.png")
    with pytest.raises(ImportError, match=r"pip install -e '\.\[train\]' in the repository"):
        plot_calibration([0, 1], [0.2, 0.8], tmp_path / "calibration.png")
