"""Albumentations pipelines for dermoscopic images: resize, and train-time augmentation.

Both pipelines take a uint8 ``HxWx3`` RGB ``image`` (and for segmentation a uint8 ``HxW`` ``mask``, values
0/255 or 0/1) and return a uint8 image of ``image_size x image_size``; masks are resized with nearest neighbour
so they keep their values. There is no normalisation here: the model's config holds mean/std and normalises.
Geometry is applied identically to image and mask; colour changes touch the image only.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np

# Dermoscopy images are usually taken with the lesion centred; moderate shifts and scales keep it in view.
_AFFINE = {"scale": (0.9, 1.1), "translate_percent": (-0.0625, 0.0625), "rotate": (-30, 30)}
# Hue carries diagnostic meaning (blue-white veil, regression), so hue shifts stay small even when strong.
_HUE_SATURATION_VALUE = {"hue_shift_limit": 5, "sat_shift_limit": 15, "val_shift_limit": 10}
_STRONG_HUE_SATURATION_VALUE = {"hue_shift_limit": 10, "sat_shift_limit": 30, "val_shift_limit": 20}
# Another camera, a PACS export or a web upload may compress harder than the ISIC archive; q40 is what
# benchmarks/bench_consistency.py tests, so the range reaches below it.
JPEG_QUALITY_RANGE = (30, 90)


class DarkFrame(A.ImageOnlyTransform):
    """A dermatoscope's dark frame around a round field of view, drawn on training images of every label.

    82 of the 2000 ISIC 2017 training images carry such a frame, a third of them melanomas against a fifth of the
    others, and a network trained on them scores a framed image as more likely melanoma (``benchmarks/vignettes.py``).
    Frames drawn at random on images of both classes take that meaning away. The field of view is an ellipse
    centred near the image centre (a round field squashed with a 4:3 or 3:2 photo, either way up), beyond which the
    image fades over a few pixels into a near-black level.

    Args:
        diameter: range of the field's mean diameter, as a multiple of the image's shorter side (1: the inscribed
            circle, whose frame fills the corners and touches the edges; 1.3: the corners only).
        aspect: range of the field's width / height.
        shift: largest offset of its centre, as a fraction of each side.
        feather: range of the width of the fade, in pixels.
        level: range of the frame's grey level (0-255).
        p: the share of images framed.
    """

    def __init__(
        self,
        diameter: tuple[float, float] = (0.85, 1.3),
        aspect: tuple[float, float] = (0.75, 1.33),
        shift: float = 0.05,
        feather: tuple[float, float] = (1.0, 8.0),
        level: tuple[float, float] = (0.0, 20.0),
        p: float = 0.3,
    ) -> None:
        super().__init__(p=p)
        self.diameter, self.aspect, self.shift, self.feather, self.level = diameter, aspect, shift, feather, level

    def get_params(self) -> dict[str, Any]:
        uniform = self.py_random.uniform
        return {
            "diameter": uniform(*self.diameter),
            "aspect": uniform(*self.aspect),
            "offset": (uniform(-self.shift, self.shift), uniform(-self.shift, self.shift)),
            "feather": uniform(*self.feather),
            "level": uniform(*self.level),
        }

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        shape = (params["diameter"], params["aspect"], params["offset"], params["feather"], params["level"])
        return dark_frame(img, *shape)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("diameter", "aspect", "shift", "feather", "level")


def dark_frame(
    image: np.ndarray,
    diameter: float,
    aspect: float = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
    feather: float = 3.0,
    level: float = 0.0,
) -> np.ndarray:
    """``image`` (HxWx3 uint8) dark at ``level`` outside an ellipse of mean diameter ``diameter`` x its shorter
    side and width / height ``aspect``, centred ``offset`` (fractions of width, height) off the image centre, with a
    linear fade ``feather`` pixels wide."""
    height, width = image.shape[:2]
    radius = diameter * min(height, width) / 2
    semi_x, semi_y = radius * np.sqrt(aspect), radius / np.sqrt(aspect)
    centre_y, centre_x = (height - 1) / 2 + offset[1] * height, (width - 1) / 2 + offset[0] * width
    yy, xx = np.ogrid[:height, :width]
    scaled = np.sqrt(((yy - centre_y) / semi_y) ** 2 + ((xx - centre_x) / semi_x) ** 2)  # 1 on the ellipse
    inside = np.clip((1 - scaled) * min(semi_x, semi_y) / max(feather, 1e-3) + 0.5, 0.0, 1.0).astype(np.float32)
    framed = image.astype(np.float32) * inside[..., None] + np.float32(level) * (1 - inside[..., None])
    return np.rint(framed).astype(np.uint8)


def segmentation_transforms(image_size: int, train: bool, strong: bool = False, jpeg: bool = False) -> A.Compose:
    """Transforms for lesion segmentation: call with ``image=..., mask=...``.

    Args:
        image_size: side of the square output image and mask.
        train: add random flips, 90-degree rotations, affine jitter and brightness/contrast/colour jitter;
            otherwise resize only.
        strong: with ``train``, the stronger colour jitter, gamma and illuminant shifts of the classifier's
            ``strong`` (no dropout: hiding part of the lesion would contradict its mask).
        jpeg: with ``train``, re-compress half the images as JPEG at a quality in ``JPEG_QUALITY_RANGE`` before
            resizing (the image only; the mask is untouched).

    Returns:
        An ``A.Compose`` returning uint8 ``image`` (``image_size x image_size x 3``) and ``mask``.
    """
    steps = _jpeg(train and jpeg) + [_resize(image_size)]
    if train:
        steps += _geometric() + _photometric(strong=strong)
    return A.Compose(steps, strict=True)


def classification_transforms(
    image_size: int, train: bool, strong: bool = False, jpeg: bool = False, frame: bool = False
) -> A.Compose:
    """Transforms for melanoma classification: call with ``image=...`` (a ``mask`` is transformed alike).

    Args:
        image_size: side of the square output image.
        train: add random flips, 90-degree rotations, affine jitter and brightness/contrast/colour jitter;
            otherwise resize only.
        strong: with ``train``, also stronger colour jitter, gamma, illuminant (colour temperature) shifts that
            mimic different dermatoscopes and lighting, and coarse dropout.
        jpeg: with ``train``, re-compress half the images as JPEG at a quality in ``JPEG_QUALITY_RANGE`` before
            resizing.
        frame: with ``train``, draw a dermatoscope's dark frame on 30% of the images (``DarkFrame``), after the
            colour changes, which a real frame's black does not follow.

    Returns:
        An ``A.Compose`` returning a uint8 ``image`` of ``image_size x image_size x 3``.
    """
    steps = _jpeg(train and jpeg) + [_resize(image_size)]
    if train:
        steps += _geometric() + _photometric(strong=strong)
        if frame:
            steps.append(DarkFrame())
        if strong:
            steps.append(_dropout())
    return A.Compose(steps, strict=True)


def _resize(image_size: int) -> A.Resize:
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    # Squash to a square without cropping, as the data was prepared; masks keep their values (nearest).
    return A.Resize(image_size, image_size, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST)


def _jpeg(enabled: bool) -> list[A.BasicTransform]:
    # Before the resize, as a compressed upload reaches the model: blocks at the stored size, then resampled.
    return [A.ImageCompression(compression_type="jpeg", quality_range=JPEG_QUALITY_RANGE, p=0.5)] if enabled else []


def _geometric() -> list[A.BasicTransform]:
    # Skin lesions have no canonical orientation, so every flip and right-angle rotation is a valid sample.
    return [
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.RandomRotate90(p=0.5),
        A.Affine(
            **_AFFINE,
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_NEAREST,
            border_mode=cv2.BORDER_REFLECT_101,
            p=0.5,
        ),
    ]


def _photometric(strong: bool) -> list[A.BasicTransform]:
    if not strong:
        return [
            A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.5),
            A.HueSaturationValue(**_HUE_SATURATION_VALUE, p=0.5),
        ]
    return [
        A.RandomBrightnessContrast(brightness_limit=0.25, contrast_limit=0.25, p=0.7),
        A.HueSaturationValue(**_STRONG_HUE_SATURATION_VALUE, p=0.7),
        A.RandomGamma(gamma_limit=(70, 150), p=0.5),
        # Colour temperature of the light source: a realistic stand-in for colour-constancy differences.
        A.PlanckianJitter(mode="blackbody", p=0.3),
    ]


def _dropout() -> A.CoarseDropout:
    return A.CoarseDropout(
        num_holes_range=(1, 4), hole_height_range=(0.05, 0.15), hole_width_range=(0.05, 0.15), fill=0, p=0.5
    )
