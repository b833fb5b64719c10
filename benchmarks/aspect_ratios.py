"""How elongated an upload can be before the outputs degrade: the study behind the ``elongated_image`` quality check.

Usage:
    python benchmarks/aspect_ratios.py [--models DIR] [--data-dir DIR] [--ratios 1.78 2 ...] [--json FILE]

The models see every upload squashed to a square, as the ISIC 2017 photographs (4:3 to 3:2; the six full-size
validation originals in the data are 1.33 to 1.51) were squashed for training. An upload of another shape shows its
lesion stretched unlike any training image. Simulation: an upload of aspect r (long side / short side) taken from a
validation image whose original had aspect a is the centre band that keeps a/r of the 256 px image's rows, the
same field cut to a wider frame, as a phone's 16:9 mode cuts its 4:3 sensor. The originals' aspects are not in the
data, so both a = 4:3 and a = 3:2 are studied. A control, ``zoom``, keeps a/r of the rows and of the columns: the
same share of the field lost, no stretch.

Per condition, paired with the full images: the difference in AUC (stratified bootstrap) and in mean per-image
Jaccard (bootstrap), where the baseline outline is the full image's prediction cut to the same crop, both scored
against the annotation cut to it. ``RULE`` decides the check's limit (``melanoma.inference.checks.MAX_ASPECT``).
Prints JSON (and writes it to --json FILE). Needs only the serving install.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm import tqdm

from melanoma.data.isic import read_isic2017
from melanoma.data.samples import read_mask
from melanoma.inference.image_io import load_image
from melanoma.inference.predictor import Predictor
from melanoma.metrics import jaccard, paired_auc_difference, paired_mean_difference
from melanoma.reporting import both_models, emit_study, lost_beyond_noise, predict_uploads, study_parser

#: Written before any prediction of this study was seen (runs/decision_rules.md, 2026-12-07 18:29 UTC).
RULE = (
    "a band is degraded when the paired difference in AUC or in mean Jaccard has its 95% interval below 0 with a "
    "point estimate of -0.02 or less (the small-image rule); the check fires on uploads whose long side / short side "
    "is at or above the smallest studied ratio whose band is degraded under either assumed original aspect, with "
    "every larger studied ratio degraded too (no check when no band is degraded); the zoom control decides nothing"
)
RATIOS = (16 / 9, 2.0, 2.5, 3.0)
#: The assumed aspects of the originals (the prepared images keep none).
ORIGINALS = {"4:3": 4 / 3, "3:2": 3 / 2}
#: A condition is degraded when a paired difference's 95% interval lies below 0 and its point is at most this.
DEGRADED_BY = -0.02


def centre(length: int, fraction: float) -> slice:
    """The centred run of ``fraction`` of ``length`` pixels (at least one)."""
    keep = max(1, min(length, round(length * fraction)))
    start = (length - keep) // 2
    return slice(start, start + keep)


def crop_window(shape: tuple[int, int], ratio: float, original: float, kind: str) -> tuple[slice, slice]:
    """(rows, columns) of the simulated upload: ``band`` keeps ``original / ratio`` of the rows, ``zoom`` that
    share of the rows and of the columns."""
    if kind not in ("band", "zoom"):
        raise ValueError(f"unknown crop kind {kind!r}: band or zoom")
    if ratio < original:
        raise ValueError(f"ratio {ratio:.2f} is below the original's {original:.2f}: a band cannot widen the frame")
    keep = original / ratio
    height, width = shape
    return centre(height, keep), (centre(width, keep) if kind == "zoom" else slice(0, width))


def predict_crops(
    predictor: Predictor, images: list[np.ndarray], window: tuple[slice, slice]
) -> tuple[list[float], list[np.ndarray]]:
    """(melanoma probabilities, lesion masks at the crop's size) of every image cut to ``window``."""
    return predict_uploads(predictor, [np.ascontiguousarray(image[window]) for image in images])


def degraded(jaccard_difference: dict[str, Any], auc_difference: dict[str, Any]) -> bool:
    """The rule: either paired difference has its 95% interval below 0 and its point at ``DEGRADED_BY`` or less."""
    return any(lost_beyond_noise(d, DEGRADED_BY) for d in (jaccard_difference, auc_difference))


def max_aspect(rows: list[dict[str, Any]]) -> float | None:
    """The smallest studied ratio whose band is degraded under any assumed original, with every larger ratio
    degraded too; ``None`` when no band is degraded (then no check is shipped)."""
    bands = [row for row in rows if row["kind"] == "band"]
    by_ratio: dict[float, bool] = {}
    for row in bands:
        by_ratio[row["ratio"]] = by_ratio.get(row["ratio"], False) or row["degraded"]
    limit = None
    for ratio in sorted(by_ratio, reverse=True):
        if not by_ratio[ratio]:
            break
        limit = ratio
    return limit


def condition(
    predictor: Predictor,
    images: list[np.ndarray],
    annotations: list[np.ndarray],
    labels: np.ndarray,
    full: tuple[list[float], list[np.ndarray]],
    ratio: float,
    original: str,
    kind: str,
) -> dict[str, Any]:
    """One simulated upload shape, paired with the full images."""
    window = crop_window(images[0].shape[:2], ratio, ORIGINALS[original], kind)
    probabilities, masks = predict_crops(predictor, images, window)
    jaccards = [jaccard(mask, annotation[window]) for mask, annotation in zip(masks, annotations, strict=True)]
    base = [jaccard(mask[window], annotation[window]) for mask, annotation in zip(full[1], annotations, strict=True)]
    jaccard_difference = paired_mean_difference(base, jaccards)
    auc_difference = paired_auc_difference(labels, full[0], probabilities)
    return {
        "ratio": round(ratio, 4),
        "original": original,
        "kind": kind,
        "crop": [window[0].stop - window[0].start, window[1].stop - window[1].start],
        "mean_jaccard": float(np.mean(jaccards)),
        "jaccard_difference": jaccard_difference,
        "auc": auc_difference["other_auc"],
        "auc_difference": auc_difference,
        "degraded": degraded(jaccard_difference, auc_difference),
    }


def study(predictor: Predictor, data_dir: str | None, ratios: tuple[float, ...]) -> dict[str, Any]:
    samples = read_isic2017(data_dir, "val")
    images = [load_image(sample.image_path) for sample in samples]
    annotations = [read_mask(sample.mask_path) > 0 for sample in samples]
    labels = np.array([sample.melanoma for sample in samples])
    full = predict_crops(predictor, images, (slice(None), slice(None)))
    plan = [(ratio, original, kind) for ratio in ratios for original in ORIGINALS for kind in ("band", "zoom")]
    rows = [
        condition(predictor, images, annotations, labels, full, *item)
        for item in tqdm(plan, desc="conditions", unit="condition")
    ]
    return {
        "images": len(samples),
        "melanomas": int(labels.sum()),
        "full": {
            "mean_jaccard": float(np.mean([jaccard(m, a) for m, a in zip(full[1], annotations, strict=True)])),
            "auc": rows[0]["auc_difference"]["baseline_auc"],
        },
        "conditions": rows,
        "max_aspect": max_aspect(rows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__)
    parser.add_argument("--ratios", type=float, nargs="+", default=list(RATIOS), help="upload long/short ratios")
    args = parser.parse_args(argv)
    if any(not 1.5 <= ratio <= 6 for ratio in args.ratios):
        parser.error("--ratios must lie between 1.5 (the widest assumed original) and 6")
    predictor = both_models(parser, args.models)
    report = study(predictor, args.data_dir, tuple(sorted(set(args.ratios))))
    report["rule"] = RULE
    return emit_study(report, "benchmarks/aspect_ratios.py", argv, predictor, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
