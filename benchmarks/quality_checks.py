"""Fit the Predictor's quality checks on held-out train images, then check them on the validation set.

Usage:
    python benchmarks/quality_checks.py --fit RUN_DIR [RUN_DIR ...] [--models DIR] [--data-dir DIR] [--json FILE]

The checks (``melanoma.inference.checks``) flag predictions whose lesion outline deserves less trust. Two candidate
checks have a threshold, fitted here on images the segmenter never trained on, and never on the validation set:

- ``outline_uncertain`` (``uncertain_ratio`` above t): should flag the images whose predicted outline is far from
  the annotation (image Jaccard below 0.65, the ISIC 2017 thresholded-Jaccard cut-off: a "failure");
- ``lesion_at_edge`` (``edge_contact`` at or above t): should flag the images whose annotated lesion reaches the
  image edge (the annotation covers at least 2% of the image's outermost ring of pixels).

``ship_rules`` says whether each met the rule written before the fold was trained (``SHIP_RULES``); the Predictor
shows only those that did (``lesion_at_edge`` did not).

Fitting: each RUN_DIR is one fold of a ``benchmarks/cross_validate.py`` segmentation study (its best.pt predicts
the train images of its own held-out fold); each threshold is the grid value with the largest Youden's J
(sensitivity + specificity - 1) for its reference. Checking: the exported segmenter in ``--models`` (default: the
shipped one) predicts the 150 ISIC 2017 validation images through the Predictor, the fitted thresholds are
applied, and the report gives per check: how many images it flags, their mean Jaccard against the rest (with a
bootstrap 95% interval of the difference), and its sensitivity and precision for its reference. Prints JSON (and
writes it to --json FILE). Fitting needs the ``[train]`` extra (PyTorch).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cross_validate import require_fold_runs  # noqa: E402  (a sibling script)

from melanoma.data.isic import read_isic2017  # noqa: E402
from melanoma.data.samples import read_mask  # noqa: E402
from melanoma.inference.checks import UNCERTAIN_BAND, uncertain_ratio  # noqa: E402
from melanoma.inference.postprocess import resize_mask  # noqa: E402
from melanoma.inference.predictor import Predictor  # noqa: E402
from melanoma.metrics import THRESHOLDED_JACCARD_CUTOFF, jaccard  # noqa: E402
from melanoma.reporting import (
    emit_json,  # noqa: E402, script_parser
    script_parser,  # noqa: E402
)

#: ``edge_contact`` looks at the outermost rings of this many pixels at the model's size: the segmenter's maps fade
#: in the last 2-3 pixels even where the annotated lesion reaches the edge.
EDGE_RINGS = 4
UNCERTAIN_GRID = np.round(np.arange(0.05, 1.001, 0.05), 2)
EDGE_GRID = np.round(np.arange(0.01, 0.201, 0.01), 2)
#: The annotation "reaches the edge" when it covers at least this fraction of the image's outermost ring.
ANNOTATION_EDGE_FRACTION = 0.02
MASK_THRESHOLD = 0.5
#: Written before the fold was trained (runs/decision_rules.md, 2026-11-29 17:20): a check is shown only if its
#: validation result meets its rule.
SHIP_RULES = {
    "outline_uncertain": "the flagged images' mean Jaccard is below the other images' (bootstrap 95% CI of the "
    "difference below 0) and at least half of the failures are flagged",
    "lesion_at_edge": "sensitivity and precision for annotations that reach the image edge both at least 0.7",
}


def edge_contact(mask: np.ndarray, rings: int = EDGE_RINGS) -> float:
    """The largest fraction of any of the image's outermost ``rings`` one-pixel rings that the mask covers.

    Ring 0 is the image's border pixels; ring k runs k pixels inside it. 0 when the mask keeps clear of the outer
    ``rings`` pixels; 1 when it covers a whole ring (a lesion filling the photo).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D HxW mask, got an array of shape {mask.shape}")
    height, width = mask.shape
    best = 0.0
    for k in range(min(rings, (min(height, width) + 1) // 2)):
        inner = mask[k : height - k, k : width - k]
        ring = np.concatenate([inner[0], inner[-1], inner[1:-1, 0], inner[1:-1, -1]])
        best = max(best, float(ring.mean()))
    return best


def image_record(probability: np.ndarray, annotation: np.ndarray, predicted: np.ndarray | None = None) -> dict:
    """What the checks and their references need from one image.

    Args:
        probability: the segmenter's map at the model's size.
        annotation: the annotated mask (bool, any size).
        predicted: the served mask to score (default: the map thresholded at 0.5, resized to the annotation).
    """
    probability = np.asarray(probability, dtype=np.float32)
    annotation = np.asarray(annotation, dtype=bool)
    if predicted is None:
        predicted = resize_mask(probability, annotation.shape[::-1]) >= MASK_THRESHOLD
    elif predicted.shape != annotation.shape:
        predicted = resize_mask(predicted, annotation.shape[::-1]) >= 0.5
    return {
        "uncertain_ratio": round(uncertain_ratio(probability, MASK_THRESHOLD), 5),
        "edge_contact": round(edge_contact(probability >= MASK_THRESHOLD), 5),
        "jaccard": round(float(jaccard(predicted, annotation)), 5),
        "annotation_at_edge": bool(edge_contact(annotation, rings=1) >= ANNOTATION_EDGE_FRACTION),
    }


def detection(flagged: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Sensitivity, specificity, precision and Youden's J of ``flagged`` for ``reference`` (bool vectors)."""
    flagged, reference = np.asarray(flagged, bool), np.asarray(reference, bool)
    hits = int(np.count_nonzero(flagged & reference))
    sensitivity = hits / max(int(reference.sum()), 1)
    specificity = int(np.count_nonzero(~flagged & ~reference)) / max(int((~reference).sum()), 1)
    return {
        "flagged": int(flagged.sum()),
        "reference": int(reference.sum()),
        "flagged_and_reference": hits,
        "sensitivity": round(sensitivity, 4),
        "specificity": round(specificity, 4),
        "precision": round(hits / int(flagged.sum()), 4) if flagged.any() else None,
        "youden_j": round(sensitivity + specificity - 1, 4),
    }


def fit_threshold(values: np.ndarray, reference: np.ndarray, grid: np.ndarray, inclusive: bool) -> dict[str, Any]:
    """The grid value whose flag (``values > t``, or ``>= t`` when ``inclusive``) best detects ``reference``.

    Ties in Youden's J go to the higher threshold (fewer flags)."""
    values = np.asarray(values, dtype=float)
    rows = []
    for threshold in grid:
        flagged = values >= threshold if inclusive else values > threshold
        rows.append({"threshold": float(threshold), **detection(flagged, reference)})
    best = max(rows, key=lambda row: (row["youden_j"], row["threshold"]))
    return {"threshold": best["threshold"], "at_threshold": best, "grid": rows}


def group_difference(values: np.ndarray, flagged: np.ndarray, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Mean of ``values`` over flagged images minus over the rest, with a bootstrap 95% interval (each group
    resampled with replacement on its own); None when either group is empty."""
    values, flagged = np.asarray(values, dtype=float), np.asarray(flagged, bool)
    inside, outside = values[flagged], values[~flagged]
    if inside.size == 0 or outside.size == 0:
        return {"flagged_mean": None, "other_mean": None, "difference": None, "ci95": None}
    rng = np.random.default_rng(seed)
    draws = [
        rng.choice(inside, inside.size).mean() - rng.choice(outside, outside.size).mean() for _ in range(n_resamples)
    ]
    return {
        "flagged_mean": round(float(inside.mean()), 4),
        "other_mean": round(float(outside.mean()), 4),
        "difference": round(float(inside.mean() - outside.mean()), 4),
        "ci95": [round(float(x), 4) for x in np.percentile(draws, [2.5, 97.5])],
    }


def summarise(records: list[dict], thresholds: dict[str, float]) -> dict[str, Any]:
    """Both checks at the given thresholds on a set of image records."""
    uncertain = np.array([r["uncertain_ratio"] for r in records]) > thresholds["outline_uncertain"]
    at_edge = np.array([r["edge_contact"] for r in records]) >= thresholds["lesion_at_edge"]
    jaccards = np.array([r["jaccard"] for r in records])
    failures = jaccards < THRESHOLDED_JACCARD_CUTOFF
    annotation_edge = np.array([r["annotation_at_edge"] for r in records])
    return {
        "images": len(records),
        "failures": int(failures.sum()),
        "mean_jaccard": round(float(jaccards.mean()), 4),
        "outline_uncertain": {
            "threshold": thresholds["outline_uncertain"],
            "for_failures": detection(uncertain, failures),
            "jaccard_flagged_vs_other": group_difference(jaccards, uncertain),
        },
        "lesion_at_edge": {
            "threshold": thresholds["lesion_at_edge"],
            "for_annotation_at_edge": detection(at_edge, annotation_edge),
            "jaccard_flagged_vs_other": group_difference(jaccards, at_edge),
        },
    }


def ship_decisions(validation: dict[str, Any]) -> dict[str, Any]:
    """Whether each check met its pre-written rule (``SHIP_RULES``) on the validation summary."""
    uncertain = validation["outline_uncertain"]
    ci = uncertain["jaccard_flagged_vs_other"]["ci95"]
    edge = validation["lesion_at_edge"]["for_annotation_at_edge"]
    met = {
        "outline_uncertain": bool(ci and ci[1] < 0 and uncertain["for_failures"]["sensitivity"] >= 0.5),
        "lesion_at_edge": bool(edge["sensitivity"] >= 0.7 and (edge["precision"] or 0) >= 0.7),
    }
    return {name: {"rule": SHIP_RULES[name], "met": met[name]} for name in SHIP_RULES}


def fit(records: list[dict]) -> dict[str, Any]:
    """Fit both thresholds on held-out train images."""
    jaccards = np.array([r["jaccard"] for r in records])
    uncertain = fit_threshold(
        np.array([r["uncertain_ratio"] for r in records]),
        jaccards < THRESHOLDED_JACCARD_CUTOFF,
        UNCERTAIN_GRID,
        inclusive=False,
    )
    at_edge = fit_threshold(
        np.array([r["edge_contact"] for r in records]),
        np.array([r["annotation_at_edge"] for r in records]),
        EDGE_GRID,
        inclusive=True,
    )
    thresholds = {"outline_uncertain": uncertain["threshold"], "lesion_at_edge": at_edge["threshold"]}
    return {
        "thresholds": thresholds,
        "grids": {"outline_uncertain": uncertain["grid"], "lesion_at_edge": at_edge["grid"]},
        **summarise(records, thresholds),
    }


def fold_records(run_dirs: list[Path], data_dir: str | None) -> list[dict]:
    """Image records of the folds' out-of-fold probability maps (each fold's best.pt on its held-out images)."""
    from cross_validate import probability_maps  # a sibling script; needs torch

    from melanoma.config import load_config

    records = []
    for run_dir in run_dirs:
        config = load_config(run_dir / "config.yaml", [f"data.data_dir={data_dir}"] if data_dir else [])
        if config.task != "segmentation" or not config.data.cv_folds:
            raise SystemExit(f"error: {run_dir} is not a fold of a segmentation cross-validation study")
        maps = probability_maps(config, run_dir)
        records += [image_record(np.asarray(p), np.asarray(a)) for _, p, a in tqdm(maps, desc=f"fold {run_dir}")]
    return records


def validation_records(models_dir: Path, data_dir: str | None) -> Iterable[dict]:
    """Image records of the exported segmenter on the ISIC 2017 validation images, through the Predictor."""
    predictor = Predictor.from_dir(models_dir)
    if predictor.segmenter is None:
        raise SystemExit(f"error: {models_dir} has no segmentation model")
    for sample in tqdm(read_isic2017(data_dir, "val"), desc="validation"):
        prediction = predictor.predict(sample.image_path)
        image, _ = predictor.load(sample.image_path)
        (probability,) = predictor.segment([image])
        record = image_record(probability, read_mask(sample.mask_path), prediction.lesion_mask)
        yield {"image_id": sample.image_id, **record}


def main(argv: list[str] | None = None) -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--fit", nargs="+", type=Path, required=True, help="fold run folders (config.yaml + best.pt)")
    parser.add_argument("--models", type=Path, default=Path("models"), help="exported models to check (default models)")
    parser.add_argument("--data-dir", help="ISIC 2017 data folder (default: $MELANOMA_DATA or ../shared/data/isic2017)")
    parser.add_argument("--json", type=Path, help="also write the JSON report to this file")
    args = parser.parse_args(argv)
    require_fold_runs(args.fit)
    fitted = fit(fold_records(args.fit, args.data_dir))
    validation = list(validation_records(args.models, args.data_dir))
    summary = summarise(validation, fitted["thresholds"])
    report = {
        "command": shlex.join(["python", "benchmarks/quality_checks.py", *(argv or sys.argv[1:])]),
        "fit_runs": [str(run_dir) for run_dir in args.fit],
        "models": str(args.models),
        "uncertain_band": list(UNCERTAIN_BAND),
        "edge_rings": EDGE_RINGS,
        "annotation_edge_fraction": ANNOTATION_EDGE_FRACTION,
        "failure_jaccard": THRESHOLDED_JACCARD_CUTOFF,
        "fit": fitted,
        "validation": summary,
        "ship_rules": ship_decisions(summary),
        "validation_per_image": validation,
    }
    emit_json(report, args.json)


if __name__ == "__main__":
    main()
