"""int8 quantization of exported models: a complete, re-calibrated model folder that tracks the float model."""

import json

import numpy as np
import onnx
import pytest

from melanoma.cli import main
from melanoma.inference.image_io import load_image
from melanoma.inference.predictor import Predictor, onnx_digest, onnx_session
from melanoma.inference.preprocess import resize_rgb, to_input
from melanoma.inference.quantize import quantize_models


@pytest.fixture(scope="module")
def quantized_dir(tiny_models_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8")
    assert main(["quantize", "--models", str(tiny_models_dir), "--out", str(out), "--calibration-images", "6"]) == 0
    return out


def test_quantized_folder_is_complete_and_says_how_it_was_made(tiny_models_dir, quantized_dir):
    for task in ("segmentation", "classification"):
        config = json.loads((quantized_dir / f"{task}.json").read_text())
        float_config = json.loads((tiny_models_dir / f"{task}.json").read_text())
        assert "int8" in config["quantization"]["method"]
        assert "training images" in config["quantization"]["calibration"]
        assert config["quantization"]["float_validation"] == float_config["validation"]
        assert config["validation"]["n"] == float_config["validation"]["n"]  # re-calibrated on the same images
        assert config["input_size"] == float_config["input_size"] and config["mean"] == float_config["mean"]
        ops = {n.op_type for n in onnx.load(str(quantized_dir / config["onnx_file"])).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        assert config["onnx_sha256"] == onnx_digest(quantized_dir / config["onnx_file"]) != float_config["onnx_sha256"]
    assert {p.name for p in tiny_models_dir.iterdir() if p.is_file()} <= {p.name for p in quantized_dir.iterdir()}


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_quantized_outputs_track_the_float_model(tiny_models_dir, quantized_dir, shared_synthetic_isic_dir, task):
    """On images like those it was calibrated on (held-out ones), the int8 graph stays close to the float one."""
    config = json.loads((tiny_models_dir / f"{task}.json").read_text())
    images = [load_image(p) for p in sorted((shared_synthetic_isic_dir / "images" / "val").glob("*.jpg"))]
    inputs = to_input([resize_rgb(i, config["input_size"]) for i in images], config["mean"], config["std"])
    want = onnx_session(tiny_models_dir / f"{task}.onnx").run(None, {"image": inputs})
    got = onnx_session(quantized_dir / f"{task}.onnx").run(None, {"image": inputs})
    for expected, actual in zip(want, got, strict=True):
        assert actual.shape == expected.shape
        if expected.ndim == 1:  # melanoma probabilities: float head, small drift
            np.testing.assert_allclose(actual, expected, atol=0.05)
        else:  # maps: same pattern
            assert np.corrcoef(actual.ravel(), expected.ravel())[0, 1] >= 0.95


def test_predictor_serves_the_quantized_folder(quantized_dir, shared_synthetic_isic_dir):
    image = next((shared_synthetic_isic_dir / "images" / "val").glob("*.jpg"))
    prediction = Predictor.from_dir(quantized_dir).predict(image)
    assert 0.0 <= prediction.melanoma_probability <= 1.0
    assert prediction.lesion_mask is not None


def test_refuses_to_overwrite_the_float_models(tiny_models_dir, capsys):
    assert main(["quantize", "--models", str(tiny_models_dir), "--out", str(tiny_models_dir)]) == 2
    assert "new folder" in capsys.readouterr().err


def test_only_the_asked_task_is_quantized(tiny_models_dir, tmp_path):
    out = tmp_path / "seg-int8"
    assert (
        main(
            [
                "quantize",
                "--models",
                str(tiny_models_dir),
                "--out",
                str(out),
                "--tasks",
                "segmentation",
                "--calibration-images",
                "4",
            ]
        )
        == 0
    )
    assert "quantization" in json.loads((out / "segmentation.json").read_text())
    assert "quantization" not in json.loads((out / "classification.json").read_text())


def test_quantizing_into_a_model_folder_updates_that_task_only(tiny_models_dir, tmp_path):
    import shutil

    target = tmp_path / "models"
    shutil.copytree(tiny_models_dir, target)
    (target / "segmentation_train_config.yaml").write_text("stale: true\n")
    (target / "MODEL_CARD.md").write_text("the card\n")
    classification_before = (target / "classification.json").read_text()
    source = tmp_path / "candidate"
    shutil.copytree(tiny_models_dir, source)
    quantize_models(source, target, ["segmentation"], calibration_images=4)
    assert (target / "segmentation_train_config.yaml").read_text() == (
        source / "segmentation_train_config.yaml"
    ).read_text()
    assert (target / "MODEL_CARD.md").read_text() == "the card\n"
    assert (target / "classification.json").read_text() == classification_before
    assert "quantization" in json.loads((target / "segmentation.json").read_text())


def test_default_tasks_are_the_models_the_folder_holds_and_a_missing_one_stops_before_any_work(
    tiny_models_dir, tmp_path, capsys
):
    import shutil

    segmenter_only = tmp_path / "seg"
    segmenter_only.mkdir()
    for name in ("segmentation.json", "segmentation.onnx"):
        shutil.copy(tiny_models_dir / name, segmenter_only / name)
    config = json.loads((segmenter_only / "segmentation.json").read_text())
    (segmenter_only / "segmentation.json").write_text(json.dumps({**config, "calibrated": False}))
    out = tmp_path / "nothing"
    command = ["quantize", "--models", str(segmenter_only), "--calibration-images", "4"]
    assert main([*command, "--out", str(out), "--tasks", "classification"]) == 2
    assert "holds no classification model; use --tasks segmentation" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written
    assert main([*command, "--out", str(tmp_path / "int8")]) == 0
    assert sorted(p.name for p in (tmp_path / "int8").glob("*.json")) == ["segmentation.json"]
    assert "calibrated" not in json.loads((tmp_path / "int8" / "segmentation.json").read_text())  # re-calibrated
    assert not list((tmp_path / "int8").glob(".*.partial"))


def test_quantize_refuses_a_site_threshold_and_a_crop_classifier_without_its_segmenter(tiny_models_dir, tmp_path):
    import shutil

    from melanoma.inference.quantize import _configs_to_quantize

    site = tmp_path / "site"
    shutil.copytree(tiny_models_dir, site)
    (site / "MODEL_CARD.md").write_text("# the float models\n")
    config = json.loads((site / "classification.json").read_text())
    (site / "classification.json").write_text(json.dumps({**config, "recalibration": {"images_dir": "/site"}}))
    with pytest.raises(ValueError, match="re-fitted for a site by `melanoma calibrate`.*quantize the exported models"):
        _configs_to_quantize(site, ["classification"], None)
    crop = tmp_path / "crop"
    crop.mkdir()
    shutil.copy(tiny_models_dir / "classification.onnx", crop)
    (crop / "classification.json").write_text(json.dumps({**config, "input_crop": {"margin": 0.2}}))
    with pytest.raises(FileNotFoundError, match="lesion-crop classifier.*holds no segmentation.json"):
        _configs_to_quantize(crop, None, None)
    # The float folder's card describes the float models: not copied into the int8 folder.
    assert main(["quantize", "--models", str(site), "--out", str(tmp_path / "q"), "--tasks", "segmentation",
                 "--calibration-images", "4"]) == 0  # fmt: skip
    assert not (tmp_path / "q" / "MODEL_CARD.md").exists() and (tmp_path / "q" / "classification.json").exists()


def test_quantize_repeats_the_few_images_warning_of_its_recalibration(tiny_models_dir, tmp_path, capsys):
    out = tmp_path / "cls-int8"
    command = ["quantize", "--models", str(tiny_models_dir), "--out", str(out), "--tasks", "classification"]
    assert main([*command, "--calibration-images", "4"]) == 0
    warning = json.loads((out / "classification.json").read_text())["validation"]["warning"]
    assert warning.startswith("threshold fitted on 2 melanoma and 2 other validation images")  # the synthetic split
    error = capsys.readouterr().err
    assert f"warning: {out / 'classification.json'}: {warning}" in error
    assert "classification int8 activation ranges" in error  # the silent ONNX Runtime pass has a progress bar


def test_bench_runtimes_times_the_int8_copy_beside_its_recorded_accuracy(tiny_models_dir, quantized_dir, tmp_path):
    import subprocess
    import sys

    from conftest import REPO_ROOT

    out = tmp_path / "runtimes.json"
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_runtimes.py"), "--models", str(tiny_models_dir)]
    command += ["--int8", str(quantized_dir), "--repeats", "1", "--json", str(out)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    report = json.loads(out.read_text())
    for task, metric in (("segmentation", "jaccard"), ("classification", "auc")):
        assert {"ort_2threads", "int8_ort_1thread"} <= set(report[task]["variants"])
        validation = report[task]["validation"]
        for which, folder in (("float", tiny_models_dir), ("int8", quantized_dir)):
            config = json.loads((folder / f"{task}.json").read_text())
            assert validation[which]["threshold"] == config["threshold"]
            assert validation[which][metric] == config["validation"][metric]
