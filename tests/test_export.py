"""ONNX export: parity with PyTorch, dynamic batch, the activation map, the model config."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from melanoma.inference.export import OPSET, load_run_model, pytorch_reference


@pytest.mark.parametrize("task", ["segmentation", "classification"])
@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_matches_pytorch(tiny_runs, tiny_models_dir, task, batch):
    model, config, _ = load_run_model(tiny_runs[task])
    session = ort.InferenceSession(str(tiny_models_dir / f"{task}.onnx"), providers=["CPUExecutionProvider"])
    size = config.data.image_size
    inputs = np.random.default_rng(batch).normal(0, 1, (batch, 3, size, size)).astype(np.float32)
    expected = pytorch_reference(model, task, inputs)
    actual = session.run(None, {"image": inputs})
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("attention", "interpolation"), [("scse", "nearest"), ("none", "bilinear")])
def test_decoder_variants_export_with_parity(tmp_path, attention, interpolation):
    from melanoma.inference.export import export_onnx
    from melanoma.models import build_segmenter

    torch.manual_seed(0)
    model = build_segmenter(
        pretrained=False,
        decoder_channels=[32, 16, 16, 8, 8],
        decoder_attention=attention,
        decoder_interpolation=interpolation,
    ).eval()
    export_onnx(model, "segmentation", 64, tmp_path / "segmentation.onnx")
    inputs = np.random.default_rng(0).normal(0, 1, (2, 3, 64, 64)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "segmentation.onnx"), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {"image": inputs})
    (expected,) = pytorch_reference(model, "segmentation", inputs)
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_colour_constancy_exports_with_parity(tmp_path, task):
    from melanoma.config import ModelConfig
    from melanoma.inference.export import export_onnx
    from melanoma.models import build_model

    torch.manual_seed(0)
    settings = ModelConfig(
        pretrained=False, decoder_channels=[32, 16, 16, 8, 8], head_init="timm", colour_constancy="shades_of_gray"
    )
    model = build_model(task, settings).eval()
    if task == "classification":  # timm's head init gives logits ~35 (probability 1.0): scale them to order 1
        with torch.no_grad():
            model.classifier.weight.mul_(0.05)
    export_onnx(model, task, 64, tmp_path / f"{task}.onnx")
    inputs = np.random.default_rng(0).uniform(-0.9, 0.9, (2, 3, 64, 64)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / f"{task}.onnx"), providers=["CPUExecutionProvider"])
    actual = session.run(None, {"image": inputs})
    expected = pytorch_reference(model, task, inputs)
    assert any(node.op_type == "Pow" for node in onnx.load(tmp_path / f"{task}.onnx").graph.node)  # the step is in
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_onnx_graph_is_valid_with_named_io_and_opset(tiny_models_dir):
    for task, outputs in (
        ("segmentation", ["lesion_probability"]),
        ("classification", ["melanoma_probability", "activation_map"]),
    ):
        graph = onnx.load(str(tiny_models_dir / f"{task}.onnx"))
        onnx.checker.check_model(graph)
        assert [i.name for i in graph.graph.input] == ["image"]
        assert [o.name for o in graph.graph.output] == outputs
        assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= OPSET


def test_activation_map_averages_to_the_logit(tiny_runs):
    model, config, _ = load_run_model(tiny_runs["classification"])
    inputs = (
        np.random.default_rng(0).normal(0, 1, (2, 3, config.data.image_size, config.data.image_size)).astype(np.float32)
    )
    probability, cam = pytorch_reference(model, "classification", inputs)
    logit = cam.mean(axis=(1, 2)) + model.classifier.bias.item()
    np.testing.assert_allclose(torch.sigmoid(torch.from_numpy(logit)).numpy(), probability, atol=1e-5)


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_model_config_carries_preprocessing_threshold_metrics_and_provenance(tiny_models_dir, task):
    config = json.loads((tiny_models_dir / f"{task}.json").read_text())
    assert config["task"] == task
    assert config["input_size"] == 64
    assert config["mean"] == [0.5, 0.5, 0.5] and config["std"] == [0.5, 0.5, 0.5]
    assert config["resize"] == "squash"
    # Serving resizes as training did: OpenCV-style bilinear from the prepared (64 px synthetic) training images.
    assert config["resize_filter"] == "linear" and config["prepared_size"] == 64
    assert 0.0 < config["threshold"] < 1.0
    assert config["training"]["data"]["n_train"] == 8
    assert config["training"]["history"]
    assert config["validation"]["n"] == 4
    if task == "segmentation":
        assert set(config["postprocess"]) == {"largest_component", "fill_holes"}
        assert {"jaccard", "thresholded_jaccard", "dice"} <= set(config["validation"])
    else:
        assert {"auc", "sensitivity", "specificity", "ci95"} <= set(config["validation"])
        # 4 validation images cannot be cross-fitted over 5 folds: recorded as skipped, with the reason
        assert "at least 5 images of each class" in config["validation"]["cross_fitted"]["skipped"]
        assert (tiny_models_dir / "roc_validation.png").stat().st_size > 1000


def _pads_computed_at_run_time(graph) -> list[str]:
    constants = {i.name for i in graph.initializer} | {
        o for n in graph.node if n.op_type == "Constant" for o in n.output
    }
    return [n.name for n in graph.node if n.op_type == "Pad" and len(n.input) > 1 and n.input[1] not in constants]


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_exported_same_padding_is_constant(tiny_runs, tiny_models_dir, tmp_path, task):
    """TF-'SAME' pads are frozen at export (needed for int8); the raw torch export computes them at run time."""
    from melanoma.inference.export import ClassificationGraph, SegmentationGraph, freeze_dynamic_pads

    exported = onnx.load(str(tiny_models_dir / f"{task}.onnx")).graph
    assert any(n.op_type == "Pad" for n in exported.node)
    assert _pads_computed_at_run_time(exported) == []
    assert not any(n.op_type == "Ceil" for n in exported.node)  # the shape arithmetic was pruned

    model, config, _ = load_run_model(tiny_runs[task])
    raw = tmp_path / "raw.onnx"
    graph = SegmentationGraph(model) if task == "segmentation" else ClassificationGraph(model)
    size = config.data.image_size
    torch.onnx.export(
        graph.eval(),
        (torch.zeros(1, 3, size, size),),
        str(raw),
        input_names=["image"],
        dynamic_axes={"image": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    assert _pads_computed_at_run_time(onnx.load(str(raw)).graph)
    frozen = tmp_path / "frozen.onnx"
    assert freeze_dynamic_pads(raw, frozen) > 0
    inputs = np.random.default_rng(0).normal(0, 1, (2, 3, size, size)).astype(np.float32)
    before = ort.InferenceSession(str(raw), providers=["CPUExecutionProvider"]).run(None, {"image": inputs})
    after = ort.InferenceSession(str(frozen), providers=["CPUExecutionProvider"]).run(None, {"image": inputs})
    for want, got in zip(before, after, strict=True):
        np.testing.assert_array_equal(got, want)


def test_flips_off_serves_one_view_and_records_both_scores(tiny_runs, tmp_path):
    from melanoma.inference.export import export_run
    from melanoma.inference.quantize import quantize_models

    out = export_run(tiny_runs["segmentation"], tmp_path / "models", flips="off")
    config = json.loads((out / "segmentation.json").read_text())
    assert config["test_time_flips"] == [] and config["test_time_flips_mode"] == "off"
    assert set(config["validation"]["test_time_flips_best_jaccard"]) == {"none", "hflip+vflip"}
    validation = config["validation"]
    assert validation["postprocess_ablation_jaccard"]["none"] == validation["test_time_flips_best_jaccard"]["none"]
    int8 = quantize_models(out, tmp_path / "int8", ["segmentation"], calibration_images=4)["segmentation"]
    assert int8["test_time_flips"] == [] and int8["test_time_flips_mode"] == "off"  # the float model's rule
    with pytest.raises(ValueError, match="test-time flips mode"):
        export_run(tiny_runs["segmentation"], tmp_path / "bad", flips="sometimes")


def test_classifier_flips_make_a_mirrored_image_score_the_same(tiny_runs, tmp_path):
    from melanoma.inference.export import export_run
    from melanoma.inference.predictor import Predictor

    rng = np.random.default_rng(0)
    image = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    mirrored = np.ascontiguousarray(image[:, ::-1])
    plain = Predictor.from_dir(export_run(tiny_runs["classification"], tmp_path / "plain"))
    served = Predictor.from_dir(export_run(tiny_runs["classification"], tmp_path / "hflip", classifier_flips=["hflip"]))
    assert plain.classifier.config["test_time_flips"] == []
    assert served.classifier.config["test_time_flips"] == ["hflip"]
    (p_image,), *_ = served.classify([image])
    (p_mirrored,), *_ = served.classify([mirrored])
    assert p_image == pytest.approx(p_mirrored, abs=1e-6)
    (q_image,), *_ = plain.classify([image])
    (q_mirrored,), *_ = plain.classify([mirrored])
    assert p_image == pytest.approx((q_image + q_mirrored) / 2, abs=1e-6)  # the mean over the two views
    with pytest.raises(ValueError, match="classification runs"):
        export_run(tiny_runs["segmentation"], tmp_path / "bad", classifier_flips=["hflip"])
    with pytest.raises(ValueError, match="unknown classifier flip"):
        export_run(tiny_runs["classification"], tmp_path / "bad", classifier_flips=["rot90"])


@pytest.fixture(scope="module")
def second_classifier(shared_synthetic_isic_dir, tmp_path_factory):
    """Another tiny classification run (other seed, so other weights), to ensemble with ``tiny_runs``'s."""
    from conftest import tiny_config

    from melanoma.training.engine import fit

    run_dir = tmp_path_factory.mktemp("run-classification-seed1")
    fit(tiny_config("classification", shared_synthetic_isic_dir, seed=1), run_dir)
    return run_dir


def test_ensemble_is_one_graph_averaging_its_members(tiny_runs, second_classifier, tmp_path):
    from melanoma.inference.export import export_run
    from melanoma.inference.predictor import Predictor

    first, second = tiny_runs["classification"], second_classifier
    out = export_run(first, tmp_path / "ensemble", ensemble=[second])
    config = json.loads((out / "classification.json").read_text())
    assert [m["run"] for m in config["ensemble"]["members"]] == [str(first), str(second)]
    assert config["arch"] == "tf_efficientnet_lite0+tf_efficientnet_lite0"
    assert all(m["training"]["history"] for m in config["ensemble"]["members"])
    assert config["training"]["command"] == config["ensemble"]["members"][0]["training"]["command"]
    assert 0.0 < config["threshold"] < 1.0 and "auc" in config["validation"]  # calibrated on the mean

    inputs = np.random.default_rng(0).normal(0, 1, (3, 3, 64, 64)).astype(np.float32)
    members = [pytorch_reference(load_run_model(run)[0], "classification", inputs) for run in (first, second)]
    assert not np.allclose(members[0][0], members[1][0], atol=1e-3)  # two different models, so the mean is a test
    session = ort.InferenceSession(str(out / "classification.onnx"), providers=["CPUExecutionProvider"])
    probability, cam = session.run(None, {"image": inputs})
    np.testing.assert_allclose(probability, (members[0][0] + members[1][0]) / 2, atol=1e-4, rtol=0)
    np.testing.assert_allclose(cam, (members[0][1] + members[1][1]) / 2, atol=1e-4, rtol=0)
    ensemble = [load_run_model(run)[0] for run in (first, second)]
    for got, want in zip((probability, cam), pytorch_reference(ensemble, "classification", inputs), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)

    import io

    from PIL import Image

    upload = io.BytesIO()
    Image.fromarray(np.full((80, 96, 3), 120, np.uint8)).save(upload, format="PNG")
    result = Predictor.from_dir(out).predict(upload.getvalue(), name="upload.png")
    assert 0.0 <= result.melanoma_probability <= 1.0 and result.heatmap is not None


@pytest.fixture(scope="module")
def third_classifier(shared_synthetic_isic_dir, tmp_path_factory):
    """A third tiny classification run (seed 2), to add to an exported ensemble of ``tiny_runs``'s and seed 1's."""
    from conftest import tiny_config

    from melanoma.training.engine import fit

    run_dir = tmp_path_factory.mktemp("run-classification-seed2")
    fit(tiny_config("classification", shared_synthetic_isic_dir, seed=2), run_dir)
    return run_dir


def _outputs(folder, inputs):
    session = ort.InferenceSession(str(folder / "classification.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": inputs})


def test_a_network_added_to_an_exported_ensemble_serves_the_mean_of_all(
    tiny_runs, second_classifier, third_classifier, tmp_path
):
    from melanoma.cli import main
    from melanoma.inference.export import add_to_export, export_run
    from melanoma.inference.predictor import Predictor

    first, second, third = tiny_runs["classification"], second_classifier, third_classifier
    pair = export_run(first, tmp_path / "pair", ensemble=[second])
    (pair / "something_else.txt").write_text("kept")
    before = {path.name: path.read_bytes() for path in pair.iterdir()}
    trio = tmp_path / "trio"
    assert main(["export", str(third), "--add-to", str(pair), "--out", str(trio)]) == 0  # through the CLI
    reference = export_run(first, tmp_path / "reference", ensemble=[second, third])
    assert {path.name: path.read_bytes() for path in pair.iterdir()} == before  # read, not changed

    inputs = np.random.default_rng(0).normal(0, 1, (3, 3, 64, 64)).astype(np.float32)
    third_alone = pytorch_reference(load_run_model(third)[0], "classification", inputs)
    assert not np.allclose(_outputs(pair, inputs)[0], third_alone[0], atol=1e-3)  # so the weights are tested
    for got, want in zip(_outputs(trio, inputs), _outputs(reference, inputs), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)  # (2 * pair + third) / 3 = mean of the three

    added, built = (json.loads((folder / "classification.json").read_text()) for folder in (trio, reference))
    assert added["arch"] == built["arch"] == "+".join(["tf_efficientnet_lite0"] * 3)
    assert [m["run"] for m in added["ensemble"]["members"]] == [str(first), str(second), str(third.resolve())]
    assert added["training"] == built["training"]
    paired = json.loads((pair / "classification.json").read_text())
    assert added["ensemble"]["added_to"] == {
        "members": 2,
        "exported": paired["exported"],
        "onnx_sha256": paired["onnx_sha256"],
        "threshold": paired["threshold"],
    }
    assert added["threshold"] == pytest.approx(built["threshold"], abs=1e-5)  # calibrated anew, on the mean of 3
    assert added["validation"]["auc"] == pytest.approx(built["validation"]["auc"])
    assert Predictor.from_dir(trio).classifier.config["onnx_sha256"] == added["onnx_sha256"]

    # One network, then another: the first export had no ensemble.
    single = export_run(first, tmp_path / "single")
    single_data = json.loads((single / "classification.json").read_text())["training"]["data"]
    both = add_to_export(second, single, tmp_path / "both")
    for got, want in zip(_outputs(both, inputs), _outputs(pair, inputs), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    both_config = json.loads((both / "classification.json").read_text())
    assert len(both_config["ensemble"]["members"]) == 2
    # The images' fingerprints are kept once, in the config's own record, not in every member's (about 92 KB each
    # for ISIC 2017), and they are those of the images listed beside them.
    for config in (added, built, both_config):
        assert all("image_fingerprints" not in m["training"]["data"] for m in config["ensemble"]["members"])
        data = config["training"]["data"]
        assert data["image_fingerprints"] == single_data["image_fingerprints"]
        assert data["image_ids"] == single_data["image_ids"]


def test_an_export_keeps_the_fingerprints_of_the_images_it_lists(tiny_runs, shared_synthetic_isic_dir, tmp_path):
    from melanoma.data.isic import read_isic2017
    from melanoma.inference.export import export_run
    from melanoma.inference.fingerprint import decode_fingerprints, fingerprint
    from melanoma.inference.image_io import load_image

    data = json.loads((export_run(tiny_runs["segmentation"], tmp_path / "one") / "segmentation.json").read_text())
    data = data["training"]["data"]
    for part, split in (("train", "train"), ("validation", "val")):
        samples = {s.image_id: s for s in read_isic2017(shared_synthetic_isic_dir, split)}
        want = [fingerprint(load_image(samples[i].image_path)) for i in data["image_ids"][part]]
        np.testing.assert_array_equal(decode_fingerprints(data["image_fingerprints"][part]), np.stack(want))


def test_adding_to_an_exported_classifier_refuses_what_would_not_serve_as_trained(
    tiny_runs, second_classifier, third_classifier, tmp_path
):
    import shutil

    from melanoma.inference.export import add_to_export, export_run

    first, second = tiny_runs["classification"], second_classifier
    pair = export_run(first, tmp_path / "pair", ensemble=[second])
    with pytest.raises(ValueError, match="already a member"):
        add_to_export(second, pair, tmp_path / "twice")
    with pytest.raises(ValueError, match="only a classifier"):
        add_to_export(tiny_runs["segmentation"], pair, tmp_path / "segmenter")
    with pytest.raises(FileNotFoundError, match="no classification.json"):
        add_to_export(first, tmp_path, tmp_path / "nothing")

    def altered(name, change):
        folder = tmp_path / name
        shutil.copytree(pair, folder)
        config = json.loads((folder / "classification.json").read_text())
        change(config)
        (folder / "classification.json").write_text(json.dumps(config))
        return folder

    cases = {
        "is not the network": altered("digest", lambda c: c.update(onnx_sha256="0" * 64)),
        "input_size 64 vs 32": altered("size", lambda c: c.update(input_size=32)),
        "int8-quantized": altered("int8", lambda c: c.update(quantization={})),
        "other images": altered(
            "images", lambda c: c["ensemble"]["members"][0]["training"]["data"]["image_ids"]["validation"].pop()
        ),
    }
    for match, folder in cases.items():
        with pytest.raises(ValueError, match=match):
            add_to_export(third_classifier, folder, tmp_path / "x")
    assert not (tmp_path / "x").exists()  # refused before any folder was made


def test_ensemble_members_must_take_the_same_input(tiny_runs, shared_synthetic_isic_dir, tmp_path):
    from conftest import tiny_config

    from melanoma.inference.export import export_run
    from melanoma.training.engine import fit

    with pytest.raises(ValueError, match="combines classifiers"):
        export_run(tiny_runs["segmentation"], tmp_path / "a", ensemble=[tiny_runs["classification"]])
    with pytest.raises(ValueError, match="task segmentation vs classification"):
        export_run(tiny_runs["classification"], tmp_path / "b", ensemble=[tiny_runs["segmentation"]])
    small = tmp_path / "run-32"
    fit(tiny_config("classification", shared_synthetic_isic_dir, **{"data.image_size": 32}), small)
    with pytest.raises(ValueError, match="data.image_size 32 vs 64"):
        export_run(tiny_runs["classification"], tmp_path / "c", ensemble=[small])


def test_a_failed_export_leaves_the_model_folder_as_it_was(second_classifier, tiny_models_dir, tmp_path, monkeypatch):
    import shutil

    from melanoma.inference import calibrate
    from melanoma.inference.export import export_run
    from melanoma.inference.predictor import Predictor

    folder = tmp_path / "models"
    shutil.copytree(tiny_models_dir, folder)
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    # Another classifier (other weights) into the folder: refused arguments are refused before anything is written...
    with pytest.raises(ValueError, match="unknown classifier flip"):
        export_run(second_classifier, folder, classifier_flips=["rot90"])
    assert {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()} == before

    # ...and a failure (or Ctrl-C) during calibration leaves the folder's network and config a matching pair.
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(calibrate, "calibrate_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_run(second_classifier, folder)
    assert {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()} == before
    assert Predictor.from_dir(folder).classifier is not None
    # Without the failure the new network replaces the old one, config and all.
    monkeypatch.undo()
    export_run(second_classifier, folder)
    assert (folder / "classification.onnx").read_bytes() != before["classification.onnx"]
    assert Predictor.from_dir(folder).classifier is not None


def test_options_that_do_not_apply_are_refused_and_leave_no_folder(tiny_runs, tiny_models_dir, tmp_path):
    from melanoma.inference.export import export_run

    out = tmp_path / "new" / "models"
    refused = [
        ({"flips": "off"}, tiny_runs["classification"], "applies to segmentation runs"),
        ({"flips": "sometimes"}, tiny_runs["segmentation"], "test-time flips mode"),
        ({"segmenter_dir": tiny_models_dir}, tiny_runs["classification"], "lesion-crop classifiers"),
        ({"segmenter_dir": tiny_models_dir}, tiny_runs["segmentation"], "lesion-crop classifiers"),
        ({"ensemble": [tiny_runs["classification"]]}, tiny_runs["classification"], "in the ensemble twice"),
    ]
    for options, run, message in refused:
        with pytest.raises(ValueError, match=message):
            export_run(run, out, **options)
    assert not (tmp_path / "new").exists()  # refused before any folder was made


def test_a_failed_export_into_a_new_folder_removes_it(tiny_runs, tmp_path, monkeypatch):
    from melanoma.inference import calibrate
    from melanoma.inference.export import export_run

    def failing(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(calibrate, "calibrate_model", failing)
    (tmp_path / "kept").mkdir()
    with pytest.raises(OSError, match="disk full"):
        export_run(tiny_runs["classification"], tmp_path / "kept" / "a" / "b")
    assert (tmp_path / "kept").is_dir() and not (tmp_path / "kept" / "a").exists()
    with pytest.raises(OSError, match="disk full"):
        export_run(tiny_runs["classification"], tmp_path / "kept")
    assert (tmp_path / "kept").is_dir()  # it was there before: kept, empty as it was


def test_export_fits_the_threshold_on_the_pixels_it_serves(tiny_models_dir, tmp_path, monkeypatch):
    """A big JPEG is decoded at reduced scale when served; export's calibration must see the same pixels, or the
    threshold it fits is off for a site's original-size photos."""
    from conftest import synthetic_lesion
    from PIL import Image

    from melanoma.data.samples import Sample
    from melanoma.inference.calibrate import batched_outputs, calibrate_classification
    from melanoma.inference.predictor import Predictor

    samples = []
    for index in range(4):
        lesion, _ = synthetic_lesion(256, seed=index)
        path = tmp_path / f"big{index}.jpg"
        Image.fromarray(lesion).resize((1600, 1200), Image.Resampling.BICUBIC).save(path, quality=90)
        samples.append(Sample(path.stem, path, None, index % 2, None, None))
    served = Predictor.from_dir(tiny_models_dir)
    expected = [served.load(sample.image_path)[0] for sample in samples]
    assert expected[0].shape[0] < 1200  # decoded at reduced scale
    seen = []
    original = Predictor.classify

    def recording(self, images, lesion_maps=None):
        seen.extend(images)
        return original(self, images, lesion_maps)

    monkeypatch.setattr(Predictor, "classify", recording)
    classifier = served.classifier
    calibrate_classification(classifier.session, samples, classifier.config, tmp_path / "out", served.segmenter)
    assert len(seen) == len(expected)
    for got, want in zip(seen, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    segmenter = served.segmenter
    alone = Predictor(segmenter, None, tiny_models_dir)  # the segmenter's export sees it as served on its own
    outputs = [output[0] for _, output in batched_outputs(segmenter, samples)]
    direct = segmenter.run([alone.load(sample.image_path)[0] for sample in samples])[0]
    np.testing.assert_allclose(np.stack(outputs), direct, atol=1e-6)


def test_member_runs_are_named_relative_to_the_working_directory_when_under_it(tmp_path, monkeypatch):
    from melanoma.inference.export import _run_path

    (tmp_path / "runs" / "a").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert _run_path("runs/a") == _run_path(tmp_path / "runs" / "a") == str(Path("runs") / "a")
    assert _run_path(tmp_path.parent) == str(tmp_path.parent.resolve())  # outside it: absolute


def test_a_run_joining_an_export_without_fingerprints_gives_it_its_own_for_the_same_images():
    from melanoma.inference.export import _with_fingerprints

    ids = {"train": ["a", "b"], "validation": ["c"]}
    prints = {"method": "m", "train": "AAAA", "validation": "BBBB"}
    old = {"command": "melanoma train ...", "data": {"image_ids": ids}}
    joined = _with_fingerprints(old, {"provenance": {"image_ids": ids, "image_fingerprints": prints}})
    assert joined["data"]["image_fingerprints"] == prints and "image_fingerprints" not in old["data"]  # a copy
    other = {"train": ["b", "a"], "validation": ["c"]}  # the prints follow the lists' order: not taken
    assert _with_fingerprints(old, {"provenance": {"image_ids": other, "image_fingerprints": prints}}) == old
    kept = {"data": {"image_ids": ids, "image_fingerprints": {"method": "m", "train": "CCCC", "validation": ""}}}
    assert _with_fingerprints(kept, {"provenance": {"image_ids": ids, "image_fingerprints": prints}}) == kept
