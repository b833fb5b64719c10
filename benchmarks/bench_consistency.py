"""How far the melanoma probability moves when the same lesion reaches the classifier along another path.

Through the Predictor and the shipped models (``--models``), on the ISIC 2017 validation images:

1. ``resize_filter``: each image through the resize its classifier was trained with (the one recorded in its
   JSON config) vs Pillow's antialiased bilinear filter (what an export made before the filter was recorded gets):
   the absolute probability differences (median, 95th percentile, max) and both AUCs.
2. ``hflip`` / ``vflip``: each image vs its left-right / upside-down mirror image, changes the training
   augmentation covers (a lesion has no canonical orientation).
3. ``upload_size``: each original-size photo in ``DATA/fullres/val`` vs its prepared 256 px file in
   ``DATA/images/val`` (decode, draft mode and resizes included): the same lesion, uploaded at another size.
4. ``acquisition``: each image as another clinic's camera might deliver it (``ACQUISITION_SHIFTS``: a warm or
   cool colour cast, under- or over-exposure, heavier JPEG compression): the classifier's AUC and its sensitivity
   and specificity at the shipped threshold, the probability differences, and the segmenter's mean and
   thresholded Jaccard against the validation masks, each beside the unchanged images' (``clean``).

A classifier that moves a lot under these is fragile: its probability depends on how an image was resampled.
No threshold is asserted; the numbers go into the model card.

With ``--baseline DIR``, each acquisition condition also gets the paired AUC gain of ``--models`` over the
baseline's classifier on the same images (stratified bootstrap 95% interval) and, where both folders have a
segmenter, the paired gain in mean per-image Jaccard over the baseline's segmenter (paired bootstrap 95% interval).

Usage: python benchmarks/bench_consistency.py [--models DIR] [--data-dir DIR] [--baseline DIR] [--json FILE]
"""

from __future__ import annotations

import io
import shlex
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

from melanoma.data.isic import read_isic2017, resolve_data_dir
from melanoma.data.samples import read_mask
from melanoma.inference.image_io import load_image
from melanoma.inference.predictor import Model, Predictor
from melanoma.metrics import (
    paired_auc_difference,
    paired_mean_difference,
    segmentation_scores,
    sensitivity_specificity,
)
from melanoma.reporting import emit_json, script_parser


def _classify(predictor: Predictor, images: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([predictor.classify(images[i : i + 16])[0] for i in range(0, len(images), 16)])


def _spread(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    delta = np.abs(np.asarray(a) - np.asarray(b))
    return {
        "median_abs_delta": round(float(np.median(delta)), 4),
        "p95_abs_delta": round(float(np.quantile(delta, 0.95)), 4),
        "max_abs_delta": round(float(delta.max()), 4),
    }


def with_pillow_resize(predictor: Predictor) -> Predictor:
    """The same models, the classifier resized with Pillow's filter straight to its input size."""
    config = {k: v for k, v in predictor.classifier.config.items() if k not in ("resize_filter", "prepared_size")}
    return Predictor(predictor.segmenter, Model(predictor.classifier.session, config), predictor.models_dir)


def upload_size_pairs(data_dir: Path) -> list[tuple[str, Path, Path]]:
    """(image_id, original-size photo, prepared file) for the photos in ``fullres/val`` that have both."""
    pairs = []
    for original in sorted((data_dir / "fullres" / "val").glob("*.jpg")):
        prepared = data_dir / "images" / "val" / original.name
        if prepared.is_file():
            pairs.append((original.stem, original, prepared))
    return pairs


# name: (what it stands for, per-channel RGB gains or None, JPEG quality or None)
ACQUISITION_SHIFTS: dict[str, tuple[str, tuple[float, float, float] | None, int | None]] = {
    "warm_cast": ("a warm colour cast (white balance set for a bluer light)", (1.0, 0.88, 0.72), None),
    "cool_cast": ("a cool colour cast (white balance set for a redder light)", (0.78, 0.9, 1.0), None),
    "darker": ("under-exposed by 30%", (0.7, 0.7, 0.7), None),
    "brighter": ("over-exposed by 30% (clipped at white)", (1.3, 1.3, 1.3), None),
    "jpeg_q40": ("re-compressed as JPEG at quality 40", None, 40),
}


def shifted(image: np.ndarray, gains: tuple[float, float, float] | None, quality: int | None) -> np.ndarray:
    """``image`` (RGB uint8) with per-channel gains applied (clipped to 0-255) and/or re-encoded as JPEG."""
    if gains is not None:
        image = np.clip(image.astype(np.float32) * np.asarray(gains, np.float32) + 0.5, 0, 255).astype(np.uint8)
    if quality is not None:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        with Image.open(buffer) as decoded:
            image = np.asarray(decoded.convert("RGB"))
    return image


def _round_gain(gain: dict) -> dict:
    rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in gain.items()}
    return {**rounded, "ci95": [round(v, 4) for v in gain["ci95"]]}


def _condition(predictor: Predictor, images, masks) -> dict:
    """The classifier's probabilities and the segmenter's per-image Jaccard on one version of the images."""
    result = {"probabilities": _classify(predictor, images), "jaccard": None}
    if predictor.segmenter is not None and masks is not None:
        maps = [m for i in range(0, len(images), 16) for m in predictor.segment(images[i : i + 16])]
        predicted = [_resized_mask(predictor._lesion_mask(m), mask.shape) for m, mask in zip(maps, masks, strict=True)]
        result["scores"] = segmentation_scores(predicted, masks)
        result["jaccard"] = result["scores"]["per_image_jaccard"]
    return result


def _row(predictor: Predictor, labels, result: dict, clean: dict | None) -> dict:
    """One condition's scores; beside the unchanged images' (``clean``), the paired differences."""
    probabilities = result["probabilities"]
    threshold = float(predictor.classifier.config["threshold"])
    sensitivity, specificity = sensitivity_specificity(labels, probabilities, threshold)
    row = {
        "auc": round(float(roc_auc_score(labels, probabilities)), 4),
        "sensitivity": round(sensitivity, 4),
        "specificity": round(specificity, 4),
    }
    if clean is not None:
        row.update(_spread(clean["probabilities"], probabilities))
        row["auc_vs_clean"] = _round_gain(paired_auc_difference(labels, clean["probabilities"], probabilities))
    if result["jaccard"] is not None:
        scores = result["scores"]
        row.update(jaccard=round(scores["jaccard"], 4), thresholded_jaccard=round(scores["thresholded_jaccard"], 4))
        if clean is not None:
            row["jaccard_vs_clean"] = _round_gain(paired_mean_difference(clean["jaccard"], result["jaccard"]))
    return row


def _resized_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if mask.shape == shape:
        return mask
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(shape[::-1], Image.Resampling.NEAREST)) > 0


def acquisition_shift(predictor: Predictor, images, labels, masks, baseline: Predictor | None = None) -> dict:
    """Scores on the validation images as delivered and under each of ``ACQUISITION_SHIFTS``; with ``baseline``
    (other models), also the paired AUC gain over the baseline's classifier on the same shifted images and, when
    both have a segmenter and there are masks, the paired mean-Jaccard gain over the baseline's segmenter."""
    conditions = {"clean": ("the images as delivered", None, None), **ACQUISITION_SHIFTS}
    report, clean = {}, None
    for name, (what, gains, quality) in conditions.items():
        moved = [shifted(image, gains, quality) for image in images]
        result = _condition(predictor, moved, masks)
        row = {"what": what, "gains": gains, "jpeg_quality": quality, **_row(predictor, labels, result, clean)}
        if baseline is not None:
            other = _condition(baseline, moved, masks)
            row["auc_vs_baseline"] = _round_gain(
                paired_auc_difference(labels, other["probabilities"], result["probabilities"])
            )
            if other["jaccard"] is not None and result["jaccard"] is not None:
                row["jaccard_vs_baseline"] = _round_gain(paired_mean_difference(other["jaccard"], result["jaccard"]))
        report[name] = row
        clean = clean or result
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = script_parser(__doc__)
    parser.add_argument("--models", help="model folder (default: the shipped models)")
    parser.add_argument("--data-dir", help="ISIC 2017 data root (default: $MELANOMA_DATA or ../shared/data/isic2017)")
    parser.add_argument("--json", help="also write the JSON report here")
    parser.add_argument(
        "--baseline",
        help="another model folder: paired AUC (and mean-Jaccard) gain of --models over its classifier (segmenter)"
        " under each shift",
    )
    args = parser.parse_args(argv)
    predictor = Predictor.from_dir(args.models)
    if predictor.classifier is None:
        parser.error("the model folder has no classifier")
    data_dir = resolve_data_dir(args.data_dir)
    samples = read_isic2017(data_dir, "val")
    labels = np.asarray([s.melanoma for s in samples])
    images = [load_image(s.image_path) for s in samples]
    served = _classify(predictor, images)
    pillow = _classify(with_pillow_resize(predictor), images)
    mirrored = _classify(predictor, [np.ascontiguousarray(image[:, ::-1]) for image in images])
    upside_down = _classify(predictor, [np.ascontiguousarray(image[::-1]) for image in images])
    config = predictor.classifier.config
    report: dict = {
        "command": shlex.join(["python", *(sys.argv if argv is None else ["benchmarks/bench_consistency.py", *argv])]),
        "models_dir": str(predictor.models_dir),
        "networks": predictor.networks(),
        "n_validation": len(samples),
        "test_time_flips": list(config.get("test_time_flips", [])),
        "resize_filter": {
            "served": config.get("resize_filter", "pil-bilinear"),
            "prepared_size": config.get("prepared_size"),
            "auc_served": round(float(roc_auc_score(labels, served)), 4),
            "auc_pillow_bilinear": round(float(roc_auc_score(labels, pillow)), 4),
            **_spread(served, pillow),
        },
        "hflip": _spread(served, mirrored),
        "vflip": _spread(served, upside_down),
    }
    pairs = upload_size_pairs(data_dir)
    if pairs:
        rows = []
        for image_id, original, prepared in pairs:
            p_original = predictor.predict(original).melanoma_probability
            p_prepared = predictor.predict(prepared).melanoma_probability
            rows.append({"image_id": image_id, "prepared_256": round(p_prepared, 4), "original": round(p_original, 4)})
        report["upload_size"] = {
            "images": rows,
            **_spread([r["original"] for r in rows], [r["prepared_256"] for r in rows]),
        }
    masks = None
    if all(s.mask_path is not None for s in samples):
        masks = [read_mask(s.mask_path) for s in samples]
    baseline = Predictor.from_dir(args.baseline) if args.baseline else None
    report["acquisition"] = acquisition_shift(predictor, images, labels, masks, baseline)
    if baseline is not None:
        report["baseline_models_dir"] = str(baseline.models_dir)
        report["baseline_networks"] = baseline.networks()
    emit_json(report, args.json)
    return report


if __name__ == "__main__":
    main()
