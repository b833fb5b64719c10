"""How small an upload can be before the outputs degrade: the study behind the ``small_image`` quality check.

Usage:
    python benchmarks/small_images.py [--models DIR] [--data-dir DIR] [--sizes 192 160 ...] [--json FILE]

Each of the 150 ISIC 2017 validation images (256x256) is downscaled with Pillow's LANCZOS filter to s x s and
predicted by the Predictor as an upload of that size would be (the models upsample it to their input size). Its
lesion mask, which comes back at s x s, is upsampled (nearest) to 256 x 256 and scored against the annotation; its
melanoma probability is scored against the label. Per size, paired with the same images at 256 px: the paired
bootstrap difference in mean per-image Jaccard and the paired stratified bootstrap difference in AUC.

``RULE`` decides the check's limit (``melanoma.inference.checks.MIN_RELIABLE_SIDE``). ``FLOOR_RULE`` decides the
smallest image the product assesses at all (``melanoma.inference.image_io.MIN_SIDE``): per size, whether the
classifier still ranks better than chance (the stratified bootstrap 95% interval of its AUC above 0.5) and the
segmenter still outlines better than one fixed mask for every image (the "prior mask": the mean of the training
masks, thresholded at 0.5; paired difference in mean Jaccard above 0). Prints JSON (and writes it to --json FILE).
Needs only the serving install.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from melanoma.data.isic import read_isic2017
from melanoma.data.samples import read_mask
from melanoma.inference.image_io import load_image
from melanoma.inference.predictor import Predictor
from melanoma.metrics import bootstrap_ci, jaccard, paired_auc_difference, paired_mean_difference
from melanoma.reporting import both_models, emit_study, lost_beyond_noise, study_parser

#: Written before any downscaled prediction was seen (runs/decision_rules.md, 2026-11-29 22:45 UTC).
RULE = (
    "a size is degraded when the paired difference in mean Jaccard or in AUC has its 95% interval below 0 with a "
    "point estimate of -0.02 or less; the check's limit is the smallest studied size with neither it nor any larger "
    "size degraded, and it fires on images whose shorter side is below that limit (no check when no size is degraded)"
)
#: Written before any prediction below 32 px was seen (runs/decision_rules.md, 2026-12-07 18:20 UTC).
FLOOR_RULE = (
    "a size is useless when the classifier's AUC has its stratified bootstrap 95% interval reaching 0.5 or below, or "
    "the segmenter's paired difference in mean Jaccard against the prior mask (the mean of the training masks at "
    "0.5) has its 95% interval reaching 0 or below; the assessed floor is the smallest studied size with neither it "
    "nor any larger size useless, and images whose shorter side is below it are refused at load (no floor beyond "
    "the loader's 8 px when no size is useless)"
)
SIZES = (192, 160, 128, 96, 64, 48, 32, 24, 16, 12, 8)
NATIVE = 256
#: A size is degraded when a paired difference's 95% interval lies below 0 and its point is at most this.
DEGRADED_BY = -0.02


def downscaled(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` as an upload of ``side`` x ``side`` pixels (Pillow LANCZOS, as an image editor would shrink it)."""
    if image.shape[:2] == (side, side):
        return image
    return np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.LANCZOS))


def predict_at(
    predictor: Predictor, images: list[np.ndarray], masks: list[np.ndarray], side: int, batch: int = 16
) -> tuple[list[float], list[float]]:
    """(melanoma probabilities, per-image Jaccard at 256 px) for every image shown at ``side`` x ``side``."""
    probabilities: list[float] = []
    jaccards: list[float] = []
    for start in range(0, len(images), batch):
        small = [downscaled(image, side) for image in images[start : start + batch]]
        names = [f"image {start + i}" for i in range(len(small))]
        predictions = predictor.predict_arrays(small, [(side, side)] * len(small), names)
        for prediction, mask in zip(predictions, masks[start : start + batch], strict=True):
            probabilities.append(float(prediction.melanoma_probability))
            outline = Image.fromarray(prediction.lesion_mask.astype(np.uint8) * 255)
            full = np.asarray(outline.resize(mask.shape[::-1], Image.Resampling.NEAREST)) > 0
            jaccards.append(jaccard(full, mask))
    return probabilities, jaccards


def degraded(jaccard_difference: dict[str, Any], auc_difference: dict[str, Any]) -> bool:
    """The rule: either paired difference has its 95% interval below 0 and its point at ``DEGRADED_BY`` or less."""
    return any(lost_beyond_noise(d, DEGRADED_BY) for d in (jaccard_difference, auc_difference))


def _smallest_clear_side(rows: list[dict[str, Any]], flag: str) -> int | None:
    """The smallest studied size with neither it nor any larger one ``flag``-ged (``NATIVE`` if the largest is);
    ``None`` when no size is."""
    ordered = sorted(rows, key=lambda row: -row["side"])
    if not any(row[flag] for row in ordered):
        return None
    clear = NATIVE
    for row in ordered:
        if row[flag]:
            break
        clear = row["side"]
    return clear


def min_reliable_side(rows: list[dict[str, Any]]) -> int | None:
    """The smallest studied size with neither it nor any larger one degraded (``NATIVE`` if the largest is);
    ``None`` when no size is degraded (then no check is shipped)."""
    return _smallest_clear_side(rows, "degraded")


def useless(auc_ci95: list[float], prior_difference: dict[str, Any]) -> bool:
    """``FLOOR_RULE``: the classifier ranks no better than chance, or the segmenter outlines no better than the prior
    mask (either 95% interval reaches its no-use line)."""
    return auc_ci95[0] <= 0.5 or prior_difference["ci95"][0] <= 0


def min_assessed_side(rows: list[dict[str, Any]]) -> int | None:
    """The smallest studied size with neither it nor any larger one useless (``NATIVE`` if the largest is);
    ``None`` when no size is useless (then the loader's own minimum stays)."""
    return _smallest_clear_side(rows, "useless")


def prior_mask(data_dir: str | None) -> np.ndarray:
    """One fixed lesion mask for every image: the mean of the training masks at 256 px, thresholded at 0.5."""
    masks = [read_mask(sample.mask_path) > 0 for sample in read_isic2017(data_dir, "train")]
    return np.mean(masks, axis=0) >= 0.5


def study(predictor: Predictor, data_dir: str | None, sizes: tuple[int, ...]) -> dict[str, Any]:
    samples = read_isic2017(data_dir, "val")
    images = [load_image(sample.image_path) for sample in samples]
    masks = [read_mask(sample.mask_path) > 0 for sample in samples]
    labels = np.array([sample.melanoma for sample in samples])
    base_probabilities, base_jaccards = predict_at(predictor, images, masks, NATIVE)
    prior = prior_mask(data_dir)
    prior_jaccards = [jaccard(prior, mask) for mask in masks]
    rows = []
    for side in tqdm(sizes, desc="sizes", unit="size"):
        probabilities, jaccards = predict_at(predictor, images, masks, side)
        jaccard_difference = paired_mean_difference(base_jaccards, jaccards)
        auc_difference = paired_auc_difference(labels, base_probabilities, probabilities)
        auc_ci95 = [float(bound) for bound in bootstrap_ci(roc_auc_score, labels, probabilities, n_resamples=2000)]
        prior_difference = paired_mean_difference(prior_jaccards, jaccards)
        rows.append(
            {
                "side": side,
                "mean_jaccard": float(np.mean(jaccards)),
                "jaccard_difference": jaccard_difference,
                "auc": auc_difference["other_auc"],
                "auc_difference": auc_difference,
                "degraded": degraded(jaccard_difference, auc_difference),
                "auc_ci95": auc_ci95,
                "jaccard_over_prior_mask": prior_difference,
                "useless": useless(auc_ci95, prior_difference),
            }
        )
    return {
        "images": len(samples),
        "melanomas": int(labels.sum()),
        "native": {
            "side": NATIVE,
            "mean_jaccard": float(np.mean(base_jaccards)),
            "auc": rows[0]["auc_difference"]["baseline_auc"],
        },
        "prior_mask": {"pixels": int(prior.sum()), "mean_jaccard": float(np.mean(prior_jaccards))},
        "sizes": rows,
        "min_reliable_side": min_reliable_side(rows),
        "min_assessed_side": min_assessed_side(rows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="sides to downscale to (px)")
    args = parser.parse_args(argv)
    if any(side < 8 or side >= NATIVE for side in args.sizes):
        parser.error(f"--sizes must lie between 8 and {NATIVE - 1} px")
    predictor = both_models(parser, args.models)
    report = study(predictor, args.data_dir, tuple(sorted(set(args.sizes), reverse=True)))
    report["rule"] = RULE
    report["floor_rule"] = FLOOR_RULE
    return emit_study(report, "benchmarks/small_images.py", argv, predictor, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
