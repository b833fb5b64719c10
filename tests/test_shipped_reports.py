"""The validation numbers README and the model card quote, recomputed from the shipped models and the real data.

``tests/test_readme.py`` and ``tests/test_model_card.py`` tie the documents to ``models/eval/*.json``; these tests
tie those reports (and the configs the app shows) to what the shipped ONNX models score now.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

REPO_ROOT = Path(__file__).resolve().parents[1]
EVAL = REPO_ROOT / "models" / "eval"
SEGMENTATION_METRICS = ("n", "jaccard", "thresholded_jaccard", "dice")
CLASSIFICATION_METRICS = ("n", "n_positive", "auc", "average_precision", "threshold", "sensitivity", "specificity")


def _assert_close(got, want, where: str = "") -> None:
    """Nested dicts/lists equal, numbers within 1e-4 (reports keep 4 decimals, some sources more)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), where
        for key in want:
            _assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for index, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_close(g, w, f"{where}[{index}]")
    elif isinstance(want, float) or isinstance(got, float):
        assert got == pytest.approx(want, abs=1e-4), where
    else:
        assert got == want, where


def _report(name: str) -> dict:
    return json.loads((EVAL / name).read_text())


def _config(task: str) -> dict:
    return json.loads((REPO_ROOT / "models" / f"{task}.json").read_text())


def test_the_configs_the_app_shows_agree_with_the_validation_reports():
    segmentation, classification = _config("segmentation")["validation"], _config("classification")["validation"]
    report = _report("segmentation_val.json")
    assert {k: segmentation[k] for k in SEGMENTATION_METRICS} == {k: report[k] for k in SEGMENTATION_METRICS}
    assert _config("segmentation")["threshold"] == report["threshold"]
    report = _report("classification_val.json")
    assert {k: classification[k] for k in CLASSIFICATION_METRICS} == {k: report[k] for k in CLASSIFICATION_METRICS}
    _assert_close(classification["ci95"], report["ci95"], "ci95")
    _assert_close(classification["cross_fitted"], report["cross_fitted"], "cross_fitted")


#: Reports that describe the shipped models as they are now (the rest are history, studies of recipes or of
#: other networks). Each names the networks it measured (``networks``), which must be the shipped ones.
SHIPPED_REPORTS = (
    "segmentation_val.json",
    "segmentation_fullres_val.json",
    "classification_val.json",
    "small_images.json",
    "aspect_ratios.json",
    "vignettes.json",
    "greyscale_images.json",
    "bench_consistency.json",
    "bench_inference.json",
    "bench_runtimes.json",
    "bench_app.json",
    "classification_tta_trio.json",
    "duplicates.json",
)


#: What evaluating the shipped models on the 150 ISIC 2017 validation images says of them: all are validation images by
#: name, and three are copies of training images under other names (``benchmarks/duplicates.py`` lists the pairs).
SEEN_ON_VALIDATION = {
    "train": 3,
    "validation": 150,
    "by_content": True,
    "copies": [
        {"image": "ISIC_0012127", "copy_of": "ISIC_0012970", "part": "train", "distance": 0},
        {"image": "ISIC_0015124", "copy_of": "ISIC_0000171", "part": "train", "distance": 20},
        {"image": "ISIC_0015313", "copy_of": "ISIC_0000215", "part": "train", "distance": 52},
    ],
    "name_only": [],  # each validation image is the very image its name says
}


def test_the_reports_of_the_shipped_models_measured_the_networks_shipped_now():
    shipped = {
        task: {key: _config(task)[key] for key in ("arch", "exported", "onnx_sha256")}
        for task in ("segmentation", "classification")
    }
    for name in SHIPPED_REPORTS:
        networks = _report(name).get("networks")
        assert networks, f"models/eval/{name} does not say which networks it measured: run its command again"
        for task, network in networks.items():
            assert network == shipped[task], (
                f"models/eval/{name} measured another {task} network than the shipped one (exported "
                f"{network['exported']}, not {shipped[task]['exported']}): run its command again"
            )


@pytest.mark.data
def test_the_shipped_segmenter_scores_what_its_report_says(isic_data_dir):
    from melanoma.inference.evaluate import evaluate_segmentation
    from melanoma.inference.predictor import Predictor

    report = _report("segmentation_val.json")
    scores = evaluate_segmentation(
        Predictor.from_dir(REPO_ROOT / "models"), isic_data_dir / "images" / "val", isic_data_dir / "masks" / "val"
    )
    for metric in SEGMENTATION_METRICS:
        assert scores[metric] == pytest.approx(report[metric], abs=1e-4), metric
    for metric, interval in report["ci95"].items():  # seeded bootstrap: the same resamples
        assert scores["ci95"][metric] == pytest.approx(interval, abs=1e-4), metric
    assert scores["failures"] == report["failures"]
    # the shipped config lists its images, so scoring its own validation images says so; its fingerprints find the
    # three that are copies of training images under other names (models/eval/duplicates.json)
    assert scores["seen_in_training"] == report["seen_in_training"] == SEEN_ON_VALIDATION


@pytest.mark.data
def test_the_shipped_classifier_scores_what_its_report_says(isic_data_dir):
    from melanoma.inference.evaluate import evaluate_classification
    from melanoma.inference.predictor import Predictor

    report = _report("classification_val.json")
    scores = evaluate_classification(
        Predictor.from_dir(REPO_ROOT / "models"),
        isic_data_dir / "images" / "val",
        isic_data_dir / "labels" / "ISIC-2017_Validation_Part3_GroundTruth.csv",
    )
    for metric in (*CLASSIFICATION_METRICS, "balanced_accuracy", "youden_threshold"):
        assert scores[metric] == pytest.approx(report[metric], abs=1e-4), metric
    for metric, interval in report["ci95"].items():
        assert scores["ci95"][metric] == pytest.approx(interval, abs=1e-4), metric
    _assert_close(scores["cross_fitted"], report["cross_fitted"], "cross_fitted")
    assert scores["seen_in_training"] == report["seen_in_training"] == SEEN_ON_VALIDATION


@pytest.mark.data
def test_the_shipped_configs_list_the_official_splits_they_trained_on(isic_data_dir):
    from melanoma.data.isic import read_isic2017

    train = [s.image_id for s in read_isic2017(isic_data_dir, "train")]
    val = [s.image_id for s in read_isic2017(isic_data_dir, "val")]
    for task in ("segmentation", "classification"):
        config = _config(task)
        records = [m["training"] for m in config.get("ensemble", {}).get("members", [])] + [config["training"]]
        for record in records:
            assert record["data"]["image_ids"] == {"train": train, "validation": val}, task


@pytest.mark.data
def test_the_shipped_configs_keep_the_fingerprints_of_the_images_they_list(isic_data_dir):
    from melanoma.data.isic import read_isic2017
    from melanoma.inference.fingerprint import FINGERPRINT_METHOD, decode_fingerprints, fingerprint_files

    splits = {"train": read_isic2017(isic_data_dir, "train"), "validation": read_isic2017(isic_data_dir, "val")}
    want = {part: np.stack(fingerprint_files([s.image_path for s in samples])) for part, samples in splits.items()}
    for task in ("segmentation", "classification"):
        data = _config(task)["training"]["data"]
        assert data["image_fingerprints"]["method"] == FINGERPRINT_METHOD, task
        for part, prints in want.items():
            np.testing.assert_array_equal(decode_fingerprints(data["image_fingerprints"][part]), prints)
        members = _config(task).get("ensemble", {}).get("members", [])
        assert all("image_fingerprints" not in m["training"]["data"] for m in members)  # kept once


@pytest.mark.data
def test_the_copies_among_the_isic_images_are_the_ones_the_report_lists(isic_data_dir):
    from PIL import Image

    from melanoma.inference.image_io import load_image

    study = load_script("duplicates")
    report = _report("duplicates.json")
    ids = [(split, p.stem) for split in study.SPLITS for p in sorted((isic_data_dir / "images" / split).glob("*.jpg"))]
    images = [Image.fromarray(load_image(isic_data_dir / "images" / split / f"{i}.jpg")) for split, i in ids]
    table = np.stack([study.fingerprint(image) for image in images])
    near = study.pair_distances(table)
    found = {
        (ids[a][1], ids[b][1], int(near[a, b]))
        for a in range(len(ids))
        for b in range(a + 1, len(ids))
        if near[a, b] <= study.COPY_DISTANCE
    }
    assert found == {(p["a"], p["b"], p["distance"]) for p in report["pairs"]}
    # every pair the limit takes for copies was looked at and judged one lesion; the nearest different lesions lie
    # beyond the limit
    assert {study.judged(a, b) for a, b, _ in found} == {study.SAME}
    different = [p["distance"] for p in report["nearest_beyond"] if p["judged_by_eye"] == study.DIFFERENT]
    assert different and min(different) > study.COPY_DISTANCE
    assert report["validation"]["left_out"] == sorted(c["image"] for c in SEEN_ON_VALIDATION["copies"])


@pytest.mark.data
def test_the_predictor_flags_the_test_images_that_copy_training_images_and_only_those(isic_data_dir):
    from melanoma.inference.predictor import Predictor

    report = _report("duplicates.json")
    in_pairs = {}  # test image -> the splits of the images it copies
    for pair in report["pairs"]:
        for mine, other in (("a", "b"), ("b", "a")):
            if pair[f"{mine}_split"] == "test":
                in_pairs.setdefault(pair[mine], set()).add(pair[f"{other}_split"])
    copies_train = {image for image, splits in in_pairs.items() if "train" in splits}
    assert len(copies_train) == report["copies"]["test_in_train"]
    others = [p.stem for p in sorted((isic_data_dir / "images" / "test").glob("*.jpg")) if p.stem not in in_pairs]
    names = sorted(in_pairs) + others[:: len(others) // 20][:20]  # every test image in a pair, and 20 others
    predictor = Predictor.from_dir(REPO_ROOT / "models")
    results = predictor.predict_batch([isic_data_dir / "images" / "test" / f"{name}.jpg" for name in names])
    flagged = {
        name for name, r in zip(names, results, strict=True) if "training_image" in {c.code for c in r.quality_checks}
    }
    # copies of validation images are not flagged: those did not train the networks (they chose epoch and threshold)
    assert flagged == copies_train
