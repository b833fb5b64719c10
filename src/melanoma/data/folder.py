"""A user's own data: a folder of images, an optional ``image_id,melanoma`` CSV and an optional masks folder.

Layout::

    images_dir/<image_id>.{jpg,jpeg,png,bmp,tif,tiff}
    labels_csv: image_id,melanoma            (image_id = the image file's stem, melanoma 0 or 1; the columns may
                                             be named as other ISIC releases name them, see ``read_labels_csv``)
    masks_dir/<image_id>_segmentation.png    (binary lesion mask, same size as the image; read by
                                             ``melanoma.data.samples.read_mask``: {0,255}, {0,1} or two-valued)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from melanoma.data.samples import (
    MASK_SUFFIX,
    DataError,
    Sample,
    check_mask_suffix,
    id_columns,
    is_companion,
    is_extension_only,
    list_images,
    mask_path_for,
    read_group_column,
    read_labels_csv,
    read_optional_labels,
)

# Image modes PIL converts to RGB without losing meaning; 16-bit and float images need the user's attention.
_IMAGE_MODES = ("RGB", "RGBA", "L", "LA", "P", "CMYK", "YCbCr", "1")
# Mask modes read_mask reads (16-bit label maps included).
_MASK_MODES = ("L", "1", "P", "RGB", "RGBA", "LA", "I;16", "I;16B", "I;16L", "I")
_MAX_LISTED_PROBLEMS = 10


def read_image_folder(
    images_dir: Path,
    labels_csv: Path | None = None,
    masks_dir: Path | None = None,
    require_masks: bool = False,
    ignore_rows_without_image: bool = False,
    group_column: str | None = None,
    label_column: str = "melanoma",
    mask_suffix: str = MASK_SUFFIX,
    id_column: str | None = None,
) -> list[Sample]:
    """List the samples of a folder of dermoscopic images.

    Args:
        images_dir: folder holding the images, named ``<image_id>.<suffix>``.
        labels_csv: CSV with columns ``image_id,melanoma`` (other columns are ignored); every image needs a row
            and every row an image. None leaves the labels unknown.
        masks_dir: folder holding ``<image_id>_segmentation.png`` masks. None means no masks.
        require_masks: when True every image must have its mask (for training a segmenter).
        ignore_rows_without_image: when True, CSV rows whose image is not in the folder are skipped (scoring a
            subset of images with the full labels file); by default they are an error (training: a lost image).
        group_column: a column of ``labels_csv`` holding each image's patient or lesion id (``Sample.group``).
        label_column: the column of ``labels_csv`` holding the 0/1 melanoma label (ISIC 2020: ``target``).
        mask_suffix: what a mask's file name adds to its image's stem (``_mask.png``; ``.png`` for masks named as
            their images, in a folder of their own).
        id_column: the column of ``labels_csv`` naming each image (``--id-column``); None: the first of
            ``ID_COLUMNS`` it has.

    Returns:
        One Sample per image, sorted by file name.

    Raises:
        DataError: when the folder is missing or empty, two images share a stem, an image lacks its label or
            (with ``require_masks``) its mask, or the CSV lists an image that is not in the folder.
    """
    images_dir, labels_csv, masks_dir = _as_path(images_dir), _as_path(labels_csv), _as_path(masks_dir)
    check_mask_suffix(mask_suffix)
    image_paths = _list_lesion_images(images_dir, mask_suffix, masks_dir)
    if require_masks and masks_dir is None:
        raise DataError(f"masks are required but no masks folder was given; pass the folder of *{mask_suffix}")
    if masks_dir is not None and not masks_dir.is_dir():
        raise DataError(f"masks folder {masks_dir} does not exist; pass the folder that holds *{mask_suffix}")
    labels = read_labels_csv(labels_csv, label_column, id_column=id_column) if labels_csv is not None else None
    keratosis = read_optional_labels(labels_csv, "seborrheic_keratosis", id_column)
    if group_column and labels_csv is None:
        raise DataError(f"data.group_column={group_column} names a column of the labels CSV: pass data.labels_csv")
    groups = read_group_column(labels_csv, group_column) if group_column and labels_csv else None
    if labels is not None:
        _check_label_coverage(image_paths, labels, labels_csv, ignore_rows_without_image, id_column)
    # Mask names by lower case too: masks saved as *_mask.PNG are found on a case-sensitive file system.
    mask_names = {p.name.lower(): p for p in masks_dir.iterdir()} if masks_dir is not None else {}
    samples = []
    for image_path in image_paths:
        image_id = image_path.stem
        mask_path = _find_mask(masks_dir, image_path, require_masks, mask_suffix, mask_names)
        melanoma = labels[image_id] if labels is not None else None
        sk = keratosis.get(image_id) if keratosis is not None else None
        samples.append(Sample(image_id, image_path, mask_path, melanoma, sk, groups[image_id] if groups else None))
    return samples


def stratified_split(
    samples: Sequence[Sample], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """Split labelled samples into train and validation sets with the same melanoma rate in each.

    Samples none of which has a label (images and masks for a segmenter) are split at random instead. The split
    depends only on ``samples`` and ``seed``; both parts keep the input order.

    Args:
        samples: labelled samples (``melanoma`` is 0 or 1 for each), or samples none of which is labelled.
        val_fraction: share of the samples that goes to validation, strictly between 0 and 1.
        seed: random seed; the same seed gives the same split.

    Returns:
        ``(train_samples, val_samples)``.

    Raises:
        DataError: when some samples have a label and others not, the fraction is out of range, or a class is too
            small to split.
    """
    from sklearn.model_selection import train_test_split  # imported here: scikit-learn is slow to import

    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if any(s.group is not None for s in samples):
        return _grouped_split(samples, val_fraction, seed)
    unlabelled = [s.image_id for s in samples if s.melanoma is None]
    if unlabelled and len(unlabelled) == len(samples):  # a segmentation set: nothing to stratify by
        if len(samples) < 2:
            raise DataError(f"cannot split {len(samples)} sample(s) into train and validation: add images")
        train_indices, val_indices = train_test_split(
            list(range(len(samples))), test_size=val_fraction, random_state=seed, shuffle=True
        )
        return [samples[i] for i in sorted(train_indices)], [samples[i] for i in sorted(val_indices)]
    if unlabelled:
        raise DataError(
            f"cannot stratify by melanoma label: {len(unlabelled)} sample(s) have no label "
            f"(first: {unlabelled[0]}); pass a labels CSV"
        )
    indices = list(range(len(samples)))
    labels = [s.melanoma for s in samples]
    try:
        train_indices, val_indices = train_test_split(
            indices, test_size=val_fraction, random_state=seed, shuffle=True, stratify=labels
        )
    except ValueError as error:
        raise DataError(
            f"cannot split {len(samples)} samples ({sum(labels)} melanoma) with val_fraction={val_fraction}: "
            f"{error}; each class needs at least 2 samples and one in each part: add data or change val_fraction"
        ) from error
    return [samples[i] for i in sorted(train_indices)], [samples[i] for i in sorted(val_indices)]


def _grouped_split(samples: Sequence[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """``stratified_split`` keeping each group (``Sample.group``: a patient or lesion) on one side: scikit-learn's
    StratifiedGroupKFold with ``round(1 / val_fraction)`` folds (its first fold validates, so the validation share is
    about ``val_fraction``), or GroupShuffleSplit for unlabelled samples."""
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    groups = [s.group for s in samples]
    if None in groups:
        missing = next(s.image_id for s in samples if s.group is None)
        raise DataError(f"image {missing} has no group: with data.group_column every image needs one")
    if len(set(groups)) < 2:
        raise DataError(f"all {len(samples)} images belong to one group ({groups[0]}): a grouped split needs two")
    index = np.zeros((len(samples), 1))
    labels = [s.melanoma for s in samples]
    if all(label is None for label in labels):
        splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
        train_indices, val_indices = next(splitter.split(index, groups=groups))
    elif any(label is None for label in labels):
        raise DataError("cannot stratify by melanoma label: some samples have no label; pass a labels CSV")
    else:
        folds = max(2, round(1 / val_fraction))
        if len(set(groups)) < folds:
            raise DataError(
                f"{len(set(groups))} groups are too few for a grouped {val_fraction:.0%} validation split "
                f"({folds} folds): add data or raise data.val_fraction"
            )
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        train_indices, val_indices = next(splitter.split(index, labels, groups))
        if len({labels[i] for i in val_indices}) < 2:
            raise DataError(
                f"the grouped validation split holds only one class ({len(val_indices)} images): too few melanoma "
                "groups to split; add data or raise data.val_fraction"
            )
    return [samples[i] for i in sorted(train_indices)], [samples[i] for i in sorted(val_indices)]


def check_samples(samples: Sequence[Sample], check_pixels: bool = True) -> None:
    """Check that samples are usable for training before a long run starts.

    Checks that the list is not empty, image ids are unique, files exist, either every sample or none has a
    mask and a label, and labels are 0/1. With ``check_pixels`` it also decodes every image and mask (PIL
    ``open`` + ``load``) and checks that each mask has its image's size.

    Raises:
        DataError: listing each problem with the file it concerns and what to do.
    """
    if not samples:
        raise DataError("no samples: the data folder is empty; add images or pass the folder that holds them")
    problems = _structure_problems(samples)
    if check_pixels and not problems:
        workers = min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for sample_problems in pool.map(_pixel_problems, samples):
                problems.extend(sample_problems)
    if problems:
        raise DataError(_format_problems(problems))


def _format_problems(problems: list[str]) -> str:
    listed = "\n  ".join(problems[:_MAX_LISTED_PROBLEMS])
    hidden = len(problems) - _MAX_LISTED_PROBLEMS
    more = f"\n  ... and {hidden} more" if hidden > 0 else ""
    return f"{len(problems)} problem(s) in the data:\n  {listed}{more}"


def _as_path(path: Path | str | None) -> Path | None:
    return None if path is None else Path(path).expanduser()


def _list_lesion_images(images_dir: Path, mask_suffix: str = MASK_SUFFIX, masks_dir: Path | None = None) -> list[Path]:
    """Images in the folder, without masks and superpixel maps kept beside them or in a subfolder: ISIC's names, the
    masks folder, and names ending in ``mask_suffix`` (a bare extension such as ``.png`` only when the masks folder
    is the image folder); unique stems."""
    beside = masks_dir is not None and masks_dir.is_dir() and images_dir.is_dir() and masks_dir.samefile(images_dir)
    # ISIC's own names are companions (filtered below, with their own error when nothing else is there).
    by_suffix = mask_suffix != MASK_SUFFIX and (beside or not is_extension_only(mask_suffix))

    def is_mask(path: Path) -> bool:
        return by_suffix and path.name.lower().endswith(mask_suffix.lower())

    paths = [p for p in list_images(images_dir, is_mask, masks_dir) if not is_companion(p)]
    if not paths:
        raise DataError(f"image folder {images_dir} holds only masks or superpixel maps; pass the image folder")
    by_stem: dict[str, Path] = {}
    for path in paths:
        if path.stem in by_stem:
            raise DataError(
                f"images {by_stem[path.stem].name} and {path.name} in {images_dir} share the id {path.stem!r}; "
                "rename or remove one"
            )
        by_stem[path.stem] = path
    return paths


def _check_label_coverage(
    image_paths: list[Path],
    labels: dict[str, int],
    labels_csv: Path,
    ignore_rows_without_image: bool = False,
    id_column: str | None = None,
) -> None:
    image_ids = {p.stem for p in image_paths}
    unlabelled = [p for p in image_paths if p.stem not in labels]
    if unlabelled:
        columns = [] if id_column else id_columns(labels_csv)  # a column the user named is not second-guessed
        matched_on = (
            f"; the images are matched on its column {columns[0]!r}, the first it has of {', '.join(columns)}: if "
            f"{'another of them' if len(columns) > 2 else repr(columns[1])} holds the file names, name it with "
            f"--id-column (evaluate, calibrate) or drop or rename {columns[0]!r}"
            if len(columns) > 1
            else ""
        )
        raise DataError(
            f"image {unlabelled[0]} has no label in {labels_csv} ({len(unlabelled)} image(s) without a label); "
            f"add a row '{unlabelled[0].stem},<0 or 1>' or remove the image{matched_on}"
            + _unlabelled_hint(unlabelled, labels, len(image_paths))
        )
    missing = sorted(image_id for image_id in labels if image_id not in image_ids)
    if missing and not ignore_rows_without_image:
        raise DataError(
            f"{labels_csv} lists image {missing[0]!r} but {image_paths[0].parent} has no image with that name "
            f"({len(missing)} missing); add the image or remove its row"
        )


def _unlabelled_hint(unlabelled: list[Path], labels: dict[str, int], images: int) -> str:
    """Why images may lack a label, when their names say so: masks beside the images (a labelled name plus one
    ending), or no image matching the CSV at all (its ids then shown beside the file names)."""
    endings = {path: _labelled_ending(path.stem, labels) for path in unlabelled}
    suffixes = {None if ending is None else ending + path.suffix for path, ending in endings.items()}
    if None not in suffixes and len(suffixes) == 1:
        (suffix,) = suffixes
        return (
            f". Each of them is a labelled image's name followed by {suffix!r}: if they are masks kept beside the "
            f"images, name that ending (`--mask-suffix {suffix}`, or `data.mask_suffix={suffix}` in training) and "
            "they are no longer taken for images"
        )
    if len(unlabelled) == images:
        ids = ", ".join(repr(i) for i in list(labels)[:3])
        names = ", ".join(repr(p.stem) for p in unlabelled[:3])
        return (
            f". No image matches any row: the CSV's ids begin {ids}, the images are named {names} (check for "
            "leading zeros dropped by a spreadsheet, paths or extensions in the ids, or another id column)"
        )
    return ""


def _labelled_ending(name: str, labels: dict[str, int]) -> str | None:
    """What follows a labelled image's name in ``name`` ("lesion_01_mask" -> "_mask"), or None."""
    for index, character in enumerate(name):
        if character in "_-. " and index and name[:index] in labels:
            return name[index:]
    return None


def _find_mask(
    masks_dir: Path | None,
    image_path: Path,
    require_masks: bool,
    mask_suffix: str = MASK_SUFFIX,
    mask_names: dict[str, Path] | None = None,
) -> Path | None:
    if masks_dir is None:
        return None
    mask_path = mask_path_for(masks_dir, image_path.stem, mask_suffix)
    if mask_path.is_file():
        return mask_path
    other_case = (mask_names or {}).get(mask_path.name.lower())
    if other_case is not None and other_case.is_file():
        return other_case
    if require_masks:
        held = sorted(p.name for p in masks_dir.iterdir() if not p.name.startswith("."))
        shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
        holds = f" (the folder holds {shown})" if held else " (the folder is empty)"
        raise DataError(
            f"image {image_path} has no mask: expected {mask_path}{holds}; masks are named "
            f"<image stem>{mask_suffix}: add the mask, rename the masks so, name the end your masks' names share "
            "with --mask-suffix (training: data.mask_suffix), or remove the image"
        )
    return None


def _structure_problems(samples: Sequence[Sample]) -> list[str]:
    problems = []
    seen: set[str] = set()
    with_mask = sum(s.mask_path is not None for s in samples)
    with_label = sum(s.melanoma is not None for s in samples)
    for sample in samples:
        if sample.image_id in seen:
            problems.append(f"image id {sample.image_id} appears twice; give each image a unique name")
        seen.add(sample.image_id)
        if not Path(sample.image_path).is_file():
            problems.append(f"image {sample.image_path} does not exist; restore it or remove the sample")
        if sample.mask_path is not None and not Path(sample.mask_path).is_file():
            problems.append(f"mask {sample.mask_path} of image {sample.image_path} does not exist; add it")
        if sample.mask_path is None and with_mask > 0:
            problems.append(
                f"image {sample.image_path} has no mask while {with_mask} other image(s) have one; "
                f"add its mask (as {Path(next(x for x in samples if x.mask_path).mask_path).name} is named for "
                "its image) or remove the image (a classifier reads masks only with data.lesion_crop: without it, "
                "drop data.masks_dir)"
            )
        if sample.melanoma is None and with_label > 0:
            problems.append(
                f"image {sample.image_path} has no label while {with_label} other image(s) have one; "
                f"add a row '{sample.image_id},<0 or 1>' to the labels CSV"
            )
        if sample.melanoma is not None and sample.melanoma not in (0, 1):
            problems.append(f"image {sample.image_path} has melanoma label {sample.melanoma!r}; use 0 or 1")
    return problems


def _pixel_problems(sample: Sample) -> list[str]:
    try:
        image_size = _load_size(Path(sample.image_path), _IMAGE_MODES, "an 8-bit RGB or grayscale image", True)
    except DataError as error:
        return [str(error)]
    if sample.mask_path is None:
        return []
    try:
        mask_size = _load_size(Path(sample.mask_path), _MASK_MODES, "a PNG mask: values 0/255, 0/1 or two values")
    except DataError as error:
        return [str(error)]
    if mask_size != image_size:
        hint = "resize the mask to the image's size (nearest neighbour)"
        if mask_size == image_size[::-1]:
            hint = (
                "the image carries an EXIF orientation tag, which training, evaluation and the Predictor apply as a "
                "photo viewer does, and its mask was drawn on the stored pixels: rotate the mask the same way, or "
                "save the image without the tag"
            )
        return [
            f"mask {sample.mask_path} is {mask_size[0]}x{mask_size[1]} but its image {sample.image_path} is "
            f"{image_size[0]}x{image_size[1]} as shown; {hint}"
        ]
    return []


#: EXIF orientations that turn the image by 90 degrees (width and height swap when it is shown).
_QUARTER_TURNS = (5, 6, 7, 8)


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except (OSError, SyntaxError, ValueError, TypeError, KeyError):  # a damaged EXIF block: shown as stored
        return 1


def _load_size(path: Path, modes: tuple[str, ...], expected: str, oriented: bool = False) -> tuple[int, int]:
    """Decode the whole file (``open`` only reads the header) and return its (width, height); with ``oriented``,
    as shown, after its EXIF orientation."""
    try:
        with Image.open(path) as image:
            image.load()
            mode, size = image.mode, image.size
            if oriented and _orientation(image) in _QUARTER_TURNS:
                size = size[::-1]
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path} cannot be read as an image ({error}); re-export it or remove it") from error
    if mode not in modes:
        raise DataError(f"{path} has pixel mode {mode!r}; expected {expected}: convert it")
    return size
