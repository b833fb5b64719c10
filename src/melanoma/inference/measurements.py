"""Lesion measurements in the spirit of the dermoscopic ABCD rule, from a lesion mask and the RGB image.

These are descriptive numbers for display next to the model's prediction (asymmetry, border, colours,
diameter); they are not a validated ABCD score and the model does not use them.

- A, ``asymmetry``: how far the lesion is from mirror symmetry about its two principal axes.
- B, ``border_irregularity``: compactness, perimeter² / (4π·area); 1 for a disc.
- C, ``colour_variegation``: how many of the six dermoscopic ABCD colours cover at least 5 % of the lesion.
- D, ``equivalent_diameter_px``: the diameter of a disc of the same area, in pixels (the image has no scale).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from melanoma.inference.postprocess import as_bool_mask

__all__ = [
    "COLOUR_PRESENCE_FRACTION",
    "DERMOSCOPIC_COLOURS",
    "EMPTY_MEASUREMENTS",
    "LesionMeasurements",
    "crofton_perimeter",
    "measure_lesion",
    "srgb_to_lab",
]

#: Prototype sRGB values of the six ABCD-rule colours from Kasmi & Mokrani, "Classification of malignant
#: melanoma and benign skin lesions: implementation of automatic ABCD rule", IET Image Processing 10(6), 2016
#: (doi:10.1049/iet-ipr.2015.0385). Lesion pixels are assigned to the nearest prototype in CIELab.
DERMOSCOPIC_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (197, 188, 217),
    "red": (118, 21, 17),
    "light brown": (163, 82, 16),
    "dark brown": (135, 44, 5),
    "blue-gray": (113, 108, 139),
    "black": (41, 31, 30),
}
#: A colour counts as present when at least this fraction of lesion pixels is nearest to it.
COLOUR_PRESENCE_FRACTION = 0.05

# Shape and colour statistics are computed on at most this many samples; enough for two decimals, and it
# keeps a 1024x768 mask at a few milliseconds.
_SHAPE_MAX_SIDE = 256
_COLOUR_MAX_PIXELS = 10_000


@dataclass(frozen=True)
class LesionMeasurements:
    """Lesion measurements from a binary mask; all zero when the mask is empty.

    Attributes:
        area_pixels: number of lesion pixels.
        area_fraction: lesion pixels / image pixels, 0..1.
        equivalent_diameter_px: diameter of a disc with the lesion's area, 2·sqrt(area/π), in pixels.
        asymmetry: 0 for a mirror-symmetric lesion, up to 1. For each principal axis (eigenvectors of the
            mask's second moments, through its centroid) the lesion is mirrored about the axis and the
            non-overlapping area is divided by the area covered by the lesion or its mirror image,
            |L Δ L'| / |L ∪ L'|; the value is the mean over the two axes (``asymmetry_axes``). A half-disc
            scores ~0.16 (symmetric about one axis), a lesion asymmetric about both axes scores more.
            Pixel discretisation adds up to ~0.05 on lesions of radius ≥ 20 px (~0.1 below that).
        asymmetry_axes: the per-axis values, major axis first; the ABCD "A" score counts the axes that are
            clearly asymmetric.
        border_irregularity: compactness perimeter² / (4π·area): 1 for a disc, larger for elongated or
            ragged borders (an ellipse with axes 1:2.75 is 1.42, a disc with a ±15 % wavy border of 24 lobes
            about 6.5). The perimeter is the Cauchy-Crofton estimate from crossings in four directions (see
            ``crofton_perimeter``): within 1 % on digitised discs of radius ≥ 10 px, but 5 % short on
            axis-aligned straight edges (a square reads 1.14 instead of 1.27); tiny lesions can read below 1.
        colour_variegation: number of the six dermoscopic colours (``DERMOSCOPIC_COLOURS``: white, red,
            light brown, dark brown, blue-gray, black) to which at least 5 % of the lesion pixels are
            nearest in CIELab; 1..6, 0 for an empty mask; None for an image without colour (``without_colour``).
        colours_present: the names of those colours, in ``DERMOSCOPIC_COLOURS`` order.
        colour_spread: standard deviation of the lesion pixel colours in CIELab, sqrt(trace(covariance)),
            i.e. the root-mean-square colour difference (ΔE*ab) from the lesion's mean colour; None without colour.
    """

    area_pixels: int
    area_fraction: float
    equivalent_diameter_px: float
    asymmetry: float
    asymmetry_axes: tuple[float, float]
    border_irregularity: float
    colour_variegation: int | None
    colours_present: tuple[str, ...]
    colour_spread: float | None

    def rescaled(self, scale_x: float, scale_y: float) -> LesionMeasurements:
        """The same lesion in the pixels of the image resized by ``scale_x`` x ``scale_y`` (e.g. from the smaller
        copy it was measured on to the original photo): the area and the diameter change, the shape and colour
        numbers and the area fraction do not."""
        area = self.area_pixels * scale_x * scale_y
        diameter = self.equivalent_diameter_px * math.sqrt(scale_x * scale_y)
        return replace(self, area_pixels=round(area), equivalent_diameter_px=diameter)

    def without_colour(self) -> LesionMeasurements:
        """The same lesion with its colour numbers left out: a greyscale image's grey pixels lie nearest to "white"
        and "blue-gray" in CIELab, which would read as dermoscopic colours it does not show."""
        return replace(self, colour_variegation=None, colours_present=(), colour_spread=None)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict (tuples become lists)."""
        values = asdict(self)
        values["asymmetry_axes"] = list(self.asymmetry_axes)
        values["colours_present"] = list(self.colours_present)
        return values


EMPTY_MEASUREMENTS = LesionMeasurements(
    area_pixels=0,
    area_fraction=0.0,
    equivalent_diameter_px=0.0,
    asymmetry=0.0,
    asymmetry_axes=(0.0, 0.0),
    border_irregularity=0.0,
    colour_variegation=0,
    colours_present=(),
    colour_spread=0.0,
)


def measure_lesion(mask: np.ndarray, image: np.ndarray) -> LesionMeasurements:
    """Measure a lesion from its binary mask and the RGB image (see ``LesionMeasurements`` for definitions).

    Args:
        mask: HxW lesion mask (bool, 0/1, 0/255 or a probability map cut at 0.5), at the image's resolution.
        image: HxWx3 uint8 RGB image.

    Returns:
        The measurements; ``EMPTY_MEASUREMENTS`` (all zero) when the mask is empty.

    Raises:
        ValueError: if the image is not HxWx3 uint8 or the mask has a different height and width.
    """
    mask = as_bool_mask(mask)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"expected an HxWx3 uint8 RGB image, got {image.dtype} of shape {image.shape}; "
            "load it with melanoma.inference.image_io.load_image"
        )
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}; "
            "resize the mask to the image first (melanoma.inference.postprocess.resize_mask)"
        )
    area = int(np.count_nonzero(mask))
    if area == 0:
        return EMPTY_MEASUREMENTS
    axes = _asymmetry_axes(mask)
    colour_names, spread = _colour_statistics(image, mask)
    return LesionMeasurements(
        area_pixels=area,
        area_fraction=area / mask.size,
        equivalent_diameter_px=2.0 * math.sqrt(area / math.pi),
        asymmetry=float(np.mean(axes)),
        asymmetry_axes=axes,
        border_irregularity=float(crofton_perimeter(mask) ** 2 / (4.0 * math.pi * area)),
        colour_variegation=len(colour_names),
        colours_present=colour_names,
        colour_spread=spread,
    )


def crofton_perimeter(mask: np.ndarray) -> float:
    """Perimeter of a binary shape by the Cauchy-Crofton formula, counting boundary crossings in 4 directions.

    A line crosses a convex shape twice; integrating the number of crossings over all lines and directions
    gives the perimeter. Counting crossings along pixel rows, columns and both diagonals (lines 1/√2 apart)
    discretises that integral: P = π/8 · (N₀ + N₉₀ + (N₄₅ + N₁₃₅)/√2). Unlike counting boundary pixel
    edges (which overestimates a disc's perimeter by 4/π), it is unbiased for smooth shapes.

    Args:
        mask: HxW bool mask; pixels outside the image count as background.

    Returns:
        The perimeter in pixel units.
    """
    padded = np.pad(as_bool_mask(mask), 1)
    horizontal = np.count_nonzero(padded[:, 1:] != padded[:, :-1])
    vertical = np.count_nonzero(padded[1:, :] != padded[:-1, :])
    diagonal = np.count_nonzero(padded[1:, 1:] != padded[:-1, :-1])
    anti_diagonal = np.count_nonzero(padded[1:, :-1] != padded[:-1, 1:])
    return math.pi / 8.0 * (horizontal + vertical + (diagonal + anti_diagonal) / math.sqrt(2.0))


def _asymmetry_axes(mask: np.ndarray) -> tuple[float, float]:
    """|L Δ L'| / |L ∪ L'| for the mirror image L' about each principal axis, major axis first."""
    lesion = _crop_to_lesion(mask)
    # Sample the lesion (not the image) on a grid of at most _SHAPE_MAX_SIDE per side, so small and large
    # lesions get the same relative resolution.
    stride = max(1, math.ceil(max(lesion.shape) / _SHAPE_MAX_SIDE))
    lesion = lesion[::stride, ::stride]
    rows, cols = np.nonzero(lesion)
    if len(rows) < 2:
        return (0.0, 0.0)
    points = np.stack([cols, rows], axis=1).astype(np.float64)
    centroid = points.mean(axis=0)
    offsets = points - centroid
    _, eigenvectors = np.linalg.eigh(offsets.T @ offsets)
    values = []
    for axis in eigenvectors.T[::-1]:  # eigh sorts ascending: the major axis is the last one
        along = offsets @ axis
        mirrored = centroid + 2.0 * along[:, None] * axis[None, :] - offsets
        uncovered = 1.0 - _fraction_inside(lesion, mirrored)  # |L \ L'| / |L|
        # Mirroring preserves area, so |L Δ L'| = 2|L \ L'| and |L ∪ L'| = |L| + |L \ L'|.
        values.append(2.0 * uncovered / (1.0 + uncovered))
    return (float(values[0]), float(values[1]))


def _crop_to_lesion(mask: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _fraction_inside(mask: np.ndarray, points: np.ndarray) -> float:
    """Fraction of (x, y) points whose nearest pixel lies inside the mask."""
    cols = np.rint(points[:, 0]).astype(np.int64)
    rows = np.rint(points[:, 1]).astype(np.int64)
    height, width = mask.shape
    in_image = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    inside = np.zeros(len(points), dtype=bool)
    inside[in_image] = mask[rows[in_image], cols[in_image]]
    return float(inside.mean())


def _colour_statistics(image: np.ndarray, mask: np.ndarray) -> tuple[tuple[str, ...], float]:
    """Dermoscopic colours present and the CIELab colour spread, from a fixed subsample of lesion pixels."""
    # A regular grid subsample is deterministic, covers the whole lesion, and avoids gathering every pixel.
    stride = max(1, math.floor(math.sqrt(np.count_nonzero(mask) / _COLOUR_MAX_PIXELS)))
    pixels = image[::stride, ::stride][mask[::stride, ::stride]]
    if len(pixels) == 0:  # a thin lesion can fall between grid lines
        pixels = image[mask]
    lab = srgb_to_lab(pixels)
    distances = ((lab[:, None, :] - _PROTOTYPES_LAB[None, :, :]) ** 2).sum(axis=2)
    shares = np.bincount(distances.argmin(axis=1), minlength=len(_PROTOTYPES_LAB)) / len(lab)
    names = tuple(
        name for name, share in zip(DERMOSCOPIC_COLOURS, shares, strict=True) if share >= COLOUR_PRESENCE_FRACTION
    )
    spread = float(np.sqrt(lab.var(axis=0).sum()))
    return names, spread


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert uint8 sRGB colours (..., 3) to CIELab (D65 white), float64 (..., 3).

    Args:
        rgb: uint8 array whose last axis holds R, G, B.

    Returns:
        L* in 0..100, a* and b* roughly in -128..127.
    """
    linear = _SRGB_TO_LINEAR[np.asarray(rgb, dtype=np.uint8)]
    xyz = linear @ _LINEAR_RGB_TO_XYZ.T / _D65_WHITE
    epsilon, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > epsilon, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    lightness = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([lightness, a, b], axis=-1)


def _srgb_to_linear_table() -> np.ndarray:
    values = np.arange(256) / 255.0
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


_SRGB_TO_LINEAR = _srgb_to_linear_table()
_LINEAR_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_PROTOTYPES_LAB = srgb_to_lab(np.array(list(DERMOSCOPIC_COLOURS.values()), dtype=np.uint8))
