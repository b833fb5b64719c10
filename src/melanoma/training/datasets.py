"""Torch datasets over ``Sample`` lists: decoded once into memory, augmented per item."""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from melanoma.config import DataConfig
from melanoma.data import Sample, read_isic2017
from melanoma.data.samples import read_mask
from melanoma.inference.preprocess import crop_box, lesion_box
from melanoma.models.pretrained import PRETRAINED_MEAN, PRETRAINED_STD


def _read_rgb(path, prepared_size: int | None = None) -> np.ndarray:
    """The image's stored pixels as RGB, converted as the Predictor converts an upload (transparency on white,
    greyscale, palette, CMYK); with ``prepared_size``, squashed to that square side with Pillow's bilinear filter
    (after a reduced-scale JPEG decode that keeps at least that side), exactly as the Predictor prepares it. The
    EXIF orientation is applied, as the Predictor, ``melanoma evaluate`` and a photo viewer do: a mask goes with the
    image as it is shown (``check_samples`` says so when a mask has the stored pixels' rotated size)."""
    from melanoma.inference.image_io import exif_transposed, to_rgb_array

    with Image.open(path) as image:
        resize = prepared_size and image.size != (prepared_size, prepared_size)
        if resize and image.format == "JPEG" and min(image.size) > prepared_size:
            image.draft("RGB", _draft_request(image.size, prepared_size))
        image.load()
        rgb = to_rgb_array(exif_transposed(image), repr(Path(path).name))
    if resize:
        rgb = np.asarray(Image.fromarray(rgb).resize((prepared_size, prepared_size), Image.Resampling.BILINEAR))
    return rgb


def _draft_request(size: tuple[int, int], min_side: int) -> tuple[int, int]:
    """The size to ask the JPEG decoder for so that the shorter side keeps ``min_side`` pixels (as serving asks)."""
    scale = min_side / min(size)
    return (math.ceil(size[0] * scale), math.ceil(size[1] * scale))


def _mask_uint8(path, prepared_size: int | None = None) -> np.ndarray:
    """The lesion mask as 0/1 uint8; with ``prepared_size``, squashed like its image (bilinear, then > 127, as
    ``melanoma data prepare`` resizes the ISIC masks)."""
    mask = read_mask(path)
    if prepared_size and mask.shape != (prepared_size, prepared_size):
        grey = Image.fromarray(mask.astype(np.uint8) * 255)
        mask = np.asarray(grey.resize((prepared_size, prepared_size), Image.Resampling.BILINEAR)) > 127
    return mask.astype(np.uint8)


def normalize(image: np.ndarray, mean=PRETRAINED_MEAN, std=PRETRAINED_STD) -> torch.Tensor:
    """uint8 HxWx3 -> float CxHxW normalised with the model's mean/std."""
    array = (image.astype(np.float32) / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


class LesionDataset(Dataset):
    """Images (and masks or labels) for one task, held decoded in memory (2000 x 256 px is ~0.4 GB; bigger images
    are squashed to ``prepared_size`` when loaded).

    Each item is a dict with ``image`` (normalised float CxHxW) and, for segmentation, ``mask``
    (float 1xHxW at the model size) and ``full_mask`` (uint8 HxW as loaded: at ``prepared_size`` when set, so a
    folder of big photos is scored at 256 px during training while ``melanoma evaluate`` scores the original
    size); for classification ``label`` (float) and, with ``keratosis``, ``keratosis`` (float, the seborrheic
    keratosis label of ``model.keratosis_aux``). ``index`` points back into ``samples``.
    """

    def __init__(
        self,
        samples: list[Sample],
        task: str,
        transform: Any,
        keep_full_mask: bool = False,
        crop_margin: float | None = None,
        crop_jitter: bool = False,
        prepared_size: int | None = None,
        keratosis: bool = False,
    ):
        """``crop_margin`` (classification): crop each image around its ground-truth lesion mask with this margin
        (see ``lesion_box``) before ``transform``; ``crop_jitter`` randomises margin and centre (training).
        ``prepared_size`` (``data.prepared_size``): squash every image and mask to this side once, when loaded."""
        self.samples = samples
        self.task = task
        self.transform = transform
        self.keep_full_mask = keep_full_mask
        self.crop_margin = crop_margin
        self.crop_jitter = crop_jitter
        self.keratosis = keratosis
        needs_masks = task == "segmentation" or crop_margin is not None
        if crop_margin is not None and any(s.mask_path is None for s in samples):
            missing = next(s for s in samples if s.mask_path is None)
            raise ValueError(
                f"data.lesion_crop needs a lesion mask for every image ({missing.image_path} has none): "
                "give the masks (data.masks_dir for a folder) or set data.lesion_crop=false"
            )
        if task == "segmentation" and any(s.mask_path is None for s in samples):
            raise ValueError("segmentation training needs a mask for every image")
        if task == "classification" and any(s.melanoma is None for s in samples):
            raise ValueError("classification training needs a melanoma label for every image")
        if keratosis and any(s.keratosis is None for s in samples):
            raise ValueError("model.keratosis_aux training needs a seborrheic_keratosis label for every image")
        with ThreadPoolExecutor(4) as pool:
            self.images = list(pool.map(lambda s: _read_rgb(s.image_path, prepared_size), samples))
            self.masks = (
                list(pool.map(lambda s: _mask_uint8(s.mask_path, prepared_size), samples)) if needs_masks else []
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {"index": index}
        if self.task == "segmentation":
            out = self.transform(image=self.images[index], mask=self.masks[index])
            item["mask"] = torch.from_numpy((out["mask"] > 0).astype(np.float32))[None]
            if self.keep_full_mask:
                item["full_mask"] = self.masks[index]
        else:
            out = self.transform(image=self._classifier_view(index))
            item["label"] = torch.tensor(float(self.samples[index].melanoma))
            if self.keratosis:
                item["keratosis"] = torch.tensor(float(self.samples[index].keratosis))
        item["image"] = normalize(out["image"])
        return item

    def _classifier_view(self, index: int) -> np.ndarray:
        image = self.images[index]
        if self.crop_margin is None:
            return image
        margin, shift = self.crop_margin, (0.0, 0.0)
        if self.crop_jitter:  # numpy's global generator: seeded per epoch by the engine, so resuming repeats it
            margin *= np.random.uniform(0.5, 1.5)
            shift = tuple(np.random.uniform(-0.1, 0.1, 2))
        return crop_box(image, lesion_box(self.masks[index], margin, shift))


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep ``full_mask`` arrays as a list (their sizes may differ)."""
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        if key == "full_mask":
            out[key] = values
        elif isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        else:
            out[key] = torch.tensor(values)
    return out


def _check_cross_validation(data: DataConfig) -> None:
    if data.cv_folds < 0 or data.cv_folds == 1:
        raise ValueError(
            f"data.cv_folds={data.cv_folds}: set 0 to train on the train split and validate on the validation "
            "split, or a number of folds >= 2 (e.g. data.cv_folds=5) for k-fold cross-validation"
        )
    if data.cv_folds == 0 and data.cv_fold != 0:
        raise ValueError(
            f"data.cv_fold={data.cv_fold} needs cross-validation: also set data.cv_folds (e.g. data.cv_folds=5)"
        )
    if data.cv_folds and not 0 <= data.cv_fold < data.cv_folds:
        raise ValueError(
            f"data.cv_fold={data.cv_fold} is not a fold of data.cv_folds={data.cv_folds}: "
            f"choose 0 .. {data.cv_folds - 1}"
        )


def cross_validation_split(samples: list[Sample], folds: int, fold: int) -> tuple[list[Sample], list[Sample]]:
    """(train, validation) for fold ``fold`` of a ``folds``-fold split of ``samples``.

    Stratified by the melanoma label when every sample has one (else plain k-fold), grouped when samples carry a
    group (``data.group_column``: each patient or lesion in one fold), shuffled with seed 0, so the
    folds depend only on the samples: every setting of a study sees the same folds. Both parts keep the input
    order; the validation parts of the ``folds`` folds are disjoint and together cover ``samples``.

    Raises:
        ValueError: when there are too few samples (or melanomas) for ``folds`` folds.
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold  # slow to import

    labels = [s.melanoma for s in samples]
    stratified = all(label is not None for label in labels)
    groups = [s.group for s in samples] if any(s.group is not None for s in samples) else None
    if groups is None:
        splitter = (StratifiedKFold if stratified else KFold)(n_splits=folds, shuffle=True, random_state=0)
    elif stratified:  # data.group_column: each patient or lesion in one fold only
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=0)
    else:
        splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=0)
    try:
        splits = list(splitter.split(np.zeros((len(samples), 1)), labels if stratified else None, groups))
    except ValueError as error:
        raise ValueError(
            f"cannot split {len(samples)} training images into {folds} folds: {error}; use fewer data.cv_folds"
        ) from error
    train_indices, val_indices = splits[fold]
    return [samples[i] for i in sorted(train_indices)], [samples[i] for i in sorted(val_indices)]


def split_digest(train: list[Sample], val: list[Sample]) -> str:
    """A digest of which images train and which validate: export, quantize and --resume compare it with the
    run's, so that images added to (or removed from) a folder since training cannot slip into the split that picks
    the threshold and reports the validation metrics."""
    text = "train:" + "\n".join(s.image_id for s in train) + "\nvalidation:" + "\n".join(s.image_id for s in val)
    return hashlib.sha256(text.encode()).hexdigest()


def check_same_split(recorded: dict[str, Any], current: dict[str, Any], what: str) -> None:
    """Refuse when the data now splits into other images than when the run trained (``split_sha256``); runs from
    before that digest have none and pass."""
    before = recorded.get("split_sha256")
    if before and before != current.get("split_sha256"):
        counts = (
            f"{recorded.get('n_train')} training and {recorded.get('n_validation')} validation images then, "
            f"{current.get('n_train')} and {current.get('n_validation')} now"
        )
        raise ValueError(
            f"the data changed since this run trained ({counts}): {what} would use another validation split, one "
            "that may hold images the model trained on; restore the images and labels as they were, or train a new "
            "run on the data as it is now"
        )


def grouped_by_copies(samples: list[Sample]) -> list[Sample]:
    """``samples`` with each copy of one photograph in one group (``Sample.group``), every other image in a group of
    its own: copies are images whose content fingerprints lie within ``COPY_DISTANCE`` of each other, directly or
    through another copy (``melanoma.inference.fingerprint``)."""
    from dataclasses import replace

    from melanoma.inference.fingerprint import COPY_DISTANCE, distances, fingerprint_files

    table = np.stack(fingerprint_files([s.image_path for s in samples]))
    root = list(range(len(samples)))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for i in range(len(samples)):
        for j in np.flatnonzero(distances(table[i], table[i + 1 :]) <= COPY_DISTANCE) + i + 1:
            root[find(int(j))] = find(i)
    return [replace(s, group=f"copies of {samples[find(i)].image_id}") for i, s in enumerate(samples)]


def _grouping(data: DataConfig) -> str:
    return data.group_column if data.group_column else "copies of one photograph (content fingerprints)"


def load_splits(data: DataConfig) -> tuple[list[Sample], list[Sample], dict[str, Any]]:
    """(train, validation, provenance) for the data described by ``data``.

    With ``data.cv_folds >= 2`` the validation set is fold ``data.cv_fold`` of the train split and the train set
    the other folds (see ``cross_validation_split``); the official validation set is not read.
    """
    _check_cross_validation(data)
    if data.group_copies and data.group_column:
        raise ValueError(
            "data.group_copies and data.group_column both group the split: keep one (data.group_column when the "
            "labels CSV names each image's patient or lesion, which also groups photos of one lesion that are not "
            "copies)"
        )
    if data.group_copies and data.source == "isic2017" and not data.cv_folds:
        raise ValueError(
            "data.group_copies groups the cross-validation folds of the ISIC 2017 train split (data.cv_folds >= 2); "
            "the official train/validation split is the challenge's own: drop data.group_copies"
        )
    if data.source == "isic2017":
        from melanoma.data.isic import resolve_data_dir

        if data.group_column:
            raise ValueError(
                "data.group_column needs data.source=folder: the ISIC 2017 split is the challenge's own, and its "
                "labels CSV has no patient or lesion column"
            )

        train = read_isic2017(data.data_dir, "train")
        val = read_isic2017(data.data_dir, "val") if not data.cv_folds else []
        if data.group_copies and data.cv_folds:  # the official split is the challenge's own: only folds are grouped
            train = grouped_by_copies(train)
        provenance = {
            "dataset": "ISIC 2017 challenge (official splits)",
            "data_dir": str(resolve_data_dir(data.data_dir)),
            "train_split": "train",
            "validation_split": "val",
        }
    else:
        from pathlib import Path

        from melanoma.data.folder import read_image_folder, stratified_split

        if not data.images_dir:
            raise ValueError("data.source=folder needs data.images_dir (and data.labels_csv / data.masks_dir)")
        samples = read_image_folder(
            Path(data.images_dir),
            Path(data.labels_csv) if data.labels_csv else None,
            Path(data.masks_dir) if data.masks_dir else None,
            group_column=data.group_column,
            label_column=data.label_column,
            mask_suffix=data.mask_suffix,
        )
        if data.group_copies:
            samples = grouped_by_copies(samples)
        train, val = stratified_split(samples, data.val_fraction, seed=0)
        grouped = f", grouped by {_grouping(data)}" if data.group_column or data.group_copies else ""
        provenance = {
            "dataset": "user folder",
            "images_dir": data.images_dir,
            "split": f"{'stratified' if data.labels_csv else 'random'} "
            f"{1 - data.val_fraction:.0%}/{data.val_fraction:.0%}{grouped}, seed 0",
            **({"labels_csv": data.labels_csv} if data.labels_csv else {}),
            **({"label_column": data.label_column} if data.labels_csv and data.label_column != "melanoma" else {}),
            **({"masks_dir": data.masks_dir} if data.masks_dir else {}),
            **({"mask_suffix": data.mask_suffix} if data.masks_dir and data.mask_suffix != "_segmentation.png" else {}),
        }
    if data.cv_folds:
        stratified = all(s.melanoma is not None for s in train)
        train, val = cross_validation_split(train, data.cv_folds, data.cv_fold)
        provenance.update(
            validation_split=f"fold {data.cv_fold} of {data.cv_folds} of the train split "
            f"({'stratified' if stratified else 'not stratified'}"
            f"{f', grouped by {_grouping(data)}' if data.group_column or data.group_copies else ''}, seed 0)",
            cv_folds=data.cv_folds,
            cv_fold=data.cv_fold,
        )
    if data.limit_train:
        train = train[: data.limit_train]
    if data.limit_val:
        val = val[: data.limit_val]
    # Every file decoded once before a long run starts: a truncated image or a mask of another size stops here with
    # the file named, not as a traceback from a data-loader worker an hour in.
    from melanoma.data.folder import check_samples

    check_samples(train + val)
    provenance.update(n_train=len(train), n_validation=len(val), split_sha256=split_digest(train, val))
    labelled = [s.melanoma for s in train if s.melanoma is not None]
    if labelled:
        provenance["n_train_melanoma"] = int(sum(labelled))
    labelled_val = [s.melanoma for s in val if s.melanoma is not None]
    if labelled_val:
        provenance["n_validation_melanoma"] = int(sum(labelled_val))
    # Which images trained the model and which chose its epoch and threshold: the export keeps the lists, so that
    # `melanoma evaluate` and `melanoma calibrate` can say when they are given those images (no held-out score).
    provenance["image_ids"] = {"train": [s.image_id for s in train], "validation": [s.image_id for s in val]}
    return train, val, provenance


def image_fingerprints(train: list[Sample], val: list[Sample]) -> dict[str, str]:
    """The content fingerprints of the training and validation images, in the order of their ``image_ids`` lists:
    a run records them (``make_loaders``), so that its export can find its images under other names too (copies
    re-published renamed, resized or re-encoded; ``melanoma.inference.fingerprint``)."""
    from melanoma.inference.fingerprint import FINGERPRINT_METHOD, encode_fingerprints, fingerprint_files

    return {
        "method": FINGERPRINT_METHOD,
        "train": encode_fingerprints(fingerprint_files([s.image_path for s in train])),
        "validation": encode_fingerprints(fingerprint_files([s.image_path for s in val])),
    }
