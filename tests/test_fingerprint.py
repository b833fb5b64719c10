"""Content fingerprints (melanoma.inference.fingerprint): copies are found, other images are not."""

import io

import numpy as np
import pytest
from conftest import synthetic_lesion
from PIL import Image, ImageEnhance

from melanoma.inference.fingerprint import (
    COPY_DISTANCE,
    FINGERPRINT_BITS,
    decode_fingerprints,
    distances,
    encode_fingerprints,
    fingerprint,
    nearest,
)


def _photo(seed: int, size: int = 128) -> np.ndarray:
    """A synthetic lesion with skin texture, so that two seeds differ as two photographs do."""
    image, _ = synthetic_lesion(size, seed=seed)
    noise = np.random.default_rng(seed).normal(0, 12, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


COPIES = {
    "jpeg q40": lambda im: _jpeg(im, 40),
    "enlarged to another shape": lambda im: im.resize((400, 300), Image.Resampling.BICUBIC),
    "reduced": lambda im: im.resize((64, 64), Image.Resampling.BILINEAR),
    "darker": lambda im: ImageEnhance.Brightness(im).enhance(0.8),
    "more contrast": lambda im: ImageEnhance.Contrast(im).enhance(1.2),
    "greyscale": lambda im: im.convert("L").convert("RGB"),
}


def test_a_fingerprint_is_256_bits_of_the_pixels_alone():
    image = _photo(1)
    print_ = fingerprint(image)
    assert print_.dtype == np.uint8 and print_.shape == (FINGERPRINT_BITS // 8,) == (32,)
    np.testing.assert_array_equal(print_, fingerprint(Image.fromarray(image)))  # array or Pillow image alike
    assert 64 < np.unpackbits(print_).sum() < 192  # signs against the median: about half the bits set


@pytest.mark.parametrize("change", COPIES)
def test_a_changed_copy_is_found_and_other_photos_are_not(change):
    originals = [Image.fromarray(_photo(seed)) for seed in range(12)]
    table = np.stack([fingerprint(image) for image in originals])
    for row, image in enumerate(originals):
        found, distance = nearest(fingerprint(COPIES[change](image)), table)
        assert (found, distance <= COPY_DISTANCE) == (row, True), (change, row, distance)
    apart = np.stack([distances(table[row], table) for row in range(len(table))])
    assert apart[~np.eye(len(table), dtype=bool)].min() > COPY_DISTANCE  # twelve different photos: no match


def test_a_mirrored_copy_is_not_found_as_the_docs_say():
    image = Image.fromarray(_photo(3))
    mirrored = fingerprint(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert distances(mirrored, fingerprint(image)[None])[0] > COPY_DISTANCE


def test_fingerprints_travel_as_base64_and_a_damaged_record_is_refused():
    table = np.stack([fingerprint(_photo(seed)) for seed in range(3)])
    text = encode_fingerprints(list(table))
    assert len(text) == 128  # 96 bytes: 43 characters an image
    np.testing.assert_array_equal(decode_fingerprints(text), table)
    assert decode_fingerprints(encode_fingerprints([])).shape == (0, 32)
    with pytest.raises(ValueError, match="not a multiple of 32"):
        decode_fingerprints(text[:-8])
    assert nearest(table[0], decode_fingerprints("")) == (-1, FINGERPRINT_BITS + 1)


def test_stored_fingerprints_are_read_beside_their_ids_and_damaged_ones_ignored():
    from melanoma.inference.fingerprint import FINGERPRINT_METHOD, stored_fingerprints

    table = np.stack([fingerprint(_photo(seed)) for seed in range(3)])
    data = {
        "image_ids": {"train": ["a", "b"], "validation": ["c"]},
        "image_fingerprints": {
            "method": FINGERPRINT_METHOD,
            "train": encode_fingerprints(list(table[:2])),
            "validation": encode_fingerprints(list(table[2:])),
        },
    }
    tables = stored_fingerprints({"training": {"data": data}})
    assert tables["train"][0] == ["a", "b"] and tables["validation"][0] == ["c"]
    np.testing.assert_array_equal(tables["train"][1], table[:2])
    # Damaged or foreign records: compared by name only, and the Predictor still serves (no exception).
    damaged = [
        {**data, "image_fingerprints": {**data["image_fingerprints"], "method": "another-method"}},
        {**data, "image_fingerprints": {**data["image_fingerprints"], "train": "not base64!"}},
        {**data, "image_fingerprints": {**data["image_fingerprints"], "train": None}},  # 0 prints for 2 ids
        {**data, "image_ids": {"train": ["a"], "validation": ["c"]}},  # lists and prints disagree
        {**data, "image_fingerprints": "garbage"},
    ]
    for record in damaged:
        assert stored_fingerprints({"training": {"data": record}}) is None
    assert stored_fingerprints({"training": None}) is None
    assert stored_fingerprints({"training": {"data": None}}) is None
