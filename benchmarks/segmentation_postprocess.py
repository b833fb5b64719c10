"""Post-processing of the segmenter's masks, tried on held-out train folds instead of the validation set.

Usage:
    python benchmarks/segmentation_postprocess.py RUN_DIR [RUN_DIR ...] [--data-dir DIR] [--json FILE]

Each RUN_DIR is one fold of a ``benchmarks/cross_validate.py`` segmentation study (``OUT/NAME/foldK``: its
``config.yaml`` has ``data.cv_folds``, and ``best.pt``). Its best.pt predicts every image of its own validation fold
(train images it never trained on), and each post-processing variant turns the lesion probability map into a mask
at threshold 0.5, scored against the annotation at the mask's size, as ``val_jaccard`` is:

- ``none``: the thresholded map, as the shipped segmenter serves it;
- ``largest_component`` and ``fill_holes``: the two steps ``melanoma export`` can switch on;
- ``convex_hull_each``: every connected component replaced by its convex hull;
- ``convex_hull_all``: the convex hull of all predicted pixels;
- ``extend_to_edge``: the outer 3 pixels copied from the nearest pixel 3 pixels in (the maps fade there even where
  the annotated lesion reaches the image edge);
- ``dilate_1px``, ``dilate_2px``: the mask grown outward by 1 px (3x3 square) or 2 px (5x5 ellipse), since the
  failures are mostly under-segmentations while a uniform shift of the threshold gains nothing; ``erode_1px``, the
  mask shrunk by 1 px, is the symmetric control; ``close_7px``: a morphological closing with a 7x7 ellipse, which
  fills notches and gaps narrower than about 7 px (a smoother outline, as annotators draw, without a hull);
- ``learned_threshold``: a threshold chosen per image (0.05-0.95) from the map alone by random forests fitted on the
  other images, cross-fitted in 5 parts (``learned_threshold_jaccards``; with at least 20 images).

The convex hulls target where the shipped segmenter fails on validation: it outlines a lesion's dark core where
the annotator drew a generous, smooth outline (model card, "Where the segmenter fails"). Every variant is paired
image by image with ``none`` (``paired_mean_difference``: gain in mean Jaccard with a paired bootstrap 95%
interval; better / worse / within noise) and reports its thresholded Jaccard (images below 0.65 count as 0).
``oracle_threshold`` is no method: per image the best of the thresholds 0.02, 0.04, ..., 0.98, chosen with the
annotation. It bounds what any per-image choice of threshold on these maps could reach (failure analysis), and
``learned_threshold`` asks how much of that a choice without the annotation recovers. ``by_annotation_smoothness``
compares, within each third of lesion sizes, the half of the images whose annotation is smoother
(``annotation_smoothness``: a few-click polygon rather than an outline that follows the pigment) with the other half:
mean Jaccard and failures without post-processing.
Prints JSON (and writes it to --json FILE). Needs the ``[train]`` extra (PyTorch, OpenCV).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cross_validate import probability_maps, require_fold_runs  # noqa: E402  (a sibling script)

from melanoma.config import load_config  # noqa: E402
from melanoma.inference.postprocess import fill_holes, largest_component  # noqa: E402
from melanoma.metrics import (  # noqa: E402
    THRESHOLDED_JACCARD_CUTOFF,
    jaccard,
    paired_mean_difference,
    segmentation_failure,
)
from melanoma.reporting import (
    emit_json,  # noqa: E402, script_parser
    script_parser,  # noqa: E402
)

ORACLE_THRESHOLDS = np.round(np.arange(0.02, 0.99, 0.02), 2)
# The thresholds a learned per-image choice picks from (0.5 included: "keep the global threshold").
CHOICE_THRESHOLDS = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
MIN_IMAGES_TO_LEARN = 20


def _filled_hull(points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    hull = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(hull, [cv2.convexHull(points)], 1)
    return hull.astype(bool)


def convex_hull_each(mask: np.ndarray) -> np.ndarray:
    """``mask`` with each 8-connected component replaced by its filled convex hull (hulls may overlap)."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    result = np.zeros(mask.shape, dtype=bool)
    for label in range(1, count):
        result |= _filled_hull(cv2.findNonZero((labels == label).astype(np.uint8)), mask.shape)
    return result


def convex_hull_all(mask: np.ndarray) -> np.ndarray:
    """The filled convex hull of all pixels of ``mask`` (all False for an empty mask)."""
    points = cv2.findNonZero(mask.astype(np.uint8))
    return np.zeros(mask.shape, dtype=bool) if points is None else _filled_hull(points, mask.shape)


EDGE_FRAME = 3


def extend_to_edge(mask: np.ndarray, frame: int = EDGE_FRAME) -> np.ndarray:
    """``mask`` with its outer ``frame`` pixels replaced by the nearest pixel ``frame`` pixels in (edge padding of
    the inner mask): the segmenter's maps fade in the last 2-3 pixels where a lesion reaches the image edge."""
    if min(mask.shape) <= 2 * frame:
        return mask
    return np.pad(mask[frame:-frame, frame:-frame], frame, mode="edge")


def _morphology(operation: int, size: int, shape: int) -> Callable[[np.ndarray], np.ndarray]:
    kernel = cv2.getStructuringElement(shape, (size, size))

    def apply(mask: np.ndarray) -> np.ndarray:
        return cv2.morphologyEx(mask.astype(np.uint8), operation, kernel).astype(bool)

    return apply


dilate_1px = _morphology(cv2.MORPH_DILATE, 3, cv2.MORPH_RECT)
dilate_2px = _morphology(cv2.MORPH_DILATE, 5, cv2.MORPH_ELLIPSE)
erode_1px = _morphology(cv2.MORPH_ERODE, 3, cv2.MORPH_RECT)
close_7px = _morphology(cv2.MORPH_CLOSE, 7, cv2.MORPH_ELLIPSE)

VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda mask: mask,
    "largest_component": largest_component,
    "fill_holes": fill_holes,
    "convex_hull_each": convex_hull_each,
    "convex_hull_all": convex_hull_all,
    "extend_to_edge": extend_to_edge,
    "dilate_1px": dilate_1px,
    "dilate_2px": dilate_2px,
    "erode_1px": erode_1px,
    "close_7px": close_7px,
}


def thresholded_mean(jaccards: list[float]) -> float:
    """The ISIC 2017 thresholded Jaccard: the mean with images below the cut-off counted as 0."""
    values = np.asarray(jaccards, dtype=float)
    return float(np.where(values >= THRESHOLDED_JACCARD_CUTOFF, values, 0.0).mean())


def threshold_features(probability: np.ndarray) -> np.ndarray:
    """What a per-image threshold choice may look at (never the annotation): the map's area above each of
    ``CHOICE_THRESHOLDS`` as a fraction of the image and relative to the area above 0.5, the peak probability, and
    the uncertain area (probability in 0.05-0.95) relative to the area above 0.5."""
    areas = np.array([(probability >= t).mean() for t in CHOICE_THRESHOLDS]) + 1e-4
    at_half = areas[list(CHOICE_THRESHOLDS).index(0.5)]
    uncertain = ((probability > 0.05) & (probability < 0.95)).mean() / at_half
    return np.concatenate([areas, areas / at_half, [float(probability.max()), uncertain]])


def learned_threshold_jaccards(features: np.ndarray, jaccards: np.ndarray, folds: int = 5) -> np.ndarray:
    """Per-image Jaccard of a threshold chosen per image from ``threshold_features``, cross-fitted.

    The images are split into ``folds`` parts (seed 0). On the other parts a random forest per candidate threshold
    learns the Jaccard gain of that threshold over 0.5 from the features; on the part left out each image gets the
    threshold with the largest predicted gain, or 0.5 when no gain is predicted. Each image's choice is thus made
    by models that never saw its annotation.

    Args:
        features: ``(images, k)`` from ``threshold_features``.
        jaccards: ``(images, len(CHOICE_THRESHOLDS))``, each image's Jaccard at each candidate threshold.
        folds: number of parts.

    Returns:
        ``(images,)`` Jaccard at the chosen thresholds.
    """
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import KFold

    base = list(CHOICE_THRESHOLDS).index(0.5)
    gains = jaccards - jaccards[:, [base]]
    chosen = np.empty(len(jaccards))
    for train, held_out in KFold(folds, shuffle=True, random_state=0).split(features):
        forest = RandomForestRegressor(n_estimators=200, min_samples_leaf=10, random_state=0, n_jobs=1)
        predicted = forest.fit(features[train], gains[train]).predict(features[held_out])
        pick = np.where(predicted.max(axis=1) > 0, predicted.argmax(axis=1), base)
        chosen[held_out] = jaccards[held_out, pick]
    return chosen


def annotation_smoothness(annotation: np.ndarray) -> float:
    """Corners per boundary pixel of an annotation's largest outline (OpenCV's Douglas-Peucker at 1 px tolerance).

    A polygon drawn with a few clicks scores low (long straight edges); an outline that follows the pigment pixel
    by pixel scores high. NaN for an empty annotation.
    """
    contours, _ = cv2.findContours(annotation.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return float("nan")
    outline = max(contours, key=cv2.contourArea)
    return len(cv2.approxPolyDP(outline, 1.0, True)) / max(cv2.arcLength(outline, True), 1.0)


def _group(indices: np.ndarray, scores: np.ndarray, kinds: list[str | None]) -> dict[str, Any]:
    return {
        "images": int(indices.size),
        "jaccard": float(scores[indices].mean()) if indices.size else float("nan"),
        "failures": int((scores[indices] < THRESHOLDED_JACCARD_CUTOFF).sum()),
        "under_segmented": int(sum(kinds[i] == "under" for i in indices)),
    }


def by_annotation_smoothness(
    smoothness: list[float], areas: list[float], jaccards: list[float], kinds: list[str | None]
) -> dict[str, Any]:
    """Mean Jaccard and failures of the smoother and the more detailed half of the annotations, within each third of
    lesion sizes (a long outline has fewer corners per pixel, so smoothness alone would partly measure size).

    Args:
        smoothness: ``annotation_smoothness`` per image.
        areas: the annotation's share of the image, per image.
        jaccards: the prediction's Jaccard per image.
        kinds: ``segmentation_failure`` per image ("under", "over", "other" or None).

    Returns:
        ``{"measure", "strata": [{"area": [low, high], "smoother": {...}, "more_detailed": {...}}], "smoother",
        "more_detailed", "difference"}``; each ``{...}`` has ``images, jaccard, failures, under_segmented``, pooled
        over the strata; ``difference`` is the smoother half's mean Jaccard minus the other's, with a bootstrap
        95% interval (each half resampled, seed 0).
    """
    values, sizes = np.asarray(smoothness, dtype=float), np.asarray(areas, dtype=float)
    scores = np.asarray(jaccards, dtype=float)
    strata, halves = [], {"smoother": [], "more_detailed": []}
    for stratum in (s for s in np.array_split(np.argsort(sizes, kind="stable"), 3) if s.size):
        order = stratum[np.argsort(values[stratum], kind="stable")]
        smoother, detailed = order[: (order.size + 1) // 2], order[(order.size + 1) // 2 :]
        halves["smoother"].append(smoother)
        halves["more_detailed"].append(detailed)
        strata.append({
            "area": [float(sizes[stratum].min()), float(sizes[stratum].max())],
            "smoother": _group(smoother, scores, kinds),
            "more_detailed": _group(detailed, scores, kinds),
        })  # fmt: skip
    smoother, detailed = (scores[np.concatenate(parts)] for parts in halves.values())
    rng = np.random.default_rng(0)
    resampled = [rng.choice(part, size=(2000, part.size)).mean(axis=1) for part in (smoother, detailed)]
    low, high = (float(v) for v in np.quantile(resampled[0] - resampled[1], [0.025, 0.975]))
    return {
        "measure": "corners per boundary pixel of the annotation's outline, Douglas-Peucker at 1 px: low = a few-click "
        "polygon, high = an outline that follows the pigment; compared within thirds of lesion size",
        "strata": strata,
        **{name: _group(np.concatenate(parts), scores, kinds) for name, parts in halves.items()},
        "difference": {"jaccard": float(smoother.mean() - detailed.mean()), "ci95": [low, high]},
    }


def score_variants(pairs: Iterable[tuple[np.ndarray, np.ndarray]], threshold: float = 0.5) -> dict[str, Any]:
    """Score every variant on ``(probability map, annotation)`` pairs of the same size.

    Returns:
        ``{"images", "variants": {name: {"jaccard", "thresholded_jaccard", "failures", "vs_none"}},
        "oracle_threshold": {"jaccard", "thresholded_jaccard", "failures"}}``; ``vs_none`` is
        ``paired_mean_difference`` against ``none`` (absent for ``none`` itself); ``failures`` counts the images
        below the thresholded-Jaccard cut-off. ``learned_threshold`` is among the variants from
        ``MIN_IMAGES_TO_LEARN`` images on.

    Raises:
        ValueError: when there are no pairs, or a map and its annotation differ in shape.
    """
    per_image: dict[str, list[float]] = {name: [] for name in [*VARIANTS, "oracle_threshold"]}
    features, choices, smoothness, areas, kinds = [], [], [], [], []
    for probability, annotation in pairs:
        probability, annotation = np.asarray(probability, dtype=np.float32), np.asarray(annotation).astype(bool)
        if probability.shape != annotation.shape:
            raise ValueError(f"probability map {probability.shape} and annotation {annotation.shape} differ in shape")
        mask = probability >= threshold
        for name, variant in VARIANTS.items():
            per_image[name].append(jaccard(variant(mask), annotation))
        per_image["oracle_threshold"].append(max(jaccard(probability >= t, annotation) for t in ORACLE_THRESHOLDS))
        features.append(threshold_features(probability))
        choices.append([jaccard(probability >= t, annotation) for t in CHOICE_THRESHOLDS])
        smoothness.append(annotation_smoothness(annotation))
        areas.append(float(annotation.mean()))
        kinds.append(segmentation_failure(mask, annotation))
    if not per_image["none"]:
        raise ValueError("no images to score: the run's validation fold is empty")

    def summary(values: list[float]) -> dict[str, Any]:
        failures = int(sum(value < THRESHOLDED_JACCARD_CUTOFF for value in values))
        return {
            "jaccard": float(np.mean(values)),
            "thresholded_jaccard": thresholded_mean(values),
            "failures": failures,
        }

    names = list(VARIANTS)
    if len(features) >= MIN_IMAGES_TO_LEARN:
        per_image["learned_threshold"] = list(learned_threshold_jaccards(np.array(features), np.array(choices)))
        names.append("learned_threshold")
    variants = {name: summary(per_image[name]) for name in names}
    for name in names[1:]:
        variants[name]["vs_none"] = paired_mean_difference(per_image["none"], per_image[name])
    return {
        "images": len(per_image["none"]),
        "variants": variants,
        "oracle_threshold": summary(per_image["oracle_threshold"]),
        "by_annotation_smoothness": by_annotation_smoothness(smoothness, areas, per_image["none"], kinds),
    }


def _fold_pairs(run_dirs: list[Path], data_dir: str | None):
    for run_dir in run_dirs:
        overrides = [f"data.data_dir={data_dir}"] if data_dir else []
        config = load_config(run_dir / "config.yaml", overrides)
        if config.task != "segmentation" or not config.data.cv_folds:
            raise SystemExit(
                f"error: {run_dir} is not a fold of a segmentation cross-validation study "
                "(benchmarks/cross_validate.py --config configs/segmentation.yaml ... OUT/NAME/foldK)"
            )
        for _, probability, annotation in probability_maps(config, run_dir):
            yield np.asarray(probability), np.asarray(annotation)


def main(argv: list[str] | None = None) -> None:
    parser = script_parser(__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="fold run folders (config.yaml + best.pt)")
    parser.add_argument("--data-dir", help="ISIC 2017 data folder (default: the runs' config, $MELANOMA_DATA)")
    parser.add_argument("--json", type=Path, help="also write the JSON report to this file")
    args = parser.parse_args(argv)
    require_fold_runs(args.runs)
    report = {
        "command": shlex.join(["python", "benchmarks/segmentation_postprocess.py", *(argv or sys.argv[1:])]),
        "runs": [str(run_dir) for run_dir in args.runs],
        "threshold": 0.5,
        **score_variants(_fold_pairs(args.runs, args.data_dir)),
    }
    emit_json(report, args.json)


if __name__ == "__main__":
    main()
