"""One image loader for the CLI, the app and the benchmarks: any reasonable image file → HxWx3 uint8 RGB.

User files are hostile by default: empty uploads, text files named ``.jpg``, truncated JPEGs, decompression
bombs, 16-bit scans, CMYK exports, phone photos with an EXIF rotation. Every one of them either loads as
an RGB array or raises ``ImageLoadError`` with a message that says what is wrong and what to do; the limits
on file size and pixel count are checked before anything is decoded.
"""

from __future__ import annotations

import functools
import io
import math
import re
import struct
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

__all__ = [
    "SUPPORTED_FORMATS",
    "ImageLoadError",
    "load_image",
    "exif_transposed",
    "displayed_size",
    "load_image_with_size",
    "to_rgb_array",
    "as_srgb",
]

ImageSource = str | Path | bytes | bytearray | memoryview | BinaryIO

#: Pillow format names accepted; anything else (PDF, EPS, PSD, ...) is refused before decoding.
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF")

#: Images smaller than this on either side are refused: the ISIC 2017 validation images shrunk to 12 px and below
#: were ranked no better than chance by the shipped classifier, at 16 px and above the classifier still ranked and
#: the segmenter still outlined better than a fixed guess (``min_assessed_side`` of
#: ``models/eval/small_images.json``, ``python benchmarks/small_images.py``). Sides between this and
#: ``checks.MIN_RELIABLE_SIDE`` are assessed with the ``small_image`` caution.
MIN_SIDE = 16

_SUPPORTED_TEXT = "JPEG, PNG, BMP, TIFF, WEBP or GIF"
_JPEG_FORMATS = ("JPEG", "MPO")  # the JPEG opener reports many camera photos as MPO (multi-picture JPEG)
_EXIF_ORIENTATION_TAG = 0x0112
_HIGH_BIT_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
# Pillow's decoders signal corrupt input through many exception types; a user's file must never end in a
# traceback, so all of them become ImageLoadError (MemoryError: absurd sizes declared inside a container).
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    MemoryError,
    NotImplementedError,
)


class ImageLoadError(ValueError):
    """The input is not an image this package can use; the message says why and what to do."""


def load_image(
    source: ImageSource,
    *,
    min_side_for_draft: int | None = None,
    max_pixels: int = 80_000_000,
    max_bytes: int = 50 * 1024 * 1024,
    name: str | None = None,
) -> np.ndarray:
    """Load an image file as an HxWx3 uint8 RGB array.

    See ``load_image_with_size`` for the arguments. With ``min_side_for_draft`` the array can be smaller
    than the original image; use ``load_image_with_size`` when you need the original size.

    Returns:
        HxWx3 uint8 RGB array, EXIF orientation applied.

    Raises:
        ImageLoadError: the input is missing, empty, too large, not a supported image, or corrupt.
    """
    array, _ = load_image_with_size(
        source, min_side_for_draft=min_side_for_draft, max_pixels=max_pixels, max_bytes=max_bytes, name=name
    )
    return array


def load_image_with_size(
    source: ImageSource,
    *,
    min_side_for_draft: int | None = None,
    max_pixels: int = 80_000_000,
    max_bytes: int = 50 * 1024 * 1024,
    name: str | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Load an image file as an HxWx3 uint8 RGB array and report its original size.

    Supports JPEG, PNG, BMP, TIFF, WEBP and GIF (first frame). EXIF orientation is applied. Transparent
    images are composited on white; grayscale, palette and CMYK images are converted to RGB; 16- and 32-bit
    images are scaled to 8 bits by their actual value range (min → 0, max → 255), so a 12-bit scan stored in
    16 bits is not crushed to black. Nothing stays open after the call returns.

    Args:
        source: a path (``str`` or ``Path``), the file's bytes, or a binary file object (read from its
            current position, e.g. a Streamlit ``UploadedFile``; the caller keeps ownership of it).
        min_side_for_draft: if given, JPEGs are decoded at a reduced scale (1/2, 1/4 or 1/8, Pillow draft
            mode) while keeping at least this many pixels on the shorter side; much faster for large photos
            that the model downsizes anyway. Other formats are decoded at full size.
        max_pixels: refuse images with more pixels than this (checked from the header, before decoding).
        max_bytes: refuse files larger than this (checked before reading the whole file).
        name: how to call the input in error messages; defaults to the file name when there is one.

    Returns:
        (array, (width, height)): the HxWx3 uint8 RGB array, and the original image size after EXIF
        orientation, which is the array's size unless draft mode reduced it; resize masks back to it.

    Raises:
        ImageLoadError: the input is missing, empty, too large, not a supported image, or corrupt.
    """
    label = _describe(source, name)
    data = _read_bytes(source, label, max_bytes)
    with _open_image(data, label, max_pixels) as image:
        # Both limits are invariant under rotation, so the stored size can be checked before any decoding
        # (reading the EXIF of a PNG can decode the whole image, so orientation comes after the checks).
        stored_size = image.size
        _check_size(stored_size, label, max_pixels)
        if min_side_for_draft is not None and image.format in _JPEG_FORMATS:
            _apply_draft(image, max(int(min_side_for_draft), MIN_SIDE))
        _load_pixels(image, label)
        oriented = exif_transposed(image)
        array = to_rgb_array(oriented, label)
        rotated = oriented.size != image.size
    width, height = stored_size
    return array, ((height, width) if rotated else (width, height))


def _describe(source: ImageSource, name: str | None) -> str:
    if name:
        return repr(str(name))
    if isinstance(source, str | Path):
        return repr(Path(source).name)
    file_name = getattr(source, "name", None)
    if isinstance(file_name, str) and file_name:
        return repr(Path(file_name).name)
    return "the image"


def _read_bytes(source: ImageSource, label: str, max_bytes: int) -> bytes:
    """The whole file in memory, refusing anything above ``max_bytes`` before reading it all."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | Path):
        data = _read_path(Path(source), label, max_bytes)
    elif hasattr(source, "read"):
        try:
            data = source.read(max_bytes + 1)
        except (OSError, ValueError) as error:
            raise ImageLoadError(f"cannot read {label}: {error}") from error
        if not isinstance(data, bytes | bytearray):
            raise ImageLoadError(f"cannot read {label}: the file object returned text; open the file in binary mode")
        data = bytes(data)
    else:
        raise ImageLoadError(
            f"cannot read an image from a {type(source).__name__}; pass a path, bytes or a binary file object"
        )
    if len(data) > max_bytes:
        raise ImageLoadError(
            f"{label} is larger than the {_format_bytes(max_bytes)} limit; downscale or recompress it (JPEG) first"
        )
    if not data:
        raise ImageLoadError(f"{label} is empty (0 bytes); choose a {_SUPPORTED_TEXT} image")
    return data


def _read_path(path: Path, label: str, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ImageLoadError(f"{label} is a folder, not an image file; pass the path of one image")
        if size > max_bytes:
            raise ImageLoadError(
                f"{label} is {_format_bytes(size)}, above the {_format_bytes(max_bytes)} limit; "
                "downscale or recompress it (JPEG) first"
            )
        with path.open("rb") as handle:
            return handle.read(max_bytes + 1)
    except FileNotFoundError as error:
        raise ImageLoadError(f"{label} does not exist ({path}); check the path") from error
    except PermissionError as error:
        raise ImageLoadError(f"{label} cannot be read: permission denied ({path})") from error
    except OSError as error:
        raise ImageLoadError(f"{label} cannot be read: {error.strerror or error}") from error


def _open_image(data: bytes, label: str, max_pixels: int) -> Image.Image:
    """Parse the header only; Pillow decodes pixels lazily, on the first access."""
    try:
        # Our own pixel limit (checked next, from the header) is the authority, so Pillow's warning is noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except Image.DecompressionBombError as error:
        raise ImageLoadError(_bomb_message(label, str(error), max_pixels)) from error
    except UnidentifiedImageError as error:
        raise ImageLoadError(
            f"{label} is not a recognised image (expected {_SUPPORTED_TEXT}); "
            "check that it is an image file and not renamed from another type"
        ) from error
    except _DECODE_ERRORS as error:
        raise ImageLoadError(f"{label} has a corrupt header ({error}); re-export it as JPEG or PNG") from error


def _bomb_message(label: str, pillow_message: str, max_pixels: int) -> str:
    # Pillow refuses images above twice its own limit before we can read the size; its message has the count.
    match = re.search(r"\((\d+) pixels\)", pillow_message)
    if match is None:
        return f"{label} is far above the {_format_megapixels(max_pixels)} limit; downscale it"
    pixels = int(match.group(1))
    return f"{label} is {_format_megapixels(pixels)}, above the {_format_megapixels(max_pixels)} limit; downscale it"


def _check_size(size: tuple[int, int], label: str, max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageLoadError(
            f"{label} is {width}x{height} = {_format_megapixels(width * height)}, "
            f"above the {_format_megapixels(max_pixels)} limit; downscale it"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageLoadError(
            f"{label} is only {width}x{height} pixels; the models need at least {MIN_SIDE} pixels per side (images "
            "this small were ranked no better than chance in validation) and a few hundred to work as validated: "
            "use a larger image"
        )


def _apply_draft(image: Image.Image, min_side: int) -> None:
    """Ask the JPEG decoder for the smallest 1/2^k scale that keeps ``min_side`` pixels on the shorter side."""
    width, height = image.size
    if min(width, height) <= min_side:
        return
    scale = min_side / min(width, height)
    # draft() picks the largest reduction whose result is at least the requested size on both sides.
    image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))


def _load_pixels(image: Image.Image, label: str) -> None:
    try:
        image.load()
    except Image.DecompressionBombError as error:
        raise ImageLoadError(f"{label} declares an oversized frame; downscale it") from error
    except _DECODE_ERRORS as error:
        raise ImageLoadError(
            f"{label} is truncated or corrupt ({error}); re-download or re-export it as JPEG or PNG"
        ) from error


def displayed_size(path: Path | str) -> tuple[tuple[int, int], int] | None:
    """``((width, height) as a photo viewer shows it, EXIF orientation 1-8)`` from the file's header, without
    decoding its pixels (the orientation of JPEG and TIFF files; 1 for other formats); None when the file cannot be
    opened as an image (the caller's decoding pass reports it)."""
    try:
        with warnings.catch_warnings():  # a huge photo: the decoding pass applies the pixel limit and says so
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=SUPPORTED_FORMATS) as image:
                width, height = image.size
                orientation = 1
                if image.format in ("JPEG", "TIFF"):  # in the header: no decoding (a PNG's may follow its pixels)
                    orientation = int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1) or 1)
    except (Image.DecompressionBombError, *_DECODE_ERRORS):
        return None
    orientation = orientation if 1 <= orientation <= 8 else 1
    return ((height, width) if orientation >= 5 else (width, height)), orientation


def exif_transposed(image: Image.Image) -> Image.Image:
    """The image as displayed; call after ``load()`` (reading a PNG's EXIF would otherwise decode it unchecked)."""
    # Orientation is metadata: a damaged EXIF block must not make a good photo unreadable.
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        return image if orientation == 1 else ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        return image


def to_rgb_array(image: Image.Image, label: str) -> np.ndarray:
    """Convert any supported Pillow mode to an HxWx3 uint8 RGB array (in sRGB when it embeds a colour profile)."""
    image = as_srgb(image)
    mode = image.mode
    if mode == "RGB":
        return np.array(image, dtype=np.uint8)
    if mode in _HIGH_BIT_DEPTH_MODES:
        gray = _stretch_to_uint8(np.asarray(image))
        return np.repeat(gray[:, :, None], 3, axis=2)
    try:
        if mode in ("RGBA", "LA", "PA", "RGBa", "La") or image.has_transparency_data:
            return _composite_on_white(np.asarray(image.convert("RGBA")))
        return np.array(image.convert("RGB"), dtype=np.uint8)
    except ValueError as error:
        raise ImageLoadError(
            f"{label} uses the colour mode {mode!r}, which cannot be converted to RGB; re-save it as 8-bit RGB"
        ) from error


#: Modes whose embedded colour profile LittleCMS converts here (16-bit and float images keep their values).
_ICC_MODES = ("RGB", "RGBA", "CMYK", "L")


def as_srgb(image: Image.Image) -> Image.Image:
    """The image's pixels converted from its embedded ICC profile to sRGB: the colours a colour-managed viewer
    shows, in the colour space the models learned (none of the 2750 ISIC 2017 images embeds a profile, so their
    values are taken as sRGB). A phone's Display P3 or a camera's Adobe RGB photo would otherwise reach the models
    with its colours shifted. Returned as it is without a profile, with an sRGB one, in a mode not converted here,
    or when the profile is damaged or does not fit the mode: a profile is metadata and must not make a photo
    unreadable."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in _ICC_MODES:
        return image
    transform = _srgb_transform(bytes(icc), image.mode)
    if transform is None:
        return image
    try:
        return ImageCms.applyTransform(image, transform)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image


@functools.lru_cache(maxsize=16)
def _srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The transform from the profile to sRGB (built once per profile: building costs more than applying), or None
    when there is nothing to convert or the profile cannot be used."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(profile).lower().replace(" ", ""):
            return None  # the commonest camera profile: nothing to convert
        output = "RGBA" if mode == "RGBA" else "RGB"
        return ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), mode, output)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def _stretch_to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale a high-bit-depth single-channel image to 0..255 by its actual range (not by clipping).

    Works in one float32 copy (5 bytes a pixel at most), so a small file of many pixels cannot take gigabytes.
    """
    scaled = values.astype(np.float32)  # a copy: the caller's array is left as it was
    finite = None if np.issubdtype(values.dtype, np.integer) else np.isfinite(scaled)
    if finite is not None and not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    if finite is not None and not finite.all():  # NaN and -inf become the lowest level, +inf the highest
        positive_infinity = np.isposinf(scaled)
        scaled[~finite] = np.nan
        low, high = float(np.nanmin(scaled)), float(np.nanmax(scaled))
        scaled[~finite] = low
        scaled[positive_infinity] = high
    else:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        # A flat image has no range to stretch; keep its level relative to the 16-bit scale.
        level = np.clip(low / 257.0, 0, 255)
        return np.full(values.shape, round(level), dtype=np.uint8)
    scaled -= np.float32(low)
    scaled *= np.float32(255.0 / (high - low))
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[:, :, 3:4].astype(np.uint16)
    rgb = rgba[:, :, :3].astype(np.uint16)
    blended = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return blended.astype(np.uint8)


def _format_megapixels(pixels: int) -> str:
    megapixels = pixels / 1e6
    return f"{megapixels:.0f} Mpx" if megapixels >= 10 else f"{megapixels:.2g} Mpx"


def _format_bytes(size: int) -> str:
    mebibytes = size / (1024 * 1024)
    return f"{mebibytes:.1f} MiB" if size >= 1024 * 1024 else f"{size} bytes"
