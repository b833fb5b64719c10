"""Mask post-processing, cross-checked against scipy.ndimage (scipy is a test-only dependency)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from melanoma.inference.postprocess import (
    as_bool_mask,
    clean_mask,
    fill_holes,
    label_components,
    largest_component,
    resize_mask,
)

SCIPY_STRUCTURE = {8: np.ones((3, 3), bool), 4: None}  # None: scipy's default cross


def _random_masks(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(count):
        height, width = rng.integers(1, 48, size=2)
        masks.append(rng.random((height, width)) < rng.uniform(0.05, 0.9))
    return masks


def _lesion_mask(size: int = 256, seed: int = 0) -> np.ndarray:
    """A disc with a hole, a notch, a satellite blob and salt noise: a realistic messy segmentation."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centre = size / 2
    mask = (yy - centre) ** 2 + (xx - centre) ** 2 < (0.35 * size) ** 2
    mask &= ~((yy - centre) ** 2 + (xx - centre + 10) ** 2 < (0.08 * size) ** 2)
    mask |= (yy - 0.1 * size) ** 2 + (xx - 0.1 * size) ** 2 < (0.05 * size) ** 2
    return mask | (rng.random(mask.shape) < 0.02)


@pytest.mark.parametrize("connectivity", [8, 4])
def test_label_components_matches_scipy(connectivity: int) -> None:
    for mask in [*_random_masks(200), _lesion_mask()]:
        labels, count = label_components(mask, connectivity)
        expected_labels, expected_count = ndimage.label(mask, SCIPY_STRUCTURE[connectivity])
        assert count == expected_count
        np.testing.assert_array_equal(labels, expected_labels)
        assert labels.dtype == np.int32


@pytest.mark.parametrize("connectivity", [8, 4])
def test_largest_component_matches_scipy(connectivity: int) -> None:
    for mask in [*_random_masks(200, seed=1), _lesion_mask()]:
        expected_labels, count = ndimage.label(mask, SCIPY_STRUCTURE[connectivity])
        if count == 0:
            expected = np.zeros_like(mask)
        else:
            sizes = np.bincount(expected_labels.ravel())[1:]
            expected = expected_labels == int(np.argmax(sizes)) + 1
        np.testing.assert_array_equal(largest_component(mask, connectivity), expected)


def test_fill_holes_matches_scipy() -> None:
    for mask in [*_random_masks(300, seed=2), _lesion_mask()]:
        np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))


@pytest.mark.parametrize(
    ("rows", "expected_components_8", "expected_components_4"),
    [
        (["#.#", ".#.", "#.#"], 1, 5),  # an X: one piece through corners, five through edges
        (["##.", "##.", "..#"], 1, 2),
        (["...", "...", "..."], 0, 0),
        (["###", "###", "###"], 1, 1),
        (["#", ".", "#"], 2, 2),
    ],
)
def test_connectivity_table(rows: list[str], expected_components_8: int, expected_components_4: int) -> None:
    mask = np.array([[character == "#" for character in row] for row in rows])
    assert label_components(mask, 8)[1] == expected_components_8
    assert label_components(mask, 4)[1] == expected_components_4


def test_fill_holes_fills_a_ring_closed_through_diagonals_but_not_an_open_one() -> None:
    diamond = np.array(
        [[character == "#" for character in row] for row in [".....", "..#..", ".#.#.", "..#..", "....."]]
    )
    assert fill_holes(diamond)[2, 2]
    open_ring = diamond.copy()
    open_ring[1, 2] = False
    open_ring[0, 2] = False
    assert not fill_holes(open_ring)[2, 2]


def test_a_hole_touching_the_border_is_not_filled() -> None:
    mask = np.ones((5, 5), bool)
    mask[0, 2] = mask[1, 2] = False  # a notch open to the top border
    mask[3, 3] = False  # a real hole
    filled = fill_holes(mask)
    assert not filled[0, 2] and not filled[1, 2]
    assert filled[3, 3]


def test_empty_and_full_masks() -> None:
    for shape in [(0, 0), (1, 1), (7, 3)]:
        empty = np.zeros(shape, bool)
        full = np.ones(shape, bool)
        assert not largest_component(empty).any()
        assert not fill_holes(empty).any()
        assert label_components(empty)[1] == 0
        np.testing.assert_array_equal(largest_component(full), full)
        np.testing.assert_array_equal(fill_holes(full), full)


def test_ties_keep_the_first_component_in_raster_order() -> None:
    mask = np.zeros((4, 9), bool)
    mask[1:3, 1:3] = True
    mask[1:3, 6:8] = True
    kept = largest_component(mask)
    assert kept[1:3, 1:3].all() and not kept[:, 5:].any()


def test_clean_mask_keeps_the_largest_component_and_fills_it() -> None:
    mask = _lesion_mask()
    cleaned = clean_mask(mask)
    expected = ndimage.binary_fill_holes(largest_component(mask))
    np.testing.assert_array_equal(cleaned, expected)
    assert label_components(cleaned)[1] == 1
    np.testing.assert_array_equal(clean_mask(mask, keep_largest=False, fill=False), mask)


def test_masks_in_any_encoding_are_accepted() -> None:
    mask = _lesion_mask(64)
    for encoded in [mask, mask.astype(np.uint8), mask.astype(np.uint8) * 255, mask * 0.9 + 0.05]:
        np.testing.assert_array_equal(as_bool_mask(encoded), mask)
        np.testing.assert_array_equal(largest_component(encoded), largest_component(mask))
    with pytest.raises(ValueError, match="2-D"):
        as_bool_mask(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="connectivity must be 4 or 8"):
        label_components(mask, connectivity=6)


def test_resize_mask_shapes_values_and_dtype() -> None:
    probability = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)
    resized = resize_mask(probability, (128, 96))
    assert resized.shape == (96, 128) and resized.dtype == np.float32
    assert resized.min() >= 0.0 and resized.max() <= 1.0
    assert abs(float(resized.mean()) - float(probability.mean())) < 0.01
    same = resize_mask(probability, (64, 48))
    np.testing.assert_array_equal(same, probability)
    assert same is not probability  # never aliases the caller's array


def test_resize_mask_round_trips_a_binary_mask() -> None:
    mask = _lesion_mask(128)
    mask = ndimage.binary_fill_holes(largest_component(mask))
    restored = resize_mask(resize_mask(mask, (512, 512)) > 0.5, (128, 128)) > 0.5
    assert np.mean(restored != mask) < 0.01
    assert resize_mask(mask, (300, 200)).shape == (200, 300)


def test_resize_mask_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        resize_mask(np.zeros((4, 4)), (0, 4))
    with pytest.raises(ValueError, match="2-D"):
        resize_mask(np.zeros((4, 4, 1)), (4, 4))


def test_postprocessing_handles_thousands_of_tiny_components() -> None:
    """The worst case for the run-length union-find: a random half-filled 256x256 map (speed: bench_masks.py)."""
    noisy = np.random.default_rng(0).random((256, 256)) < 0.5
    labels, count = ndimage.label(noisy, SCIPY_STRUCTURE[8])
    assert count > 100  # really many components
    sizes = np.bincount(labels.ravel())[1:]
    np.testing.assert_array_equal(largest_component(noisy), labels == 1 + int(np.argmax(sizes)))
    np.testing.assert_array_equal(fill_holes(noisy), ndimage.binary_fill_holes(noisy))
