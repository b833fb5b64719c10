"""A dermatoscope's black vignette: whether a dark frame moves the outputs (the study behind ``dark_frame``).

Usage:
    python benchmarks/vignettes.py [--models DIR] [--data-dir DIR] [--json FILE]

Many dermatoscopes leave a black frame around a round field of view. 91 of the 2000 ISIC 2017 training images have
one (``dark_corners``, counted by this script), with more melanomas among them than among the others, and none of
the 150 validation images, so validation cannot show whether the networks learned "dark frame, so melanoma". Each
validation image is blacked out (0) outside a centred circle with a 3 px linear feather, of diameter 1.0 x the side
(inscribed: corners and edge midpoints dark) and 1.25 x the side (the corners only), and predicted by the Predictor.
Paired with the images as delivered: the AUC difference (stratified bootstrap), the mean Jaccard difference (both
outlines and the annotation cut to the circle), and the changes in sensitivity and specificity at the shipped
threshold (bootstrap over the melanomas and over the others). ``RULE`` decides whether the check is shown.

Prints JSON (and writes it to --json FILE). Needs only the serving install.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm import tqdm

from melanoma.data.isic import read_isic2017
from melanoma.data.samples import read_mask
from melanoma.inference.checks import dark_corners
from melanoma.inference.image_io import load_image
from melanoma.inference.predictor import Predictor
from melanoma.metrics import jaccard, paired_auc_difference, paired_mean_difference
from melanoma.reporting import both_models, emit_study, study_parser

#: Written before any prediction of this study was seen (runs/decision_rules.md, 2026-12-07 18:41 UTC).
RULE = (
    "a vignette is degraded when the paired difference in AUC or in mean Jaccard has its 95% interval below 0 with a "
    "point estimate of -0.02 or less (the small-image rule), or the paired change in specificity at the shipped "
    "threshold has its 95% interval below 0 with a point of -0.05 or less; the dark_frame check is shown when any "
    "vignette is degraded; the mean change in probability decides nothing"
)
#: Circle diameters, as multiples of the image's side.
DIAMETERS = (1.0, 1.25)
FEATHER = 3.0
DEGRADED_BY = -0.02
SPECIFICITY_DEGRADED_BY = -0.05


def circle(shape: tuple[int, int], diameter: float, feather: float = FEATHER) -> np.ndarray:
    """HxW float32 weights: 1 inside a centred circle of ``diameter`` x the shorter side, 0 outside, linear across
    ``feather`` pixels at its edge."""
    height, width = shape
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.hypot(rows - (height - 1) / 2, columns - (width - 1) / 2)
    radius = diameter * min(height, width) / 2
    return np.clip((radius - distance) / feather + 0.5, 0.0, 1.0)


def vignetted(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``image`` blacked out where ``weights`` is 0."""
    return np.rint(image.astype(np.float32) * weights[..., None]).astype(np.uint8)


def predict(predictor: Predictor, images: list[np.ndarray], batch: int = 16) -> tuple[list[float], list[np.ndarray]]:
    """(melanoma probabilities, lesion masks) of ``images``, predicted as uploads."""
    probabilities: list[float] = []
    masks: list[np.ndarray] = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        sizes = [(image.shape[1], image.shape[0]) for image in chunk]
        names = [f"image {start + i}" for i in range(len(chunk))]
        for prediction in predictor.predict_arrays(chunk, sizes, names):
            probabilities.append(float(prediction.melanoma_probability))
            masks.append(np.asarray(prediction.lesion_mask, dtype=bool))
    return probabilities, masks


def rate_changes(labels: np.ndarray, base: list[float], other: list[float], threshold: float) -> dict[str, Any]:
    """Paired changes in sensitivity (over the melanomas) and specificity (over the others) at ``threshold``."""
    base_flag, other_flag = np.asarray(base) >= threshold, np.asarray(other) >= threshold
    melanoma = labels == 1
    return {
        "sensitivity": paired_mean_difference(base_flag[melanoma], other_flag[melanoma]),
        "specificity": paired_mean_difference(~base_flag[~melanoma], ~other_flag[~melanoma]),
    }


def degraded(jaccard_difference: dict[str, Any], auc_difference: dict[str, Any], specificity: dict[str, Any]) -> bool:
    """``RULE``."""
    losses = any(d["ci95"][1] < 0 and d["difference"] <= DEGRADED_BY for d in (jaccard_difference, auc_difference))
    return losses or (specificity["ci95"][1] < 0 and specificity["difference"] <= SPECIFICITY_DEGRADED_BY)


def dark_frame_counts(data_dir: str | None) -> dict[str, Any]:
    """Per ISIC 2017 split: images with a dark frame (``checks.dark_corners``), and the melanomas among them."""
    counts: dict[str, Any] = {}
    for split in ("train", "val", "test"):
        samples = read_isic2017(data_dir, split)
        framed = [sample for sample in samples if dark_corners(load_image(sample.image_path))]
        counts[split] = {"images": len(samples), "dark_frame": len(framed)}
        if split != "test":  # its labels are withheld
            others = [sample for sample in samples if sample not in framed]
            counts[split]["melanoma_share"] = {
                "dark_frame": float(np.mean([s.melanoma for s in framed])) if framed else None,
                "other": float(np.mean([s.melanoma for s in others])),
            }
    return counts


def study(predictor: Predictor, data_dir: str | None) -> dict[str, Any]:
    samples = read_isic2017(data_dir, "val")
    images = [load_image(sample.image_path) for sample in samples]
    annotations = [read_mask(sample.mask_path) > 0 for sample in samples]
    labels = np.array([sample.melanoma for sample in samples])
    threshold = float(predictor.threshold)
    full_probabilities, full_masks = predict(predictor, images)
    rows = []
    for diameter in tqdm(DIAMETERS, desc="vignettes", unit="vignette"):
        weights = circle(images[0].shape[:2], diameter)
        inside = weights >= 0.5
        probabilities, masks = predict(predictor, [vignetted(image, weights) for image in images])
        jaccards = [jaccard(m & inside, a & inside) for m, a in zip(masks, annotations, strict=True)]
        base = [jaccard(m & inside, a & inside) for m, a in zip(full_masks, annotations, strict=True)]
        jaccard_difference = paired_mean_difference(base, jaccards)
        auc_difference = paired_auc_difference(labels, full_probabilities, probabilities)
        rates = rate_changes(labels, full_probabilities, probabilities, threshold)
        shift = paired_mean_difference(full_probabilities, probabilities)
        rows.append(
            {
                "diameter": diameter,
                "dark_share": float(1 - weights.mean()),
                "fires_dark_frame": int(sum(dark_corners(vignetted(image, weights)) for image in images)),
                "mean_jaccard": float(np.mean(jaccards)),
                "jaccard_difference": jaccard_difference,
                "auc": auc_difference["other_auc"],
                "auc_difference": auc_difference,
                "sensitivity_change": rates["sensitivity"],
                "specificity_change": rates["specificity"],
                "probability_change": shift,
                "degraded": degraded(jaccard_difference, auc_difference, rates["specificity"]),
            }
        )
    return {
        "images": len(samples),
        "melanomas": int(labels.sum()),
        "threshold": threshold,
        "delivered": {
            "mean_jaccard": float(np.mean([jaccard(m, a) for m, a in zip(full_masks, annotations, strict=True)])),
            "auc": rows[0]["auc_difference"]["baseline_auc"],
        },
        "vignettes": rows,
        "dark_frame_in_isic2017": dark_frame_counts(data_dir),
        "show_check": any(row["degraded"] for row in rows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__)
    args = parser.parse_args(argv)
    predictor = both_models(parser, args.models)
    report = study(predictor, args.data_dir)
    report["rule"] = RULE
    return emit_study(report, "benchmarks/vignettes.py", argv, predictor, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
