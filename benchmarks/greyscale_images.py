"""What a greyscale upload does to the outputs: the measurement quoted by the ``greyscale_image`` quality check.

Usage:
    python benchmarks/greyscale_images.py [--models DIR] [--data-dir DIR] [--json FILE]

Each of the 150 ISIC 2017 validation images is made grey (Pillow's ITU-R 601-2 luma, ``convert("L")``, repeated in
the three channels, as a greyscale export or scan would deliver it) and predicted by the Predictor as an upload.
Paired with the same images in colour: the paired bootstrap difference in mean per-image Jaccard (the lesion mask
against the annotation) and the paired stratified bootstrap difference in melanoma AUC.

The check is shown whatever this finds: without colour, the lesion's dermoscopic colours cannot be measured. The
measurement says how far the segmenter and the classifier can be trusted on such an image. Prints JSON (and writes
it to --json FILE). Needs only the serving install.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from melanoma.data.isic import read_isic2017
from melanoma.data.samples import read_mask
from melanoma.inference.image_io import load_image
from melanoma.inference.predictor import Predictor
from melanoma.metrics import jaccard, paired_auc_difference, paired_mean_difference
from melanoma.reporting import both_models, emit_study, study_parser


def greyscale(image: np.ndarray) -> np.ndarray:
    """``image`` with its colour removed: Pillow's luma in all three channels."""
    return np.repeat(np.asarray(Image.fromarray(image).convert("L"))[:, :, None], 3, axis=2)


def predict(
    predictor: Predictor, images: list[np.ndarray], masks: list[np.ndarray], batch: int = 16
) -> tuple[list[float], list[float], list[tuple[str, ...]]]:
    """(melanoma probabilities, per-image Jaccard, the quality checks that fired) for every image."""
    probabilities: list[float] = []
    jaccards: list[float] = []
    checks: list[tuple[str, ...]] = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        sizes = [(image.shape[1], image.shape[0]) for image in chunk]
        names = [f"image {start + i}" for i in range(len(chunk))]
        predictions = predictor.predict_arrays(chunk, sizes, names)
        for prediction, mask in zip(predictions, masks[start : start + batch], strict=True):
            probabilities.append(float(prediction.melanoma_probability))
            jaccards.append(jaccard(prediction.lesion_mask, mask))
            checks.append(tuple(check.code for check in prediction.quality_checks))
    return probabilities, jaccards, checks


def study(predictor: Predictor, data_dir: str | None) -> dict[str, Any]:
    samples = read_isic2017(data_dir, "val")
    images = [load_image(sample.image_path) for sample in samples]
    masks = [read_mask(sample.mask_path) > 0 for sample in samples]
    labels = np.array([sample.melanoma for sample in samples])
    colour_probabilities, colour_jaccards, colour_checks = predict(predictor, images, masks)
    grey_probabilities, grey_jaccards, grey_checks = predict(predictor, [greyscale(i) for i in images], masks)
    auc = paired_auc_difference(labels, colour_probabilities, grey_probabilities)
    return {
        "images": len(samples),
        "melanomas": int(labels.sum()),
        "colour": {"mean_jaccard": float(np.mean(colour_jaccards)), "auc": auc["baseline_auc"]},
        "greyscale": {"mean_jaccard": float(np.mean(grey_jaccards)), "auc": auc["other_auc"]},
        "jaccard_difference": paired_mean_difference(colour_jaccards, grey_jaccards),
        "auc_difference": auc,
        "greyscale_image_fired": {
            "colour": sum("greyscale_image" in c for c in colour_checks),
            "greyscale": sum("greyscale_image" in c for c in grey_checks),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__)
    args = parser.parse_args(argv)
    predictor = both_models(parser, args.models)
    report = study(predictor, args.data_dir)
    return emit_study(report, "benchmarks/greyscale_images.py", argv, predictor, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
