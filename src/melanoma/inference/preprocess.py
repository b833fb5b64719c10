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


# Test-time flips on NCHW batches and on spatial outputs ([N, 1, H, W] maps, [N, h, w] activation maps):
# the last axis is width, the one before it height. Each flip is its own inverse.
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
