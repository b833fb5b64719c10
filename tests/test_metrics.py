"""Metrics: hand-computed values, the ISIC empty-mask convention, errors, and agreement with isic-challenge-scoring."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import require
from sklearn.metrics import roc_auc_score

import melanoma.metrics
from melanoma.metrics import (
    BOOTSTRAP_METRICS,
    SegmentationMeter,
    bootstrap_ci,
    check_classification_inputs,
    classification_scores,
    cross_fitted_operating_point,
    dice,
    jaccard,
    paired_auc_difference,
    paired_mean_difference,
    segmentation_failure,
    segmentation_scores,
    sensitivity_specificity,
    youden_threshold,
)

# --------------------------------------------------------------------------------------------------------------------
# Segmentation, by hand
# --------------------------------------------------------------------------------------------------------------------

# A 1x5 pair with TP = 3, FP = 1, FN = 1: Jaccard 3/5 = 0.6 (below the 0.65 cut-off), Dice 6/8.
JACCARD_06_PREDICTION = np.array([[1, 1, 1, 0, 1]])
JACCARD_06_TARGET = np.array([[1, 1, 1, 1, 0]])
# TP = 13, FP + FN = 7: Jaccard exactly 13/20 = 0.65, which ISIC keeps (>= 0.65).
JACCARD_065_PREDICTION = np.array([[1] * 13 + [1] * 3 + [0] * 4 + [0]])
JACCARD_065_TARGET = np.array([[1] * 13 + [0] * 3 + [1] * 4 + [0]])

MASK_CASES = [
    # (name, prediction, target, jaccard, dice)
    ("2x2 overlap of one pixel", [[1, 1], [0, 0]], [[1, 0], [1, 0]], 1 / 3, 2 / 4),
    ("2x2 identical", [[1, 0], [1, 1]], [[1, 0], [1, 1]], 1.0, 1.0),
    ("2x2 disjoint", [[1, 0], [0, 0]], [[0, 0], [0, 1]], 0.0, 0.0),
    ("2x2 prediction inside target", [[1, 0], [0, 0]], [[1, 1], [0, 0]], 1 / 2, 2 / 3),
    ("both empty: perfect (ISIC)", [[0, 0], [0, 0]], [[0, 0], [0, 0]], 1.0, 1.0),
    ("empty prediction, lesion present", [[0, 0], [0, 0]], [[0, 1], [0, 0]], 0.0, 0.0),
    ("lesion predicted, empty target", [[0, 1], [0, 0]], [[0, 0], [0, 0]], 0.0, 0.0),
    ("1x5 Jaccard 0.6", JACCARD_06_PREDICTION, JACCARD_06_TARGET, 0.6, 0.75),
    ("1x21 Jaccard 0.65", JACCARD_065_PREDICTION, JACCARD_065_TARGET, 0.65, 26 / 33),
]


@pytest.mark.parametrize(
    ("prediction", "target", "expected_jaccard", "expected_dice"),
    [case[1:] for case in MASK_CASES],
    ids=[case[0] for case in MASK_CASES],
)
def test_jaccard_and_dice_by_hand(prediction, target, expected_jaccard, expected_dice):
    prediction, target = np.asarray(prediction), np.asarray(target)
    assert jaccard(prediction, target) == pytest.approx(expected_jaccard, abs=1e-12)
    assert dice(prediction, target) == pytest.approx(expected_dice, abs=1e-12)


@pytest.mark.parametrize(
    "convert",
    [
        lambda m: m.astype(bool),
        lambda m: (m * 255).astype(np.uint8),
        lambda m: m.astype(np.int64) * 7,
        lambda m: m.astype(np.float32),
    ],
    ids=["bool", "uint8 0/255", "int 0/7", "float 0/1"],
)
def test_any_mask_dtype_nonzero_is_lesion(convert):
    prediction, target = np.array([[1, 1], [0, 0]]), np.array([[1, 0], [1, 0]])
    assert jaccard(convert(prediction), convert(target)) == pytest.approx(1 / 3)
    assert dice(convert(prediction), target) == pytest.approx(1 / 2)


def test_shape_mismatch_says_to_resize():
    with pytest.raises(ValueError, match="resize the prediction to the target size"):
        jaccard(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="resize the prediction"):
        SegmentationMeter().update(np.zeros((8, 8), np.uint8), np.zeros((4, 4), np.uint8))


def test_probability_map_is_refused():
    with pytest.raises(ValueError, match="threshold it first"):
        dice(np.full((2, 2), 0.3), np.ones((2, 2)))


def test_segmentation_failure_kinds_on_shapes():
    target = np.zeros((20, 20), bool)
    target[2:18, 2:18] = True  # 256 pixels
    core = np.zeros_like(target)
    core[6:14, 6:14] = True  # 64 pixels, all inside: Jaccard 0.25
    spill = np.ones_like(target)  # 400 pixels around the 256: Jaccard 0.64
    shifted = np.zeros_like(target)
    shifted[10:20, 10:20] = True  # half outside, missing most: Jaccard < 0.65, neither inside the other
    assert segmentation_failure(target, target) is None
    assert segmentation_failure(core, target) == "under"
    assert segmentation_failure(spill, target) == "over"
    assert segmentation_failure(shifted, target) == "other"
    assert segmentation_failure(np.zeros_like(target), target) == "other"  # nothing found
    nearly = target.copy()
    nearly[2:4, 2:18] = False  # 224 of 256 found, nothing false: Jaccard 0.875, not a failure
    assert segmentation_failure(nearly, target) is None
    with pytest.raises(ValueError, match="shape"):
        segmentation_failure(core[:10], target)


def test_segmentation_scores_thresholded_jaccard_by_hand():
    predictions = [JACCARD_06_PREDICTION, np.ones((2, 2)), np.array([[1, 1], [0, 0]]), JACCARD_065_PREDICTION]
    targets = [JACCARD_06_TARGET, np.ones((2, 2)), np.array([[1, 0], [1, 0]]), JACCARD_065_TARGET]
    scores = segmentation_scores(predictions, targets)
    assert scores["n"] == 4
    assert scores["per_image_jaccard"] == pytest.approx([0.6, 1.0, 1 / 3, 0.65])
    assert scores["jaccard"] == pytest.approx((0.6 + 1.0 + 1 / 3 + 0.65) / 4)
    # 0.6 and 1/3 are below 0.65 and count as 0; exactly 0.65 is kept.
    assert scores["thresholded_jaccard"] == pytest.approx((0 + 1.0 + 0 + 0.65) / 4)
    assert scores["dice"] == pytest.approx((0.75 + 1.0 + 0.5 + 26 / 33) / 4)
    json.dumps(scores)  # plain Python types, ready for metrics.json


def test_meter_streams_the_same_scores_as_the_batch_function():
    rng = np.random.default_rng(1)
    predictions = [rng.random((16, 16)) > 0.5 for _ in range(5)]
    targets = [rng.random((16, 16)) > 0.4 for _ in range(5)]
    meter = SegmentationMeter()
    per_image = [meter.update(p, t) for p, t in zip(predictions, targets, strict=True)]
    assert len(meter) == 5
    scores = meter.compute()
    assert scores == segmentation_scores(iter(predictions), iter(targets))
    # against Jaccard and Dice written out here, not through the meter
    jaccards = [(p & t).sum() / (p | t).sum() for p, t in zip(predictions, targets, strict=True)]
    dices = [2 * (p & t).sum() / (p.sum() + t.sum()) for p, t in zip(predictions, targets, strict=True)]
    assert per_image == pytest.approx(jaccards) and scores["per_image_jaccard"] == pytest.approx(jaccards)
    assert scores["jaccard"] == pytest.approx(np.mean(jaccards)) and scores["dice"] == pytest.approx(np.mean(dices))


def test_meter_bootstrap_intervals_bracket_the_scores_and_shrink_with_more_images():
    rng = np.random.default_rng(2)
    small, large = SegmentationMeter(), SegmentationMeter()
    for meter, n in ((small, 30), (large, 600)):
        meter._jaccards = list(rng.uniform(0.3, 1.0, n))  # per-image scores as update() would leave them
        meter._dices = [2 * j / (1 + j) for j in meter._jaccards]
    for meter in (small, large):
        scores, intervals = meter.compute(), meter.bootstrap_ci(500, seed=1)
        for name in ("jaccard", "thresholded_jaccard", "dice"):
            low, high = intervals[name]
            assert low < scores[name] < high
    assert np.diff(large.bootstrap_ci(500)["jaccard"]) < np.diff(small.bootstrap_ci(500)["jaccard"]) / 3
    assert small.bootstrap_ci(200, seed=3) == small.bootstrap_ci(200, seed=3)
    # every image scores the same: no spread to resample
    constant = SegmentationMeter.from_scores([0.8] * 10, [0.9] * 10)
    assert constant.bootstrap_ci(100) == {
        "jaccard": [pytest.approx(0.8)] * 2,
        "thresholded_jaccard": [pytest.approx(0.8)] * 2,
        "dice": [pytest.approx(0.9)] * 2,
    }
    with pytest.raises(ValueError, match="call update"):
        SegmentationMeter().bootstrap_ci()
    with pytest.raises(ValueError, match="n_resamples must be a positive integer"):
        constant.bootstrap_ci(0)


def test_segmentation_errors():
    with pytest.raises(ValueError, match="call update"):
        SegmentationMeter().compute()
    with pytest.raises(ValueError, match="call update"):
        segmentation_scores([], [])
    with pytest.raises(ValueError, match="different lengths: predictions has more than 1"):
        segmentation_scores([np.ones((2, 2))] * 2, [np.ones((2, 2))])
    with pytest.raises(ValueError, match="different lengths: targets"):
        segmentation_scores([np.ones((2, 2))], [np.ones((2, 2))] * 3)


# --------------------------------------------------------------------------------------------------------------------
# Classification, by hand
# --------------------------------------------------------------------------------------------------------------------

CLASSIFICATION_CASES = [
    # (name, labels, probabilities, auc, average precision, youden threshold, sensitivity, specificity)
    # ROC points (threshold: fpr, tpr): 0.8: (0, 1/2), 0.4: (1/2, 1/2), 0.35: (1/2, 1), 0.1: (1, 1).
    # J ties at 1/2 between 0.8 and 0.35: the larger threshold wins. AP = 1/2 * 1 + 1/2 * 2/3.
    ("J tie", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75, 5 / 6, 0.8, 0.5, 1.0),
    # Pairs won 8/9. J = 2/3 at 0.7 (2/3 - 0) and at 0.4 (1 - 1/3), which differ in the last bit as floats.
    # AP = 1/3 + 1/3 + 1/3 * 3/4.
    ("J float tie", [0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.6, 0.4, 0.7, 0.9], 8 / 9, 11 / 12, 0.7, 2 / 3, 1.0),
    ("perfect", [0, 0, 1, 1], [0.2, 0.3, 0.6, 0.9], 1.0, 1.0, 0.6, 1.0, 1.0),
    # A melanoma and a non-melanoma tied at 0.5 count as half a pair: (3 + 2.5 + 2) / 9. ROC points: 0.9: (0, 1/3),
    # 0.5: (1/3, 2/3), 0.3: (1/3, 1), 0.2: (2/3, 1): unique J maximum 2/3 at 0.3. AP = 1/3 (1 + 2/3 + 3/4).
    ("tied scores", [1, 1, 1, 0, 0, 0], [0.9, 0.5, 0.3, 0.5, 0.2, 0.1], 5 / 6, 29 / 36, 0.3, 1.0, 2 / 3),
]


@pytest.mark.parametrize(
    ("labels", "probabilities", "auc", "average_precision", "threshold", "sensitivity", "specificity"),
    [case[1:] for case in CLASSIFICATION_CASES],
    ids=[case[0] for case in CLASSIFICATION_CASES],
)
def test_classification_scores_by_hand(
    labels, probabilities, auc, average_precision, threshold, sensitivity, specificity
):
    scores = classification_scores(labels, probabilities)
    assert scores["n"] == len(labels)
    assert scores["n_positive"] == sum(labels)
    assert scores["auc"] == pytest.approx(auc)
    assert scores["average_precision"] == pytest.approx(average_precision)
    assert scores["threshold"] == threshold
    assert youden_threshold(labels, probabilities) == threshold
    assert scores["sensitivity"] == pytest.approx(sensitivity)
    assert scores["specificity"] == pytest.approx(specificity)
    assert scores["balanced_accuracy"] == pytest.approx((sensitivity + specificity) / 2)
    assert "ci95" not in scores
    json.dumps(scores)


def test_sensitivity_specificity_at_threshold_counts_equal_as_melanoma():
    labels = [0, 1, 1, 0, 1]
    probabilities = [0.2, 0.5, 0.7, 0.5, 0.3]
    # Melanomas 0.5, 0.7 flagged, 0.3 missed: 2/3. Non-melanomas: 0.2 cleared, 0.5 flagged (>=): 1/2.
    assert sensitivity_specificity(labels, probabilities, 0.5) == pytest.approx((2 / 3, 1 / 2))
    assert sensitivity_specificity(labels, probabilities, 0.51) == pytest.approx((1 / 3, 1.0))
    assert sensitivity_specificity(labels, probabilities, 0.0) == (1.0, 0.0)


def test_fixed_threshold_is_used_as_given():
    scores = classification_scores([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], threshold=0.3)
    assert scores["threshold"] == 0.3
    assert (scores["sensitivity"], scores["specificity"], scores["balanced_accuracy"]) == (1.0, 0.5, 0.75)


def test_youden_threshold_worse_than_chance_is_finite_and_flags_nobody():
    # Every threshold has J <= 0; sklearn's +inf (flag nobody, J = 0) wins the tie and is clipped to a finite value.
    threshold = youden_threshold([1, 0], [0.2, 0.8])
    assert math.isfinite(threshold) and threshold > 0.8
    assert threshold == np.nextafter(0.8, 1.0)
    assert sensitivity_specificity([1, 0], [0.2, 0.8], threshold) == (0.0, 1.0)
    json.dumps(classification_scores([1, 0], [0.2, 0.8]))


def test_youden_threshold_maximises_j_on_random_scores():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    probabilities = np.round(np.clip(0.3 * labels + 0.7 * rng.random(200), 0, 1), 2)  # rounding makes ties
    threshold = youden_threshold(labels, probabilities)
    best_j = sum(sensitivity_specificity(labels, probabilities, threshold)) - 1
    for candidate in np.unique(probabilities):
        j = sum(sensitivity_specificity(labels, probabilities, candidate)) - 1
        assert j <= best_j + 1e-12
        if candidate > threshold:
            assert j < best_j - 1e-12  # no larger threshold ties


def test_cross_fitted_operating_point_is_not_flattered_by_the_fit():
    # Scores that carry no signal: Youden's threshold fitted on the same images finds a cut-point that suits them
    # (balanced accuracy well above 0.5); fitted on other folds, the decisions are as good as chance.
    labels = np.array([1] * 60 + [0] * 240)
    in_sample, cross_fitted = [], []
    for seed in range(5):
        probabilities = np.random.default_rng(seed).random(300)
        in_sample.append(classification_scores(labels, probabilities)["balanced_accuracy"])
        point = cross_fitted_operating_point(labels, probabilities, folds=5, repeats=20)
        cross_fitted.append(point["balanced_accuracy"])
        assert point["balanced_accuracy"] == pytest.approx((point["sensitivity"] + point["specificity"]) / 2)
        low, high = point["range95"]["balanced_accuracy"]
        assert low <= point["balanced_accuracy"] <= high
        assert (point["folds"], point["repeats"]) == (5, 20)
    assert all(fitted > held_out + 0.02 for fitted, held_out in zip(in_sample, cross_fitted, strict=True))
    assert abs(np.mean(cross_fitted) - 0.5) < 0.03


def test_cross_fitted_operating_point_of_separable_scores_and_its_seed():
    labels = [0] * 20 + [1] * 10
    probabilities = [i / 100 for i in range(20)] + [0.5 + i / 100 for i in range(10)]
    point = cross_fitted_operating_point(labels, probabilities, folds=5, repeats=3)
    # Youden's threshold on the fit folds is their lowest melanoma score (ties go to the larger threshold): no
    # benign image is ever flagged, and a held-out melanoma below every fitted one is missed, as on new images.
    assert point["specificity"] == 1.0
    assert 0.8 <= point["sensitivity"] < 1.0
    assert 0.5 <= point["threshold"] <= 0.52
    rng = np.random.default_rng(1)
    labels, probabilities = rng.integers(0, 2, 100), rng.random(100)
    assert cross_fitted_operating_point(labels, probabilities, seed=4) == cross_fitted_operating_point(
        labels, probabilities, seed=4
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"folds": 5}, "at least 5 images of each class, the smaller class has 4: use fewer folds"),
        ({"folds": 1}, "folds must be an integer >= 2"),
        ({"repeats": 0}, "repeats must be a positive integer"),
    ],
)
def test_cross_fitted_operating_point_rejects_what_it_cannot_estimate(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cross_fitted_operating_point([1] * 4 + [0] * 10, np.linspace(0, 1, 14), **kwargs)


@pytest.mark.parametrize(
    ("labels", "probabilities", "message"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], "labels must be 0 .* or 1"),
        ([0, 1, 0.5], [0.1, 0.2, 0.3], "got values 0.5"),
        (["a", "b"], [0.1, 0.2], "labels must be 0"),
        ([0, 1, 1], [0.1, 0.2], "got 3 labels but 2 probabilities"),
        ([0, 1, 1], [0.1, float("nan"), 0.3], "1 probabilities are NaN"),
        ([0, 1], [0.1, float("inf")], "NaN or infinite"),
        ([1, 1, 1], [0.1, 0.2, 0.3], "only one class is present.*melanoma.*AUC.*undefined"),
        ([0, 0], [0.1, 0.2], "only one class is present.*non-melanoma"),
        ([], [], "no labels"),
        ([[0, 1]], [[0.1, 0.2]], "must be 1-D"),
    ],
)
def test_bad_classification_inputs_raise_clear_errors(labels, probabilities, message):
    for function in (classification_scores, youden_threshold, check_classification_inputs):
        with pytest.raises(ValueError, match=message):
            function(labels, probabilities)
    with pytest.raises(ValueError, match=message):
        sensitivity_specificity(labels, probabilities, 0.5)


def test_bad_threshold_and_bootstrap_arguments():
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        classification_scores([0, 1], [0.1, 0.9], threshold=float("nan"))
    with pytest.raises(ValueError, match="bootstrap must be"):
        classification_scores([0, 1], [0.1, 0.9], bootstrap=-1)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(roc_auc_score, [0, 1], [0.1, 0.9], n_resamples=0)
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(roc_auc_score, [0, 1], [0.1, 0.9], alpha=1.5)


def test_labels_accept_bool_and_float():
    expected = classification_scores([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert classification_scores(np.array([False, False, True, True]), [0.1, 0.4, 0.35, 0.8]) == expected
    assert classification_scores([0.0, 0.0, 1.0, 1.0], np.array([0.1, 0.4, 0.35, 0.8], np.float32)) == pytest.approx(
        expected
    )


# --------------------------------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def noisy_scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    labels = (rng.random(120) < 0.3).astype(int)
    probabilities = np.clip(0.35 * labels + 0.65 * rng.random(120), 0, 1)
    return labels, probabilities


def test_bootstrap_ci_is_reproducible_and_contains_the_estimate(noisy_scores):
    labels, probabilities = noisy_scores
    interval = bootstrap_ci(roc_auc_score, labels, probabilities, n_resamples=200, seed=5)
    assert interval == bootstrap_ci(roc_auc_score, labels, probabilities, n_resamples=200, seed=5)
    assert interval != bootstrap_ci(roc_auc_score, labels, probabilities, n_resamples=200, seed=6)
    low, high = interval
    assert 0 <= low < roc_auc_score(labels, probabilities) < high <= 1
    narrower = bootstrap_ci(roc_auc_score, labels, probabilities, n_resamples=200, seed=5, alpha=0.5)
    assert low <= narrower[0] <= narrower[1] <= high


def test_paired_auc_difference_of_a_model_with_itself_is_exactly_zero(noisy_scores):
    labels, probabilities = noisy_scores
    result = paired_auc_difference(labels, probabilities, probabilities, n_resamples=100)
    assert result["difference"] == 0 and result["ci95"] == [0, 0] and result["decision"] == "within noise"


def test_paired_auc_difference_of_perfect_vs_inverted_scores():
    labels = np.array([0, 0, 0, 1, 1, 0, 1, 0])
    perfect = labels * 0.8 + 0.1
    result = paired_auc_difference(labels, 1 - perfect, perfect, n_resamples=50)
    assert (result["baseline_auc"], result["other_auc"], result["difference"]) == (0, 1, 1)
    assert result["ci95"] == [1, 1] and result["decision"] == "better"
    assert paired_auc_difference(labels, perfect, 1 - perfect, n_resamples=50)["decision"] == "worse"


def test_paired_auc_difference_is_paired_and_antisymmetric(noisy_scores):
    labels, probabilities = noisy_scores
    other = np.clip(probabilities + 0.2 * np.random.default_rng(3).standard_normal(labels.size), 0, 1)
    forward = paired_auc_difference(labels, probabilities, other, n_resamples=300, seed=1)
    backward = paired_auc_difference(labels, other, probabilities, n_resamples=300, seed=1)
    assert forward["difference"] == pytest.approx(roc_auc_score(labels, other) - roc_auc_score(labels, probabilities))
    assert backward["difference"] == pytest.approx(-forward["difference"])
    assert backward["ci95"] == pytest.approx([-forward["ci95"][1], -forward["ci95"][0]])
    low, high = forward["ci95"]
    assert low <= forward["difference"] <= high
    # Paired resampling: the interval of the difference is narrower than the two AUCs' own intervals added up.
    own = [bootstrap_ci(roc_auc_score, labels, scores, n_resamples=300, seed=1) for scores in (probabilities, other)]
    assert high - low < sum(b - a for a, b in own)


def test_paired_auc_difference_needs_one_score_per_label():
    with pytest.raises(ValueError, match="one probability per label"):
        paired_auc_difference([0, 1, 1], [0.1, 0.9, 0.8], [0.2, 0.7])


def test_bootstrap_resamples_are_stratified():
    # With one melanoma, any resample without it would make AUC undefined; stratification keeps it in every one.
    labels = [1, 0, 0, 0, 0, 0]
    probabilities = [0.9, 0.1, 0.2, 0.3, 0.95, 0.4]
    prevalence = bootstrap_ci(lambda y, p: float(np.mean(y)), labels, probabilities, n_resamples=50)
    assert prevalence == pytest.approx((1 / 6, 1 / 6))
    low, high = bootstrap_ci(roc_auc_score, labels, probabilities, n_resamples=50)
    assert 0 <= low <= 0.8 <= high <= 1


def test_classification_scores_bootstrap_intervals(noisy_scores):
    labels, probabilities = noisy_scores
    scores = classification_scores(labels, probabilities, threshold=0.5, bootstrap=150, seed=2)
    assert scores == classification_scores(labels, probabilities, threshold=0.5, bootstrap=150, seed=2)
    assert set(scores["ci95"]) == set(BOOTSTRAP_METRICS) and "youden_threshold" in BOOTSTRAP_METRICS
    assert scores["youden_threshold"] == youden_threshold(labels, probabilities)
    for name, (low, high) in scores["ci95"].items():
        assert low <= scores[name] <= high, name
    # The threshold stays fixed: the helper with the same seed and resample count reproduces the interval.
    sensitivity_interval = bootstrap_ci(
        lambda y, p: sensitivity_specificity(y, p, 0.5)[0], labels, probabilities, n_resamples=150, seed=2
    )
    assert scores["ci95"]["sensitivity"] == pytest.approx(list(sensitivity_interval))
    json.dumps(scores)


# --------------------------------------------------------------------------------------------------------------------
# Agreement with the official scorer, isic-challenge-scoring
# --------------------------------------------------------------------------------------------------------------------


# isic-challenge-scoring 5.6.0 calls Series.rename(inplace=True), deprecated in pandas 3.1.
@pytest.mark.filterwarnings("ignore:The inplace keyword in Series.rename")
def test_segmentation_agrees_with_isic_challenge_scoring():
    require("isic_challenge_scoring")
    from isic_challenge_scoring import metrics as isic_metrics
    from isic_challenge_scoring.confusion import create_binary_confusion_matrix
    from isic_challenge_scoring.segmentation import SegmentationScore

    rng = np.random.default_rng(0)
    targets, predictions = [], []
    for i in range(40):
        size = (int(rng.integers(5, 40)), int(rng.integers(5, 40)))
        target = rng.random(size) < rng.uniform(0.1, 0.9)
        # Predictions of every quality, so per-image Jaccard falls on both sides of 0.65.
        prediction = np.where(rng.random(size) < rng.uniform(0.0, 0.6), ~target, target)
        if i == 0:  # both empty
            target, prediction = np.zeros(size, bool), np.zeros(size, bool)
        if i == 1:  # empty target, lesion predicted
            target = np.zeros(size, bool)
        if i == 2:  # lesion missed entirely
            prediction = np.zeros(size, bool)
        # The official scorer reads 8-bit PNGs and binarises at > 128.
        targets.append(target.astype(np.uint8) * 255)
        predictions.append(prediction.astype(np.uint8) * 255)

    for prediction, target in zip(predictions, targets, strict=True):
        confusion = create_binary_confusion_matrix(
            truth_binary_values=target > 128, prediction_binary_values=prediction > 128
        )
        assert jaccard(prediction, target) == pytest.approx(isic_metrics.binary_jaccard(confusion), abs=1e-6)
        assert dice(prediction, target) == pytest.approx(isic_metrics.binary_dice(confusion), abs=1e-6)

    pairs = [
        SimpleNamespace(truth_image=target, prediction_image=prediction, image_id=f"ISIC_{i:07d}")
        for i, (prediction, target) in enumerate(zip(predictions, targets, strict=True))
    ]
    official = SegmentationScore(pairs).macro_average
    ours = segmentation_scores(predictions, targets)
    thresholded = [j < 0.65 for j in ours["per_image_jaccard"]]
    assert 0 < sum(thresholded) < len(thresholded), "the random masks should fall on both sides of 0.65"
    assert ours["jaccard"] == pytest.approx(official["jaccard"], abs=1e-6)
    assert ours["thresholded_jaccard"] == pytest.approx(official["threshold_jaccard"], abs=1e-6)
    assert ours["dice"] == pytest.approx(official["dice"], abs=1e-6)


def test_classification_agrees_with_isic_challenge_scoring():
    require("isic_challenge_scoring")
    import pandas as pd
    from isic_challenge_scoring import metrics as isic_metrics
    from isic_challenge_scoring.confusion import create_binary_confusion_matrix

    rng = np.random.default_rng(11)
    for trial in range(5):
        n = int(rng.integers(20, 300))
        labels = (rng.random(n) < rng.uniform(0.1, 0.5)).astype(int)
        labels[:2] = [0, 1]
        probabilities = np.clip(rng.uniform(0, 0.5) * labels + rng.random(n), 0, 1)
        if trial == 0:
            probabilities = np.round(probabilities, 1)  # ties
        truth = pd.Series(labels.astype(float))
        prediction = pd.Series(probabilities)
        weights = pd.Series(np.ones(n))

        ours = classification_scores(labels, probabilities, threshold=0.5)
        assert ours["auc"] == pytest.approx(isic_metrics.auc(truth, prediction, weights), abs=1e-6)
        assert ours["average_precision"] == pytest.approx(
            isic_metrics.average_precision(truth, prediction, weights), abs=1e-6
        )
        # The scorer's decision is > 0.5, ours >= threshold: give it the same decisions.
        confusion = create_binary_confusion_matrix(
            truth_binary_values=labels.astype(bool), prediction_binary_values=probabilities >= 0.5
        )
        assert ours["sensitivity"] == pytest.approx(isic_metrics.binary_sensitivity(confusion), abs=1e-6)
        assert ours["specificity"] == pytest.approx(isic_metrics.binary_specificity(confusion), abs=1e-6)


def test_metrics_module_imports_only_numpy_and_sklearn():
    # Serving and the evaluator use these metrics without torch (or matplotlib, or pandas) installed.
    source = Path(melanoma.metrics.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"numpy", "sklearn"}
    code = "import sys, melanoma.metrics; print([m for m in ('torch', 'matplotlib') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_meter_from_gathered_scores_matches_the_streaming_meter():
    rng = np.random.default_rng(3)
    pairs = [(rng.random((8, 8)) > 0.5, rng.random((8, 8)) > 0.4) for _ in range(6)]
    streaming = SegmentationMeter()
    for prediction, target in pairs:
        streaming.update(prediction, target)
    gathered = SegmentationMeter.from_scores([jaccard(p, t) for p, t in pairs], [dice(p, t) for p, t in pairs])
    assert gathered.compute() == streaming.compute()
    with pytest.raises(ValueError, match="one Dice score per Jaccard"):
        SegmentationMeter.from_scores([0.5], [])


def test_paired_mean_difference_resamples_pairs_not_means():
    baseline = [0.2, 0.9, 0.5, 0.7, 0.4]
    shifted = [value + 0.05 for value in baseline]  # a constant gain: every pair agrees, so no doubt about it
    result = paired_mean_difference(baseline, shifted, n_resamples=200)
    assert result["difference"] == pytest.approx(0.05) and result["ci95"] == pytest.approx([0.05, 0.05])
    assert result["decision"] == "better"
    assert paired_mean_difference(shifted, baseline, n_resamples=200)["decision"] == "worse"
    mixed = paired_mean_difference([0.5, 0.5, 0.5, 0.5], [0.6, 0.4, 0.6, 0.4], n_resamples=200)
    assert mixed["difference"] == pytest.approx(0.0) and mixed["decision"] == "within noise"
    with pytest.raises(ValueError, match="equally long"):
        paired_mean_difference([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="finite"):
        paired_mean_difference([0.1, float("nan")], [0.1, 0.2])
