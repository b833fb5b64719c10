"""Lesion-centred classifier crops (data.lesion_crop): the box, training crops, export and serving."""

import json
import shutil

import numpy as np
import pytest
from conftest import synthetic_lesion, tiny_config
from PIL import Image

from melanoma.inference.predictor import ModelsNotFoundError, Predictor
from melanoma.inference.preprocess import FULL_IMAGE, MIN_CROP_SIDE, crop_box, lesion_box


def _mask(height, width, rows, cols):
    mask = np.zeros((height, width), bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def test_box_is_a_square_in_image_fractions_around_the_lesion_plus_margin():
    # A 200x100 image (width x height) with the lesion in rows 40-59, columns 80-119: 0.2 of each side.
    box = lesion_box(_mask(100, 200, (40, 60), (80, 120)), margin=0.5)
    assert box == pytest.approx((0.3, 0.3, 0.7, 0.7))  # side 0.2 * (1 + 2 * 0.5), same centre
    wide = lesion_box(_mask(100, 200, (45, 55), (60, 140)), margin=0.0)  # 0.4 wide, 0.1 tall: the larger wins
    assert wide == pytest.approx((0.3, 0.3, 0.7, 0.7))


def test_box_stays_inside_the_image_and_within_its_size_limits():
    assert lesion_box(np.zeros((50, 50), bool), margin=0.2) == FULL_IMAGE
    corner = lesion_box(_mask(100, 100, (0, 20), (0, 20)), margin=0.5)  # would reach -0.1: moved, not shrunk
    assert corner == pytest.approx((0.0, 0.0, 0.4, 0.4))
    assert lesion_box(_mask(100, 100, (10, 90), (5, 95)), margin=0.2) == pytest.approx(FULL_IMAGE)
    tiny = lesion_box(_mask(100, 100, (50, 51), (50, 51)), margin=0.2)
    assert tiny[2] - tiny[0] == pytest.approx(MIN_CROP_SIDE) and tiny[3] - tiny[1] == pytest.approx(MIN_CROP_SIDE)
    shifted = lesion_box(_mask(100, 100, (40, 60), (40, 60)), margin=0.5, shift=(0.1, -0.1))
    assert shifted == pytest.approx((0.34, 0.26, 0.74, 0.66))


def test_crop_cuts_the_box_out_of_any_image_size():
    image = np.arange(100 * 200).reshape(100, 200)
    np.testing.assert_array_equal(crop_box(image, (0.3, 0.3, 0.7, 0.7)), image[30:70, 60:140])
    assert crop_box(image, (0.999, 0.999, 1.0, 1.0)).shape == (1, 1)  # never empty
    assert crop_box(image, FULL_IMAGE).shape == image.shape


def test_training_crops_follow_the_ground_truth_mask_and_jitter(synthetic_isic_dir):
    from melanoma.data import read_isic2017
    from melanoma.data.transforms import classification_transforms
    from melanoma.training.datasets import LesionDataset

    samples = read_isic2017(synthetic_isic_dir, "train")
    transform = classification_transforms(32, train=False)
    fixed = LesionDataset(samples, "classification", transform, crop_margin=0.2)
    view = fixed._classifier_view(0)
    box = lesion_box(fixed.masks[0], 0.2)
    assert box != FULL_IMAGE and view.shape[0] < fixed.images[0].shape[0]
    np.testing.assert_array_equal(view, crop_box(fixed.images[0], box))
    assert fixed[0]["image"].shape == (3, 32, 32)
    jittered = LesionDataset(samples, "classification", transform, crop_margin=0.2, crop_jitter=True)
    np.random.seed(0)
    shapes = {jittered._classifier_view(0).shape for _ in range(8)}
    assert len(shapes) > 1
    without_masks = [s.__class__(s.image_id, s.image_path, None, s.melanoma) for s in samples]
    with pytest.raises(ValueError, match="lesion_crop needs a lesion mask"):
        LesionDataset(without_masks, "classification", transform, crop_margin=0.2)


@pytest.fixture(scope="module")
def crop_run(shared_synthetic_isic_dir, tmp_path_factory):
    from melanoma.training.engine import fit

    run_dir = tmp_path_factory.mktemp("run-crop")
    fit(tiny_config("classification", shared_synthetic_isic_dir, **{"data.lesion_crop": "true"}), run_dir)
    return run_dir


def test_crop_classifier_is_calibrated_and_served_with_the_segmenter(crop_run, tiny_models_dir, tmp_path):
    from melanoma.inference.export import export_run

    with pytest.raises(FileNotFoundError, match="--segmenter"):
        export_run(crop_run, tmp_path / "alone")
    out = export_run(crop_run, tmp_path / "models", segmenter_dir=tiny_models_dir)
    config = json.loads((out / "classification.json").read_text())
    segmenter = json.loads((tiny_models_dir / "segmentation.json").read_text())["onnx_sha256"]
    # The segmenter whose crops fitted the threshold is recorded, so the Predictor can tell when it is replaced.
    assert config["input_crop"] == {"source": "lesion_mask", "margin": 0.2, "segmenter_onnx_sha256": segmenter}
    assert 0 <= config["validation"]["auc"] <= 1
    assert (out / "segmentation.onnx").read_bytes() == (tiny_models_dir / "segmentation.onnx").read_bytes()
    predictor = Predictor.from_dir(out)  # the segmenter it was calibrated with came along
    classifier_only = tmp_path / "classifier-only"
    classifier_only.mkdir()
    for name in ("classification.json", "classification.onnx"):
        shutil.copy(out / name, classifier_only / name)
    with pytest.raises(ModelsNotFoundError, match="needs the segmentation model"):
        Predictor.from_dir(classifier_only)

    image, mask = synthetic_lesion(96, seed=5, radius_fraction=0.15)
    lesion_map = np.asarray(Image.fromarray(mask).resize((64, 64))) / 255.0
    predictor.segment = lambda images: [lesion_map.astype(np.float32) for _ in images]  # a known lesion
    (result,) = predictor.predict_arrays([image], [(96, 96)], ["lesion"])
    box = lesion_box(lesion_map >= predictor.segmenter.config["threshold"], 0.2)
    assert box != FULL_IMAGE
    expected, _cam = predictor.classifier.run([crop_box(image, box)])
    assert result.melanoma_probability == pytest.approx(float(expected[0]), abs=1e-6)
    outside = np.ones((96, 96), bool)
    crop_box(outside, box)[...] = False  # a view: everything outside the box stays True
    assert result.heatmap.shape == (96, 96) and not result.heatmap[outside].any()


def test_heatmap_of_a_crop_lands_in_its_box():
    from melanoma.inference.predictor import _place_heatmap

    heatmap = _place_heatmap(np.ones((7, 7), np.float32), (0.5, 0.0, 1.0, 0.5), (40, 20))
    assert heatmap.shape == (20, 40)
    assert (heatmap[:10, 20:] == 1).all() and heatmap.sum() == 200
    np.testing.assert_allclose(_place_heatmap(np.ones((7, 7), np.float32), FULL_IMAGE, (40, 20)), 1)
