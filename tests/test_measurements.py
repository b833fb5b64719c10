"""Lesion measurements on synthetic shapes with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from melanoma.inference.measurements import (
    DERMOSCOPIC_COLOURS,
    EMPTY_MEASUREMENTS,
    LesionMeasurements,
    crofton_perimeter,
    measure_lesion,
    srgb_to_lab,
)

SIZE = 320
CENTRE = (SIZE / 2 + 0.3, SIZE / 2 - 0.4)  # off the pixel grid, like a real lesion


def _grid(size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    return yy - CENTRE[0], xx - CENTRE[1]


def _disc(radius: float) -> np.ndarray:
    yy, xx = _grid()
    return yy**2 + xx**2 <= radius**2


def _ellipse(semi_major: float, semi_minor: float, angle_degrees: float = 0.0) -> np.ndarray:
    yy, xx = _grid()
    angle = math.radians(angle_degrees)
    along = xx * math.cos(angle) + yy * math.sin(angle)
    across = -xx * math.sin(angle) + yy * math.cos(angle)
    return (along / semi_major) ** 2 + (across / semi_minor) ** 2 <= 1.0


def _half_disc(radius: float) -> np.ndarray:
    yy, _ = _grid()
    return _disc(radius) & (yy <= 0)


def _half_disc_with_offset_blob(radius: float) -> np.ndarray:
    """A half-disc with a blob stuck on one corner: no mirror axis at all."""
    yy, xx = _grid()
    return _half_disc(radius) | ((yy + 0.1 * radius) ** 2 + (xx - 0.9 * radius) ** 2 <= (0.4 * radius) ** 2)


def _irregular_blob(radius: float) -> np.ndarray:
    """A lumpy blob whose radius mixes harmonics with different mirror axes, so it has none."""
    yy, xx = _grid()
    angle = np.arctan2(yy, xx)
    return np.hypot(yy, xx) <= radius * (
        1 + 0.3 * np.cos(angle) + 0.25 * np.sin(2 * angle) + 0.15 * np.cos(3 * angle + 1)
    )


def _star(radius: float, points: int = 5, depth: float = 0.45) -> np.ndarray:
    yy, xx = _grid()
    return np.hypot(yy, xx) <= radius * (1 - depth + depth * np.cos(points * np.arctan2(yy, xx)))


def _skin_image(lesion: np.ndarray, colours: list[tuple[int, int, int]], noise: float = 4.0) -> np.ndarray:
    """Skin background; the lesion split into equal vertical bands, one per colour, plus Gaussian noise."""
    rng = np.random.default_rng(0)
    image = np.empty(lesion.shape + (3,), np.float64)
    image[:] = (226, 186, 160)
    columns = np.flatnonzero(lesion.any(axis=0))
    bands = np.array_split(columns, len(colours))
    for band, colour in zip(bands, colours, strict=True):
        region = np.zeros_like(lesion)
        region[:, band] = True
        image[region & lesion] = colour
    image += rng.normal(0, noise, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _plain_image() -> np.ndarray:
    image = np.empty((SIZE, SIZE, 3), np.uint8)
    image[:] = DERMOSCOPIC_COLOURS["dark brown"]
    return image


@pytest.mark.parametrize("radius", [20, 40, 80, 140])
def test_disc(radius: float) -> None:
    result = measure_lesion(_disc(radius), _plain_image())
    assert result.equivalent_diameter_px == pytest.approx(2 * radius, rel=0.02)
    assert result.area_pixels == pytest.approx(math.pi * radius**2, rel=0.02)
    assert result.area_fraction == pytest.approx(result.area_pixels / SIZE**2)
    assert result.asymmetry < 0.05
    assert result.border_irregularity == pytest.approx(1.0, abs=0.1)
    assert result.border_irregularity == pytest.approx(1.0, abs=0.02)  # Crofton is better than required


@pytest.mark.parametrize("angle", [0, 30, 90, 135])
def test_ellipse_is_symmetric_and_elongated(angle: float) -> None:
    result = measure_lesion(_ellipse(120, 45, angle), _plain_image())
    assert result.asymmetry < 0.05
    # Exact compactness of a 120 x 45 ellipse (Ramanujan's perimeter): 1.375.
    a, b = 120, 45
    perimeter = math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))
    assert result.border_irregularity == pytest.approx(perimeter**2 / (4 * math.pi * math.pi * a * b), rel=0.05)


def test_half_disc_is_asymmetric_about_one_axis_only() -> None:
    result = measure_lesion(_half_disc(120), _plain_image())
    low, high = sorted(result.asymmetry_axes)
    assert low < 0.03  # the axis through the flat edge's middle is a mirror axis
    assert high > 0.25
    assert result.asymmetry == pytest.approx((low + high) / 2)
    assert 0.1 < result.asymmetry < 0.25


@pytest.mark.parametrize("shape", [_half_disc_with_offset_blob(110), _irregular_blob(90)])
def test_shapes_without_mirror_axes_score_above_0_2(shape: np.ndarray) -> None:
    result = measure_lesion(shape, _plain_image())
    assert result.asymmetry > 0.2
    assert min(result.asymmetry_axes) > 0.05
    assert result.asymmetry <= 1.0


def test_star_and_jagged_borders_are_irregular() -> None:
    assert measure_lesion(_star(140, points=5, depth=0.45), _plain_image()).border_irregularity > 1.5
    yy, xx = _grid()
    jagged = np.hypot(yy, xx) <= 100 * (1 + 0.12 * np.sin(24 * np.arctan2(yy, xx)))
    assert measure_lesion(jagged, _plain_image()).border_irregularity > 1.5


def test_square_border_reads_as_documented() -> None:
    yy, xx = _grid()
    square = (np.abs(yy) < 80) & (np.abs(xx) < 80)
    assert measure_lesion(square, _plain_image()).border_irregularity == pytest.approx(1.14, abs=0.02)


def test_crofton_perimeter_of_a_disc() -> None:
    assert crofton_perimeter(_disc(100)) == pytest.approx(2 * math.pi * 100, rel=0.01)


def test_one_colour_lesion() -> None:
    lesion = _disc(100)
    result = measure_lesion(lesion, _skin_image(lesion, [DERMOSCOPIC_COLOURS["light brown"]]))
    assert result.colour_variegation == 1
    assert result.colours_present == ("light brown",)
    assert result.colour_spread < 5


def test_three_colour_lesion() -> None:
    lesion = _disc(100)
    colours = [DERMOSCOPIC_COLOURS[name] for name in ("dark brown", "blue-gray", "red")]
    result = measure_lesion(lesion, _skin_image(lesion, colours))
    assert result.colour_variegation == 3
    assert set(result.colours_present) == {"dark brown", "blue-gray", "red"}
    assert result.colour_spread > 15


def test_a_colour_below_5_percent_does_not_count() -> None:
    lesion = _disc(100)
    image = _skin_image(lesion, [DERMOSCOPIC_COLOURS["light brown"]])
    speck = lesion & (_grid()[1] > 90)  # a thin sliver, ~1 % of the lesion
    image[speck] = DERMOSCOPIC_COLOURS["black"]
    assert measure_lesion(lesion, image).colours_present == ("light brown",)


def test_all_six_colours_can_be_found() -> None:
    lesion = _disc(120)
    result = measure_lesion(lesion, _skin_image(lesion, list(DERMOSCOPIC_COLOURS.values()), noise=2.0))
    assert result.colour_variegation == 6
    assert result.colours_present == tuple(DERMOSCOPIC_COLOURS)


def test_lab_conversion_reference_values() -> None:
    np.testing.assert_allclose(srgb_to_lab(np.array([255, 255, 255], np.uint8)), [100, 0, 0], atol=0.05)
    np.testing.assert_allclose(srgb_to_lab(np.array([0, 0, 0], np.uint8)), [0, 0, 0], atol=0.05)
    # sRGB red in CIELab (D65): L 53.24, a 80.09, b 67.20
    np.testing.assert_allclose(srgb_to_lab(np.array([255, 0, 0], np.uint8)), [53.24, 80.09, 67.20], atol=0.1)


def test_empty_mask_gives_zeros() -> None:
    result = measure_lesion(np.zeros((SIZE, SIZE), bool), _plain_image())
    assert result == EMPTY_MEASUREMENTS
    assert result.area_fraction == 0
    for value in result.to_dict().values():
        if isinstance(value, float):
            assert math.isfinite(value)


@pytest.mark.parametrize("pixels", [[(5, 5)], [(5, 5), (5, 6)], [(0, 0), (0, 1), (1, 0)]])
def test_tiny_lesions_give_finite_values(pixels: list[tuple[int, int]]) -> None:
    mask = np.zeros((SIZE, SIZE), bool)
    for row, column in pixels:
        mask[row, column] = True
    result = measure_lesion(mask, _plain_image())
    assert result.area_pixels == len(pixels)
    assert all(math.isfinite(value) for value in (result.asymmetry, result.border_irregularity, result.colour_spread))
    assert result.colour_variegation == 1


def test_results_are_frozen_and_serialisable() -> None:
    result = measure_lesion(_disc(50), _plain_image())
    assert isinstance(result, LesionMeasurements)
    with pytest.raises(AttributeError):
        result.asymmetry = 1.0  # type: ignore[misc]
    assert json.loads(json.dumps(result.to_dict()))["colours_present"] == ["dark brown"]


def test_mask_encodings_and_shape_errors() -> None:
    lesion = _disc(60)
    expected = measure_lesion(lesion, _plain_image())
    assert measure_lesion(lesion.astype(np.uint8) * 255, _plain_image()) == expected
    with pytest.raises(ValueError, match="resize the mask"):
        measure_lesion(lesion[:100], _plain_image())
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        measure_lesion(lesion, _plain_image()[..., 0])
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        measure_lesion(lesion, _plain_image().astype(np.float32))


def test_rescaled_measurements_change_only_the_pixel_sizes() -> None:
    yy, xx = np.mgrid[:200, :200]
    mask = (xx - 100) ** 2 + (yy - 100) ** 2 <= 40**2
    image = np.full((200, 200, 3), 120, np.uint8)
    measured = measure_lesion(mask, image)
    scaled = measured.rescaled(2.0, 3.0)
    assert scaled.area_pixels == round(measured.area_pixels * 6)
    assert scaled.equivalent_diameter_px == pytest.approx(measured.equivalent_diameter_px * 6**0.5)
    unchanged = ("area_fraction", "asymmetry", "border_irregularity", "colour_variegation", "colour_spread")
    assert all(getattr(scaled, name) == getattr(measured, name) for name in unchanged)
