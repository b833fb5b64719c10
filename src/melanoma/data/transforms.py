"""Albumentations pipelines for dermoscopic images: resize, and train-time augmentation.

Both pipelines take a uint8 ``HxWx3`` RGB ``image`` (and for segmentation a uint8 ``HxW`` ``mask``, values
0/255 or 0/1) and return a uint8 image of ``image_size x image_size``; masks are resized with nearest neighbour
so they keep their values. There is no normalisation here: the model's config holds mean/std and normalises.
Geometry is applied identically to image and mask; colour changes touch the image only.
"""

from __future__ import annotations

import albumentations as A
import cv2

# Dermoscopy images are usually taken with the lesion centred; moderate shifts and scales keep it in view.
_AFFINE = {"scale": (0.9, 1.1), "translate_percent": (-0.0625, 0.0625), "rotate": (-30, 30)}
# Hue carries diagnostic meaning (blue-white veil, regression), so hue shifts stay small even when strong.
_HUE_SATURATION_VALUE = {"hue_shift_limit": 5, "sat_shift_limit": 15, "val_shift_limit": 10}
_STRONG_HUE_SATURATION_VALUE = {"hue_shift_limit": 10, "sat_shift_limit": 30, "val_shift_limit": 20}
# Another camera, a PACS export or a web upload may compress harder than the ISIC archive; q40 is what
# benchmarks/bench_consistency.py tests, so the range reaches below it.
JPEG_QUALITY_RANGE = (30, 90)


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


def classification_transforms(image_size: int, train: bool, strong: bool = False, jpeg: bool = False) -> A.Compose:
    """Transforms for melanoma classification: call with ``image=...`` (a ``mask`` is transformed alike).

    Args:
        image_size: side of the square output image.
        train: add random flips, 90-degree rotations, affine jitter and brightness/contrast/colour jitter;
            otherwise resize only.
        strong: with ``train``, also stronger colour jitter, gamma, illuminant (colour temperature) shifts that
            mimic different dermatoscopes and lighting, and coarse dropout.
        jpeg: with ``train``, re-compress half the images as JPEG at a quality in ``JPEG_QUALITY_RANGE`` before
            resizing.

    Returns:
        An ``A.Compose`` returning a uint8 ``image`` of ``image_size x image_size x 3``.
    """
    steps = _jpeg(train and jpeg) + [_resize(image_size)]
    if train:
        steps += _geometric() + _photometric(strong=strong)
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
