"""The Predictor on tiny exported models: outputs, sizes, batching, hostile files, threads, no torch."""

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import synthetic_lesion
from corpus import build_corpus
from PIL import Image

from melanoma.inference.image_io import ImageLoadError
from melanoma.inference.predictor import (
    ModelIntegrityError,
    ModelsNotFoundError,
    Prediction,
    Predictor,
    onnx_digest,
)


@pytest.fixture(scope="module")
def predictor(tiny_models_dir):
    return Predictor.from_dir(tiny_models_dir)


@pytest.fixture
def lesion_jpeg(tmp_path):
    image, _ = synthetic_lesion(300, seed=3)
    image = np.asarray(Image.fromarray(image).resize((400, 300)))
    path = tmp_path / "lesion.jpg"
    Image.fromarray(image).save(path, quality=92)
    return path


def test_prediction_has_every_output_at_the_original_size(predictor, lesion_jpeg):
    result = predictor.predict(lesion_jpeg)
    assert isinstance(result, Prediction)
    assert 0.0 <= result.melanoma_probability <= 1.0
    config = json.loads((predictor.models_dir / "classification.json").read_text())
    assert result.threshold == config["threshold"]
    assert result.decision == (result.melanoma_probability >= result.threshold)
    assert result.original_size == (400, 300)
    assert result.lesion_mask.shape == (300, 400) and result.lesion_mask.dtype == bool
    assert result.lesion_area_fraction == pytest.approx(result.lesion_mask.mean(), abs=0.01)
    assert result.heatmap.shape == result.image.shape[:2]
    assert result.heatmap.min() >= 0.0 and result.heatmap.max() <= 1.0
    assert {"decode", "classification", "segmentation", "postprocess", "measurements", "total"} <= set(
        result.timings_ms
    )
    expected = "above the model's melanoma threshold" if result.decision else "below the model's melanoma threshold"
    assert result.decision_text.startswith(expected)
    assert ("dermatologist review advised" in result.decision_text) == result.decision


def test_sources_give_the_same_result(predictor, lesion_jpeg):
    from_path = predictor.predict(lesion_jpeg)
    from_bytes = predictor.predict(lesion_jpeg.read_bytes(), name="upload.jpg")
    with lesion_jpeg.open("rb") as handle:
        from_file = predictor.predict(handle, name="upload.jpg")
    for other in (from_bytes, from_file):
        assert other.melanoma_probability == pytest.approx(from_path.melanoma_probability, abs=1e-6)
        assert np.array_equal(other.lesion_mask, from_path.lesion_mask)


def test_batch_matches_single_and_reports_bad_files(predictor, lesion_jpeg, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    results = predictor.predict_batch([lesion_jpeg, bad, lesion_jpeg])
    assert isinstance(results[1], ImageLoadError)
    single = predictor.predict(lesion_jpeg)
    for result in (results[0], results[2]):
        assert result.melanoma_probability == pytest.approx(single.melanoma_probability, abs=1e-5)


def test_every_corpus_file_predicts_or_fails_with_its_message(predictor, tmp_path):
    expected = build_corpus(tmp_path)
    for name, loads in expected.items():
        path = tmp_path / name
        if loads:
            result = predictor.predict(path)
            assert result.lesion_mask.shape == (result.original_size[1], result.original_size[0])
        else:
            with pytest.raises(ImageLoadError) as error:
                predictor.predict(path)
            assert str(error.value)


def test_one_instance_is_thread_safe(predictor, lesion_jpeg):
    reference = predictor.predict(lesion_jpeg).melanoma_probability
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: predictor.predict(lesion_jpeg).melanoma_probability, range(12)))
    assert results == pytest.approx([reference] * 12, abs=1e-6)


def test_missing_models_say_what_to_do(tmp_path):
    with pytest.raises(ModelsNotFoundError, match="no model is installed"):
        Predictor.from_dir(tmp_path)
    with pytest.raises(ModelsNotFoundError, match="does not exist"):
        Predictor.from_dir(tmp_path / "nowhere")


def test_a_network_its_config_was_not_exported_with_is_refused(tiny_models_dir, tmp_path, lesion_jpeg):
    for path in tiny_models_dir.iterdir():
        if path.is_file():
            (tmp_path / path.name).write_bytes(path.read_bytes())
    for task in ("segmentation", "classification"):
        config = json.loads((tmp_path / f"{task}.json").read_text())
        assert config["onnx_sha256"] == onnx_digest(tmp_path / config["onnx_file"])  # written by export
    # The classifier's file put where the segmenter's belongs: loading must fail, naming the file and the fix.
    (tmp_path / "segmentation.onnx").write_bytes((tmp_path / "classification.onnx").read_bytes())
    with pytest.raises(ModelIntegrityError, match=r"segmentation\.onnx is not the network segmentation\.json"):
        Predictor.from_dir(tmp_path)
    # A Git LFS pointer instead of the network says what to run.
    (tmp_path / "segmentation.onnx").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\n")
    with pytest.raises(ModelIntegrityError, match="git lfs pull"):
        Predictor.from_dir(tmp_path)
    # Configs exported before the digest was recorded still load.
    (tmp_path / "segmentation.onnx").write_bytes((tiny_models_dir / "segmentation.onnx").read_bytes())
    config = json.loads((tmp_path / "segmentation.json").read_text())
    del config["onnx_sha256"]
    (tmp_path / "segmentation.json").write_text(json.dumps(config))
    assert Predictor.from_dir(tmp_path).predict(lesion_jpeg).lesion_mask is not None
    # Without the digest, a damaged network or a config that is not JSON still fails with the file named, not a
    # traceback from ONNX Runtime or the JSON parser.
    (tmp_path / "segmentation.onnx").write_bytes(b"\x08\x07 not a protobuf")
    with pytest.raises(ModelIntegrityError, match=r"ONNX Runtime cannot load .*segmentation\.onnx"):
        Predictor.from_dir(tmp_path)
    (tmp_path / "segmentation.json").write_text("{'threshold': 0.5")
    with pytest.raises(ModelIntegrityError, match=r"segmentation\.json is not a model config"):
        Predictor.from_dir(tmp_path)


def test_the_shipped_configs_fit_the_shipped_networks():
    from conftest import REPO_ROOT

    for task in ("segmentation", "classification"):
        config = json.loads((REPO_ROOT / "models" / f"{task}.json").read_text())
        assert config["onnx_sha256"] == onnx_digest(REPO_ROOT / "models" / config["onnx_file"])


def test_one_model_is_enough(tiny_models_dir, tmp_path, lesion_jpeg):
    for name in ("segmentation.json", "segmentation.onnx"):
        (tmp_path / name).write_bytes((tiny_models_dir / name).read_bytes())
    result = Predictor.from_dir(tmp_path).predict(lesion_jpeg)
    assert result.melanoma_probability is None and result.decision is None
    assert result.lesion_mask is not None


def test_serving_never_imports_torch(tiny_models_dir, lesion_jpeg):
    code = textwrap.dedent(
        f"""
        import sys
        from melanoma.inference.predictor import Predictor
        from melanoma.inference.batch import predict_paths
        from melanoma.inference.overlay import render_overlay
        import melanoma.cli, melanoma.metrics, melanoma.inference.evaluate
        result = Predictor.from_dir({str(tiny_models_dir)!r}).predict({str(lesion_jpeg)!r})
        render_overlay(result.image, result.work_mask, result.heatmap, show_heatmap=True)
        assert "torch" not in sys.modules, "torch was imported at serve time"
        print("ok")
        """
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert output.returncode == 0, output.stderr
    assert output.stdout.strip() == "ok"


def test_test_time_flips_average_views_and_restore_spatial_outputs():
    from melanoma.inference.preprocess import run_with_flips

    batch = np.random.default_rng(0).normal(size=(2, 3, 4, 6)).astype(np.float32)

    def run(x):  # a "model" whose map is the input's first channel and whose score is the left half's mean
        return [x[:, :1], x[:, 0, :, :3].mean(axis=(1, 2))]

    plain_map, plain_score = run_with_flips(run, batch, [])
    flipped_map, flipped_score = run_with_flips(run, batch, ["hflip", "vflip"])
    np.testing.assert_allclose(flipped_map, plain_map, atol=1e-6)  # spatial outputs are flipped back
    expected = (plain_score + batch[:, 0, :, 3:].mean(axis=(1, 2)) + batch[:, 0, ::-1, :3].mean(axis=(1, 2))) / 3
    np.testing.assert_allclose(flipped_score, expected, atol=1e-6)
    with pytest.raises(ValueError, match="unknown test-time flip"):
        run_with_flips(run, batch, ["rotate"])


def test_predictor_applies_the_configured_flips(tiny_models_dir, tmp_path, lesion_jpeg):
    for path in tiny_models_dir.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    config = json.loads((tmp_path / "classification.json").read_text())
    (tmp_path / "classification.json").write_text(json.dumps({**config, "test_time_flips": ["hflip"]}))
    plain = Predictor.from_dir(tiny_models_dir).predict(lesion_jpeg)
    flipped = Predictor.from_dir(tmp_path).predict(lesion_jpeg)
    image = Predictor.from_dir(tiny_models_dir).load(lesion_jpeg)[0]
    mirrored = Predictor.from_dir(tiny_models_dir).predict_arrays([image[:, ::-1]], [(400, 300)], ["m"])[0]
    expected = (plain.melanoma_probability + mirrored.melanoma_probability) / 2
    assert flipped.melanoma_probability == pytest.approx(expected, abs=1e-5)


def test_worker_threads_sleep_between_calls_unless_asked(tiny_models_dir):
    def spinning(predictor):
        return {
            model.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
            for model in (predictor.segmenter, predictor.classifier)
        }

    assert spinning(Predictor.from_dir(tiny_models_dir)) == {"0"}
    assert spinning(Predictor.from_dir(tiny_models_dir, spinning=True)) == {"1"}


def test_measurements_are_in_the_original_photos_pixels(predictor, tmp_path):
    # The same lesion as a 400x300 photo and as a 2400x1800 one, which is analysed at 1024x768 (WORK_MAX_SIDE).
    image, _ = synthetic_lesion(300, seed=3)
    small = Image.fromarray(image).resize((400, 300))
    small.save(tmp_path / "small.png")
    small.resize((2400, 1800), Image.Resampling.BILINEAR).save(tmp_path / "big.png")
    small_result, big_result = predictor.predict(tmp_path / "small.png"), predictor.predict(tmp_path / "big.png")
    assert big_result.image.shape[:2] == (768, 1024)  # analysed smaller...
    small_m, big_m = small_result.measurements, big_result.measurements
    assert small_m.area_pixels > 0
    # ...but measured in the photo's own pixels: 6x the diameter, 36x the area, the same shape numbers.
    assert big_m.equivalent_diameter_px == pytest.approx(6 * small_m.equivalent_diameter_px, rel=0.03)
    assert big_m.area_pixels == pytest.approx(36 * small_m.area_pixels, rel=0.06)
    assert big_m.area_pixels == pytest.approx(big_result.lesion_mask.sum(), rel=0.03)
    assert big_m.area_fraction == pytest.approx(small_m.area_fraction, abs=0.01)
    assert big_m.asymmetry == pytest.approx(small_m.asymmetry, abs=0.05)


def test_loading_the_models_leaves_no_telemetry_files(tiny_models_dir, tmp_path):
    """ONNX Runtime keeps a device id and usage events under ~/.cache and $TMPDIR unless the package opts out."""
    import os
    import subprocess
    import sys

    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    environment = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    environment.update(HOME=str(home), TMPDIR=str(temp))
    code = f"from melanoma.inference.predictor import Predictor; Predictor.from_dir({str(tiny_models_dir)!r})"
    subprocess.run([sys.executable, "-c", code], env=environment, check=True, timeout=120)
    assert [p for p in (*home.rglob("*"), *temp.rglob("*")) if p.is_file()] == []


def test_a_crop_classifier_served_with_another_segmenter_than_it_was_fitted_with_is_flagged(tiny_models_dir, tmp_path):
    import shutil

    from melanoma.inference.predictor import Predictor

    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir, models)
    config = json.loads((models / "classification.json").read_text())
    segmenter = json.loads((models / "segmentation.json").read_text())["onnx_sha256"]
    crop = {"source": "lesion_mask", "margin": 0.2, "segmenter_onnx_sha256": segmenter}
    (models / "classification.json").write_text(json.dumps({**config, "input_crop": crop}))
    before = Predictor.from_dir(models).warnings  # the segmenter it was fitted with
    assert not any("another segmenter" in warning for warning in before)
    crop["segmenter_onnx_sha256"] = "0" * 64  # fitted with another segmenter than the one beside it now
    (models / "classification.json").write_text(json.dumps({**config, "input_crop": crop}))
    (warning,) = [w for w in Predictor.from_dir(models).warnings if w not in before]
    assert "fitted with another segmenter than the one beside it now" in warning


def test_a_threshold_fitted_on_too_few_images_is_flagged_wherever_the_model_is_served(tiny_models_dir, tmp_path):
    import shutil

    from melanoma.inference.predictor import Predictor

    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir, models)
    config = json.loads((models / "classification.json").read_text())
    validation = {key: value for key, value in config["validation"].items() if key != "warning"}
    (models / "classification.json").write_text(json.dumps({**config, "validation": validation}))
    assert not any("fitted on" in warning for warning in Predictor.from_dir(models).warnings)
    few = "threshold fitted on 3 melanoma and 5 other validation images: re-fit it"
    (models / "classification.json").write_text(json.dumps({**config, "validation": {**validation, "warning": few}}))
    (warning,) = [w for w in Predictor.from_dir(models).warnings if "fitted on" in w]
    assert warning == f"classification.json in {models}: {few}"


@pytest.mark.parametrize(("kept", "missing"), [("classification", "segmenter"), ("segmentation", "classifier")])
def test_a_folder_with_one_model_says_what_its_outputs_lack(tiny_models_dir, tmp_path, kept, missing):
    import shutil

    for suffix in (".onnx", ".json"):
        shutil.copy(tiny_models_dir / f"{kept}{suffix}", tmp_path / f"{kept}{suffix}")
    (warning,) = Predictor.from_dir(tmp_path).warnings
    assert f"holds no {missing}" in warning
    assert not [w for w in Predictor.from_dir(tiny_models_dir).warnings if "holds no" in w]


def test_a_copy_of_a_training_image_is_flagged_whatever_its_name(
    predictor, tiny_models_dir, shared_synthetic_isic_dir, tmp_path
):
    train = sorted((shared_synthetic_isic_dir / "images" / "train").glob("*.jpg"))
    val = sorted((shared_synthetic_isic_dir / "images" / "val").glob("*.jpg"))
    with Image.open(train[0]) as image:
        image.resize((200, 150)).save(tmp_path / "upload.png")  # renamed, enlarged to another shape, another format
    codes = [{c.code for c in predictor.predict(path).quality_checks} for path in (*train, tmp_path / "upload.png")]
    assert all("training_image" in fired for fired in codes)
    result = predictor.predict(tmp_path / "upload.png")
    assert result.decision_text.endswith(
        "; the image is a copy of one the models were trained on, so this is no test of them"
    )
    # the validation images did not train the networks (they chose the epoch and threshold), nor does a new lesion
    for path in val:
        assert "training_image" not in {c.code for c in predictor.predict(path).quality_checks}
    # a folder whose configs keep no fingerprints (exported before they were kept): nothing to compare with
    for task in ("segmentation", "classification"):
        config = json.loads((tiny_models_dir / f"{task}.json").read_text())
        del config["training"]["data"]["image_fingerprints"]
        (tmp_path / f"{task}.json").write_text(json.dumps(config))
        (tmp_path / f"{task}.onnx").write_bytes((tiny_models_dir / f"{task}.onnx").read_bytes())
    assert "training_image" not in {c.code for c in Predictor.from_dir(tmp_path).predict(train[0]).quality_checks}
