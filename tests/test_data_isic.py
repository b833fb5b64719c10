"""The ISIC 2017 layout reader, on a synthetic copy and on the real data in ../shared."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from melanoma.data.folder import check_samples
from melanoma.data.isic import DATA_ENV_VAR, read_isic2017, resolve_data_dir
from melanoma.data.samples import DataError, Sample

TRAIN_LABELS = "ISIC-2017_Training_Part3_GroundTruth.csv"


@pytest.mark.parametrize(
    ("split", "count", "melanomas", "has_ground_truth"),
    [("train", 8, 3, True), ("val", 4, 2, True), ("test", 2, None, False)],
)
def test_synthetic_counts_masks_and_labels(synthetic_isic_dir, split, count, melanomas, has_ground_truth):
    samples = read_isic2017(synthetic_isic_dir, split)
    assert len(samples) == count
    assert [s.image_id for s in samples] == sorted(s.image_id for s in samples)
    assert all(s.image_path == synthetic_isic_dir / "images" / split / f"{s.image_id}.jpg" for s in samples)
    if has_ground_truth:
        assert sum(s.melanoma for s in samples) == melanomas
        assert all(
            s.mask_path == synthetic_isic_dir / "masks" / split / f"{s.image_id}_segmentation.png" for s in samples
        )
    else:
        assert all(s.melanoma is None and s.mask_path is None for s in samples)
    check_samples(samples)


def test_synthetic_splits_are_disjoint(synthetic_isic_dir):
    ids = [s.image_id for split in ("train", "val", "test") for s in read_isic2017(synthetic_isic_dir, split)]
    assert len(ids) == len(set(ids)) == 14


def test_image_without_mask(synthetic_isic_dir):
    (synthetic_isic_dir / "masks" / "train" / "ISIC_0000002_segmentation.png").unlink()
    with pytest.raises(DataError, match=r"ISIC_0000002\.jpg has no mask: expected .*ISIC_0000002_segmentation\.png"):
        read_isic2017(synthetic_isic_dir, "train")


def test_image_without_label(synthetic_isic_dir):
    labels = synthetic_isic_dir / "labels" / TRAIN_LABELS
    labels.write_text("".join(line for line in labels.open() if not line.startswith("ISIC_0000004")))
    with pytest.raises(DataError, match=r"ISIC_0000004\.jpg has no row in .*Training_Part3"):
        read_isic2017(synthetic_isic_dir, "train")


def test_csv_missing_a_column(synthetic_isic_dir):
    labels = synthetic_isic_dir / "labels" / TRAIN_LABELS
    labels.write_text(labels.read_text().replace("image_id,melanoma,", "image_id,mel,"))
    expected = "no column 'melanoma'.*expected a header 'image_id,melanoma' with melanoma 0 or 1$"
    with pytest.raises(DataError, match=expected):  # the ISIC layout reads its own column: no option to suggest
        read_isic2017(synthetic_isic_dir, "train")


def test_label_two(synthetic_isic_dir):
    labels = synthetic_isic_dir / "labels" / TRAIN_LABELS
    labels.write_text(labels.read_text().replace("ISIC_0000005,0.0", "ISIC_0000005,2.0"))
    with pytest.raises(DataError, match=r"melanoma label '2\.0' is not 0 or 1"):
        read_isic2017(synthetic_isic_dir, "train")


def test_empty_folder(synthetic_isic_dir):
    for image in (synthetic_isic_dir / "images" / "test").iterdir():
        image.unlink()
    with pytest.raises(DataError, match="is empty"):
        read_isic2017(synthetic_isic_dir, "test")


def test_missing_split_folder(synthetic_isic_dir):
    shutil.rmtree(synthetic_isic_dir / "images" / "val")
    with pytest.raises(DataError, match="is not an ISIC-layout root: it has no images/val folder"):
        read_isic2017(synthetic_isic_dir, "val")


def test_a_plain_image_folder_as_data_dir_is_told_apart_from_the_isic_layout(synthetic_isic_dir):
    # --data-dir given the images themselves: the advice must not be "pass the folder that holds the images"
    with pytest.raises(DataError, match="has no images/train folder .* data.source=folder data.images_dir=DIR"):
        read_isic2017(synthetic_isic_dir / "images" / "train", "train")


def test_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="not found .*melanoma data prepare isic2017"):
        read_isic2017(tmp_path / "nowhere", "train")


def test_unknown_split(synthetic_isic_dir):
    with pytest.raises(DataError, match="unknown split 'training'"):
        read_isic2017(synthetic_isic_dir, "training")


def test_data_dir_from_environment(synthetic_isic_dir, monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(synthetic_isic_dir))
    assert resolve_data_dir(None) == synthetic_isic_dir
    assert len(read_isic2017(None, "val")) == 4
    assert resolve_data_dir("elsewhere") == Path("elsewhere")


# --- the real data ----------------------------------------------------------------------------------------------

REAL_COUNTS = {"train": (2000, 374), "val": (150, 30), "test": (600, None)}
REAL_SIZE = (256, 256)


def _load_sample(sample: Sample) -> tuple[str, tuple[int, int], str, np.ndarray | None]:
    """Decode a sample's image and mask: (image_id, image size, image mode, mask pixels)."""
    with Image.open(sample.image_path) as image:
        image.load()
        size, mode = image.size, image.mode
    mask = None
    if sample.mask_path is not None:
        with Image.open(sample.mask_path) as mask_image:
            mask = np.asarray(mask_image)
    return sample.image_id, size, mode, mask


@pytest.mark.data
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_real_isic2017(isic_data_dir, split):
    count, melanomas = REAL_COUNTS[split]
    samples = read_isic2017(isic_data_dir, split)
    assert len(samples) == count
    if melanomas is None:
        assert all(s.melanoma is None and s.mask_path is None for s in samples), "test ground truth is withheld"
    else:
        assert sum(s.melanoma for s in samples) == melanomas
        assert all(s.mask_path is not None for s in samples)
    check_samples(samples)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for image_id, size, mode, mask in pool.map(_load_sample, samples):
            assert (size, mode) == (REAL_SIZE, "RGB"), image_id
            if melanomas is not None:
                assert mask.shape == REAL_SIZE[::-1], image_id
                assert set(np.unique(mask).tolist()) <= {0, 255}, image_id
                assert mask.any(), f"{image_id}: empty lesion mask"
