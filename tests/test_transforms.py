"""Transform pipelines: output shapes and dtype, binary masks, mask/image alignment under augmentation."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest

from melanoma.data.transforms import classification_transforms, segmentation_transforms

PIPELINES = [
    pytest.param(segmentation_transforms, {"train": False}, id="segmentation-eval"),
    pytest.param(segmentation_transforms, {"train": True}, id="segmentation-train"),
    pytest.param(segmentation_transforms, {"train": True, "strong": True}, id="segmentation-strong"),
    pytest.param(classification_transforms, {"train": False}, id="classification-eval"),
    pytest.param(classification_transforms, {"train": True}, id="classification-train"),
    pytest.param(classification_transforms, {"train": True, "strong": True}, id="classification-strong"),
    pytest.param(classification_transforms, {"train": True, "jpeg": True}, id="classification-jpeg"),
    pytest.param(segmentation_transforms, {"train": True, "jpeg": True}, id="segmentation-jpeg"),
    pytest.param(classification_transforms, {"train": True, "frame": True}, id="classification-frame"),
]


def _asymmetric_lesion(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A dark off-centre blob on bright skin, with no symmetry, so any misaligned flip or shift shows up."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    ellipse = ((yy - 0.35 * height) / (0.2 * height)) ** 2 + ((xx - 0.3 * width) / (0.15 * width)) ** 2 <= 1
    bar = (yy > 0.55 * height) & (yy < 0.7 * height) & (xx > 0.4 * width) & (xx < 0.85 * width)
    lesion = ellipse | bar
    image = np.full((height, width, 3), (225, 185, 165), np.float32)
    image[lesion] = (70, 45, 35)
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), (lesion * 255).astype(np.uint8)


@pytest.mark.parametrize(("factory", "kwargs"), PIPELINES)
@pytest.mark.parametrize(("height", "width"), [(256, 256), (300, 200), (64, 96)])
def test_output_is_square_uint8_of_the_requested_size(factory, kwargs, height, width):
    image, mask = _asymmetric_lesion(height, width)
    transform = factory(224, **kwargs)
    assert isinstance(transform, A.Compose)
    transform.set_random_seed(0)
    for _ in range(3):
        out = transform(image=image, mask=mask)
        assert out["image"].shape == (224, 224, 3)
        assert out["image"].dtype == np.uint8
        assert out["mask"].shape == (224, 224)
        assert out["mask"].dtype == np.uint8


@pytest.mark.parametrize(("factory", "kwargs"), PIPELINES)
@pytest.mark.parametrize("foreground", [1, 255])
def test_mask_stays_binary(factory, kwargs, foreground):
    image, mask = _asymmetric_lesion(256, 256)
    mask = (mask > 0).astype(np.uint8) * foreground
    transform = factory(192, **kwargs)
    transform.set_random_seed(1)
    for _ in range(10):
        values = set(np.unique(transform(image=image, mask=mask)["mask"]).tolist())
        assert values <= {0, foreground}


@pytest.mark.parametrize(
    "transform",
    [
        segmentation_transforms(128, train=True),
        segmentation_transforms(128, train=True, strong=True),
        classification_transforms(128, train=True),
    ],
    ids=["segmentation", "segmentation-strong", "classification"],
)
def test_train_geometry_moves_mask_with_image(transform):
    image, mask = _asymmetric_lesion(256, 256)
    transform.set_random_seed(2)
    for _ in range(20):
        out = transform(image=image, mask=mask)
        # The lesion is far darker than the skin; colour jitter keeps the two apart, so thresholding the
        # transformed image halfway between its dark and bright ends (gamma and illuminant shifts move both)
        # must recover the transformed mask except along the resampled border.
        gray = out["image"].mean(axis=2)
        dark = gray < (np.percentile(gray, 5) + np.percentile(gray, 95)) / 2
        agreement = (dark == (out["mask"] > 0)).mean()
        assert agreement > 0.97


def test_train_transforms_are_random_and_seedable():
    image, mask = _asymmetric_lesion(256, 256)
    first, second = segmentation_transforms(128, train=True), segmentation_transforms(128, train=True)
    first.set_random_seed(3)
    second.set_random_seed(3)
    outs_first = [first(image=image, mask=mask)["image"] for _ in range(5)]
    outs_second = [second(image=image, mask=mask)["image"] for _ in range(5)]
    assert all(np.array_equal(a, b) for a, b in zip(outs_first, outs_second, strict=True))
    assert any(not np.array_equal(outs_first[0], other) for other in outs_first[1:])


@pytest.mark.parametrize("factory", [segmentation_transforms, classification_transforms])
def test_eval_is_a_plain_resize(factory):
    image, mask = _asymmetric_lesion(300, 200)
    out = factory(128, train=False)(image=image, mask=mask)
    np.testing.assert_array_equal(out["image"], cv2.resize(image, (128, 128), interpolation=cv2.INTER_LINEAR))
    np.testing.assert_array_equal(out["mask"], cv2.resize(mask, (128, 128), interpolation=cv2.INTER_NEAREST))


def test_strong_adds_transforms():
    weak = classification_transforms(128, train=True)
    strong = classification_transforms(128, train=True, strong=True)
    names = {type(t).__name__ for t in strong.transforms}
    assert len(strong.transforms) > len(weak.transforms)
    assert {"RandomGamma", "CoarseDropout"} <= names
    assert len(classification_transforms(128, train=False, strong=True).transforms) == 1
    segmentation = {type(t).__name__ for t in segmentation_transforms(128, train=True, strong=True).transforms}
    assert "RandomGamma" in segmentation and "CoarseDropout" not in segmentation  # dropout would contradict the mask


@pytest.mark.parametrize("factory", [segmentation_transforms, classification_transforms])
def test_jpeg_recompresses_the_image_before_the_resize_only_in_training(factory):
    image, mask = _asymmetric_lesion(256, 256)
    pipeline = factory(128, train=True, jpeg=True)
    first = pipeline.transforms[0]
    assert isinstance(first, A.ImageCompression) and first.quality_range == (30, 90)
    assert isinstance(pipeline.transforms[1], A.Resize)
    assert not any(isinstance(t, A.ImageCompression) for t in factory(128, train=False, jpeg=True).transforms)
    assert not any(isinstance(t, A.ImageCompression) for t in factory(128, train=True).transforms)
    alone = A.Compose([A.ImageCompression(quality_range=(30, 30), p=1.0)])
    out = alone(image=image, mask=mask)  # what the step does: blocky image, mask untouched
    assert 0 < np.abs(out["image"].astype(int) - image).mean() < 10
    np.testing.assert_array_equal(out["mask"], mask)


@pytest.mark.parametrize("factory", [segmentation_transforms, classification_transforms])
def test_bad_image_size_raises(factory):
    with pytest.raises(ValueError, match="image_size"):
        factory(0, train=False)


def test_frames_are_drawn_on_a_share_of_the_training_images_only():
    from melanoma.data.transforms import DarkFrame
    from melanoma.inference.checks import dark_corners

    image, _ = _asymmetric_lesion(96, 128)
    assert not dark_corners(image)
    steps = [type(step) for step in classification_transforms(64, train=True, frame=True).transforms]
    assert DarkFrame in steps and DarkFrame not in [type(s) for s in classification_transforms(64, True).transforms]
    assert DarkFrame not in [type(s) for s in classification_transforms(64, False, frame=True).transforms]
    transform = classification_transforms(64, train=True, frame=True)
    transform.set_random_seed(0)
    framed = sum(dark_corners(transform(image=image)["image"]) for _ in range(200))
    assert 30 <= framed <= 90  # p=0.3, some frames (diameter 1.3) too wide to darken three corners
    always = DarkFrame(diameter=(1.0, 1.0), aspect=(1.0, 1.0), shift=0.0, feather=(1.0, 1.0), level=(0, 0), p=1)
    out = always(image=image)["image"]
    assert dark_corners(out) and (out[48, 64] == image[48, 64]).all()  # the centre is untouched
    assert out[0, 0].max() == 0 and out[48, 0].max() <= image[48, 0].max()


def test_dark_frame_shape():
    from melanoma.data.transforms import dark_frame

    image = np.full((100, 200, 3), 200, np.uint8)
    wide = dark_frame(image, 1.0, aspect=4.0, feather=1.0)  # semi-axes 100 and 25 px: as wide as the image
    assert wide[50, 5].min() == 200 and wide[5, 5].max() == 0  # the edge middle is inside, the corner is not
    round_ = dark_frame(image, 1.0, feather=1.0)
    assert round_[50, 5].max() == 0 and round_[50, 100].min() == 200
    grey = dark_frame(image, 1.0, feather=1.0, level=20)
    assert grey[0, 0].tolist() == [20, 20, 20]
    shifted = dark_frame(image, 1.0, offset=(0.2, 0.0), feather=1.0)
    assert shifted[50, 140].min() == 200 and shifted[50, 60].max() == 0
