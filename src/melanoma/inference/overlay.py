"""Overlays for the app and the CLI: lesion fill, lesion contour and a heatmap on the RGB image (numpy + Pillow)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from melanoma import DISCLAIMER
from melanoma.inference.postprocess import as_bool_mask, resize_mask

__all__ = [
    "contour_thickness",
    "mask_contour",
    "render_overlay",
    "to_png_bytes",
    "viridis_colormap",
    "with_footer",
]

Colour = tuple[int, int, int]

# One contour pixel per this many pixels of the image's longer side: 1 px at 256, 3 px at 1024, 10 px at 4000.
_PIXELS_PER_CONTOUR_PIXEL = 400

#: The lesion's outline and tint: cyan, far from every skin and pigment hue, for red-green colour-blind eyes too
#: (green, the former colour, looked like the yellow-brown of skin to them); the outline has a dark inner edge, so it
#: stands out on pale skin, where a light line alone has little contrast.
LESION_COLOUR: Colour = (0, 255, 255)
EDGE_COLOUR: Colour = (0, 0, 0)


def render_overlay(
    image: np.ndarray,
    mask: np.ndarray | None,
    heatmap: np.ndarray | None = None,
    *,
    show_contour: bool = True,
    show_fill: bool = True,
    show_heatmap: bool = False,
    opacity: float = 0.35,
    contour_color: Colour = LESION_COLOUR,
    fill_color: Colour = LESION_COLOUR,
    edge_color: Colour | None = EDGE_COLOUR,
) -> np.ndarray:
    """Draw the lesion mask (fill and contour) and optionally a heatmap over an RGB image.

    Layers are drawn in this order: heatmap, fill, contour. The input image is not modified.

    Args:
        image: HxWx3 uint8 RGB image.
        mask: lesion mask (bool, 0/1, 0/255 or a probability map cut at 0.5); any size, it is resized to the
            image. ``None`` draws no fill or contour.
        heatmap: float map in [0, 1] (e.g. a class-activation map or the lesion probability); any size, it
            is resized to the image with bilinear interpolation. Drawn only when ``show_heatmap`` is True.
        show_contour: draw the lesion boundary, as an inner band whose thickness scales with the image size.
        show_fill: tint the lesion with ``fill_color``.
        show_heatmap: blend a viridis-coloured ``heatmap`` over the whole image (perceptually uniform and readable
            by colour-blind eyes: brightness alone orders it, dark purple = 0 to bright yellow = 1).
        opacity: weight of the fill and heatmap colours, 0 (invisible) .. 1 (opaque).
        contour_color: RGB colour of the contour.
        fill_color: RGB colour of the fill.
        edge_color: RGB colour of a band as thick as the contour just inside it (None: no band).

    Returns:
        HxWx3 uint8 RGB image of the same size as ``image``.

    Raises:
        ValueError: if the image is not HxWx3 uint8, the opacity is outside [0, 1], or the heatmap is
            requested but missing or not 2-D.
    """
    image = _check_image(image)
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be within [0, 1], got {opacity}")
    height, width = image.shape[:2]
    # Pillow's blend/composite/paste run in C on uint8 data: several times faster than float numpy on large photos.
    canvas = Image.fromarray(image)
    if show_heatmap:
        if heatmap is None:
            raise ValueError("show_heatmap=True needs a heatmap; pass one or set show_heatmap=False")
        levels = _to_uint8(np.clip(resize_mask(heatmap, (width, height)), 0.0, 1.0) * 255.0)
        canvas = Image.blend(canvas, Image.fromarray(_VIRIDIS_TABLE[levels]), opacity)
    if mask is not None and (show_fill or show_contour):
        lesion = _mask_at_size(mask, (width, height))
        if show_fill:
            tinted = Image.blend(canvas, Image.new("RGB", (width, height), tuple(fill_color)), opacity)
            canvas = Image.composite(tinted, canvas, Image.fromarray(lesion))
        if show_contour:
            thickness = contour_thickness((width, height))
            contour = mask_contour(lesion, thickness)
            if edge_color is not None:
                edge = mask_contour(lesion, 2 * thickness) & ~contour
                canvas.paste(tuple(edge_color), (0, 0, width, height), Image.fromarray(edge))
            canvas.paste(tuple(contour_color), (0, 0, width, height), Image.fromarray(contour))
    return np.array(canvas, dtype=np.uint8)


def contour_thickness(size: tuple[int, int]) -> int:
    """Contour thickness in pixels for an image of (width, height): 1 px per 400 px of the longer side, min 1."""
    return max(1, round(max(size) / _PIXELS_PER_CONTOUR_PIXEL))


def mask_contour(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """The inner boundary band of a mask: lesion pixels within ``thickness`` pixels of the background.

    The image border is not a lesion boundary, so a lesion cut by the border gets no contour along it.

    Args:
        mask: HxW bool mask.
        thickness: band width in pixels (Chebyshev distance, i.e. a square structuring element).

    Returns:
        HxW bool mask of the contour band.
    """
    mask = as_bool_mask(mask)
    return mask & ~_erode(mask, thickness)


#: Polynomial fit of matplotlib's viridis (numpy only at serving time): within 5 of 255 levels of matplotlib's table
#: (tests/test_overlay.py checks it against matplotlib).
_VIRIDIS_COEFFICIENTS = np.array(
    [
        [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
        [0.1050930431085774, 1.404613529898575, 1.384590162594685],
        [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
        [-4.634230498983486, -5.799100973351585, -19.33244095627987],
        [6.228269936347081, 14.17993336680509, 56.69055260068105],
        [4.776384997670288, -13.74514537774601, -65.35303263337234],
        [-5.435455855934631, 4.645852612178535, 26.3124352495832],
    ]
)


def viridis_colormap(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to viridis RGB colours (dark purple → blue → green → bright yellow), float32 in [0, 1].

    Viridis is perceptually uniform and its brightness rises steadily, so colour-blind eyes and greyscale prints
    still read the order; jet, the former map, turns its peak into a dark olive for red-green colour blindness.

    Args:
        values: array of any shape; values outside [0, 1] and NaN are clipped (NaN counts as 0).

    Returns:
        float32 array of shape ``values.shape + (3,)``.
    """
    values = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0), 0.0, 1.0)[..., None]
    colours = np.zeros(values.shape[:-1] + (3,))
    for coefficients in _VIRIDIS_COEFFICIENTS[::-1]:  # Horner's rule
        colours = colours * values + coefficients
    return np.clip(colours, 0.0, 1.0).astype(np.float32)


def with_footer(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` (HxWx3 uint8) with a dark strip below it that carries ``text``, so a saved overlay passed on
    still says what it is (e.g. the disclaimer). Text that does not fit the width is shrunk, down to 8 px high, and
    then wrapped; the image itself is unchanged."""
    image = _check_image(image)
    width = image.shape[1]
    size = max(8, min(18, width // 40))
    font = _fitting_font(text, width - 8, size)
    lines = _wrap(text, font, width - 8)
    line_height = int(font.size * 1.3)
    strip = Image.new("RGB", (width, line_height * len(lines) + 6), (32, 32, 32))
    draw = ImageDraw.Draw(strip)
    for index, line in enumerate(lines):
        draw.text((4, 3 + index * line_height), line, fill=(240, 240, 240), font=font)
    return np.concatenate([image, np.asarray(strip)], axis=0)


def _fitting_font(text: str, width: int, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    font = ImageFont.load_default(size=size)
    while size > 8 and font.getlength(text) > width:
        size -= 1
        font = ImageFont.load_default(size=size)
    return font


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def to_png_bytes(array: np.ndarray, *, compress_level: int = 3, description: str | None = DISCLAIMER) -> bytes:
    """Encode an HxW or HxWx3/4 uint8 array as PNG bytes (for downloads and ``st.image``).

    Args:
        array: uint8 image array.
        compress_level: zlib level 0..9; 3 is several times faster than Pillow's default 6 on large
            overlays for a few percent larger files.
        description: stored in the PNG as its ``Description`` text (image viewers and ``exiftool`` show it);
            the disclaimer by default, None for none.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: if the array is not uint8 with 2 dimensions or 3 or 4 channels.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError(
            f"expected a uint8 HxW, HxWx3 or HxWx4 array, got {array.dtype} of shape {array.shape}; "
            "convert with np.clip(x, 0, 255).astype(np.uint8)"
        )
    info = PngImagePlugin.PngInfo()
    if description:
        info.add_itxt("Description", description)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=compress_level, pnginfo=info)
    return buffer.getvalue()


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"expected an HxWx3 uint8 RGB image, got {image.dtype} of shape {image.shape}; "
            "load it with melanoma.inference.image_io.load_image"
        )
    return image


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


# 256 display levels of the colour map: a table lookup instead of per-pixel float arithmetic.
_VIRIDIS_TABLE = _to_uint8(viridis_colormap(np.linspace(0.0, 1.0, 256)) * 255.0)


def _mask_at_size(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    lesion = as_bool_mask(mask)
    if lesion.shape != (height, width):
        lesion = resize_mask(lesion, size) > 0.5
    return lesion


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion by a (2·radius+1)² square, separably with running sums; O(pixels) for any radius."""
    if radius < 1:
        return mask.copy()
    eroded = _erode_along(mask, radius, axis=0)
    return _erode_along(eroded, radius, axis=1)


def _erode_along(mask: np.ndarray, radius: int, axis: int) -> np.ndarray:
    window = 2 * radius + 1
    # Edge padding: pixels beyond the border repeat the border, so the border itself erodes nothing.
    pad_width = [(0, 0), (0, 0)]
    pad_width[axis] = (radius + 1, radius)
    counts = np.cumsum(np.pad(mask, pad_width, mode="edge"), axis=axis, dtype=np.int32)
    # counts[i + window] - counts[i] is the number of set pixels in the window centred on pixel i.
    length = mask.shape[axis]
    upper = np.take(counts, np.arange(window, window + length), axis=axis)
    lower = np.take(counts, np.arange(0, length), axis=axis)
    return (upper - lower) == window
