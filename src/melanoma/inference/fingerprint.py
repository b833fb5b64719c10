"""Content fingerprints: find copies of a network's training images, whatever their file names.

``melanoma evaluate`` says when the images it scores trained the network or chose its epoch and threshold (a score
on them is not held out). By file name alone it misses the commonest way such images come back: public collections
that re-publish ISIC images renamed, resized or re-encoded, and ISIC itself: its 2017 challenge holds 29 pairs of
ids that show one lesion in one view (the same photograph, a re-publication of it with its colours processed, or a
second shot moments apart), 3 of them a validation image and a training image (``python benchmarks/duplicates.py``
lists them).

A fingerprint is 256 bits: the image made grey, reduced to 32x32 pixels, histogram-equalised (so brightness,
contrast, colour and gamma changes move it little), and the signs of its lowest 16x16 DCT coefficients against
their median (a perceptual hash, as in pHash). Two images whose fingerprints differ in at most ``COPY_DISTANCE``
bits are taken for copies. ``benchmarks/duplicates.py`` measured the limit on the 2750 ISIC 2017 images: copies of
the validation images re-encoded, resized, brightened or cropped, and the originals of six of them at full size,
against the nearest pairs of different lesions, 60 bits apart (report ``models/eval/duplicates.json``; model card,
"Copies of training images"). Mirrored or rotated copies are not found, nor some re-publications whose colours
were processed heavily.

numpy and Pillow only: it runs at serve time.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "COPY_DISTANCE",
    "FINGERPRINT_BITS",
    "FINGERPRINT_METHOD",
    "decode_fingerprints",
    "distances",
    "encode_fingerprints",
    "fingerprint",
    "fingerprint_files",
    "nearest",
    "stored_fingerprints",
]

#: The side of the grey thumbnail the DCT is taken of, and of the block of its lowest frequencies kept.
THUMBNAIL_SIDE = 32
KEPT_SIDE = 16
FINGERPRINT_BITS = KEPT_SIDE * KEPT_SIDE
#: Fingerprints at most this many bits apart are taken for copies of one image (see the module doc).
COPY_DISTANCE = 56
#: Named in configs beside stored fingerprints: a later change of method must not compare against them.
FINGERPRINT_METHOD = "equalised-grey-32-dct-16x16-v1"
#: Files are fingerprinted as decoded with at least this many pixels on the shorter side (JPEG draft mode).
DECODE_MIN_SIDE = 256

_BIT_COUNTS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.int32)


@functools.cache
def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)
    return np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))


def fingerprint(image: np.ndarray | Image.Image) -> np.ndarray:
    """The 256-bit fingerprint of an image (HxWx3 uint8 RGB array or a Pillow image) as 32 bytes (uint8)."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    grey = picture.convert("L").resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX)
    pixels = np.asarray(ImageOps.equalize(grey), dtype=np.float64)
    dct = _dct_matrix(THUMBNAIL_SIDE)
    low = (dct @ pixels @ dct.T)[:KEPT_SIDE, :KEPT_SIDE].ravel()
    return np.packbits(low > np.median(low[1:]))


def fingerprint_files(paths: Sequence[str | Path], workers: int = 4) -> list[np.ndarray]:
    """The fingerprints of image files, in order, decoded as ``melanoma evaluate`` decodes them (EXIF orientation
    applied, large JPEGs at a reduced scale), a few at a time."""
    from melanoma.inference.image_io import load_image

    def one(path: str | Path) -> np.ndarray:
        return fingerprint(load_image(path, min_side_for_draft=DECODE_MIN_SIDE))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, paths))


def encode_fingerprints(fingerprints: Sequence[np.ndarray]) -> str:
    """Fingerprints as one base64 string (43 characters an image), in the order given, for a JSON config."""
    return base64.b64encode(np.asarray(fingerprints, dtype=np.uint8).tobytes()).decode("ascii")


def decode_fingerprints(text: str) -> np.ndarray:
    """The (n, 32) uint8 array that ``encode_fingerprints`` wrote."""
    raw = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
    if raw.size % (FINGERPRINT_BITS // 8):
        raise ValueError(f"stored fingerprints hold {raw.size} bytes, not a multiple of {FINGERPRINT_BITS // 8}")
    return raw.reshape(-1, FINGERPRINT_BITS // 8)


def distances(query: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Bits differing between one fingerprint and each row of ``table`` (n, 32)."""
    return _BIT_COUNTS[np.bitwise_xor(table, query[None, :])].sum(axis=1)


def nearest(query: np.ndarray, table: np.ndarray) -> tuple[int, int]:
    """The row of ``table`` nearest to ``query`` and its distance in bits; (-1, FINGERPRINT_BITS + 1) when empty."""
    if not len(table):
        return -1, FINGERPRINT_BITS + 1
    found = distances(query, table)
    row = int(np.argmin(found))
    return row, int(found[row])


def stored_fingerprints(config: dict[str, Any]) -> dict[str, tuple[list[str], np.ndarray]] | None:
    """The fingerprints a model config keeps of its training and validation images, with their ids, per part
    (``train``, ``validation``); None when it keeps none, keeps them by another method, or they do not match its
    image lists."""
    data = (config.get("training") or {}).get("data") or {}
    stored, ids = data.get("image_fingerprints"), data.get("image_ids")
    if not isinstance(stored, dict) or not isinstance(ids, dict) or stored.get("method") != FINGERPRINT_METHOD:
        return None
    try:
        tables = {
            part: (list(ids.get(part) or []), decode_fingerprints(stored.get(part) or ""))
            for part in ("train", "validation")
        }
    except (ValueError, TypeError):  # damaged (binascii.Error is a ValueError): compare by name only, serve anyway
        return None
    if any(len(names) != len(table) for names, table in tables.values()):
        return None
    return tables
