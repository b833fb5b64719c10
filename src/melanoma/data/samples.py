"""The sample record shared by every dataset reader, and the data error type."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
MASK_SUFFIX = "_segmentation.png"
# The column that names each image, as the ISIC archives spell it: ISIC 2016-2018 "image_id", ISIC 2019 "image",
# ISIC 2020 "image_name", the ISIC archive's metadata exports "isic_id". A labels CSV's first one of these is read.
ID_COLUMNS = ("image_id", "image_name", "isic_id", "image")
# 0/1 melanoma columns of other ISIC releases: named in the error when the CSV lacks the column asked for.
KNOWN_LABEL_COLUMNS = ("melanoma", "target", "mel")
# Files the ISIC archives keep beside the images that are not lesion photos: masks and superpixel maps.
COMPANION_SUFFIXES = (MASK_SUFFIX, "_superpixels.png")


class DataError(ValueError):
    """A data set on disk is not usable; the message names the file and what to do."""


@dataclass(frozen=True)
class Sample:
    """One dermoscopic image and what is known about it.

    Attributes:
        image_id: the image's stem, e.g. ``ISIC_0000000``.
        image_path: path to the image file.
        mask_path: path to its binary lesion mask (``<stem>_segmentation.png``), or None.
        melanoma: 1 for melanoma, 0 for not melanoma, None when the label is unknown.
        keratosis: 1 for seborrheic keratosis, 0 for not, None when unknown (ISIC 2017's second label; only
            ``model.keratosis_aux`` training reads it).
        group: the patient or lesion the image belongs to (``data.group_column``), None when not given: images of
            one group stay on one side of a validation split or cross-validation fold.
    """

    image_id: str
    image_path: Path
    mask_path: Path | None = None
    melanoma: int | None = None
    keratosis: int | None = None
    group: str | None = None


def is_hidden(path: Path, root: Path | None = None) -> bool:
    """A hidden file, or one in a hidden folder below ``root``: dotfiles, the ``._`` files macOS adds to archives
    and folders it copies to other disks, and ``__MACOSX`` folders. They are never lesion images."""
    parts = path.relative_to(root).parts if root is not None else (path.name,)
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def is_companion(path: Path) -> bool:
    """A mask or superpixel map kept beside the images (``COMPANION_SUFFIXES``)."""
    return path.name.lower().endswith(COMPANION_SUFFIXES)


def list_images(folder: Path, skip: Callable[[Path], bool] | None = None, skip_dir: Path | None = None) -> list[Path]:
    """All image files directly in ``folder`` (sorted, hidden files left out), or a DataError when there are none.

    The folder is read flat (an image's id is its file stem). Images in its subfolders are not read, so they stop it
    with a DataError rather than drop out of a training set, an evaluation or a calibration unseen (masks and
    superpixel maps kept beside the images, and ``melanoma predict``'s ``*_overlay.png`` output, do not count).
    Files for which ``skip`` is true (a user's masks under their own suffix) are left out everywhere, and a subfolder
    that is ``skip_dir`` (the masks folder) is not searched.
    """
    if folder.is_file():
        raise DataError(
            f"{folder} is a file, not a folder; pass the folder that holds the images (a single image: put it in a "
            "folder of its own)"
        )
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist; pass the folder that holds the images")
    skip = skip or (lambda path: False)
    paths = sorted(
        p for p in folder.iterdir() if p.is_file() and _is_image_name(p) and not is_hidden(p) and not skip(p)
    )
    if not paths:
        nested = [p.name for p in sorted(folder.iterdir()) if p.is_dir() and not is_hidden(p)][:3]
        inside = f"; it holds only folders ({', '.join(nested)}): put the images directly in {folder}" if nested else ""
        raise DataError(f"image folder {folder} is empty: expected files ending in {', '.join(IMAGE_SUFFIXES)}{inside}")
    nested_images = [p for p in _images_in_subfolders(folder, skip_dir) if not skip(p)]
    if nested_images:
        shown = ", ".join(str(p.relative_to(folder)) for p in nested_images[:3])
        raise DataError(
            f"image folder {folder} has {len(paths)} images of its own and {len(nested_images)} more in subfolders "
            f"({shown}{', ...' if len(nested_images) > 3 else ''}), which are not read: move them into {folder}, "
            "or out of it (a subfolder of masks: move that folder out of the image folder, or name it with --masks "
            "when evaluating segmentation)"
        )
    return paths


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _images_in_subfolders(folder: Path, skip_dir: Path | None = None) -> list[Path]:
    """Lesion images below ``folder``'s subfolders (not following links; hidden ones, companions, overlays and the
    folder ``skip_dir`` left out), sorted."""
    found = []
    skipped_dir = skip_dir.resolve() if skip_dir is not None and skip_dir.is_dir() else None
    for root, directories, files in os.walk(folder):
        directories[:] = sorted(
            d for d in directories if not is_hidden(Path(root, d), folder) and Path(root, d).resolve() != skipped_dir
        )
        if Path(root) == folder:
            continue
        for name in files:
            path = Path(root, name)
            skipped = is_hidden(path, folder) or is_companion(path) or name.lower().endswith("_overlay.png")
            if _is_image_name(path) and not skipped:
                found.append(path)
    return sorted(found)


def read_labels_csv(
    path: Path, column: str = "melanoma", column_option: bool = True, id_column: str | None = None
) -> dict[str, int]:
    """Read ``image_id,melanoma`` rows into a dict; other columns are ignored. ``column`` reads another 0/1 label
    (``data.label_column`` / ``--label-column``: ISIC 2020's ``target``, ISIC 2019's ``MEL``; or ISIC 2017's
    ``seborrheic_keratosis``); labels written as ``1.0`` / ``0.0`` count as 1 / 0. The image column may be named
    as any ISIC release names it (``ID_COLUMNS``: ``image_id``, ``image_name``, ``isic_id``, ``image``), or be the
    one ``id_column`` names (``--id-column``: a clinic's ``filename``).

    As spreadsheets save them: a UTF-8 byte-order mark before the header is skipped, column names are matched
    without regard to spaces around them or to case, a header separated by semicolons (a European locale's CSV)
    or tabs (tab-delimited text) is read with that separator, empty rows are skipped, and an ``image_id`` given as
    a file name (``ISIC_0000000.jpg``) counts by its stem. An image listed twice must have the same label both times.

    ``column_option``: whether the user can name another label column (a folder of their own); the ISIC layout's
    reader cannot, so its error does not suggest the option.

    Raises:
        DataError: when the file is missing, lacks a column, a label is not 0/1, or an image has two labels.
    """
    if path.is_dir():
        raise DataError(f"labels CSV {path} is a folder; pass the CSV file itself (e.g. {path / 'labels.csv'})")
    if not path.is_file():
        raise DataError(f"labels CSV {path} does not exist")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError(
            f"labels CSV {path} is an image, not a labels CSV: pass a CSV with a header such as image_id,melanoma"
        )
    try:
        return _read_labels(path, column, column_option=column_option, id_column=id_column)
    except UnicodeDecodeError as error:
        raise DataError(
            f"labels CSV {path} is not UTF-8 text ({error.reason} at byte {error.start}): save it as 'CSV UTF-8' "
            "(Excel: File > Save As > CSV UTF-8)"
        ) from error


def read_group_column(path: Path, column: str) -> dict[str, str]:
    """``image_id -> group`` from the labels CSV's ``column`` (a patient or lesion id, any text); every row needs one.

    Raises:
        DataError: when the column is missing or a row leaves it empty.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = _spreadsheet_reader(handle)
        columns, wanted = reader.fieldnames or [], column.strip().lower()
        id_column = _id_column(columns, path)
        if wanted not in columns:
            raise DataError(
                f"labels CSV {path} has no column {column!r} (data.group_column); it has {', '.join(columns)}: name "
                "the column that holds each image's patient or lesion id, or drop data.group_column"
            )
        groups: dict[str, str] = {}
        for line, row in _filled_rows(reader):
            group = (row[wanted] or "").strip()
            if not group:
                raise DataError(
                    f"labels CSV {path}, line {line}: no {column} for image {row[id_column]!r}; every image needs "
                    "its patient or lesion id (an image alone can have an id of its own)"
                )
            groups[_image_stem((row[id_column] or "").strip())] = group
    return groups


def read_optional_labels(path: Path | None, column: str, id_column: str | None = None) -> dict[str, int] | None:
    """A secondary 0/1 label column read leniently: None when there is no CSV or it has no such column, and an image
    whose cell is blank or not 0/1 (or that is listed twice with two values) is left out of the dict instead of
    stopping the read. Its training option (``model.keratosis_aux``) then names the images without one; with the
    option off, the column stays unused, as every other extra column."""
    if path is None or not path.is_file():
        return None
    try:
        return _read_labels(path, column, strict=False, id_column=id_column)
    except (DataError, UnicodeDecodeError):  # no such column, or a file read_labels_csv reports on its own
        return None


def _spreadsheet_reader(handle, id_names: tuple[str, ...] = ID_COLUMNS) -> csv.DictReader:
    """A DictReader of a CSV as spreadsheets save it: opened with ``utf-8-sig`` (a byte-order mark is skipped),
    semicolon-separated when a European locale wrote it (tab-separated when saved as tab-delimited text), column
    names lower-cased and stripped. ``id_names``: the image columns whose presence tells the separator."""
    header = handle.readline()
    handle.seek(0)  # the utf-8-sig decoder skips a byte-order mark again
    # A spreadsheet set to a European locale saves "image_id;melanoma", and "Text (Tab delimited)" with tabs: read
    # either as it was meant.
    # The separator whose split of the header names an image column wins (a semicolon file may have a comma inside
    # a column name); failing that, a semicolon or tab in a header without commas.
    naming = [d for d in (",", ";", "\t") if _present(id_names, _header_fields(header, d))]
    others = [d for d in (";", "\t") if d in header and "," not in header]
    delimiter = naming[0] if len(naming) == 1 else others[0] if len(others) == 1 else ","
    reader = csv.DictReader(handle, delimiter=delimiter)
    # Column names as typed: "image_id, melanoma" (a space after the comma) or "Image_ID" name the same columns.
    reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or []]
    return reader


def _header_fields(header: str, delimiter: str) -> list[str]:
    return [name.strip().lower() for name in next(csv.reader([header], delimiter=delimiter), [])]


def _filled_rows(reader: csv.DictReader):
    """(line number, row) of the rows that hold anything: the empty rows spreadsheets leave (",,") are skipped."""
    for line, row in enumerate(reader, start=2):
        if any((value or "").strip() for value in row.values() if isinstance(value, str)):
            yield line, row


def id_columns(path: Path) -> list[str]:
    """The ``ID_COLUMNS`` a labels CSV's header has, in the order they are tried (the first is the one read)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return _present(ID_COLUMNS, _spreadsheet_reader(handle).fieldnames or [])


def _present(names: tuple[str, ...], columns: list[str]) -> list[str]:
    return [name for name in names if name in columns]


def _id_column(columns: list[str], path: Path, wanted: str | None = None) -> str:
    """The column naming the images: ``wanted`` (``--id-column``), else the first of ``ID_COLUMNS`` the CSV has; or a
    DataError listing its columns."""
    if wanted is not None:
        if wanted.strip().lower() in columns:
            return wanted.strip().lower()
        raise DataError(
            f"labels CSV {path} has no column {wanted!r} (--id-column); it has {', '.join(columns) or 'no header'}: "
            "name the column that holds each image's file name (with or without its suffix)"
        )
    found = _present(ID_COLUMNS, columns)
    if not found:
        raise DataError(
            f"labels CSV {path} has no image column ({' or '.join(ID_COLUMNS)}); it has "
            f"{', '.join(columns) or 'no header'}; expected a header such as 'image_id,melanoma', where image_id is "
            "each image's file name without its suffix, or name the column that holds them with --id-column NAME "
            "(evaluate, calibrate)"
        )
    return found[0]


def _read_labels(
    path: Path, column: str, strict: bool = True, column_option: bool = True, id_column: str | None = None
) -> dict[str, int]:
    column = column.strip().lower()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = _spreadsheet_reader(handle, (id_column.strip().lower(),) if id_column else ID_COLUMNS)
        columns = reader.fieldnames or []
        id_column = _id_column(columns, path, id_column)
        if column not in columns:
            others = [name for name in KNOWN_LABEL_COLUMNS if name in columns and name != column and column_option]
            hint = (
                f": to read the labels from {others[0]!r}, name it with --label-column {others[0]} (evaluate, "
                f"calibrate) or data.label_column={others[0]} (train)"
                if others
                else f"; expected a header '{id_column},{column}' with {column} 0 or 1"
                + (
                    ", or name the column that holds the 0/1 label with --label-column NAME (evaluate, calibrate) or "
                    "data.label_column=NAME (train)"
                    if column_option
                    else ""
                )
            )
            raise DataError(
                f"labels CSV {path} has no column {column!r}; it has {', '.join(columns) or 'no header'}{hint}"
            )
        labels: dict[str, int] = {}
        conflicting: set[str] = set()
        for line, row in _filled_rows(reader):
            raw = (row[column] or "").strip()
            try:
                value = float(raw)
            except ValueError:
                value = -1.0
            image_id = _image_stem((row[id_column] or "").strip())
            if not strict and (value not in (0.0, 1.0) or image_id in conflicting):
                continue
            if not raw:
                raise DataError(
                    f"labels CSV {path}, line {line}: image {image_id!r} has no {column} label; give it 0 or 1, or "
                    "remove both its row and the image"
                )
            if value not in (0.0, 1.0):
                raise DataError(f"labels CSV {path}, line {line}: {column} label {raw!r} is not 0 or 1")
            if labels.get(image_id, int(value)) != int(value):
                if not strict:
                    conflicting.add(image_id)
                    del labels[image_id]
                    continue
                raise DataError(
                    f"labels CSV {path}, line {line}: image {image_id!r} is listed again with another label "
                    f"({int(value)} here, {labels[image_id]} before); keep one row per image"
                )
            labels[image_id] = int(value)
    if strict and not labels:
        raise DataError(f"labels CSV {path} has a header but no rows; add a row '<image_id>,<0 or 1>' per image")
    return labels


def _image_stem(image_id: str) -> str:
    """``ISIC_0000000.jpg`` -> ``ISIC_0000000``; an id without an image suffix is returned as it is."""
    stem, dot, suffix = image_id.rpartition(".")
    return stem if dot and stem and f".{suffix.lower()}" in IMAGE_SUFFIXES else image_id


def mask_path_for(masks_dir: Path, image_id: str, suffix: str = MASK_SUFFIX) -> Path:
    """Where the mask of ``image_id`` lives: ``<masks_dir>/<image_id>_segmentation.png`` (another ``suffix``: the
    name a user's masks end in, ``data.mask_suffix`` / ``--mask-suffix``)."""
    return masks_dir / f"{image_id}{suffix}"


def is_extension_only(suffix: str) -> bool:
    """A mask suffix that is only a file extension (``.png``): masks named as their images, told apart by folder."""
    return suffix.startswith(".") and suffix.count(".") == 1


def check_mask_suffix(suffix: str) -> str:
    """``suffix`` if it ends in an image file extension (``_mask.png``, ``.png``, ``_lesion.bmp``), else a DataError."""
    if not suffix or Path(f"x{suffix}").suffix.lower() not in IMAGE_SUFFIXES or "/" in suffix or "\\" in suffix:
        raise DataError(
            f"mask suffix {suffix!r} (--mask-suffix, data.mask_suffix) is not the end of a mask's file name: give what "
            f"follows the image's stem, extension included (ISIC: {MASK_SUFFIX}; others: _mask.png, or .png for "
            "masks named as their image)"
        )
    return suffix


def read_mask(path: Path | str) -> np.ndarray:
    """A lesion mask file as a bool array (True = lesion), at the file's size.

    The official ISIC 2017 masks hold {0, 255}, and a pixel is lesion when its gray value is above 127, as in the
    challenge's scoring. Masks from other tools are often stored otherwise, and read by the same rule they would
    come out empty; so, on the gray values (palette and colour masks are converted to gray first):

    - a transparency that varies (a lesion painted on a transparent layer): the opaque pixels (alpha above 127)
      are lesion, whatever colour they were painted in;
    - values only in {0, 1} (a label map saved as is): 1 is lesion;
    - exactly two values (e.g. a palette mask with a coloured lesion on black): the brighter one is lesion;
    - no value above 127 (a label map with more classes, or a {0, 1} mask saved as JPEG, whose values spread to
      0-3): any non-zero value is lesion;
    - anything else (a {0, 255} mask resized with interpolation, or one value only): above 127 is lesion.

    Raises:
        DataError: when the file cannot be read as an image.
    """
    try:
        with Image.open(path) as image:
            alpha = _varying_alpha(image)
            if alpha is not None:
                return alpha > 127
            mode = image.mode
            if mode == "P" or mode.startswith(("RGB", "LA", "CMYK")):
                image = image.convert("RGB")
            gray = np.asarray(image.convert("L"))
    except (OSError, ValueError) as error:
        raise DataError(f"mask {path} cannot be read as an image ({error}); replace it with a PNG mask") from error
    values = np.unique(gray)
    if values.max(initial=0) <= 1:
        return gray == 1
    if values.size == 2:
        return gray == values[1]
    if values.max() <= 127:
        return gray > 0
    return gray > 127


def _varying_alpha(image: Image.Image) -> np.ndarray | None:
    """The image's alpha channel when it has one that is not the same everywhere, else None."""
    if image.mode not in ("RGBA", "LA", "PA") and not (image.mode == "P" and "transparency" in image.info):
        return None
    alpha = np.asarray(image.convert("RGBA").getchannel("A"))
    return alpha if alpha.min() != alpha.max() else None
