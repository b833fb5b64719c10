"""Mask post-processing in numpy + Pillow: resizing, connected components, hole filling.

Used by the Predictor (probability map → clean lesion mask) and by the training-time threshold search, so
both see exactly the same post-processing. No scipy or OpenCV: components are labelled on run-length
encoded rows (fully vectorised), which keeps a 256x256 mask well under a millisecond or two.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = [
    "as_bool_mask",
    "clean_mask",
    "fill_holes",
    "label_components",
    "largest_component",
    "resize_mask",
]


def as_bool_mask(mask: np.ndarray) -> np.ndarray:
    """Return a 2-D boolean view of a mask given as bool, 0/1, 0/255 or a probability map.

    Args:
        mask: HxW array. Booleans are used as they are; numbers count as lesion above 0.5, so a uint8 0/255
            mask, a 0/1 mask and a [0, 1] probability map (at the default 0.5 threshold) all work.

    Returns:
        HxW bool array.

    Raises:
        ValueError: if the mask is not 2-D.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D HxW mask, got an array of shape {mask.shape}; pass a single-channel mask")
    if mask.dtype == bool:
        return mask
    return mask > 0.5


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a probability map or a binary mask with bilinear interpolation.

    Args:
        mask: HxW bool mask or float probability map.
        size: target (width, height), PIL order, e.g. the original image size from ``load_image_with_size``.

    Returns:
        float32 array of shape (height, width); threshold it (e.g. ``> 0.5``) to get a binary mask again.

    Raises:
        ValueError: if the mask is not 2-D or the size is not two positive integers.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D HxW mask, got an array of shape {mask.shape}")
    width, height = (int(value) for value in size)
    if width < 1 or height < 1:
        raise ValueError(f"size must be a positive (width, height), got {size}")
    values = np.ascontiguousarray(mask, dtype=np.float32)
    if values.shape == (height, width):
        return values.copy() if values is mask else values
    # Mode "F" keeps full float precision; Pillow's bilinear filter widens its support when shrinking,
    # so downscaling averages instead of aliasing.
    resized = Image.fromarray(values).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32).copy()


def label_components(mask: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Label the connected components of a binary mask.

    Labels are numbered 1..n in raster order of each component's first pixel, as ``scipy.ndimage.label`` does.

    Args:
        mask: HxW mask (see ``as_bool_mask`` for accepted encodings).
        connectivity: 8 (pixels touching by an edge or a corner are connected) or 4 (edges only).

    Returns:
        (labels, count): an int32 HxW label image with 0 for background, and the number of components.
    """
    mask = as_bool_mask(mask)
    runs = _Runs.from_mask(mask)
    roots = _run_roots(runs, connectivity)
    _, component_of_run = np.unique(roots, return_inverse=True)
    labels = runs.paint(mask.shape, component_of_run.astype(np.int64) + 1).astype(np.int32)
    return labels, int(component_of_run.max() + 1) if runs.count else 0


def largest_component(mask: np.ndarray, connectivity: int = 8) -> np.ndarray:
    """Keep only the largest connected component of a binary mask.

    Args:
        mask: HxW mask (see ``as_bool_mask``).
        connectivity: 8 or 4, see ``label_components``.

    Returns:
        HxW bool mask with the largest component (the first one in raster order on a tie); all False if the
        mask is empty.
    """
    mask = as_bool_mask(mask)
    runs = _Runs.from_mask(mask)
    if runs.count == 0:
        return np.zeros(mask.shape, dtype=bool)
    roots = _run_roots(runs, connectivity)
    areas = np.bincount(roots, weights=runs.lengths, minlength=runs.count)
    keep = roots == int(np.argmax(areas))
    return runs.paint(mask.shape, keep.astype(np.int64)).astype(bool)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of a binary mask: background regions that do not reach the image border.

    The background is followed with 4-connectivity, so a lesion outline closed only through diagonal steps
    still encloses its hole (the same result as ``scipy.ndimage.binary_fill_holes``).

    Args:
        mask: HxW mask (see ``as_bool_mask``).

    Returns:
        HxW bool mask with the holes set to True.
    """
    mask = as_bool_mask(mask)
    height, width = mask.shape
    background = _Runs.from_mask(~mask)
    if background.count == 0:
        return mask.copy()
    roots = _run_roots(background, connectivity=4)
    touches_border = (background.rows == 0) | (background.rows == height - 1)
    touches_border |= (background.starts == 0) | (background.ends == width)
    outside_roots = np.unique(roots[touches_border])
    is_hole = ~np.isin(roots, outside_roots)
    return mask | background.paint(mask.shape, is_hole.astype(np.int64)).astype(bool)


def clean_mask(mask: np.ndarray, *, keep_largest: bool = True, fill: bool = True) -> np.ndarray:
    """The standard lesion-mask clean-up: keep the largest component, then fill its holes.

    Args:
        mask: HxW mask or probability map (see ``as_bool_mask``; probabilities are cut at 0.5, threshold
            them yourself for another cut-off).
        keep_largest: drop every component but the largest (dermoscopic images show one lesion).
        fill: fill holes, e.g. regression areas that the segmenter marks as skin.

    Returns:
        HxW bool mask.
    """
    mask = as_bool_mask(mask)
    if keep_largest:
        mask = largest_component(mask)
    if fill:
        mask = fill_holes(mask)
    return mask


class _Runs:
    """Horizontal runs of True pixels: row, start column and end column (exclusive), in raster order."""

    def __init__(self, rows: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        self.rows = rows
        self.starts = starts
        self.ends = ends

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> _Runs:
        height, width = mask.shape
        padded = np.zeros((height, width + 2), dtype=np.int8)
        padded[:, 1:-1] = mask
        steps = np.diff(padded, axis=1)  # +1 where a run starts, -1 one past where it ends
        start_rows, starts = np.nonzero(steps == 1)
        _, ends = np.nonzero(steps == -1)
        return cls(start_rows.astype(np.int64), starts.astype(np.int64), ends.astype(np.int64))

    @property
    def count(self) -> int:
        return len(self.rows)

    @property
    def lengths(self) -> np.ndarray:
        return self.ends - self.starts

    def paint(self, shape: tuple[int, int], values: np.ndarray) -> np.ndarray:
        """An int64 image holding ``values[i]`` on the pixels of run ``i`` and 0 elsewhere."""
        height, width = shape
        # One spare column per row keeps a run's end marker off the next row's first pixel.
        stride = width + 1
        steps = np.zeros(height * stride + 1, dtype=np.int64)
        steps[self.rows * stride + self.starts] += values
        steps[self.rows * stride + self.ends] -= values
        return np.cumsum(steps[:-1]).reshape(height, stride)[:, :width]


def _run_roots(runs: _Runs, connectivity: int) -> np.ndarray:
    """For each run, the index of the first run of its connected component."""
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    if runs.count == 0:
        return np.zeros(0, dtype=np.int64)
    upper, lower = _touching_run_pairs(runs, reach=1 if connectivity == 8 else 0)
    return _union_find_roots(runs.count, upper, lower)


def _touching_run_pairs(runs: _Runs, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (run in row r, run in row r+1) that touch; ``reach=1`` also joins diagonal neighbours."""
    # Runs are sorted by row then column, and runs in one row are disjoint, so a key of row * width + column
    # is sorted for both starts and ends; the runs of row r touching run j of row r+1 form one slice.
    key_width = int(runs.ends.max()) + 2
    end_keys = runs.rows * key_width + runs.ends
    start_keys = runs.rows * key_width + runs.starts
    row_above = runs.rows - 1
    first = np.searchsorted(end_keys, row_above * key_width + runs.starts - reach, side="right")
    stop = np.searchsorted(start_keys, row_above * key_width + runs.ends + reach, side="left")
    counts = np.maximum(stop - first, 0)
    lower = np.repeat(np.arange(runs.count), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    upper = np.repeat(first, counts) + offsets
    return upper, lower


def _union_find_roots(count: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Connected components of a graph given as edge lists; each node maps to the smallest node of its component.

    Vectorised hook-and-compress: every round hooks each root onto the smallest root it shares an edge
    with, then compresses the pointers; rounds repeat until no edge joins two different roots.
    """
    parent = np.arange(count, dtype=np.int64)
    while True:
        root_a, root_b = parent[first], parent[second]
        differ = root_a != root_b
        if not differ.any():
            return parent
        low = np.minimum(root_a[differ], root_b[differ])
        high = np.maximum(root_a[differ], root_b[differ])
        np.minimum.at(parent, high, low)
        # Pointer jumping: parent[i] <= i always holds, so this terminates at the roots.
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand


def lesion_mask(probability: np.ndarray, threshold: float, postprocess: dict[str, bool]) -> np.ndarray:
    """Binary lesion mask from a probability map: threshold, then the configured post-processing steps."""
    mask = probability >= threshold
    if postprocess.get("largest_component"):
        mask = largest_component(mask)
    if postprocess.get("fill_holes"):
        mask = fill_holes(mask)
    return mask
