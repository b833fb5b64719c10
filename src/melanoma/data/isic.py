"""Reader for the ISIC 2017 challenge layout of ``../shared/data/isic2017``.

Layout::

    images/{train,val,test}/ISIC_*.jpg
    masks/{train,val}/ISIC_*_segmentation.png
    labels/ISIC-2017_{Training,Validation}_Part3_GroundTruth.csv
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from melanoma.data.samples import (
    DataError,
    Sample,
    list_images,
    mask_path_for,
    read_labels_csv,
    read_optional_labels,
)

DEFAULT_DATA_DIR = "../shared/data/isic2017"
DATA_ENV_VAR = "MELANOMA_DATA"
Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
LABEL_FILES = {
    "train": "ISIC-2017_Training_Part3_GroundTruth.csv",
    "val": "ISIC-2017_Validation_Part3_GroundTruth.csv",
    "test": "ISIC-2017_Test_v2_Part3_GroundTruth.csv",
}


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data directory: ``data_dir`` if given, else ``$MELANOMA_DATA``, else ``../shared/data/isic2017``."""
    return Path(data_dir or os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_DIR).expanduser()


def read_isic2017(data_dir: str | Path | None, split: Split) -> list[Sample]:
    """List the samples of one official ISIC 2017 split.

    Masks and labels are attached when the split has them (train and val; the test set's are withheld).
    Every image of a split that has masks must have its mask, and every image of a labelled split its label.

    Raises:
        DataError: when the folder is missing or empty, or an image lacks its mask or label.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    root = resolve_data_dir(data_dir)
    if not root.is_dir():
        raise DataError(
            f"ISIC 2017 data not found at {root}; pass --data-dir or set {DATA_ENV_VAR}, "
            "or build it with `melanoma data prepare isic2017 --archives DIR --out DIR`"
        )
    if not (root / "images" / split).is_dir():
        raise DataError(
            f"{root} is not an ISIC-layout root: it has no images/{split} folder (the layout is images/, masks/ "
            f"and labels/ under one root, as `melanoma data prepare` writes it); pass that root as --data-dir, or "
            "train on a folder of your own with data.source=folder data.images_dir=DIR data.labels_csv=CSV "
            "(README: Your own images, step by step)"
        )
    images = list_images(root / "images" / split)
    masks_dir = root / "masks" / split
    labels_path = root / "labels" / LABEL_FILES[split]
    labels = read_labels_csv(labels_path, column_option=False) if labels_path.is_file() else None
    keratosis = read_optional_labels(labels_path, "seborrheic_keratosis")
    samples = []
    for image_path in images:
        image_id = image_path.stem
        mask_path = None
        if masks_dir.is_dir():
            mask_path = mask_path_for(masks_dir, image_id)
            if not mask_path.is_file():
                raise DataError(f"image {image_path} has no mask: expected {mask_path}")
        melanoma = None
        if labels is not None:
            if image_id not in labels:
                raise DataError(f"image {image_path} has no row in {labels_path}")
            melanoma = labels[image_id]
        sk = keratosis.get(image_id) if keratosis is not None else None
        samples.append(Sample(image_id, image_path, mask_path, melanoma, sk))
    return samples
