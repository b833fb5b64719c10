"""Model-input preparation shared by the Predictor and the export-time calibration (numpy + Pillow only).

Preprocessing travels with the model: input size, mean/std and resize mode come from the model's JSON config.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from PIL import Image

RESIZE_FILTERS = ("pil-bilinear", "linear")


def resize_rgb(
    image: np.ndarray,
    size: int,
    mode: str = "squash",
    resize_filter: str = "pil-bilinear",
    prepared_size: int | None = None,
) -> np.ndarray:
    """Resize an HxWx3 uint8 image to ``size`` x ``size`` the way the model's training did.

    ``squash`` ignores the aspect ratio, as the ISIC 2017 data in ``../shared`` was prepared (and so trained on).
    ``prepared_size``: the side of the prepared training images; any other image is first squashed to it with
    Pillow's (antialiased) bilinear filter, so that a 12-megapixel upload reaches the model through the same two
    steps as the training images. (The ISIC files were prepared with Pillow's bicubic filter and saved at JPEG
    quality 75; from the original photos, the bilinear squash lands closer to those files than bicubic without the
    JPEG step: tests/test_data_prepare.py.) ``resize_filter`` then takes it to ``size``:
    ``"linear"`` is bilinear interpolation without antialiasing, pixel centres aligned (OpenCV's INTER_LINEAR,
    which the training pipeline's albumentations Resize uses); ``"pil-bilinear"`` is Pillow's bilinear filter
    (models exported before the filter was recorded).
    """
    if mode != "squash":
        raise ValueError(f"unknown resize mode {mode!r}; this version supports 'squash'")
    if resize_filter not in RESIZE_FILTERS:
        raise ValueError(f"unknown resize filter {resize_filter!r}; valid: {', '.join(RESIZE_FILTERS)}")
    if prepared_size and image.shape[:2] != (prepared_size, prepared_size):
        image = _pil_bilinear(image, prepared_size)
    if image.shape[:2] == (size, size):
        return image
    return _pil_bilinear(image, size) if resize_filter == "pil-bilinear" else linear_resize(image, size)


def resize_for(image: np.ndarray, config: dict) -> np.ndarray:
    """``resize_rgb`` with the preprocessing recorded in a model's JSON config."""
    return resize_rgb(
        image,
        int(config["input_size"]),
        config["resize"],
        config.get("resize_filter", "pil-bilinear"),
        config.get("prepared_size"),
    )


def _pil_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


@functools.lru_cache(maxsize=64)
def _linear_axis(n_in: int, n_out: int) -> tuple[np.ndarray, ...]:
    # OpenCV's INTER_LINEAR: source coordinate (i + 0.5) * scale - 0.5, clamped to the first and last pixel,
    # weights in 11-bit fixed point.
    source = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    low = np.floor(source).astype(np.int64)
    fraction = source - low
    outside = (low < 0) | (low >= n_in - 1)
    fraction[outside] = 0.0
    low = np.clip(low, 0, n_in - 1)
    axis = (low, np.minimum(low + 1, n_in - 1), np.rint((1 - fraction) * 2048), np.rint(fraction * 2048))
    # (first, second) source index and (first, second) weight per output index
    arrays = (axis[0].astype(np.intp), axis[1].astype(np.intp), axis[2].astype(np.int32), axis[3].astype(np.int32))
    for array in arrays:
        array.flags.writeable = False  # cached: shared by every call
    return arrays


def linear_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Squash an HxWxC uint8 image to ``size`` x ``size`` by bilinear interpolation without antialiasing.

    Reproduces ``cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)`` (the training pipeline's
    resize) in integer arithmetic: 11-bit weights, the horizontal pass in 32-bit integers, then OpenCV's
    vectorised vertical pass (each term shifted down by 4, multiplied, shifted down by 16; the sum rounded down
    by 2 more bits). Bit-exact where OpenCV takes its vector path; where it takes its scalar path (the last few
    values of a row whose length is not a multiple of the vector width) it can differ by one grey level.
    Serving needs no OpenCV.
    """
    y0, y1, wy0, wy1 = _linear_axis(image.shape[0], size)
    x0, x1, wx0, wx1 = _linear_axis(image.shape[1], size)
    pixels = image.astype(np.int32)  # int32 holds every intermediate; in place from here on
    rows = np.take(pixels, x0, axis=1)
    rows *= wx0[None, :, None]
    right = np.take(pixels, x1, axis=1)
    right *= wx1[None, :, None]
    rows += right
    rows >>= 4
    top = np.take(rows, y0, axis=0)
    top *= wy0[:, None, None]
    top >>= 16
    bottom = np.take(rows, y1, axis=0)
    bottom *= wy1[:, None, None]
    bottom >>= 16
    top += bottom
    top += 2
    top >>= 2
    return np.clip(top, 0, 255, out=top).astype(np.uint8)


def to_input(images: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Stack same-size uint8 HxWx3 images into a normalised float32 NCHW batch."""
    batch = np.stack(images).astype(np.float32) * np.float32(1 / 255)
    batch -= np.asarray(mean, np.float32)
    batch /= np.asarray(std, np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


# Test-time flips on NCHW batches and on spatial outputs ([N, 1, H, W] maps, [N, h, w] activation maps):
# the last axis is width, the one before it height. Each flip is its own inverse.
#: The segmenter's test-time flip rule at export: auto keeps flips if they add calibrate.MIN_GAIN; off: never.
FLIP_MODES = ("auto", "off")
FLIPS = {
    "hflip": lambda array: array[..., ::-1],
    "vflip": lambda array: array[..., ::-1, :],
}


def run_with_flips(run, batch: np.ndarray, flips: Sequence[str]) -> list[np.ndarray]:
    """Outputs of ``run(batch)`` averaged over the batch and its ``flips`` (test-time augmentation).

    All views go through one ``run`` call (the batch axis is dynamic); spatial outputs (3 or more axes) are
    flipped back before averaging, per-image outputs are averaged as they are.
    """
    unknown = [f for f in flips if f not in FLIPS]
    if unknown:
        raise ValueError(f"unknown test-time flip(s) {unknown}; valid: {', '.join(FLIPS)}")
    if not flips:
        return run(batch)
    views = [batch, *(np.ascontiguousarray(FLIPS[f](batch)) for f in flips)]
    outputs = run(np.concatenate(views))
    count = len(batch)
    averaged = []
    for output in outputs:
        parts = [output[i * count : (i + 1) * count] for i in range(len(views))]
        restored = [
            parts[0],
            *(FLIPS[f](part) if output.ndim >= 3 else part for f, part in zip(flips, parts[1:], strict=True)),
        ]
        averaged.append(np.mean(restored, axis=0).astype(output.dtype))
    return averaged


# Lesion-centred crops for the classifier (``data.lesion_crop``): boxes live in fractions of the image's width and
# height, so a box found on a 256 px squashed training image and one found on an original-size upload cut out the
# same region; a box square in fractions is square after the model's squash resize, so the lesion keeps its shape.
MIN_CROP_SIDE = 0.25  # fraction of the image: a tiny (or spurious) detection still gets context around it
Box = tuple[float, float, float, float]  # (left, top, right, bottom), fractions of width / height
FULL_IMAGE: Box = (0.0, 0.0, 1.0, 1.0)


def lesion_box(mask: np.ndarray, margin: float, shift: tuple[float, float] = (0.0, 0.0)) -> Box:
    """The square crop box around a lesion mask, in fractions of the image (``FULL_IMAGE`` for an empty mask).

    Args:
        mask: HxW lesion mask (nonzero = lesion), at any size.
        margin: context added on every side, as a fraction of the lesion's larger extent (0.2 -> side 1.4x).
        shift: moves the box centre by these fractions of its side (x, y); training jitter.

    Returns:
        (left, top, right, bottom) with ``right - left == bottom - top`` in [MIN_CROP_SIDE, 1], inside [0, 1]:
        a box that would leave the image is moved back inside rather than shrunk.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return FULL_IMAGE
    height, width = mask.shape[:2]
    top, bottom = rows[0] / height, (rows[-1] + 1) / height
    left, right = cols[0] / width, (cols[-1] + 1) / width
    side = min(1.0, max(MIN_CROP_SIDE, max(right - left, bottom - top) * (1 + 2 * margin)))
    centre_x = (left + right) / 2 + shift[0] * side
    centre_y = (top + bottom) / 2 + shift[1] * side
    x0 = float(np.clip(centre_x - side / 2, 0.0, 1.0 - side))
    y0 = float(np.clip(centre_y - side / 2, 0.0, 1.0 - side))
    return (x0, y0, x0 + float(side), y0 + float(side))


def crop_box(image: np.ndarray, box: Box) -> np.ndarray:
    """The part of an HxW(xC) image inside ``box`` (fractions), at least one pixel each way."""
    height, width = image.shape[:2]
    x0, x1 = _pixel_span(box[0], box[2], width)
    y0, y1 = _pixel_span(box[1], box[3], height)
    return image[y0:y1, x0:x1]


def _pixel_span(start: float, end: float, size: int) -> tuple[int, int]:
    first = min(size - 1, max(0, round(start * size)))
    return first, max(first + 1, min(size, round(end * size)))


# A dermatoscope's dark frame, painted over before the classifier sees the image (the ``dark_frame`` check and
# ``benchmarks/vignettes.py``): the frame is the dark pixels connected to the image border; the field of view is the
# rest, fitted by the ellipse of its centroid and second moments (semi-axes twice its standard deviations: exact for
# a uniform ellipse, and a dark lesion touching the frame moves it little).
#: Pixels outside this share of the fitted ellipse are painted ...
FRAME_FILL_FROM = 0.95
#: ... with the per-channel median colour of the field's pixels in this ring of it (the skin at the field's edge).
FRAME_RING = (0.80, 0.95)


def fill_dark_frame(image: np.ndarray, dark_grey: float = 40.0) -> np.ndarray:
    """``image`` (HxWx3 uint8) with the dark frame around its round field of view painted over with the colour of
    the skin at the field's edge; the image itself when it has no such frame or no skin ring to take a colour from.

    ``dark_grey``: pixels darker than this grey level (0-255) can belong to the frame
    (``checks.DARK_CORNER_GREY``). numpy only; call it where ``checks.dark_corners`` fires.
    """
    from melanoma.inference.postprocess import fill_holes

    grey = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    field = fill_holes(grey >= dark_grey)  # all but the dark pixels connected to the border
    if field.all() or not field.any():
        return image
    rows, columns = np.nonzero(field)
    centre_y, centre_x = rows.mean(), columns.mean()
    semi_y, semi_x = max(2 * rows.std(), 1.0), max(2 * columns.std(), 1.0)
    yy, xx = np.ogrid[: image.shape[0], : image.shape[1]]
    radius = np.sqrt(((yy - centre_y) / semi_y) ** 2 + ((xx - centre_x) / semi_x) ** 2)  # 1 on the fitted ellipse
    ring = field & (radius >= FRAME_RING[0]) & (radius < FRAME_RING[1])
    if not ring.any():
        return image
    filled = image.copy()
    filled[radius >= FRAME_FILL_FROM] = np.median(image[ring], axis=0).round().astype(np.uint8)
    return filled
