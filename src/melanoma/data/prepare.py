"""Build the project's ISIC 2017 layout from the official challenge archives, downloading them when missing.

Output layout (the one :func:`melanoma.data.isic.read_isic2017` reads)::

    images/{train,val,test}/ISIC_*.jpg                       size x size RGB, squashed (no crop, bicubic), JPEG q75
    masks/{train,val}/ISIC_*_segmentation.png                 same resize (bilinear, then >127), values {0,255}
    labels/ISIC-2017_{Training,Validation}_Part3_GroundTruth.csv
    metadata/ISIC-2017_{Training,Validation}_Data_metadata.csv

The test set's masks and labels are withheld, as in the challenge, so their archives are not needed.
"""

from __future__ import annotations

import http.client
import io
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from melanoma.data.samples import IMAGE_SUFFIXES, MASK_SUFFIX, DataError, read_labels_csv

OFFICIAL_BASE_URL = "https://isic-challenge-data.s3.amazonaws.com/2017/"
# The preparation of the data in ../shared, which the shipped models were trained on: Pillow's bicubic squash and
# JPEG quality 75 reproduce its 256 px files from the original photos to within 0.2 grey level on average (measured
# 0.03-0.09), where bilinear at quality 95 missed by 1.5-3 (tests/test_data_prepare.py checks it on the 6 originals).
IMAGE_FILTER = Image.Resampling.BICUBIC
JPEG_QUALITY = 75
MASK_THRESHOLD = 127
_CHUNK_BYTES = 1 << 20
_TIMEOUT_SECONDS = 60
_SKIPPED_SUFFIXES = ("_superpixels.png",)
STAGING_NAME = ".prepare-partial"


@dataclass(frozen=True)
class _SplitArchives:
    """The official archives of one split; None where the split's ground truth is withheld."""

    split: str
    prefix: str
    with_ground_truth: bool

    @property
    def images_zip(self) -> str:
        return f"{self.prefix}_Data.zip"

    @property
    def masks_zip(self) -> str | None:
        return f"{self.prefix}_Part1_GroundTruth.zip" if self.with_ground_truth else None

    @property
    def labels_csv(self) -> str | None:
        return f"{self.prefix}_Part3_GroundTruth.csv" if self.with_ground_truth else None

    @property
    def metadata_csv(self) -> str | None:
        return f"{self.prefix}_Data_metadata.csv" if self.with_ground_truth else None

    def archive_names(self) -> list[str]:
        return [name for name in (self.images_zip, self.masks_zip, self.labels_csv) if name is not None]


SPLIT_ARCHIVES = (
    _SplitArchives("train", "ISIC-2017_Training", with_ground_truth=True),
    _SplitArchives("val", "ISIC-2017_Validation", with_ground_truth=True),
    _SplitArchives("test", "ISIC-2017_Test_v2", with_ground_truth=False),
)


def required_archives() -> list[str]:
    """File names of the official archives that :func:`prepare_isic2017` reads."""
    return [name for split in SPLIT_ARCHIVES for name in split.archive_names()]


def prepare_isic2017(
    archives_dir: Path,
    out_dir: Path,
    download: bool = True,
    size: int = 256,
    progress: bool = True,
    base_url: str = OFFICIAL_BASE_URL,
) -> dict[str, int]:
    """Produce the project's ISIC 2017 layout in ``out_dir`` from the official challenge archives.

    Args:
        archives_dir: folder holding the official archives (``ISIC-2017_Training_Data.zip``, ...); missing ones
            are downloaded there when ``download`` is True, resuming a partial ``<name>.part`` file.
        out_dir: where to write ``images/``, ``masks/``, ``labels/`` and ``metadata/``. A split's folders are
            replaced whole once the split is converted (``out_dir/.prepare-partial`` holds it until then); folders
            holding files the archives do not have (another run's, other data) are refused, not mixed in, and so
            is a non-empty folder that holds no ISIC layout yet (the archives folder, if inside, aside).
        download: fetch missing archives from ``base_url``; when False a missing archive is an error.
        size: side of the square output images and masks (resized without keeping the aspect ratio).
        progress: show tqdm progress bars.
        base_url: where the archives are served (the official ISIC bucket by default).

    Returns:
        Number of images written per split, e.g. ``{"train": 2000, "val": 150, "test": 600}``.

    Raises:
        DataError: when an archive is missing (and not downloaded), a download fails, an archive's contents
            are not what the challenge published (no images, masks where images belong, an image without its mask
            or its label row, another split's file), or ``out_dir`` holds files the archives do not have, or
            other files and no layout.
    """
    archives_dir, out_dir = Path(archives_dir).expanduser(), Path(out_dir).expanduser()
    if size < 1:
        raise DataError(f"size must be a positive number of pixels, got {size}")
    archives = _ensure_archives(archives_dir, download, base_url, progress)
    # Every archive is opened and matched against the others before anything is written: a wrong or damaged one
    # is named now, not after the training images were converted.
    image_ids = {split.split: _check_split_archives(split, archives) for split in SPLIT_ARCHIVES}
    _check_out_dir(out_dir, archives_dir)
    for split in SPLIT_ARCHIVES:
        _check_no_foreign_files(split, image_ids[split.split], out_dir)
    # Each split is written into a staging folder and moved into place once whole: after an interrupt or an error
    # the layout holds complete splits only (an earlier run's, or none), never a split without its masks or labels.
    staging = out_dir / STAGING_NAME
    shutil.rmtree(staging, ignore_errors=True)
    counts = {}
    for split in SPLIT_ARCHIVES:
        _prepare_split(split, archives, image_ids[split.split], staging, size, progress)
        counts[split.split] = _move_into_place(split, staging, out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    return counts


def download_file(url: str, destination: Path, progress: bool = True, timeout: float = _TIMEOUT_SECONDS) -> Path:
    """Download ``url`` to ``destination`` through ``<destination>.part``, resuming a partial download.

    A byte-range request continues an existing ``.part`` file; a server that ignores the range gets the whole
    file again. The ``.part`` file is renamed to ``destination`` only once complete.

    Raises:
        DataError: when the server cannot be reached, answers with an error, or sends fewer bytes than announced.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            _receive(response, part, offset, destination.name, progress)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not offset:
            raise DataError(
                f"downloading {url} failed: HTTP {error.code} {error.reason}; check the URL, or download the file "
                f"yourself into {destination.parent}"
            ) from error
        if not _range_is_complete(error, offset):
            # The .part file is longer than the file on the server: it is not a prefix of it, so start over.
            part.unlink()
            return download_file(url, destination, progress, timeout)
        # Otherwise the .part file already holds every byte: a previous run stopped just before renaming it.
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise DataError(
            f"downloading {url} failed ({error}); run again to resume, or download the file yourself into "
            f"{destination.parent}"
        ) from error
    part.replace(destination)
    return destination


def _ensure_archives(archives_dir: Path, download: bool, base_url: str, progress: bool) -> dict[str, Path]:
    paths = {name: archives_dir / name for name in required_archives()}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing and not download:
        raise DataError(
            f"missing ISIC 2017 archive(s) in {archives_dir}: {', '.join(missing)}; download them from "
            f"{OFFICIAL_BASE_URL} into that folder, or run the command without --no-download"
        )
    for name in missing:
        download_file(base_url.rstrip("/") + "/" + name, paths[name], progress=progress)
    return paths


def _receive(response: http.client.HTTPResponse, part: Path, offset: int, name: str, progress: bool) -> None:
    """Write the response body to ``part``: appended after ``offset`` for a 206, from scratch for a 200."""
    if offset and response.status != 206:
        offset = 0  # the server ignored the range and sends the whole file
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length is not None else None
    received = offset
    with (
        part.open("ab" if offset else "wb") as handle,
        tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=name, disable=not progress) as bar,
    ):
        while chunk := response.read(_CHUNK_BYTES):
            handle.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if total is not None and received != total:
        raise DataError(f"download of {name} stopped at {received} of {total} bytes; run again to resume")


def _range_is_complete(error: urllib.error.HTTPError, offset: int) -> bool:
    """Whether a 416 answer says the file is exactly ``offset`` bytes long (``Content-Range: bytes */<size>``)."""
    content_range = error.headers.get("Content-Range", "") if error.headers else ""
    return content_range.strip() == f"bytes */{offset}"


def _check_split_archives(split: _SplitArchives, archives: dict[str, Path]) -> set[str]:
    """The image ids of ``split``'s images archive, once its masks archive and labels CSV are found to match it
    (zip directories and the CSV only: nothing is decoded)."""
    images_zip = archives[split.images_zip]
    with _open_zip(images_zip) as zip_file:
        ids = sorted({_image_id(m) for m in zip_file.namelist() if not _is_junk(m) and _image_id(m) is not None})
    if not ids:
        raise DataError(f"{images_zip} holds no images; delete it and download it again")
    masks = [i for i in ids if i.endswith(MASK_SUFFIX.removesuffix(".png"))]
    if masks:
        raise DataError(
            f"{images_zip} holds lesion masks (first: {masks[0]}), not the dermoscopic images: it is probably a "
            f"*_Part1_GroundTruth.zip saved under this name; download {split.images_zip} again"
        )
    if not split.with_ground_truth:
        return set(ids)
    masks_zip = archives[split.masks_zip]
    with _open_zip(masks_zip) as zip_file:
        names = [Path(m).name for m in zip_file.namelist() if not _is_junk(m)]
    mask_ids = {name.removesuffix(MASK_SUFFIX) for name in names if name.endswith(MASK_SUFFIX)}
    _check_matching(set(ids), mask_ids, images_zip, masks_zip, "mask")
    labels_csv = archives[split.labels_csv]
    labels = read_labels_csv(labels_csv, column_option=False)  # names the file when it is not a labels CSV
    _check_matching(set(ids), set(labels), images_zip, labels_csv, "label row")
    return set(ids)


def _check_matching(image_ids: set[str], other_ids: set[str], images_zip: Path, other: Path, what: str) -> None:
    """Every image of ``images_zip`` has its ``what`` in ``other``; no id in common means one of the two files
    belongs to another split (or is another file saved under the name)."""
    if not image_ids & other_ids:
        first = min(other_ids) if other_ids else "none"
        raise DataError(
            f"{images_zip} and {other} share no image id (first image: {min(image_ids)}; first in {other.name}: "
            f"{first}): one of them is another split's file or another file saved under its name; check both and "
            "download the wrong one again"
        )
    missing = sorted(image_ids - other_ids)
    if missing:
        raise DataError(
            f"{other} has no {what} for {len(missing)} image(s) of {images_zip.name} (first: {missing[0]}); delete "
            f"{other.name} and download it again"
        )


def _split_folders(split: _SplitArchives, root: Path) -> list[Path]:
    return [root / "images" / split.split] + ([root / "masks" / split.split] if split.with_ground_truth else [])


#: The folders a preparation writes into ``out_dir``; one of them present marks an ISIC layout (maybe another's).
LAYOUT_FOLDERS = ("images", "masks", "labels", "metadata")


def _check_out_dir(out_dir: Path, archives_dir: Path) -> None:
    """Refuse a non-empty ``out_dir`` that is not an ISIC layout (a home or project folder given by mistake): the
    layout's four folders would be mixed into it. The archives folder, when it lies inside, does not count."""
    if not out_dir.is_dir() or any((out_dir / name).is_dir() for name in LAYOUT_FOLDERS):
        return
    archives = archives_dir.resolve()
    others = sorted(
        entry.name for entry in out_dir.iterdir() if not entry.name.startswith(".") and entry.resolve() != archives
    )
    if others:
        raise DataError(
            f"--out {out_dir} holds {len(others)} other file(s) or folder(s) (first: {others[0]}) and no ISIC layout "
            f"({', '.join(LAYOUT_FOLDERS)}): the preparation would write its folders among them; choose a new or "
            "empty folder, e.g. --out data/isic2017"
        )


def _check_no_foreign_files(split: _SplitArchives, image_ids: set[str], out_dir: Path) -> None:
    """Refuse an output folder holding files this split's archives would not write: they would stay mixed in."""
    for folder in _split_folders(split, out_dir):
        if not folder.is_dir():
            continue
        foreign = sorted(
            entry.name
            for entry in folder.iterdir()
            if not entry.name.startswith(".")  # .DS_Store and the like go with the folder
            and entry.name.removesuffix(".jpg").removesuffix(MASK_SUFFIX) not in image_ids
        )
        if foreign:
            raise DataError(
                f"{folder} holds {len(foreign)} file(s) the archives do not have (first: {foreign[0]}): an earlier "
                "preparation from other archives, or other data; the preparation replaces this folder, so move "
                "what you want to keep, delete the folder, or choose another --out"
            )


def _move_into_place(split: _SplitArchives, staging: Path, out_dir: Path) -> int:
    """Replace ``split``'s folders and files in ``out_dir`` with the staged ones; returns its number of images."""
    for source in _split_folders(split, staging):
        target = out_dir / source.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            shutil.rmtree(target)  # only this split's own files: _check_no_foreign_files ran first
        os.replace(source, target)
    for kind in ("labels", "metadata"):
        for source in sorted((staging / kind).glob(f"{split.prefix}_*")) if (staging / kind).is_dir() else []:
            (out_dir / kind).mkdir(parents=True, exist_ok=True)
            os.replace(source, out_dir / kind / source.name)
    return sum(1 for _ in (out_dir / "images" / split.split).iterdir())


def _prepare_split(
    split: _SplitArchives, archives: dict[str, Path], image_ids: set[str], out_dir: Path, size: int, progress: bool
) -> None:
    """Convert ``split``'s images (and masks of those images, labels, metadata) into ``out_dir``."""
    images_dir = out_dir / "images" / split.split
    _convert_zip_members(
        archives[split.images_zip],
        images_dir,
        lambda member: _image_id(member) is not None,
        lambda data, name: _write_image(data, images_dir / f"{_image_id(name)}.jpg", size),
        f"{split.split} images",
        progress,
    )
    if split.with_ground_truth:
        _copy_metadata(archives[split.images_zip], split.metadata_csv, out_dir / "metadata")
        masks_dir = out_dir / "masks" / split.split
        _convert_zip_members(
            archives[split.masks_zip],
            masks_dir,
            lambda member: Path(member).name.removesuffix(MASK_SUFFIX) in image_ids,
            lambda data, name: _write_mask(data, masks_dir / Path(name).name, size),
            f"{split.split} masks",
            progress,
        )
        (out_dir / "labels").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(archives[split.labels_csv], out_dir / "labels" / split.labels_csv)


def _convert_zip_members(
    archive: Path,
    out_folder: Path,
    wanted: Callable[[str], bool],
    convert: Callable[[bytes, str], str],
    description: str,
    progress: bool,
) -> set[str]:
    """Convert each wanted member of ``archive`` in a thread pool; returns the ids ``convert`` reports."""
    out_folder.mkdir(parents=True, exist_ok=True)
    workers = min(8, os.cpu_count() or 1)
    done: set[str] = set()
    with _open_zip(archive) as zip_file, ThreadPoolExecutor(max_workers=workers) as pool:
        members = [m for m in zip_file.namelist() if not _is_junk(m) and wanted(m)]
        pending: set[Future[str]] = set()
        with tqdm(total=len(members), desc=description, unit="file", disable=not progress) as bar:
            for member, data in _read_members(zip_file, members):
                # Bound the number of decoded archives in memory: original images reach 6000x4000 pixels.
                if len(pending) >= 2 * workers:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    done.update(_collect(finished, bar))
                pending.add(pool.submit(_convert_member, convert, data, member, archive))
            done.update(_collect(pending, bar))
    return done


def _open_zip(archive: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(
            f"{archive} is not a readable zip archive ({error}); delete it and download it again"
        ) from error


def _read_members(zip_file: zipfile.ZipFile, members: list[str]) -> Iterator[tuple[str, bytes]]:
    for member in members:
        try:
            yield member, zip_file.read(member)
        except (zipfile.BadZipFile, OSError) as error:
            raise DataError(
                f"{zip_file.filename}: member {member} is corrupt ({error}); delete the archive and download it again"
            ) from error


def _convert_member(convert: Callable[[bytes, str], str], data: bytes, member: str, archive: Path) -> str:
    try:
        return convert(data, member)
    except _WriteError as error:  # a full disk or an unwritable --out: the archive is fine
        raise error.__cause__ from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(
            f"{archive}: {member} cannot be decoded ({error}); delete the archive and download it again"
        ) from error


def _collect(futures: set[Future[str]], bar: tqdm) -> list[str]:
    results = [future.result() for future in futures]
    bar.update(len(results))
    return results


def _is_junk(member: str) -> bool:
    """Folders and macOS resource forks that some zip tools add."""
    name = Path(member).name
    return member.endswith("/") or member.startswith("__MACOSX/") or name.startswith(".")


def _image_id(member: str) -> str | None:
    """The image id of a dermoscopic image member, or None for superpixel maps, CSVs and other files."""
    path = Path(member)
    if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.endswith(_SKIPPED_SUFFIXES):
        return None
    return path.stem


def _write_image(data: bytes, path: Path, size: int) -> str:
    # Image.MAX_IMAGE_PIXELS stays at its default: the largest ISIC 2017 images (about 24 Mpx) are below it.
    with Image.open(io.BytesIO(data)) as image:
        resized = image.convert("RGB").resize((size, size), IMAGE_FILTER)
    _save(resized, path, quality=JPEG_QUALITY)
    return path.stem


def _write_mask(data: bytes, path: Path, size: int) -> str:
    with Image.open(io.BytesIO(data)) as mask:
        resized = mask.convert("L").resize((size, size), Image.Resampling.BILINEAR)
    binary = np.where(np.asarray(resized) > MASK_THRESHOLD, 255, 0).astype(np.uint8)
    _save(Image.fromarray(binary), path)
    return path.name.removesuffix(MASK_SUFFIX)


class _WriteError(Exception):
    """Writing a prepared file failed: the disk, not the archive (see ``_convert_member``)."""


def _save(image: Image.Image, path: Path, **options: Any) -> None:
    try:
        image.save(path, **options)
    except OSError as error:
        raise _WriteError(error) from error


def _copy_metadata(images_zip: Path, metadata_name: str | None, metadata_dir: Path) -> None:
    """Copy the ``*_metadata.csv`` shipped inside the images archive (absent in some archive versions)."""
    with _open_zip(images_zip) as zip_file:
        members = [m for m in zip_file.namelist() if Path(m).name.endswith("_metadata.csv") and not _is_junk(m)]
        if metadata_name is None:
            return
        if not members:  # absent in some archive versions; benchmarks/classification_metadata.py needs it
            print(
                f"warning: {images_zip} holds no *_metadata.csv (age, sex): metadata/{metadata_name} is not written",
                file=sys.stderr,
            )
            return
        metadata_dir.mkdir(parents=True, exist_ok=True)
        (metadata_dir / metadata_name).write_bytes(zip_file.read(members[0]))
