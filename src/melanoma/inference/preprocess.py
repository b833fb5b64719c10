"""Model-input preparation shared by the Predictor and the export-time calibration (numpy + Pillow only).

Preprocessing travels with the model: input size, mean/std and resize mode come from the model's JSON config.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


def resize_rgb(image: np.ndarray, size: int, mode: str = "squash") -> np.ndarray:
    """Resize an HxWx3 uint8 image to ``size`` x ``size``.

    ``squash`` ignores the aspect ratio, as the ISIC 2017 data in ``../shared`` was prepared (and so trained on).
    """
    if mode != "squash":
        raise ValueError(f"unknown resize mode {mode!r}; this version supports 'squash'")
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def to_input(images: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Stack same-size uint8 HxWx3 images into a normalised float32 NCHW batch."""
    batch = np.stack(images).astype(np.float32) * np.float32(1 / 255)
    batch -= np.asarray(mean, np.float32)
    batch /= np.asarray(std, np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
