"""Evaluation figures: ROC curve with the operating point, and a reliability diagram.

matplotlib is an optional dependency (the ``train`` extra); it is imported inside the functions, so importing this
module never needs it. Figures are drawn on a ``matplotlib.figure.Figure`` with the Agg canvas directly instead of
through ``pyplot``, so no global backend is switched and nothing is left open in pyplot's figure registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

from melanoma.metrics import check_classification_inputs, sensitivity_specificity


def _new_figure(width: float, height: float) -> Any:
    """A Figure attached to an Agg canvas, or an ImportError that says how to install matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "plotting needs matplotlib, which is not installed; it comes with the training install: "
            "pip install -e '.[train]' in the repository (make test installs it too)"
        ) from error
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def plot_roc(labels: Any, probabilities: Any, threshold: float, path: str | Path) -> Path:
    """Draw the ROC curve, with its AUC in the legend and the operating point of ``threshold`` marked.

    Args:
        labels: 0/1 ground truth, 1 = melanoma.
        probabilities: melanoma probabilities (or any scores), one per label.
        threshold: decision threshold (``probability >= threshold`` is melanoma), e.g. the model's Youden threshold.
        path: where to write the image; the format follows the suffix (``.png``, ``.pdf``, ``.svg``).

    Returns:
        ``path`` as a Path.

    Raises:
        ImportError: when matplotlib is not installed.
        ValueError: on invalid inputs (see ``melanoma.metrics.check_classification_inputs``).
    """
    label_array, probability_array = check_classification_inputs(labels, probabilities)
    sensitivity, specificity = sensitivity_specificity(label_array, probability_array, threshold)
    false_positive_rates, true_positive_rates, _ = roc_curve(label_array, probability_array)
    auc = roc_auc_score(label_array, probability_array)

    figure = _new_figure(5, 5)
    axes = figure.add_subplot()
    axes.plot(false_positive_rates, true_positive_rates, color="tab:blue", label=f"ROC (AUC = {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    axes.plot(
        1 - specificity,
        sensitivity,
        marker="o",
        color="tab:red",
        linestyle="none",
        label=f"threshold {threshold:.3g}: sens {sensitivity:.2f}, spec {specificity:.2f}",
    )
    axes.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="1 - specificity (false positive rate)",
        ylabel="sensitivity (true positive rate)",
        title=f"Melanoma ROC (n = {len(label_array)}, {int(label_array.sum())} melanoma)",
        aspect="equal",
    )
    axes.legend(loc="lower right")
    return _save(figure, path)


def plot_calibration(labels: Any, probabilities: Any, path: str | Path, n_bins: int = 10) -> Path:
    """Draw a reliability diagram (observed melanoma rate per probability bin) over a histogram of probabilities.

    Bins are of equal width on [0, 1] (``sklearn.calibration.calibration_curve``); empty bins are not drawn.

    Args:
        labels: 0/1 ground truth, 1 = melanoma.
        probabilities: melanoma probabilities in [0, 1], one per label.
        path: where to write the image; the format follows the suffix.
        n_bins: number of probability bins.

    Returns:
        ``path`` as a Path.

    Raises:
        ImportError: when matplotlib is not installed.
        ValueError: on invalid inputs, probabilities outside [0, 1] (apply the sigmoid to logits first) or
            ``n_bins < 1``.
    """
    label_array, probability_array = check_classification_inputs(labels, probabilities)
    if probability_array.min() < 0 or probability_array.max() > 1:
        raise ValueError(
            f"probabilities must be in [0, 1] for a calibration plot, got a range of [{probability_array.min():.3g}, "
            f"{probability_array.max():.3g}]; apply the sigmoid to logits first"
        )
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")

    observed_rate, mean_probability = calibration_curve(label_array, probability_array, n_bins=n_bins)
    brier = brier_score_loss(label_array, probability_array)

    figure = _new_figure(5, 6)
    reliability_axes, histogram_axes = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    reliability_axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    reliability_axes.plot(
        mean_probability, observed_rate, marker="o", color="tab:blue", label=f"model (Brier = {brier:.3f})"
    )
    reliability_axes.set(
        xlim=(0, 1),
        ylim=(-0.02, 1.02),  # room for the markers of bins with rate 0 or 1
        ylabel="observed melanoma rate",
        title=f"Calibration ({n_bins} bins, n = {len(label_array)})",
    )
    reliability_axes.legend(loc="upper left")
    histogram_axes.hist(
        [probability_array[label_array == 0], probability_array[label_array == 1]],
        bins=np.linspace(0.0, 1.0, n_bins + 1),
        stacked=True,
        color=["tab:green", "tab:red"],
        label=["not melanoma", "melanoma"],
    )
    histogram_axes.set(xlabel="predicted melanoma probability", ylabel="images")
    histogram_axes.legend(loc="upper right")
    return _save(figure, path)
