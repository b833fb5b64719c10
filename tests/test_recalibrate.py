"""``melanoma calibrate``: the melanoma threshold re-fitted on a site's own labelled images, into a model copy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_lesion
from PIL import Image

from melanoma.app import streamlit_app as app
from melanoma.cli import main
from melanoma.data.samples import DataError
from melanoma.inference.evaluate import evaluate_classification
from melanoma.inference.predictor import Predictor
from melanoma.inference.recalibrate import MIN_PER_CLASS, recalibrate_threshold
from melanoma.metrics import youden_threshold


def _site(base: Path, melanomas: int = 12, others: int = 14) -> tuple[Path, Path]:
    """A site's labelled folder: synthetic lesions, darker and larger for the 'melanomas' so the scores differ."""
    images = base / "site_images"
    images.mkdir(parents=True)
    rows = ["image_id,melanoma"]
    for index in range(melanomas + others):
        melanoma = int(index < melanomas)
        image, _ = synthetic_lesion(96, seed=index, radius_fraction=0.35 if melanoma else 0.2)
        if melanoma:
            image = (image * 0.7).astype(np.uint8)
        Image.fromarray(image).save(images / f"site_{index:03d}.jpg", quality=95)
        rows.append(f"site_{index:03d},{melanoma}")
    labels = base / "site_labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    return images, labels


def test_threshold_is_refitted_on_the_sites_images_and_the_networks_copied(tiny_models_dir, tmp_path):
    images, labels = _site(tmp_path)
    out = tmp_path / "site_models"
    summary = recalibrate_threshold(tiny_models_dir, images, labels, out, bootstrap=50)

    served = evaluate_classification(Predictor.from_dir(tiny_models_dir), images, labels, bootstrap=0)["per_image"]
    truth = [row["melanoma"] for row in served.values()]
    probabilities = [row["probability"] for row in served.values()]
    expected = youden_threshold(truth, probabilities)
    config = json.loads((out / "classification.json").read_text())
    assert config["threshold"] == pytest.approx(expected)
    assert summary["refitted_threshold"]["threshold"] == pytest.approx(expected, abs=1e-4)
    original = json.loads((tiny_models_dir / "classification.json").read_text())
    assert summary["current_threshold"]["threshold"] == pytest.approx(original["threshold"], abs=1e-4)
    for point in ("current_threshold", "refitted_threshold"):  # a threshold's own intervals, not the ranking's
        assert set(summary[point]["ci95"]) == {"sensitivity", "specificity", "balanced_accuracy"}
    assert config["recalibration"]["previous"]["threshold"] == original["threshold"]
    assert config["recalibration"]["images_dir"] == str(images)
    assert (config["validation"]["n"], config["validation"]["n_positive"]) == (26, 12)
    assert "cross_fitted" in config["validation"] and "ci95" in config["validation"]
    # The networks and the segmenter are copied unchanged; the starting folder is left alone.
    for name in ("classification.onnx", "segmentation.onnx", "segmentation.json"):
        assert (out / name).read_bytes() == (tiny_models_dir / name).read_bytes()
    assert json.loads((tiny_models_dir / "classification.json").read_text()) == original
    reloaded = Predictor.from_dir(out)
    assert reloaded.threshold == pytest.approx(expected)
    # The app says where the threshold now comes from.
    line = app._threshold_line(config)
    assert "re-fitted for this site with `melanoma calibrate` on 26 images (12 melanoma) from site_images" in line
    assert f"it was {original['threshold']:.1%} before" in line
    assert "- **Site images** on 26 images (12 melanoma): AUC" in app._classifier_facts(config)
    assert "- **Validation** on" in app._classifier_facts(original)


def test_too_few_images_of_a_class_or_an_occupied_folder_are_clear_errors(tiny_models_dir, tmp_path, monkeypatch):
    from melanoma.inference import recalibrate

    images, labels = _site(tmp_path, melanomas=MIN_PER_CLASS - 1, others=12)
    monkeypatch.setattr(recalibrate, "evaluate_classification", None)  # refused before any image is scored
    with pytest.raises(DataError, match=f"has {MIN_PER_CLASS - 1} melanoma and 12 other labelled images"):
        recalibrate_threshold(tiny_models_dir, images, labels, tmp_path / "out", bootstrap=0)
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileExistsError, match="already exists and is not empty"):
        recalibrate_threshold(tiny_models_dir, images, labels, tiny_models_dir, bootstrap=0)


def test_calibrate_command_prints_the_summary_and_writes_the_models(tiny_models_dir, tmp_path, capsys):
    images, labels = _site(tmp_path)
    out, report = tmp_path / "site_models", tmp_path / "summary.json"
    argv = ["calibrate", "--models", str(tiny_models_dir), "--images", str(images), "--labels", str(labels)]
    assert main([*argv, "--out", str(out), "--json", str(report)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary == json.loads(report.read_text()) and summary["out_dir"] == str(out)
    assert {"current_threshold", "refitted_threshold", "auc"} <= set(summary)
    assert "not a medical device" in captured.err
    assert f"advice: {summary['advice']}." in captured.err
    assert (f"melanoma app --models {out}" in captured.err) == summary["serve_refitted"]
    assert main([*argv, "--out", str(out)]) == 2  # the folder is taken now: an error, not a traceback
    assert "already exists and is not empty" in capsys.readouterr().err
    # predict on the re-fitted folder says why its threshold column differs from the shipped one
    image = next(images.glob("*.jpg"))
    assert main(["predict", str(image), "--models", str(out), "--out", str(tmp_path / "p.csv")]) == 0
    threshold = json.loads((out / "classification.json").read_text())["threshold"]
    note = f"note: the classifier's threshold {threshold:.4f} was re-fitted with `melanoma calibrate` on 26 site images"
    assert note in capsys.readouterr().err


@pytest.mark.parametrize(
    ("header", "option", "hint"),
    [
        ("image_name,target", ["--label-column", "target"], "name it with --label-column target"),  # ISIC 2020's
        ("filename,melanoma", ["--id-column", "filename"], "--id-column"),  # a clinic's own image column
    ],
)
def test_a_site_csv_laid_out_otherwise_is_read_through_the_column_named(
    tiny_models_dir, tmp_path, capsys, header, option, hint
):
    """Without the option the error names it; with it, evaluate (the baseline's pass too) and calibrate read the
    column and record it."""
    images, labels = _site(tmp_path)
    rows = labels.read_text().splitlines()[1:]
    labels.write_text(f"{header}\n" + "".join(f"{row}\n" for row in rows))
    common = ["--models", str(tiny_models_dir), "--images", str(images), "--labels", str(labels)]
    assert main(["evaluate", "classification", *common]) == 2
    assert hint in capsys.readouterr().err
    assert main(["evaluate", "classification", *common, *option, "--baseline", str(tiny_models_dir)]) == 0
    scores = json.loads(capsys.readouterr().out)
    key, value = option[0].removeprefix("--").replace("-", "_"), option[1]
    assert (scores["n"], scores["n_positive"], scores[key]) == (26, 12, value)
    assert scores["vs_baseline"]["difference"] == 0
    out = tmp_path / "site_models"
    assert main(["calibrate", *common, *option, "--out", str(out)]) == 0
    refitted = json.loads(capsys.readouterr().out)
    assert refitted["n_positive"] == 12 and refitted["auc"] == scores["auc"]
    assert json.loads((out / "classification.json").read_text())["recalibration"][key] == value


@pytest.mark.data
def test_on_the_isic_validation_images_the_refitted_threshold_is_the_shipped_one(isic_data_dir, tmp_path):
    # The shipped threshold is Youden's J on these images through the exported graph: re-fitting must find it again.
    labels = isic_data_dir / "labels" / "ISIC-2017_Validation_Part3_GroundTruth.csv"
    out = tmp_path / "models"
    recalibrate_threshold(None, isic_data_dir / "images" / "val", labels, out, bootstrap=0)
    shipped = json.loads((Path(Predictor.from_dir().models_dir) / "classification.json").read_text())
    assert json.loads((out / "classification.json").read_text())["threshold"] == pytest.approx(shipped["threshold"])


def test_recalibration_runs_on_the_serving_install_without_torch():
    import subprocess
    import sys

    code = "import sys, melanoma.cli, melanoma.inference.recalibrate; assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_site_the_classifier_ranks_clearly_worse_gets_a_warning():
    from melanoma.inference.recalibrate import ranking_warning

    reference = {"n": 150, "auc": 0.906}
    worse = ranking_warning({"auc": 0.70, "ci95": {"auc": [0.61, 0.79]}}, reference)
    assert worse and "AUC 0.700 (95% CI up to 0.790) against 0.906" in worse and "cannot make the ranking" in worse
    assert ranking_warning({"auc": 0.85, "ci95": {"auc": [0.75, 0.93]}}, reference) is None  # within noise of it
    assert ranking_warning({"auc": 0.70}, reference) is None  # no interval: no claim
    assert ranking_warning({"auc": 0.70, "ci95": {"auc": [0.6, 0.8]}}, {}) is None  # nothing to compare with


def test_a_site_ranked_at_chance_is_warned_and_the_warning_travels_with_the_folder(
    tiny_models_dir, tmp_path, monkeypatch
):
    from melanoma.inference import recalibrate
    from melanoma.inference.recalibrate import chance_warning

    assert chance_warning({"auc": 0.55, "ci95": {"auc": [0.41, 0.69]}}).startswith(
        "on these images the classifier does not rank melanomas above other lesions beyond chance (AUC 0.550, "
        "95% CI from 0.410)"
    )
    assert chance_warning({"auc": 0.8, "ci95": {"auc": [0.65, 0.9]}}) is None
    assert chance_warning({"auc": 0.8}) is None

    # Whatever the tiny model scores on this site, make the site look like chance and see where the warning goes.
    monkeypatch.setattr(recalibrate, "chance_warning", lambda site: "ranked at chance here.")
    images, labels = _site(tmp_path)
    out = tmp_path / "site_models"
    summary = recalibrate_threshold(tiny_models_dir, images, labels, out, bootstrap=20)
    assert summary["warning"].startswith("ranked at chance here.")
    config = json.loads((out / "classification.json").read_text())
    assert config["validation"]["warning"] == summary["warning"]
    assert f"classification.json in {out}: {summary['warning']}" in Predictor.from_dir(out).warnings
    assert summary["ranked_at_chance"] and not summary["serve_refitted"]


def test_calibrate_at_chance_says_not_to_serve_the_fit_at_all(tiny_models_dir, tmp_path, monkeypatch, capsys):
    from melanoma.inference import recalibrate

    monkeypatch.setattr(recalibrate, "chance_warning", lambda site: "ranked at chance here.")
    images, labels = _site(tmp_path)
    out = tmp_path / "site_models"
    common = ["--models", str(tiny_models_dir), "--images", str(images), "--labels", str(labels)]
    assert main(["calibrate", *common, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "do not serve it: the classifier ranks this site's images no better than chance" in err
    assert "only once more labelled images" not in err  # no advice that contradicts the warning


def test_an_almost_uniform_image_is_left_out_of_the_scores_and_listed(tiny_models_dir, tmp_path):
    images, labels = _site(tmp_path)
    Image.new("RGB", (96, 96), (128, 128, 128)).save(images / "blank.jpg")
    labels.write_text(labels.read_text() + "blank,0\n")
    scores = evaluate_classification(Predictor.from_dir(tiny_models_dir), images, labels, bootstrap=0)
    assert scores["not_assessed"] == ["blank"] and "blank" not in scores["per_image"]
    assert scores["n"] == len(scores["per_image"]) == 26


def test_images_left_out_as_not_assessed_are_named_by_evaluate_and_calibrate(tiny_models_dir, tmp_path, capsys):
    images, labels = _site(tmp_path)
    _, mask = synthetic_lesion(96, seed=0)
    Image.fromarray(mask).save(images / "site_000_mask.png")  # a mask saved among the photos, labelled by mistake
    labels.write_text(labels.read_text() + "site_000_mask,1\n")
    common = ["--models", str(tiny_models_dir), "--images", str(images), "--labels", str(labels)]
    assert main(["evaluate", "classification", *common]) == 0
    err = capsys.readouterr().err
    assert "warning: 1 image(s) are not assessed and left out of the scores" in err and "site_000_mask" in err
    out = tmp_path / "site_models"
    assert main(["calibrate", *common, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["not_assessed"] == ["site_000_mask"] and "site_000_mask" in captured.err
    assert json.loads((out / "classification.json").read_text())["recalibration"]["not_assessed"] == ["site_000_mask"]


def test_the_advice_compares_the_refit_on_unseen_images_with_the_current_threshold():
    from melanoma.inference.recalibrate import threshold_advice

    def current(low, high):
        return {"balanced_accuracy": 0.70, "sensitivity": 0.9, "specificity": 0.5, "ci95": {
            "balanced_accuracy": [low, high]}}  # fmt: skip

    refit = {"balanced_accuracy": 0.78, "sensitivity": 0.75, "specificity": 0.81}
    better = threshold_advice(current(0.62, 0.77), refit)  # above the current threshold's interval: beyond noise
    assert (
        better.startswith("serve the re-fitted threshold")
        and "0.780 on images it was not fitted on (cross-fitted) against 0.700" in better
    )
    # what it trades is said, a loss of sensitivity by name
    assert "melanoma sensitivity 0.900 -> 0.750 (it would miss more melanomas) and specificity 0.500 -> 0.810" in better
    within = threshold_advice(current(0.60, 0.80), refit)  # a gain inside the interval: noise, kept
    assert within.startswith("keep the current threshold") and "inside the current one's 95% interval" in within
    assert "0.780" in within and "sensitivity 0.900 -> 0.750" in within
    unscored = threshold_advice({"balanced_accuracy": 0.70}, {"balanced_accuracy": 0.78})  # no interval: kept
    assert unscored.startswith("keep the current threshold") and "no interval to tell the gain from noise" in unscored
    worse = threshold_advice({"balanced_accuracy": 0.776}, {"balanced_accuracy": 0.748})
    assert worse.startswith("keep the current threshold") and "0.748" in worse and "0.776" in worse
    assert threshold_advice({"balanced_accuracy": 0.7}, {"skipped": "too few"}).startswith("no comparison")


def test_label_rows_without_an_image_are_counted_in_the_summary_and_the_record(tiny_models_dir, tmp_path, capsys):
    images, labels = _site(tmp_path)
    labels.write_text(labels.read_text() + "gone_1,1\ngone_2,0\n")
    out = tmp_path / "site_models"
    argv = ["calibrate", "--models", str(tiny_models_dir), "--images", str(images), "--labels", str(labels)]
    assert main([*argv, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["labels_without_image"], summary["labels_without_image_first"]) == (2, ["gone_1", "gone_2"])
    assert f"note: 2 row(s) of {labels} have no image in {images} and are not scored" in captured.err
    config = json.loads((out / "classification.json").read_text())
    assert config["recalibration"]["labels_without_image"] == 2


def test_an_unreadable_image_is_left_out_of_the_fit_and_recorded(tiny_models_dir, tmp_path):
    images, labels = _site(tmp_path)
    (images / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0 a JPEG that stops here")
    labels.write_text(labels.read_text() + "cut,1\n")
    out = tmp_path / "site_models"
    summary = recalibrate_threshold(tiny_models_dir, images, labels, out, bootstrap=0)
    assert list(summary["unreadable"]) == ["cut"] and summary["n"] == 26
    config = json.loads((out / "classification.json").read_text())
    assert list(config["recalibration"]["unreadable"]) == ["cut"]


@pytest.mark.parametrize(
    ("advice", "seen"),
    [
        ("serve the re-fitted threshold: ...", {"train": 0, "validation": 0}),
        ("keep the current threshold: ...", {"train": 0, "validation": 0}),
        # as if 3 of the site's file names were in the model's training list: a flattered fit, not to be served
        ("serve the re-fitted threshold: ...", {"train": 3, "validation": 0}),
        # ... or 3 of the site's images were copies of them under other names, found by content
        (
            "serve the re-fitted threshold: ...",
            {
                "train": 3,
                "validation": 0,
                "by_content": True,
                "copies": [{"image": "s1", "copy_of": "ISIC_1", "part": "train", "distance": 10}] * 3,
            },
        ),
        # a config from before exports listed the images: it cannot tell, so the folder is not advised
        ("serve the re-fitted threshold: ...", None),
    ],
)
def test_calibrate_tells_to_serve_the_new_folder_only_when_the_advice_does_and_the_images_are_new(
    tiny_models_dir, tmp_path, capsys, monkeypatch, advice, seen
):
    from melanoma.inference import recalibrate

    scored = recalibrate.evaluate_classification
    monkeypatch.setattr(
        recalibrate, "evaluate_classification", lambda *a, **k: {**scored(*a, **k), "seen_in_training": seen}
    )
    monkeypatch.setattr(recalibrate, "threshold_advice", lambda current, cross_fitted: advice)
    monkeypatch.setattr(recalibrate, "chance_warning", lambda site: None)
    images, labels = _site(tmp_path)
    out = tmp_path / "site_models"
    argv = ["calibrate", "--models", str(tiny_models_dir), "--images", str(images), "--labels", str(labels)]
    assert main([*argv, "--out", str(out)]) == 0
    captured = capsys.readouterr()
    serve = advice.startswith("serve") and seen is not None and not (seen["train"] or seen["validation"])
    assert json.loads(captured.out)["serve_refitted"] is serve
    assert (f"serve them with `melanoma app --models {out}`" in captured.err) is serve
    assert (f"go on serving {tiny_models_dir}" in captured.err) is advice.startswith("keep")
    if seen and seen["train"]:
        said = "3 are copies of images that trained it" if seen.get("copies") else "3 trained it"
        assert f"of these 26 images, {said}" in captured.err
        assert "do not serve it: the fit includes the model's own training or validation images" in captured.err
        # the escape for a clash of file names only where nothing was found by content
        share = "if these are other images that only share those file names, the advice above stands"
        assert (share in captured.err) is not seen.get("copies")
    if seen is None:
        assert "whether these images trained it, or chose its best epoch and threshold, is unknown" in captured.err
        assert "its config cannot tell (warning above): serve it once you know they did not" in captured.err
    assert (out / "classification.json").is_file()  # the record of the fit is written either way


@pytest.mark.parametrize(
    ("positives", "negatives", "advice"),
    [(2, 2, "both kinds"), (3, 40, "the kind short of it"), (40, 9, "the kind short of it")],
)
def test_too_few_labelled_images_says_which_kind_to_add(positives, negatives, advice):
    from melanoma.inference.recalibrate import _check_classes

    with pytest.raises(DataError, match=f"add labelled images of {advice}"):
        _check_classes([1] * positives + [0] * negatives, Path("site"))
    _check_classes([1] * 10 + [0] * 10, Path("site"))  # enough of each: no error
