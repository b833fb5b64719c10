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
- ``convex_hull_all``: the convex hull of all predicted pixels.

The convex hulls target where the shipped segmenter fails on validation: it outlines a lesion's dark core where
the annotator drew a generous, smooth outline (model card, "Where the segmenter fails"). Every variant is paired
image by image with ``none`` (``paired_mean_difference``: gain in mean Jaccard with a paired bootstrap 95%
interval; better / worse / within noise) and reports its thresholded Jaccard (images below 0.65 count as 0).
``oracle_threshold`` is no method: per image the best of the thresholds 0.02, 0.04, ..., 0.98, chosen with the
annotation. It bounds what any per-image choice of threshold on these maps could reach (failure analysis).
Prints JSON (and writes it to --json FILE). Needs the ``[train]`` extra (PyTorch, OpenCV).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cross_validate import probability_maps  # noqa: E402  (a sibling script)

from melanoma.config import load_config  # noqa: E402
from melanoma.inference.postprocess import fill_holes, largest_component  # noqa: E402
from melanoma.metrics import THRESHOLDED_JACCARD_CUTOFF, jaccard, paired_mean_difference  # noqa: E402
from melanoma.reporting import emit_json  # noqa: E402

ORACLE_THRESHOLDS = np.round(np.arange(0.02, 0.99, 0.02), 2)


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


VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda mask: mask,
    "largest_component": largest_component,
    "fill_holes": fill_holes,
    "convex_hull_each": convex_hull_each,
    "convex_hull_all": convex_hull_all,
}


def thresholded_mean(jaccards: list[float]) -> float:
    """The ISIC 2017 thresholded Jaccard: the mean with images below the cut-off counted as 0."""
    values = np.asarray(jaccards, dtype=float)
    return float(np.where(values >= THRESHOLDED_JACCARD_CUTOFF, values, 0.0).mean())


def score_variants(pairs: Iterable[tuple[np.ndarray, np.ndarray]], threshold: float = 0.5) -> dict[str, Any]:
    """Score every variant on ``(probability map, annotation)`` pairs of the same size.

    Returns:
        ``{"images", "variants": {name: {"jaccard", "thresholded_jaccard", "failures", "vs_none"}},
        "oracle_threshold": {"jaccard", "thresholded_jaccard", "failures"}}``; ``vs_none`` is
        ``paired_mean_difference`` against ``none`` (absent for ``none`` itself); ``failures`` counts the images
        below the thresholded-Jaccard cut-off.

    Raises:
        ValueError: when there are no pairs, or a map and its annotation differ in shape.
    """
    per_image: dict[str, list[float]] = {name: [] for name in [*VARIANTS, "oracle_threshold"]}
    for probability, annotation in pairs:
        probability, annotation = np.asarray(probability, dtype=np.float32), np.asarray(annotation).astype(bool)
        if probability.shape != annotation.shape:
            raise ValueError(f"probability map {probability.shape} and annotation {annotation.shape} differ in shape")
        mask = probability >= threshold
        for name, variant in VARIANTS.items():
            per_image[name].append(jaccard(variant(mask), annotation))
        per_image["oracle_threshold"].append(max(jaccard(probability >= t, annotation) for t in ORACLE_THRESHOLDS))
    if not per_image["none"]:
        raise ValueError("no images to score: the run's validation fold is empty")

    def summary(values: list[float]) -> dict[str, Any]:
        failures = int(sum(value < THRESHOLDED_JACCARD_CUTOFF for value in values))
        return {
            "jaccard": float(np.mean(values)),
            "thresholded_jaccard": thresholded_mean(values),
            "failures": failures,
        }

    variants = {name: summary(per_image[name]) for name in VARIANTS}
    for name in VARIANTS:
        if name != "none":
            variants[name]["vs_none"] = paired_mean_difference(per_image["none"], per_image[name])
    return {
        "images": len(per_image["none"]),
        "variants": variants,
        "oracle_threshold": summary(per_image["oracle_threshold"]),
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="fold run folders (config.yaml + best.pt)")
    parser.add_argument("--data-dir", help="ISIC 2017 data folder (default: the runs' config, $MELANOMA_DATA)")
    parser.add_argument("--json", type=Path, help="also write the JSON report to this file")
    args = parser.parse_args(argv)
    for run_dir in args.runs:
        missing = [name for name in ("config.yaml", "best.pt") if not (run_dir / name).is_file()]
        if missing:
            raise SystemExit(f"error: {run_dir} has no {' or '.join(missing)}: pass a trained fold run folder")
    report = {
        "command": shlex.join(["python", "benchmarks/segmentation_postprocess.py", *(argv or sys.argv[1:])]),
        "runs": [str(run_dir) for run_dir in args.runs],
        "threshold": 0.5,
        **score_variants(_fold_pairs(args.runs, args.data_dir)),
    }
    emit_json(report, args.json)


if __name__ == "__main__":
    main()
