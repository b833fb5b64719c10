"""Serving resizes an image the way training did (numpy + Pillow only, no OpenCV at serving time)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from melanoma.data.transforms import classification_transforms
from melanoma.inference.preprocess import linear_resize, resize_for, resize_rgb


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    # Smooth colour gradients plus noise: every interpolation weight matters, nothing saturates.
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    base = np.stack([xx / width, yy / height, (xx + yy) / (width + height)], axis=-1) * 200 + 20
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("height", "width", "size"), [(256, 256, 224), (256, 256, 192), (300, 451, 64), (37, 23, 16), (768, 1024, 256)]
)
def test_linear_resize_is_opencv_inter_linear_bit_for_bit(height, width, size):
    image = _photo(height, width)
    reference = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(linear_resize(image, size), reference)


def test_linear_resize_upsamples_within_one_grey_level_of_opencv():
    image = _photo(256, 256)
    ours = linear_resize(image, 300).astype(int)
    reference = cv2.resize(image, (300, 300), interpolation=cv2.INTER_LINEAR).astype(int)
    assert np.abs(ours - reference).max() <= 1 and np.mean(ours != reference) < 0.01


def test_serving_feeds_the_classifier_the_pixels_training_validated_on():
    image = _photo(256, 256, seed=1)
    trained = classification_transforms(224, False)(image=image)["image"].astype(int)
    config = {"input_size": 224, "resize": "squash", "resize_filter": "linear", "prepared_size": 256}
    served = resize_for(image, config).astype(int)
    assert np.array_equal(served, trained)
    # Pillow's antialiased bilinear filter (what models exported before the filter was recorded get) differs.
    legacy = resize_for(image, {"input_size": 224, "resize": "squash"}).astype(int)
    assert np.abs(legacy - trained).mean() > 1


def test_other_sizes_reach_the_model_through_the_prepared_size_first():
    upload = _photo(600, 900, seed=2)
    config = {"input_size": 224, "resize": "squash", "resize_filter": "linear", "prepared_size": 256}
    prepared = np.asarray(Image.fromarray(upload).resize((256, 256), Image.Resampling.BILINEAR))
    assert np.array_equal(resize_for(upload, config), linear_resize(prepared, 224))
    # A model whose input is the prepared size gets exactly the prepared image.
    assert np.array_equal(resize_for(upload, {**config, "input_size": 256}), prepared)


def test_images_already_at_the_model_size_are_untouched():
    image = _photo(64, 64)
    assert resize_rgb(image, 64, resize_filter="linear") is image


@pytest.mark.parametrize(("kwargs", "message"), [({"mode": "crop"}, "resize mode"), ({"resize_filter": "x"}, "filter")])
def test_unknown_preprocessing_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        resize_rgb(_photo(32, 32), 16, **kwargs)
