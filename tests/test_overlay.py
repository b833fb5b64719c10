"""Overlay rendering: fill, contour, heatmap, PNG encoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import require
from PIL import Image
from scipy import ndimage

from melanoma.inference.overlay import (
    EDGE_COLOUR,
    LESION_COLOUR,
    contour_thickness,
    mask_contour,
    render_overlay,
    to_png_bytes,
    viridis_colormap,
)

MAGENTA = (255, 0, 255)


def _scene(height: int = 120, width: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """A flat gray image and a centred disc mask."""
    image = np.full((height, width, 3), 100, np.uint8)
    yy, xx = np.mgrid[:height, :width]
    mask = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 <= (min(height, width) / 3) ** 2
    return image, mask


def test_output_shape_dtype_and_input_untouched() -> None:
    image, mask = _scene()
    original = image.copy()
    overlay = render_overlay(image, mask)
    assert overlay.shape == image.shape and overlay.dtype == np.uint8
    np.testing.assert_array_equal(image, original)


def test_no_mask_and_nothing_to_show_returns_the_image() -> None:
    image, mask = _scene()
    np.testing.assert_array_equal(render_overlay(image, None), image)
    np.testing.assert_array_equal(render_overlay(image, mask, show_contour=False, show_fill=False), image)
    np.testing.assert_array_equal(render_overlay(image, np.zeros_like(mask)), image)


def test_fill_blends_the_lesion_only() -> None:
    image, mask = _scene()
    overlay = render_overlay(image, mask, show_contour=False, opacity=0.5, fill_color=MAGENTA)
    inside = overlay[mask].astype(int)
    assert np.abs(inside - [178, 50, 178]).max() <= 1  # 100 * 0.5 + colour * 0.5
    np.testing.assert_array_equal(overlay[~mask], image[~mask])


def test_contour_is_the_mask_boundary() -> None:
    image, mask = _scene()
    overlay = render_overlay(image, mask, show_fill=False, contour_color=MAGENTA)
    coloured = np.all(overlay == MAGENTA, axis=2)
    expected = mask & ~ndimage.binary_erosion(mask, np.ones((3, 3)), border_value=1)
    np.testing.assert_array_equal(coloured, expected)  # 160 px wide: 1-pixel contour


def test_contour_thickness_scales_with_image_size() -> None:
    assert contour_thickness((160, 120)) == 1
    assert contour_thickness((1024, 768)) == 3
    assert contour_thickness((4000, 3000)) == 10
    image = np.full((768, 1024, 3), 100, np.uint8)
    mask = np.zeros((768, 1024), bool)
    mask[200:600, 300:700] = True
    overlay = render_overlay(image, mask, show_fill=False, contour_color=MAGENTA)
    coloured = np.all(overlay == MAGENTA, axis=2)
    assert coloured[400].sum() == 2 * 3  # two crossings of a 3-pixel band
    assert coloured[:, 500].sum() == 2 * 3


@pytest.mark.parametrize("thickness", [1, 2, 4])
def test_mask_contour_matches_scipy_erosion(thickness: int) -> None:
    rng = np.random.default_rng(thickness)
    mask = ndimage.binary_opening(rng.random((60, 70)) < 0.6)
    structure = np.ones((2 * thickness + 1,) * 2, bool)
    eroded = ndimage.binary_erosion(np.pad(mask, thickness, mode="edge"), structure)
    expected = mask & ~eroded[thickness:-thickness, thickness:-thickness]
    np.testing.assert_array_equal(mask_contour(mask, thickness), expected)


def test_a_lesion_cut_by_the_image_border_has_no_contour_along_it() -> None:
    image = np.full((50, 50, 3), 100, np.uint8)
    mask = np.zeros((50, 50), bool)
    mask[:, :20] = True  # touches top, bottom and left borders
    coloured = np.all(render_overlay(image, mask, show_fill=False, contour_color=MAGENTA) == MAGENTA, axis=2)
    assert coloured[:, 19].all()
    assert not coloured[:, :19].any()


def test_mask_of_another_size_is_resized() -> None:
    image, mask = _scene(240, 320)
    small_mask = np.asarray(Image.fromarray(mask).resize((80, 60), Image.Resampling.NEAREST))
    overlay = render_overlay(image, small_mask, show_contour=False, fill_color=MAGENTA)
    tinted = np.any(overlay != image, axis=2)
    assert np.mean(tinted != mask) < 0.02


def test_heatmap_of_any_size_is_resized_and_colour_mapped() -> None:
    image, mask = _scene()
    heatmap = np.zeros((8, 8), np.float32)
    heatmap[:, 4:] = 1.0  # hot right half
    overlay = render_overlay(image, mask, heatmap, show_heatmap=True, show_fill=False, show_contour=False, opacity=1)
    left, right = overlay[:, 5].mean(axis=0), overlay[:, -5].mean(axis=0)
    assert left[2] > 60 and left[1] < 20 and left.sum() < 200  # cold: dark purple
    assert right[0] > 200 and right[1] > 200 and right[2] < 60  # hot: bright yellow
    not_shown = render_overlay(image, mask, heatmap, show_fill=False, show_contour=False)
    np.testing.assert_array_equal(not_shown, image)


def test_viridis_colormap_matches_matplotlib_and_brightens_steadily() -> None:
    colormaps = require("matplotlib").colormaps  # train extra: a failure under CI when missing
    levels = np.linspace(0.0, 1.0, 256)
    ours = viridis_colormap(levels)
    assert ours.shape == (256, 3) and ours.dtype == np.float32 and ours.min() >= 0 and ours.max() <= 1
    reference = colormaps["viridis"](levels)[:, :3]
    assert np.abs(np.rint(ours * 255) - np.rint(reference * 255)).max() <= 5  # 8-bit levels
    luminance = ours @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    assert np.all(np.diff(luminance) > 0)  # order readable by brightness alone (colour-blind eyes, greyscale print)
    edges = viridis_colormap(np.array([-3.0, 7.0, np.nan]))
    np.testing.assert_array_equal(edges, ours[[0, -1, 0]])


def test_the_contour_has_a_dark_inner_edge_by_default() -> None:
    image, mask = _scene(400, 400)  # thickness 1
    overlay = render_overlay(np.full_like(image, 230), mask, show_fill=False)  # pale skin
    contour = mask_contour(mask, 1)
    edge = mask_contour(mask, 2) & ~contour
    assert np.all(overlay[contour] == LESION_COLOUR) and np.all(overlay[edge] == EDGE_COLOUR)
    assert np.all(overlay[mask & ~contour & ~edge] == 230) and np.all(overlay[~mask] == 230)
    plain = render_overlay(np.full_like(image, 230), mask, show_fill=False, edge_color=None)
    assert np.all(plain[edge] == 230)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"opacity": 1.5}, "opacity"),
        ({"show_heatmap": True}, "needs a heatmap"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    image, mask = _scene()
    with pytest.raises(ValueError, match=message):
        render_overlay(image, mask, **kwargs)


@pytest.mark.parametrize("bad_image", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32)])
def test_bad_images(bad_image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        render_overlay(bad_image, None)


@pytest.mark.parametrize("shape", [(20, 30), (20, 30, 3), (20, 30, 4)])
def test_png_round_trip(shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    data = to_png_bytes(array)
    assert data.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(data)) as image:
        np.testing.assert_array_equal(np.asarray(image), array)


def test_png_rejects_non_uint8() -> None:
    with pytest.raises(ValueError, match="uint8"):
        to_png_bytes(np.zeros((4, 4, 3), np.float32))


@pytest.mark.parametrize("width", [40, 300, 2000])
def test_footer_adds_a_text_strip_below_an_unchanged_image(width):
    from melanoma import DISCLAIMER
    from melanoma.inference.overlay import with_footer

    image = np.full((width // 2, width, 3), 200, np.uint8)
    out = with_footer(image, DISCLAIMER)
    assert out.shape[1] == width and out.shape[0] > image.shape[0]
    np.testing.assert_array_equal(out[: image.shape[0]], image)
    strip = out[image.shape[0] :]
    assert (strip > 128).any() and (strip < 64).any()  # light text on a dark strip
