"""How far the melanoma probability moves when the same lesion reaches the classifier along another path.

Through the Predictor and the shipped models (``--models``), on the ISIC 2017 validation images:

1. ``resize_filter``: each image through the resize its classifier was trained with (the one recorded in its
   JSON config) vs Pillow's antialiased bilinear filter (what an export made before the filter was recorded gets):
   the absolute probability differences (median, 95th percentile, max) and both AUCs.
2. ``hflip`` / ``vflip``: each image vs its left-right / upside-down mirror image, changes the training
   augmentation covers (a lesion has no canonical orientation).
3. ``upload_size``: each original-size photo in ``DATA/fullres/val`` vs its prepared 256 px file in
   ``DATA/images/val`` (decode, draft mode and resizes included): the same lesion, uploaded at another size.

A classifier that moves a lot under these is fragile: its probability depends on how an image was resampled.
No threshold is asserted; the numbers go into the model card.

Usage: python benchmarks/bench_consistency.py [--models DIR] [--data-dir DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from melanoma.data.isic import read_isic2017, resolve_data_dir
from melanoma.inference.image_io import load_image
from melanoma.inference.predictor import Model, Predictor
from melanoma.reporting import emit_json


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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="model folder (default: the shipped models)")
    parser.add_argument("--data-dir", help="ISIC 2017 data root (default: $MELANOMA_DATA or ../shared/data/isic2017)")
    parser.add_argument("--json", help="also write the JSON report here")
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
    emit_json(report, args.json)
    return report


if __name__ == "__main__":
    main()
