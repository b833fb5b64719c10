"""ISIC 2017 evaluation metrics: lesion segmentation (Jaccard, Dice) and melanoma classification (AUC, AP, ...).

Only numpy and scikit-learn are imported, so the evaluator and the serving code can use this module without torch.

The definitions follow the official scorer, ``isic-challenge-scoring`` (``isic_challenge_scoring/metrics.py``,
``segmentation.py``, ``confusion.py``):

* Segmentation is scored per image from the pixel confusion matrix and averaged over images (a macro average,
  not pooled pixels). Jaccard = TP / (TP + FP + FN), Dice = 2 TP / (2 TP + FP + FN). When prediction and target
  are both empty (TP + FP + FN == 0) both scores are 1.0, a perfect answer (``binary_jaccard`` / ``binary_dice``).
  An empty prediction of a non-empty lesion, or a non-empty prediction of an empty target, scores 0.0.
* The thresholded Jaccard sets a per-image Jaccard below 0.65 to 0 before averaging; exactly 0.65 is kept
  (``binary_threshold_jaccard``: ``jaccard if jaccard >= threshold else 0.0``).
* AUC and average precision are ``sklearn.metrics.roc_auc_score`` and ``average_precision_score``.

Two documented differences from the scorer: a mask pixel is lesion when it is nonzero (the scorer reads 8-bit PNGs
and takes ``> 128``; the two agree on 0/255 masks), and the classification decision is
``probability >= threshold`` (the scorer uses ``> 0.5``; the two agree unless a score equals the threshold).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import zip_longest
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

THRESHOLDED_JACCARD_CUTOFF = 0.65
"""Per-image Jaccard scores below this count as 0 in the ISIC 2017 thresholded Jaccard."""

BOOTSTRAP_METRICS: tuple[str, ...] = (
    "auc",
    "average_precision",
    "sensitivity",
    "specificity",
    "balanced_accuracy",
    "youden_threshold",
)
"""The metrics that ``classification_scores`` gives 95% bootstrap intervals for."""

_MISSING: Any = object()
"""Fill value that marks the end of the shorter of two iterables."""

Metric = Callable[[np.ndarray, np.ndarray], float]
"""A metric of ``(labels, probabilities)``, e.g. ``sklearn.metrics.roc_auc_score``."""


# --------------------------------------------------------------------------------------------------------------------
# Segmentation
# --------------------------------------------------------------------------------------------------------------------


def _check_bootstrap(n_resamples: int, alpha: float) -> None:
    """Reject a bootstrap that cannot run: no resamples, or an interval level outside (0, 1)."""
    if not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}; use 0.05 for a 95% interval")


def _as_lesion_mask(mask: np.ndarray, name: str) -> np.ndarray:
    """A boolean lesion mask (nonzero = lesion); float masks must already be thresholded to 0/1."""
    mask = np.asarray(mask)
    if mask.dtype.kind == "f":
        # A float mask with values other than 0/1 is almost always an unthresholded probability map, and "nonzero"
        # would then count every pixel with probability 0.01 as lesion.
        if np.isnan(mask).any() or np.any((mask != 0) & (mask != 1)):
            raise ValueError(
                f"{name} mask is a float array with values other than 0 and 1 (a probability map?); "
                "threshold it first, e.g. `probability >= 0.5`"
            )
    elif mask.dtype.kind not in "biu":
        raise ValueError(f"{name} mask has dtype {mask.dtype}; expected a bool or integer array (nonzero = lesion)")
    return mask != 0


def _confusion_counts(prediction: np.ndarray, target: np.ndarray) -> tuple[int, int, int]:
    """Pixel counts (true positives, false positives, false negatives) of one prediction against its target."""
    prediction_mask = _as_lesion_mask(prediction, "prediction")
    target_mask = _as_lesion_mask(target, "target")
    if prediction_mask.shape != target_mask.shape:
        raise ValueError(
            f"prediction mask has shape {prediction_mask.shape} but the target mask has shape {target_mask.shape}; "
            "resize the prediction to the target size (nearest-neighbour) before scoring"
        )
    true_positives = int(np.count_nonzero(prediction_mask & target_mask))
    false_positives = int(np.count_nonzero(prediction_mask)) - true_positives
    false_negatives = int(np.count_nonzero(target_mask)) - true_positives
    return true_positives, false_positives, false_negatives


def _jaccard_from_counts(true_positives: int, false_positives: int, false_negatives: int) -> float:
    union = true_positives + false_positives + false_negatives
    # Both masks empty: ISIC scores this as a perfect answer (metrics.binary_jaccard).
    return 1.0 if union == 0 else true_positives / union


def _dice_from_counts(true_positives: int, false_positives: int, false_negatives: int) -> float:
    denominator = 2 * true_positives + false_positives + false_negatives
    # Both masks empty: ISIC scores this as a perfect answer (metrics.binary_dice).
    return 1.0 if denominator == 0 else 2 * true_positives / denominator


def jaccard(prediction: np.ndarray, target: np.ndarray) -> float:
    """Jaccard index (intersection over union) of one predicted lesion mask against its target.

    Args:
        prediction: predicted mask, any bool/integer dtype (nonzero = lesion) or a float array of 0/1.
        target: ground-truth mask of the same shape.

    Returns:
        TP / (TP + FP + FN) in [0, 1]; 1.0 when both masks are empty (the ISIC convention).

    Raises:
        ValueError: when the shapes differ (resize the prediction to the target size) or a float mask is not 0/1.
    """
    return _jaccard_from_counts(*_confusion_counts(prediction, target))


def dice(prediction: np.ndarray, target: np.ndarray) -> float:
    """Dice coefficient (F1 over pixels) of one predicted lesion mask against its target.

    Args:
        prediction: predicted mask, any bool/integer dtype (nonzero = lesion) or a float array of 0/1.
        target: ground-truth mask of the same shape.

    Returns:
        2 TP / (2 TP + FP + FN) in [0, 1]; 1.0 when both masks are empty (the ISIC convention).

    Raises:
        ValueError: when the shapes differ (resize the prediction to the target size) or a float mask is not 0/1.
    """
    return _dice_from_counts(*_confusion_counts(prediction, target))


FAILURE_JACCARD = THRESHOLDED_JACCARD_CUTOFF  # below it an image scores 0 in the thresholded Jaccard
FAILURE_INSIDE = 0.9  # share of one mask inside the other that makes a failure under- or over-segmentation


def segmentation_failure(prediction: np.ndarray, target: np.ndarray) -> str | None:
    """What kind of failure one predicted mask is, or None when its Jaccard is at least ``FAILURE_JACCARD``.

    - ``"under"``: at least 90% of the predicted lesion lies inside the annotation, so the model missed part of
      the lesion (e.g. it outlined the dark core where the annotator drew around the paler rim);
    - ``"over"``: at least 90% of the annotation lies inside the prediction: the mask spills over it;
    - ``"other"``: neither (a misplaced mask, or errors on both sides); also an empty prediction of a lesion.

    Raises:
        ValueError: as ``jaccard`` (different shapes, non-binary float masks).
    """
    true_positives, false_positives, false_negatives = _confusion_counts(prediction, target)
    if _jaccard_from_counts(true_positives, false_positives, false_negatives) >= FAILURE_JACCARD:
        return None
    predicted, annotated = true_positives + false_positives, true_positives + false_negatives
    if predicted and true_positives >= FAILURE_INSIDE * predicted:
        return "under"
    if annotated and true_positives >= FAILURE_INSIDE * annotated:
        return "over"
    return "other"


class SegmentationMeter:
    """Streaming ISIC 2017 segmentation scores: keeps two floats per image, never the masks.

    Example:
        >>> meter = SegmentationMeter()
        >>> for prediction, target in pairs:  # doctest: +SKIP
        ...     meter.update(prediction, target)
        >>> scores = meter.compute()  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._jaccards: list[float] = []
        self._dices: list[float] = []

    def __len__(self) -> int:
        return len(self._jaccards)

    @classmethod
    def from_scores(cls, jaccards: Iterable[float], dices: Iterable[float]) -> SegmentationMeter:
        """A meter holding already computed per-image scores (e.g. gathered from several processes)."""
        meter = cls()
        meter._jaccards, meter._dices = [float(j) for j in jaccards], [float(d) for d in dices]
        if len(meter._jaccards) != len(meter._dices):
            raise ValueError("pass one Dice score per Jaccard score")
        return meter

    def update(self, prediction: np.ndarray, target: np.ndarray) -> float:
        """Score one image and remember its Jaccard and Dice.

        Args:
            prediction: predicted mask (nonzero = lesion), the same shape as ``target``.
            target: ground-truth mask.

        Returns:
            This image's Jaccard index.
        """
        counts = _confusion_counts(prediction, target)
        self._jaccards.append(_jaccard_from_counts(*counts))
        self._dices.append(_dice_from_counts(*counts))
        return self._jaccards[-1]

    def compute(self) -> dict[str, Any]:
        """The ISIC 2017 scores over every image seen so far.

        Returns:
            ``n`` (images), ``jaccard`` (mean per-image Jaccard: ISIC 2017's ranking metric),
            ``thresholded_jaccard`` (mean after setting per-image scores below 0.65 to 0: ISIC 2018's; the official
            scorer computes both), ``dice`` (mean per-image Dice) and ``per_image_jaccard`` (list, in update order).

        Raises:
            ValueError: when no image has been scored yet.
        """
        if not self._jaccards:
            raise ValueError("no images were scored; call update(prediction, target) at least once before compute()")
        jaccards = np.asarray(self._jaccards)
        thresholded = np.where(jaccards >= THRESHOLDED_JACCARD_CUTOFF, jaccards, 0.0)
        return {
            "n": len(self._jaccards),
            "jaccard": float(jaccards.mean()),
            "thresholded_jaccard": float(thresholded.mean()),
            "dice": float(np.mean(self._dices)),
            "per_image_jaccard": list(self._jaccards),
        }

    def bootstrap_ci(self, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, list[float]]:
        """Percentile bootstrap intervals of the three scores over resamples of the images seen so far.

        Each resample draws as many images as were scored, with replacement, and recomputes the mean Jaccard, the
        thresholded Jaccard and the mean Dice on it (the images are the sampling unit, as in the challenge's
        per-image mean). The same seed gives the same intervals.

        Returns:
            ``{"jaccard": [low, high], "thresholded_jaccard": [...], "dice": [...]}``.

        Raises:
            ValueError: when no image has been scored, ``n_resamples < 1`` or alpha not in (0, 1).
        """
        if not self._jaccards:
            raise ValueError("no images were scored; call update(prediction, target) at least once first")
        _check_bootstrap(n_resamples, alpha)
        jaccards, dices = np.asarray(self._jaccards), np.asarray(self._dices)
        thresholded = np.where(jaccards >= THRESHOLDED_JACCARD_CUTOFF, jaccards, 0.0)
        indices = np.random.default_rng(seed).integers(0, len(jaccards), size=(n_resamples, len(jaccards)))
        intervals = {}
        for name, values in (("jaccard", jaccards), ("thresholded_jaccard", thresholded), ("dice", dices)):
            low, high = np.quantile(values[indices].mean(axis=1), [alpha / 2, 1 - alpha / 2])
            intervals[name] = [float(low), float(high)]
        return intervals


def segmentation_scores(predictions: Iterable[np.ndarray], targets: Iterable[np.ndarray]) -> dict[str, Any]:
    """ISIC 2017 segmentation scores of paired predicted and ground-truth masks.

    Args:
        predictions: predicted masks (nonzero = lesion).
        targets: ground-truth masks, in the same order and of the same shapes.

    Returns:
        The dict of ``SegmentationMeter.compute``: ``n``, ``jaccard``, ``thresholded_jaccard``, ``dice``,
        ``per_image_jaccard``.

    Raises:
        ValueError: when the two iterables have different lengths, are empty, or a pair has different shapes.
    """
    meter = SegmentationMeter()
    for prediction, target in zip_longest(predictions, targets, fillvalue=_MISSING):
        if prediction is _MISSING or target is _MISSING:
            longer = "targets" if prediction is _MISSING else "predictions"
            raise ValueError(
                f"predictions and targets have different lengths: {longer} has more than {len(meter)} masks; "
                "pass one prediction per target mask"
            )
        meter.update(prediction, target)
    return meter.compute()


# --------------------------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------------------------


def check_classification_inputs(labels: Any, probabilities: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate binary labels and scores; return them as an int array and a float array.

    Args:
        labels: 0/1 (or bool, or 0.0/1.0) ground truth, 1 = melanoma.
        probabilities: one finite score per label, usually the melanoma probability.

    Returns:
        ``(labels, probabilities)`` as 1-D ``int64`` and ``float64`` arrays.

    Raises:
        ValueError: when the inputs are not 1-D, empty, of different lengths, labels are not 0/1, a score is NaN or
            infinite, or only one class is present (AUC, sensitivity and specificity are then undefined).
    """
    label_array = np.asarray(labels)
    probability_array = np.asarray(probabilities, dtype=np.float64)
    if label_array.ndim != 1 or probability_array.ndim != 1:
        raise ValueError(
            f"labels and probabilities must be 1-D, got shapes {label_array.shape} and {probability_array.shape}; "
            "pass one melanoma probability per image"
        )
    if len(label_array) != len(probability_array):
        raise ValueError(
            f"got {len(label_array)} labels but {len(probability_array)} probabilities; pass one probability per label"
        )
    if len(label_array) == 0:
        raise ValueError("no labels to score; pass at least one melanoma and one non-melanoma case")
    if label_array.dtype.kind not in "biuf" or not np.all((label_array == 0) | (label_array == 1)):
        bad = sorted({repr(value) for value in label_array.tolist() if not (value == 0 or value == 1)})[:5]
        raise ValueError(f"labels must be 0 (not melanoma) or 1 (melanoma), got values {', '.join(bad)}")
    if not np.all(np.isfinite(probability_array)):
        count = int(np.count_nonzero(~np.isfinite(probability_array)))
        raise ValueError(
            f"{count} probabilities are NaN or infinite; check the model output (diverged training or a failed image)"
        )
    label_array = label_array.astype(np.int64)
    n_positive = int(label_array.sum())
    if n_positive in (0, len(label_array)):
        present = "melanoma (1)" if n_positive else "non-melanoma (0)"
        raise ValueError(
            f"only one class is present: all {len(label_array)} labels are {present}; AUC, sensitivity and "
            "specificity are undefined; evaluate on a set with both melanoma and non-melanoma cases"
        )
    return label_array, probability_array


def _rates(labels: np.ndarray, flagged: np.ndarray) -> tuple[float, float]:
    """Sensitivity and specificity of boolean decisions ``flagged`` against validated labels (both classes)."""
    positives = labels == 1
    sensitivity = np.count_nonzero(flagged & positives) / np.count_nonzero(positives)
    specificity = np.count_nonzero(~flagged & ~positives) / np.count_nonzero(~positives)
    return float(sensitivity), float(specificity)


def _sensitivity_specificity(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> tuple[float, float]:
    """Sensitivity and specificity of validated inputs (both classes present)."""
    return _rates(labels, probabilities >= threshold)


def _check_threshold(threshold: float) -> float:
    if not isinstance(threshold, int | float | np.floating | np.integer) or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    return float(threshold)


def sensitivity_specificity(labels: Any, probabilities: Any, threshold: float) -> tuple[float, float]:
    """Sensitivity and specificity when a case is called melanoma if ``probability >= threshold``.

    Args:
        labels: 0/1 ground truth, 1 = melanoma.
        probabilities: melanoma probabilities (or any scores), one per label.
        threshold: decision threshold; a probability equal to it counts as melanoma.

    Returns:
        ``(sensitivity, specificity)``: the fraction of melanomas flagged and of non-melanomas not flagged.

    Raises:
        ValueError: on invalid inputs (see ``check_classification_inputs``) or a non-finite threshold.
    """
    label_array, probability_array = check_classification_inputs(labels, probabilities)
    return _sensitivity_specificity(label_array, probability_array, _check_threshold(threshold))


def _youden_threshold(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Youden threshold of validated inputs."""
    # drop_intermediate=False keeps every threshold, so the tie rule below sees all candidates.
    false_positive_rates, true_positive_rates, thresholds = roc_curve(labels, probabilities, drop_intermediate=False)
    youden_index = true_positive_rates - false_positive_rates
    # Equal J values can differ in the last bit (2/3 - 0 vs 1 - 1/3), so compare with a tolerance; thresholds are
    # decreasing, so the first maximum is the largest threshold, the one flagging the fewest cases.
    best = int(np.flatnonzero(youden_index >= youden_index.max() - 1e-12)[0])
    threshold = float(thresholds[best])
    if not math.isfinite(threshold):
        # sklearn's first threshold is +inf (flag nobody, J = 0); it wins only when no threshold does better than
        # chance. Replace it by the next float above the highest score: finite (JSON-safe), still flags nobody.
        threshold = float(np.nextafter(probabilities.max(), np.inf))
    return threshold


def youden_threshold(labels: Any, probabilities: Any) -> float:
    """The decision threshold that maximises Youden's J = sensitivity + specificity - 1 on the ROC curve.

    Candidates are the thresholds of ``sklearn.metrics.roc_curve`` (the distinct scores), with the decision
    ``probability >= threshold``. Ties go to the largest threshold, i.e. the one that flags the fewest cases as
    melanoma: among operating points that are equally good by J, prefer fewer false alarms. sklearn's first threshold,
    ``+inf`` (flag nobody), is replaced by the next float above the highest score, so the result is always finite; it
    is chosen only when no threshold beats chance.

    Args:
        labels: 0/1 ground truth, 1 = melanoma.
        probabilities: melanoma probabilities (or any scores), one per label.

    Returns:
        The threshold, one of the scores (or just above the highest).

    Raises:
        ValueError: on invalid inputs (see ``check_classification_inputs``).
    """
    return _youden_threshold(*check_classification_inputs(labels, probabilities))


def cross_fitted_operating_point(
    labels: Any, probabilities: Any, folds: int = 5, repeats: int = 50, seed: int = 0
) -> dict[str, Any]:
    """Sensitivity and specificity when Youden's threshold is fitted on other images than the ones it decides.

    A threshold fitted by Youden's J on the images it is then scored on picks the cut-point that happens to suit
    those images, so their sensitivity and specificity flatter it (more so on few melanomas). Cross-fitting removes
    that: the images are split into ``folds`` stratified folds, each fold is decided at Youden's threshold fitted
    on the other folds, and sensitivity and specificity are counted over every image's held-out decision. The split
    is repeated ``repeats`` times with different shuffles; the result is the mean over repeats, with the 2.5th and
    97.5th percentiles over repeats as ``range95`` (how much the estimate depends on the split: not a confidence
    interval, which ``classification_scores``' bootstrap gives). It estimates the operating point a threshold fitted
    on ``(folds - 1) / folds`` of these images reaches on new images like them.

    Args:
        labels: 0/1 ground truth, 1 = melanoma.
        probabilities: melanoma probabilities (or any scores), one per label.
        folds: number of folds; each class needs at least this many images.
        repeats: number of shuffled splits.
        seed: seed of the shuffles; the same seed gives the same result.

    Returns:
        ``folds``, ``repeats``, ``sensitivity``, ``specificity``, ``balanced_accuracy``, ``threshold`` (mean of the
        fitted thresholds) and ``range95`` = {each of those four: [2.5th, 97.5th percentile over repeats]}.

    Raises:
        ValueError: on invalid inputs (see ``check_classification_inputs``), ``folds < 2``, ``repeats < 1``, or a
            class with fewer than ``folds`` images.
    """
    from sklearn.model_selection import StratifiedKFold

    label_array, probability_array = check_classification_inputs(labels, probabilities)
    if not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    smallest = int(min(label_array.sum(), len(label_array) - label_array.sum()))
    if smallest < folds:
        raise ValueError(
            f"cross-fitting over {folds} folds needs at least {folds} images of each class, the smaller class has "
            f"{smallest}: use fewer folds or more labelled images"
        )
    values: dict[str, list[float]] = {"sensitivity": [], "specificity": [], "balanced_accuracy": [], "threshold": []}
    for repeat in range(repeats):
        flagged = np.zeros(len(label_array), dtype=bool)
        thresholds = []
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed + repeat)
        for fit, held_out in splitter.split(probability_array, label_array):
            threshold = _youden_threshold(label_array[fit], probability_array[fit])
            flagged[held_out] = probability_array[held_out] >= threshold
            thresholds.append(threshold)
        sensitivity, specificity = _rates(label_array, flagged)
        values["sensitivity"].append(sensitivity)
        values["specificity"].append(specificity)
        values["balanced_accuracy"].append((sensitivity + specificity) / 2)
        values["threshold"].append(float(np.mean(thresholds)))
    return {
        "folds": folds,
        "repeats": repeats,
        **{name: float(np.mean(v)) for name, v in values.items()},
        "range95": {name: [float(q) for q in np.quantile(v, [0.025, 0.975])] for name, v in values.items()},
    }


def cross_fitted_summary(labels: Any, probabilities: Any, folds: int = 5) -> dict[str, Any]:
    """``cross_fitted_operating_point`` rounded for a JSON report, with a sentence on what it is; when these images
    cannot be split (a class with fewer than ``folds`` images), ``{"skipped": reason}`` instead of an error."""
    try:
        point = cross_fitted_operating_point(labels, probabilities, folds=folds)
    except ValueError as error:  # the folds are fixed here: only more labelled images help
        return {"skipped": str(error).replace("use fewer folds or more labelled images", "add labelled images")}
    return {
        "what": (
            f"Youden's threshold fitted on {folds - 1} of {folds} stratified folds of these images, each fold decided "
            f"at the threshold fitted on the others; mean over {point['repeats']} shuffles (range95: 2.5th-97.5th "
            "percentile over shuffles). Unlike sensitivity/specificity at a threshold fitted on these same images, "
            "not flattered by the fit."
        ),
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in point.items() if k != "range95"},
        "range95": {k: [round(x, 4) for x in v] for k, v in point["range95"].items()},
    }


def _stratified_resamples(labels: np.ndarray, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Index arrays of bootstrap resamples that keep the number of positives and negatives fixed."""
    rng = np.random.default_rng(seed)
    positive_indices = np.flatnonzero(labels == 1)
    negative_indices = np.flatnonzero(labels == 0)
    for _ in range(n_resamples):
        yield np.concatenate(
            [
                rng.choice(positive_indices, size=len(positive_indices), replace=True),
                rng.choice(negative_indices, size=len(negative_indices), replace=True),
            ]
        )


def _bootstrap_intervals(
    metrics: Mapping[str, Metric],
    labels: np.ndarray,
    probabilities: np.ndarray,
    n_resamples: int,
    seed: int,
    alpha: float,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of several metrics over the same stratified resamples of validated inputs."""
    _check_bootstrap(n_resamples, alpha)
    values: dict[str, list[float]] = {name: [] for name in metrics}
    for indices in _stratified_resamples(labels, n_resamples, seed):
        for name, metric in metrics.items():
            values[name].append(float(metric(labels[indices], probabilities[indices])))
    intervals = {}
    for name, samples in values.items():
        low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
        intervals[name] = (float(low), float(high))
    return intervals


def bootstrap_ci(
    metric: Metric,
    labels: Any,
    probabilities: Any,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a metric of ``(labels, probabilities)``.

    Resampling is stratified: each resample draws, with replacement, as many melanomas and as many non-melanomas as
    the data has, so every resample has both classes (AUC stays defined) and the prevalence is fixed.

    Args:
        metric: a function ``metric(labels, probabilities) -> float``, e.g. ``sklearn.metrics.roc_auc_score``.
        labels: 0/1 ground truth, 1 = melanoma.
        probabilities: melanoma probabilities (or any scores), one per label.
        n_resamples: number of bootstrap resamples.
        seed: seed of the resampling; the same seed gives the same interval.
        alpha: 1 - confidence level; 0.05 gives the 2.5th and 97.5th percentiles.

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: on invalid inputs (see ``check_classification_inputs``), ``n_resamples < 1`` or alpha not in (0, 1).
    """
    label_array, probability_array = check_classification_inputs(labels, probabilities)
    intervals = _bootstrap_intervals({"metric": metric}, label_array, probability_array, n_resamples, seed, alpha)
    return intervals["metric"]


def paired_auc_difference(
    labels: Any, baseline: Any, other: Any, n_resamples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """AUC of ``other`` minus AUC of ``baseline`` on the same images, with a paired stratified bootstrap 95% interval.

    Both score vectors are resampled with the same indices (stratified as in ``bootstrap_ci``), so the interval
    reflects the difference between the two models on these images, not the spread of each AUC on its own.

    Args:
        labels: 0/1 ground truth, 1 = melanoma.
        baseline: the baseline model's scores, one per label.
        other: the other model's scores for the same images, in the same order.
        n_resamples: number of bootstrap resamples.
        seed: seed of the resampling.

    Returns:
        ``{"baseline_auc", "other_auc", "difference", "ci95": [low, high], "decision"}``; ``decision`` is
        "better" when the interval lies above 0, "worse" when below 0, else "within noise".

    Raises:
        ValueError: on invalid inputs (see ``check_classification_inputs``) or score vectors of different lengths.
    """
    label_array, base_array = check_classification_inputs(labels, baseline)
    other_array = check_classification_inputs(labels, other)[1]
    differences = []
    for index in _stratified_resamples(label_array, n_resamples, seed):
        resampled = label_array[index]
        differences.append(roc_auc_score(resampled, other_array[index]) - roc_auc_score(resampled, base_array[index]))
    low, high = (float(value) for value in np.quantile(differences, [0.025, 0.975]))
    base_auc, other_auc = float(roc_auc_score(label_array, base_array)), float(roc_auc_score(label_array, other_array))
    return {
        "baseline_auc": base_auc,
        "other_auc": other_auc,
        "difference": other_auc - base_auc,
        "ci95": [low, high],
        "decision": "better" if low > 0 else "worse" if high < 0 else "within noise",
    }


def paired_mean_difference(baseline: Any, other: Any, n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Mean of ``other`` minus mean of ``baseline`` over the same items (e.g. per-image Jaccard indices of two
    segmenters on the same images), with a paired bootstrap 95% interval (items resampled with replacement).

    Returns:
        ``{"baseline_mean", "other_mean", "difference", "ci95": [low, high], "decision"}``; ``decision`` is
        "better" when the interval lies above 0, "worse" when below 0, else "within noise".

    Raises:
        ValueError: when the two vectors differ in length, are empty, or hold non-finite values.
    """
    base_array, other_array = np.asarray(baseline, dtype=float), np.asarray(other, dtype=float)
    if base_array.ndim != 1 or base_array.shape != other_array.shape or base_array.size == 0:
        raise ValueError(
            f"need two equally long, non-empty score vectors, got {base_array.shape} and {other_array.shape}"
        )
    if not (np.isfinite(base_array).all() and np.isfinite(other_array).all()):
        raise ValueError("scores must be finite numbers")
    differences = other_array - base_array
    index = np.random.default_rng(seed).integers(0, differences.size, size=(n_resamples, differences.size))
    low, high = (float(value) for value in np.quantile(differences[index].mean(axis=1), [0.025, 0.975]))
    return {
        "baseline_mean": float(base_array.mean()),
        "other_mean": float(other_array.mean()),
        "difference": float(differences.mean()),
        "ci95": [low, high],
        "decision": "better" if low > 0 else "worse" if high < 0 else "within noise",
    }


def _classification_metrics(threshold: float) -> dict[str, Metric]:
    """The reported metrics as functions of validated ``(labels, probabilities)``, at a fixed threshold."""

    def sensitivity(labels: np.ndarray, probabilities: np.ndarray) -> float:
        return _sensitivity_specificity(labels, probabilities, threshold)[0]

    def specificity(labels: np.ndarray, probabilities: np.ndarray) -> float:
        return _sensitivity_specificity(labels, probabilities, threshold)[1]

    def balanced_accuracy(labels: np.ndarray, probabilities: np.ndarray) -> float:
        return sum(_sensitivity_specificity(labels, probabilities, threshold)) / 2

    return {
        "auc": lambda labels, probabilities: float(roc_auc_score(labels, probabilities)),
        "average_precision": lambda labels, probabilities: float(average_precision_score(labels, probabilities)),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "balanced_accuracy": balanced_accuracy,
        "youden_threshold": _youden_threshold,
    }


def classification_scores(
    labels: Any,
    probabilities: Any,
    threshold: float | None = None,
    bootstrap: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """ISIC 2017 melanoma classification scores, plus the operating point at a decision threshold.

    Args:
        labels: 0/1 ground truth, 1 = melanoma.
        probabilities: melanoma probabilities (or any scores), one per label.
        threshold: decision threshold (``probability >= threshold`` is melanoma); None picks Youden's threshold on
            these data (``youden_threshold``), which is optimistic: fix it on validation data to report test scores.
        bootstrap: number of stratified bootstrap resamples for 95% intervals; 0 skips them.
        seed: seed of the bootstrap.

    Returns:
        ``n``, ``n_positive``, ``auc``, ``average_precision``, ``threshold``, ``sensitivity``, ``specificity``,
        ``balanced_accuracy``, ``youden_threshold`` (Youden's threshold on these data, whatever ``threshold`` is);
        with ``bootstrap > 0`` also ``ci95`` = {metric: [low, high]} for auc, average_precision, sensitivity,
        specificity, balanced_accuracy (percentile intervals, threshold fixed) and youden_threshold (how much the
        Youden cut-point itself moves between resamples: wide on few positives).

    Raises:
        ValueError: on invalid inputs (see ``check_classification_inputs``), a non-finite threshold or
            ``bootstrap < 0``.
    """
    label_array, probability_array = check_classification_inputs(labels, probabilities)
    if threshold is None:
        threshold = _youden_threshold(label_array, probability_array)
    threshold = _check_threshold(threshold)
    if not isinstance(bootstrap, int) or bootstrap < 0:
        raise ValueError(f"bootstrap must be a non-negative number of resamples, got {bootstrap!r}")
    metrics = _classification_metrics(threshold)
    scores: dict[str, Any] = {
        "n": len(label_array),
        "n_positive": int(label_array.sum()),
        "auc": metrics["auc"](label_array, probability_array),
        "average_precision": metrics["average_precision"](label_array, probability_array),
        "threshold": threshold,
    }
    sensitivity, specificity = _sensitivity_specificity(label_array, probability_array, threshold)
    scores.update(sensitivity=sensitivity, specificity=specificity, balanced_accuracy=(sensitivity + specificity) / 2)
    scores["youden_threshold"] = _youden_threshold(label_array, probability_array)
    if bootstrap > 0:
        intervals = _bootstrap_intervals(
            {name: metrics[name] for name in BOOTSTRAP_METRICS}, label_array, probability_array, bootstrap, seed, 0.05
        )
        scores["ci95"] = {name: [low, high] for name, (low, high) in intervals.items()}
    return scores
