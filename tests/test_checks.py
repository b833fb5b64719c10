"""Quality checks on synthetic probability maps with known answers, and their place in every output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, load_script, synthetic_lesion

from melanoma.inference.checks import (
    QUALITY_CHECKS,
    UNCERTAIN_BAND,
    UNCERTAIN_RATIO_THRESHOLD,
    quality_checks,
    uncertain_ratio,
)


def _disk(size: int = 64, radius: float = 20, centre: tuple[float, float] | None = None) -> np.ndarray:
    rows, cols = np.mgrid[:size, :size]
    cy, cx = centre or (size / 2, size / 2)
    return (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2


def _codes(probability: np.ndarray) -> list[str]:
    return [check.code for check in quality_checks(probability)]


def test_uncertain_ratio_counts_the_band_per_lesion_pixel():
    core = _disk(radius=10)
    rim = _disk(radius=16) & ~core
    crisp = core.astype(np.float32)
    assert uncertain_ratio(crisp) == 0.0
    halo = np.where(core, 0.9, np.where(rim, 0.4, 0.05)).astype(np.float32)
    assert uncertain_ratio(halo) == pytest.approx(rim.sum() / core.sum())
    # The band's ends are not uncertain: exactly 0.2 and 0.8 count as confident.
    assert uncertain_ratio(np.where(core, 0.8, np.where(rim, 0.2, 0.0)).astype(np.float32)) == 0.0
    # Nothing at or above the threshold: the count is divided by one pixel.
    assert uncertain_ratio(np.full((8, 8), 0.3, np.float32)) == 64.0


def test_checks_fire_on_their_cases_only():
    assert _codes(np.zeros((64, 64), np.float32)) == ["no_lesion"]
    assert _codes(_disk().astype(np.float32)) == []
    core = _disk(radius=10)
    fuzzy = np.where(core, 0.95, np.where(_disk(radius=18), 0.4, 0.0)).astype(np.float32)
    assert uncertain_ratio(fuzzy) > UNCERTAIN_RATIO_THRESHOLD and _codes(fuzzy) == ["outline_uncertain"]
    corner = _disk(radius=20, centre=(1, 32)).astype(np.float32)
    assert _codes(corner) == []  # a lesion at the image edge is not flagged (model card: that check is not shown)
    assert all(QUALITY_CHECKS[code].message.endswith(".") for code in QUALITY_CHECKS)


# --- in every output: Predictor, `melanoma predict` CSV, app downloads ----------------------------------------------


class _ScriptedSession:
    """Stands in for the segmenter's ONNX session: returns a fixed probability map for every image."""

    def __init__(self, probability: np.ndarray):
        self.probability = probability

    def run(self, _outputs, feeds):
        return [np.broadcast_to(self.probability, (len(feeds["image"]), 1, *self.probability.shape)).copy()]


def _scripted_predictor(tiny_models_dir, probability):
    from melanoma.inference.predictor import Model, Predictor

    config = json.loads((tiny_models_dir / "segmentation.json").read_text())
    return Predictor(Model(_ScriptedSession(probability), config), None, tiny_models_dir)


def test_predictions_carry_their_checks_into_the_csv_and_the_app(tiny_models_dir):
    from melanoma.app import streamlit_app as app
    from melanoma.inference.batch import prediction_row

    image = np.random.default_rng(0).integers(100, 200, (128, 160, 3), dtype=np.uint8)  # not blank, not small
    size = json.loads((tiny_models_dir / "segmentation.json").read_text())["input_size"]
    core = _disk(size, radius=size / 6)
    fuzzy = np.where(core, 0.95, np.where(_disk(size, radius=size / 3), 0.4, 0.0)).astype(np.float32)
    (prediction,) = _scripted_predictor(tiny_models_dir, fuzzy).predict_arrays([image], [(160, 128)], ["fuzzy.png"])
    assert [check.code for check in prediction.quality_checks] == ["outline_uncertain"]
    assert prediction_row(Path("fuzzy.png"), prediction)["quality_checks"] == "outline_uncertain"
    assert app.result_row(prediction)["quality_checks"] == "outline_uncertain"
    assert app.result_record(prediction)["quality_checks"] == [
        {"code": "outline_uncertain", "message": QUALITY_CHECKS["outline_uncertain"].message}
    ]
    assert prediction.lesion_area_fraction == pytest.approx(core.mean(), abs=0.02)  # the outline is unchanged
    empty = np.zeros((size, size), np.float32)
    (nothing,) = _scripted_predictor(tiny_models_dir, empty).predict_arrays([image], [(160, 128)], ["empty.png"])
    assert [check.code for check in nothing.quality_checks] == ["no_lesion"]
    assert nothing.measurements.area_pixels == 0
    clear = _disk(size, radius=size / 4).astype(np.float32)
    (fine,) = _scripted_predictor(tiny_models_dir, clear).predict_arrays([image], [(160, 128)], ["fine.png"])
    assert fine.quality_checks == () and prediction_row(Path("fine.png"), fine)["quality_checks"] == ""
    (small,) = _scripted_predictor(tiny_models_dir, clear).predict_arrays([image[:127]], [(160, 127)], ["s.png"])
    assert [check.code for check in small.quality_checks] == ["small_image"]
    assert prediction_row(Path("s.png"), small)["quality_checks"] == "small_image"


# --- fitting and checking the thresholds (benchmarks/quality_checks.py) ----------------------------------------------


def _study():
    return load_script("quality_checks")


def test_edge_contact_sees_a_lesion_through_a_faded_border():
    edge_contact = _study().edge_contact
    assert edge_contact(_disk()) == 0.0  # keeps clear of the outer rings
    cut = np.zeros((64, 64), bool)
    cut[:, :16] = True  # the lesion is the left quarter of the image
    ring = 4 * 64 - 4
    assert edge_contact(cut) == pytest.approx((64 + 2 * 15) / ring)
    faded = cut.copy()
    faded[:, :2] = False  # the map fades in the last two columns, as the segmenter's maps do
    faded[:2, :], faded[-2:, :] = False, False
    assert edge_contact(faded, rings=1) == 0.0
    assert edge_contact(faded) == pytest.approx((14 + 14 + 58) / (4 * 60 - 4))  # ring 2 still touches it
    assert edge_contact(np.ones((6, 6), bool)) == 1.0
    assert edge_contact(np.ones((1, 1), bool)) == 1.0  # tiny masks: only the rings that exist
    with pytest.raises(ValueError, match="2-D"):
        edge_contact(np.zeros((2, 2, 3), bool))


def test_threshold_fit_maximises_youden_and_breaks_ties_towards_fewer_flags():
    study = _study()
    values = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    reference = np.array([False, False, False, True, True, True])
    fitted = study.fit_threshold(values, reference, np.array([0.25, 0.35, 0.5, 0.65]), inclusive=False)
    assert fitted["threshold"] == 0.5  # 0.35 and 0.5 both separate perfectly: the higher one flags no more
    assert fitted["at_threshold"]["youden_j"] == 1.0 and fitted["at_threshold"]["precision"] == 1.0
    assert [row["flagged"] for row in fitted["grid"]] == [4, 3, 3, 2]
    inclusive = study.fit_threshold(values, reference, np.array([0.6, 0.7]), inclusive=True)
    assert inclusive["threshold"] == 0.6  # ">= 0.6" keeps the 0.6 image
    detected = study.detection(np.array([True, True, False, False]), np.array([True, False, True, False]))
    assert detected == {
        "flagged": 2,
        "reference": 2,
        "flagged_and_reference": 1,
        "sensitivity": 0.5,
        "specificity": 0.5,
        "precision": 0.5,
        "youden_j": 0.0,
    }
    assert study.detection(np.zeros(3, bool), np.ones(3, bool))["precision"] is None


def test_group_difference_compares_flagged_images_with_the_rest():
    study = _study()
    values = np.array([0.2, 0.4, 0.9, 0.8, 1.0])
    flagged = np.array([True, True, False, False, False])
    result = study.group_difference(values, flagged)
    assert result["flagged_mean"] == 0.3 and result["other_mean"] == 0.9 and result["difference"] == -0.6
    low, high = result["ci95"]
    assert -0.8 <= low <= -0.6 <= high <= -0.4
    assert study.group_difference(values, np.zeros(5, bool))["difference"] is None


def test_image_record_scores_the_map_and_reads_the_annotation_edge():
    study = _study()
    annotation = np.zeros((64, 64), bool)
    annotation[:, :20] = True  # reaches the left edge
    probability = np.where(annotation, 0.9, 0.0).astype(np.float32)
    probability[:, :2] = 0.3  # the map fades at the edge, as the segmenter's do
    record = study.image_record(probability, annotation)
    assert record["annotation_at_edge"] is True
    assert record["jaccard"] == pytest.approx(18 / 20)
    assert record["edge_contact"] > 0 and record["uncertain_ratio"] == pytest.approx(2 / 18, abs=1e-5)
    served = np.zeros((128, 128), bool)  # a served mask at another size is resized to the annotation's
    served[:, :40] = True
    assert study.image_record(probability, annotation, served)["jaccard"] == 1.0
    assert study.image_record(probability, _disk())["annotation_at_edge"] is False


def test_study_fits_on_a_fold_and_checks_the_exported_model(
    tiny_segmentation_fold, shared_synthetic_isic_dir, tiny_models_dir, tmp_path, capsys
):
    study = _study()
    fold = tiny_segmentation_fold
    report_path = tmp_path / "checks.json"
    study.main(["--fit", str(fold), "--models", str(tiny_models_dir), "--data-dir", str(shared_synthetic_isic_dir),
                "--json", str(report_path)])  # fmt: skip
    report = json.loads(report_path.read_text())
    assert json.loads(capsys.readouterr().out) == report
    pooled = [float(line.split(",")[1]) for line in (fold / "oof_jaccard.csv").read_text().split()[1:]]
    assert report["fit"]["images"] == len(pooled)
    assert report["fit"]["mean_jaccard"] == pytest.approx(sum(pooled) / len(pooled), abs=1e-4)
    assert report["fit"]["thresholds"]["outline_uncertain"] in study.UNCERTAIN_GRID
    validation = report["validation"]
    assert validation["images"] == len(report["validation_per_image"]) == 4  # the synthetic validation split
    assert validation["outline_uncertain"]["threshold"] == report["fit"]["thresholds"]["outline_uncertain"]
    assert report["command"].startswith("python benchmarks/quality_checks.py --fit ")
    with pytest.raises(SystemExit, match="has no config.yaml or best.pt"):
        study.main(["--fit", str(tmp_path)])


def test_shown_checks_use_the_fitted_threshold_and_met_their_rules():
    report = json.loads((REPO_ROOT / "models" / "eval" / "quality_checks.json").read_text())
    assert report["fit"]["thresholds"]["outline_uncertain"] == UNCERTAIN_RATIO_THRESHOLD
    assert report["uncertain_band"] == list(UNCERTAIN_BAND)
    shown = {name for name, rule in report["ship_rules"].items() if rule["met"]}
    # blank_image, mask_image and no_lesion are definitions (the first two measured on every ISIC 2017 image and mask
    # below), small_image, elongated_image, greyscale_image and dark_frame have their own studies
    # (test_the_small_image_limit_..., below), and training_image the copy limit of benchmarks/duplicates.py
    # (tests/test_fingerprint.py, test_shipped_reports.py)
    own = {
        "no_lesion",
        "blank_image",
        "mask_image",
        "small_image",
        "elongated_image",
        "greyscale_image",
        "dark_frame",
        "training_image",
    }
    assert shown == set(QUALITY_CHECKS) - own
    assert report["ship_rules"] == _study().ship_decisions(report["validation"])


@pytest.mark.data
def test_evaluate_on_the_validation_images_flags_what_the_report_says(isic_data_dir):
    from melanoma.inference.evaluate import evaluate_segmentation
    from melanoma.inference.predictor import Predictor

    report = json.loads((REPO_ROOT / "models" / "eval" / "quality_checks.json").read_text())
    unsure = report["validation"]["outline_uncertain"]
    expected = {
        r["image_id"] for r in report["validation_per_image"] if r["uncertain_ratio"] > UNCERTAIN_RATIO_THRESHOLD
    }
    scores = evaluate_segmentation(
        Predictor.from_dir(), isic_data_dir / "images" / "val", isic_data_dir / "masks" / "val", bootstrap=10
    )
    summary = scores["quality_checks"]["outline_uncertain"]
    assert summary["flagged"] == len(expected) == unsure["for_failures"]["flagged"]
    assert summary["failures_flagged"] == unsure["for_failures"]["flagged_and_reference"]
    assert summary["mean_jaccard_flagged"] == pytest.approx(
        unsure["jaccard_flagged_vs_other"]["flagged_mean"], abs=1e-4
    )
    assert summary["mean_jaccard_other"] == pytest.approx(unsure["jaccard_flagged_vs_other"]["other_mean"], abs=1e-4)
    assert scores["quality_checks"]["no_lesion"]["flagged"] == 0


def test_check_summary_compares_flagged_images_with_the_others():
    from melanoma.inference.evaluate import check_summary

    summary = check_summary([0.2, 0.9, 0.5, 0.8], [True, False, True, False])
    assert summary == {
        "flagged": 2,
        "mean_jaccard_flagged": 0.35,
        "mean_jaccard_other": 0.85,
        "failures_flagged": 2,
        "failures": 2,
    }
    assert check_summary([0.9], [False])["mean_jaccard_flagged"] is None


@pytest.mark.parametrize("decision", [True, False])
def test_a_decision_on_an_image_without_a_lesion_says_so(decision):
    from melanoma.inference.predictor import Prediction

    def text(checks) -> str:
        return Prediction(
            name="x.png", melanoma_probability=0.4, decision=decision, threshold=0.25, work_mask=None,
            lesion_area_fraction=0.0, measurements=None, heatmap=None, image=np.zeros((8, 8, 3), np.uint8),
            original_size=(8, 8), quality_checks=checks,
        ).decision_text  # fmt: skip

    plain, flagged = text(()), text((QUALITY_CHECKS["no_lesion"],))
    assert plain.startswith("above" if decision else "below") and "no lesion" not in plain
    assert flagged == plain + "; but the segmenter found no lesion in this image, so check that it shows a skin lesion"
    assert text((QUALITY_CHECKS["outline_uncertain"],)) == plain


def test_blank_images_are_flagged_and_their_decision_says_so(tiny_models_dir):
    from melanoma.inference.checks import image_checks
    from melanoma.inference.predictor import Predictor

    predictor = Predictor.from_dir(tiny_models_dir)
    black, skin = np.zeros((300, 400, 3), np.uint8), np.full((300, 400, 3), (224, 172, 150), np.uint8)
    for name, image in (("black.png", black), ("skin.png", skin)):
        (result,) = predictor.predict_arrays([image], [(400, 300)], [name])
        assert result.quality_checks[0].code == "blank_image"
        assert result.decision_text.startswith("not assessed: the image is almost uniform, so it is probably not")
        assert not result.assessable
    lesion, _ = synthetic_lesion(128, seed=2)
    assert image_checks(lesion) == ()


def test_masks_and_drawings_are_flagged_and_not_assessed(tiny_models_dir):
    import io

    from PIL import Image

    from melanoma.inference.checks import MASK_TONE_SHARE, image_checks, two_tone_share
    from melanoma.inference.predictor import Predictor

    lesion, mask = synthetic_lesion(256, seed=4)
    grey_mask = np.repeat(mask[..., None], 3, axis=2)
    # A palette mask: PASCAL VOC's dark red lesion on black.
    red_on_black = np.where(mask[..., None] > 0, np.array([128, 0, 0], np.uint8), np.uint8(0))
    buffer = io.BytesIO()
    Image.fromarray(grey_mask).save(buffer, "JPEG", quality=60)
    jpeg_mask = np.asarray(Image.open(buffer).convert("RGB"))
    for image in (grey_mask, red_on_black, jpeg_mask):
        assert [c.code for c in image_checks(image)] == ["mask_image"]
    assert two_tone_share(grey_mask) == 1.0 and two_tone_share(jpeg_mask) >= MASK_TONE_SHARE
    # Photos spread their tones; a low-contrast image has one tone; an empty mask is blank, said once.
    assert two_tone_share(lesion) < 0.7 and image_checks(lesion) == ()
    rng = np.random.default_rng(0)
    faint = np.clip(rng.normal(200, 5, (256, 256, 3)), 0, 255).astype(np.uint8)
    assert two_tone_share(faint) == 0.0 and image_checks(faint) == ()
    # Smooth or clipped skin (one tone) around a lesion whose tones spread: a photo, not a mask.
    smooth = np.clip(rng.normal(230, 1.5, (256, 256, 3)), 0, 255)
    inside = mask > 0
    smooth[inside] = rng.uniform(40, 160, (int(inside.sum()), 1))
    assert two_tone_share(smooth.astype(np.uint8)) == 0.0
    assert [c.code for c in image_checks(np.zeros_like(grey_mask))] == ["blank_image"]
    from melanoma.app.streamlit_app import result_record
    from melanoma.inference.batch import prediction_row

    (result,) = Predictor.from_dir(tiny_models_dir).predict_arrays([grey_mask], [(256, 256)], ["mask.png"])
    assert not result.assessable and [c.code for c in result.quality_checks] == ["mask_image"]  # no outline checks
    assert result.decision_text.startswith("not assessed: the image is two flat tones, as a mask or a drawing, so it")
    # The white blob is no lesion: neither the CSV row nor the JSON record measures it.
    row, record = prediction_row("mask.png", result), result_record(result)
    assert row["decision"] == "not_assessed" and row["lesion_area_fraction"] == row["area_px"] == ""
    assert record["lesion_area_fraction"] is record["measurements"] is record["above_threshold"] is None


def test_small_images_are_flagged_by_their_size_as_uploaded():
    from melanoma.inference.checks import MIN_RELIABLE_SIDE, image_checks

    lesion, _ = synthetic_lesion(MIN_RELIABLE_SIDE, seed=3)
    assert image_checks(lesion) == ()
    assert [c.code for c in image_checks(lesion[:-1])] == ["small_image"]  # one row short of the limit
    assert [c.code for c in image_checks(lesion[:, :-1])] == ["small_image"]
    # A big photo decoded at reduced scale is judged by its size as uploaded, and vice versa.
    assert image_checks(lesion[:64, :64], original_size=(4000, 3000)) == ()
    assert [c.code for c in image_checks(lesion, original_size=(100, 150))] == ["small_image"]


def test_the_small_image_limit_is_the_study_result():
    from melanoma.inference.checks import MIN_RELIABLE_SIDE

    study = load_script("small_images")
    report = json.loads((REPO_ROOT / "models" / "eval" / "small_images.json").read_text())
    assert report["min_reliable_side"] == MIN_RELIABLE_SIDE
    assert study.min_reliable_side(report["sizes"]) == MIN_RELIABLE_SIDE  # the rule applied to the committed rows
    for row in report["sizes"]:
        assert row["degraded"] == study.degraded(row["jaccard_difference"], row["auc_difference"])
        assert (row["side"] < MIN_RELIABLE_SIDE) == row["degraded"]  # here every smaller size is degraded


def test_the_smallest_image_assessed_is_the_study_result(tmp_path):
    from PIL import Image

    from melanoma.inference.image_io import MIN_SIDE, ImageLoadError, load_image

    study = load_script("small_images")
    report = json.loads((REPO_ROOT / "models" / "eval" / "small_images.json").read_text())
    assert report["min_assessed_side"] == MIN_SIDE
    assert study.min_assessed_side(report["sizes"]) == MIN_SIDE  # the floor rule applied to the committed rows
    for row in report["sizes"]:
        assert row["useless"] == study.useless(row["auc_ci95"], row["jaccard_over_prior_mask"])
        assert (row["side"] < MIN_SIDE) == row["useless"]  # here every smaller size is useless
    lesion, _ = synthetic_lesion(64, seed=5)
    for width, height, refused in [(MIN_SIDE, 40, False), (40, MIN_SIDE, False), (MIN_SIDE - 1, 40, True)]:
        path = tmp_path / f"{width}x{height}.png"
        Image.fromarray(lesion[:height, :width]).save(path)
        if refused:
            with pytest.raises(ImageLoadError, match=f"at least {MIN_SIDE} pixels"):
                load_image(path)
        else:
            assert load_image(path).shape == (height, width, 3)


def test_elongated_images_are_flagged_by_their_shape_as_uploaded():
    from melanoma.inference.checks import MAX_ASPECT, image_checks

    lesion, _ = synthetic_lesion(400, seed=4)
    short = 150
    long = round(MAX_ASPECT * short)
    assert [c.code for c in image_checks(lesion[:short, :long])] == ["elongated_image"]
    assert [c.code for c in image_checks(lesion[:long, :short])] == ["elongated_image"]  # portrait alike
    assert image_checks(lesion[:short, : long - 1]) == ()
    assert image_checks(lesion[:300, :400]) == ()  # 4:3, as the training photographs
    # Judged by the size as uploaded: a big panorama decoded at reduced scale is still elongated, and vice versa.
    assert [c.code for c in image_checks(lesion[:150, :200], original_size=(6000, 2000))] == ["elongated_image"]
    assert image_checks(lesion[:short, :long], original_size=(4000, 3000)) == ()


def test_the_elongated_image_limit_is_the_study_result():
    from melanoma.inference.checks import MAX_ASPECT

    study = load_script("aspect_ratios")
    report = json.loads((REPO_ROOT / "models" / "eval" / "aspect_ratios.json").read_text())
    assert report["max_aspect"] == MAX_ASPECT
    assert study.max_aspect(report["conditions"]) == MAX_ASPECT  # the rule applied to the committed rows
    assert {(row["original"], row["kind"]) for row in report["conditions"]} == {
        (original, kind) for original in ("4:3", "3:2") for kind in ("band", "zoom")
    }
    for row in report["conditions"]:
        assert row["degraded"] == study.degraded(row["jaccard_difference"], row["auc_difference"])
        if row["kind"] == "band":
            assert (row["ratio"] >= MAX_ASPECT) == row["degraded"]  # here under both assumed originals


def test_aspect_ratio_rule_and_crops():
    study = load_script("aspect_ratios")

    def row(ratio, degraded, kind="band", original="4:3"):
        return {"ratio": ratio, "degraded": degraded, "kind": kind, "original": original}

    rows = [row(1.78, False), row(2.0, False), row(2.5, True), row(3.0, False), row(3.0, True, original="3:2")]
    assert study.max_aspect(rows) == 2.5  # degraded under either assumed original counts
    rows[1] = row(2.0, False, original="3:2")
    rows.append(row(2.0, True, kind="zoom"))  # the control decides nothing
    assert study.max_aspect(rows) == 2.5
    rows[2] = row(2.5, False)
    assert study.max_aspect(rows) == 3.0  # a larger ratio not degraded caps it
    assert study.max_aspect([row(3.0, False)]) is None
    assert study.crop_window((256, 256), 2.0, 4 / 3, "band") == (slice(42, 213), slice(0, 256))
    assert study.crop_window((256, 256), 2.0, 4 / 3, "zoom") == (slice(42, 213), slice(42, 213))
    with pytest.raises(ValueError, match="below the original"):
        study.crop_window((256, 256), 1.2, 4 / 3, "band")


@pytest.mark.data
def test_aspect_ratio_study_runs_on_the_validation_images(isic_data_dir):
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert load_script("aspect_ratios").main(["--data-dir", str(isic_data_dir), "--ratios", "2.5"]) == 0
    report = json.loads(buffer.getvalue())
    committed = json.loads((REPO_ROOT / "models" / "eval" / "aspect_ratios.json").read_text())
    assert report["images"] == 150 and report["full"] == pytest.approx(committed["full"])
    same = {(r["ratio"], r["original"], r["kind"]): r for r in committed["conditions"]}
    assert len(report["conditions"]) == 4
    for row in report["conditions"]:
        expected = same[(row["ratio"], row["original"], row["kind"])]
        assert row["mean_jaccard"] == pytest.approx(expected["mean_jaccard"], abs=1e-6)
        assert row["auc"] == pytest.approx(expected["auc"], abs=1e-6)
        assert row["degraded"] is expected["degraded"]


def test_a_dark_frame_is_flagged_by_three_dark_corners():
    from melanoma.inference.checks import image_checks

    vignettes = load_script("vignettes")
    lesion, _ = synthetic_lesion(200, seed=6)
    assert image_checks(lesion) == ()
    framed = vignettes.vignetted(lesion, vignettes.circle(lesion.shape[:2], 1.0))
    assert [c.code for c in image_checks(framed)] == ["dark_frame"]
    assert [c.code for c in image_checks(vignettes.vignetted(lesion, vignettes.circle((200, 200), 1.25)))] == [
        "dark_frame"
    ]
    two = lesion.copy()
    two[:20, :20] = two[-20:, -20:] = 0  # two dark corners: a shadow, not a frame
    assert image_checks(two) == ()
    three = two.copy()
    three[:20, -20:] = 0
    assert [c.code for c in image_checks(three)] == ["dark_frame"]
    assert [c.code for c in image_checks(np.zeros((200, 200, 3), np.uint8))] == ["blank_image"]  # not also dark_frame


def test_the_dark_frame_check_is_the_study_result():
    from melanoma.inference.checks import QUALITY_CHECKS

    study = load_script("vignettes")
    report = json.loads((REPO_ROOT / "models" / "eval" / "vignettes.json").read_text())
    for row in report["vignettes"]:
        assert row["degraded"] == study.degraded(
            row["jaccard_difference"], row["auc_difference"], row["specificity_change"]
        )
    assert report["show_check"] == any(row["degraded"] for row in report["vignettes"])
    assert ("dark_frame" in QUALITY_CHECKS) == report["show_check"]
    assert report["threshold"] == pytest.approx(
        json.loads((REPO_ROOT / "models" / "classification.json").read_text())["threshold"]
    )
    worse = {"difference": -0.03, "ci95": [-0.05, -0.01]}
    noise = {"difference": -0.03, "ci95": [-0.07, 0.01]}
    assert study.degraded(worse, noise, noise) and study.degraded(noise, worse, noise)
    assert study.degraded(noise, noise, {"difference": -0.06, "ci95": [-0.1, -0.01]})
    assert not study.degraded(noise, noise, {"difference": -0.04, "ci95": [-0.1, -0.01]})  # by less than 0.05
    weights = study.circle((100, 100), 1.0)
    assert weights[50, 50] == 1 and weights[0, 0] == 0 and 0 < weights[50, 0] < 1  # edge midpoints on the feather


def test_the_dark_frame_fill_is_served_as_its_study_decided():
    from melanoma.inference.predictor import FILL_DARK_FRAMES, Predictor

    study = load_script("vignettes")
    report = json.loads((REPO_ROOT / "models" / "eval" / "vignettes.json").read_text())
    assert report["serve_fill"] == study.serve_fill(report["vignettes"], report["filled"]) == FILL_DARK_FRAMES
    assert Predictor.fill_dark_frames is FILL_DARK_FRAMES
    for row in report["filled"]:
        assert row["degraded"] == study.degraded(
            row["jaccard_difference"], row["auc_difference"], row["specificity_change"]
        )
    before = [{"diameter": 1.0, "probability_change": {"difference": 0.1}}]
    good = {"diameter": 1.0, "degraded": False, "probability_change": {"difference": -0.05}}
    assert study.serve_fill(before, [good])
    assert not study.serve_fill(before, [{**good, "degraded": True}])
    assert not study.serve_fill(before, [{**good, "probability_change": {"difference": -0.1}}])  # not smaller
    assert not study.serve_fill(before, [])


def test_the_fill_paints_the_frame_and_keeps_the_field():
    from melanoma.inference.checks import dark_corners
    from melanoma.inference.preprocess import fill_dark_frame

    vignettes = load_script("vignettes")
    lesion, mask = synthetic_lesion(200, seed=7, radius_fraction=0.2)
    assert fill_dark_frame(lesion) is lesion  # no frame: the image itself
    weights = vignettes.circle((200, 200), 1.0)
    framed = vignettes.vignetted(lesion, weights)
    filled = fill_dark_frame(framed)
    assert dark_corners(framed) and not dark_corners(filled)
    changed = (filled != framed).any(axis=2)
    assert changed[weights == 0].all()  # the whole frame is painted ...
    assert not changed[mask > 0].any()  # ... the lesion, well inside the field, is not
    assert (filled[weights == 0] == filled[0, 0]).all()  # one colour, the skin's at the field's edge
    skin = lesion[(mask == 0) & (weights == 1)]
    assert np.abs(filled[0, 0].astype(int) - np.median(skin, axis=0)).max() <= 12
    assert fill_dark_frame(np.zeros((50, 50, 3), np.uint8)).sum() == 0  # all dark: nothing to take a colour from


def test_the_frame_training_trial_is_read_by_its_rule():
    study = load_script("vignettes")
    without, trained = (
        json.loads((REPO_ROOT / "models" / "eval" / f"classification_frames_{name}.json").read_text())
        for name in ("base", "frame")
    )
    assert not study.frame_training_works(without, trained)  # the card and README say it did not work
    assert trained["networks"]["classification"]["arch"] == without["networks"]["classification"]["arch"]

    def report(spec: float, spec_high: float, shift: float) -> dict:
        change = {"difference": spec, "ci95": [spec - 0.05, spec_high]}
        rows = [{"diameter": d, "specificity_change": change, "probability_change": {"difference": shift}}
                for d in (1.0, 0.9)]  # fmt: skip
        return {"vignettes": rows}

    shortcut, fixed = report(-0.2, -0.1, 0.1), report(-0.01, 0.03, 0.01)
    assert study.frame_training_works(shortcut, fixed)
    assert not study.frame_training_works(fixed, fixed)  # no shortcut to remove in the network without it
    assert not study.frame_training_works(shortcut, report(-0.01, 0.03, 0.03))  # still moved by more than 0.02
    assert not study.frame_training_works(shortcut, report(-0.06, -0.01, 0.01))  # specificity still degraded


def test_the_frame_training_direction_over_two_seeds():
    study = load_script("vignettes")

    def report(shift: float) -> dict:
        return {"vignettes": [{"diameter": 1.0, "probability_change": {"difference": shift}}]}

    direction = study.frame_training_direction
    assert direction([report(0.10), report(0.08)], [report(0.02), report(0.05)]) == "reduces"
    assert direction([report(0.03), report(0.04)], [report(0.08), report(0.05)]) == "increases"
    assert direction([report(0.03), report(0.09)], [report(0.08), report(0.02)]) == "no direction"


@pytest.mark.data
def test_the_dark_frames_in_isic_2017_are_as_reported(isic_data_dir):
    report = json.loads((REPO_ROOT / "models" / "eval" / "vignettes.json").read_text())
    assert load_script("vignettes").dark_frame_counts(str(isic_data_dir)) == report["dark_frame_in_isic2017"]


@pytest.mark.data
def test_the_vignette_study_reproduces_its_report(isic_data_dir):
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert load_script("vignettes").main(["--data-dir", str(isic_data_dir)]) == 0
    report = json.loads(buffer.getvalue())
    committed = json.loads((REPO_ROOT / "models" / "eval" / "vignettes.json").read_text())
    for key in ("command", "networks"):
        report.pop(key), committed.pop(key)
    assert report == committed


def test_small_image_floor_rule():
    study = load_script("small_images")
    above = {"ci95": [0.01, 0.05]}
    reaching = {"ci95": [0.0, 0.05]}
    assert not study.useless([0.51, 0.7], above)
    assert study.useless([0.5, 0.7], above) and study.useless([0.51, 0.7], reaching)
    rows = [{"side": 32, "useless": False}, {"side": 16, "useless": False}, {"side": 8, "useless": True}]
    assert study.min_assessed_side(rows) == 16
    rows[0]["useless"] = True  # a useless larger size caps it, whatever follows
    assert study.min_assessed_side(rows) == 256
    assert study.min_assessed_side([{"side": 8, "useless": False}]) is None


def test_small_image_rule():
    study = load_script("small_images")
    worse = {"difference": -0.03, "ci95": [-0.05, -0.01]}
    slightly = {"difference": -0.01, "ci95": [-0.02, -0.001]}  # below 0 but by less than 0.02: not degraded
    noise = {"difference": -0.03, "ci95": [-0.07, 0.01]}
    assert study.degraded(worse, noise) and study.degraded(noise, worse)
    assert not study.degraded(slightly, noise) and not study.degraded(noise, noise)
    rows = [{"side": 192, "degraded": False}, {"side": 128, "degraded": False}, {"side": 64, "degraded": True}]
    assert study.min_reliable_side(rows) == 128
    rows[0]["degraded"] = True  # a degraded larger size caps it, whatever follows
    assert study.min_reliable_side(rows) == 256
    assert study.min_reliable_side([{"side": 64, "degraded": False}]) is None  # nothing degraded: no check
    image = np.zeros((256, 256, 3), np.uint8)
    assert study.downscaled(image, 96).shape == (96, 96, 3) and study.downscaled(image, 256) is image


@pytest.mark.data
def test_small_image_study_runs_on_the_validation_images(isic_data_dir, capsys):
    report = _run_small_study(isic_data_dir, ["--sizes", "96"])
    assert report["images"] == 150 and report["melanomas"] == 30
    committed = json.loads((REPO_ROOT / "models" / "eval" / "small_images.json").read_text())
    (row,) = report["sizes"]
    (same,) = [r for r in committed["sizes"] if r["side"] == 96]
    assert row["mean_jaccard"] == pytest.approx(same["mean_jaccard"], abs=1e-6)
    assert row["auc"] == pytest.approx(same["auc"], abs=1e-6)
    assert report["native"]["mean_jaccard"] == pytest.approx(committed["native"]["mean_jaccard"], abs=1e-6)
    assert report["prior_mask"] == pytest.approx(committed["prior_mask"])
    assert row["auc_ci95"] == pytest.approx(same["auc_ci95"], abs=1e-6)
    assert row["useless"] is same["useless"] is False


def _run_small_study(data_dir, extra):
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert load_script("small_images").main(["--data-dir", str(data_dir), *extra]) == 0
    return json.loads(buffer.getvalue())


@pytest.mark.data
def test_no_isic_2017_image_is_blank(isic_data_dir):
    from PIL import Image

    from melanoma.inference.checks import BLANK_STD_THRESHOLD, grey_std

    paths = sorted(isic_data_dir.glob("images/*/*.jpg"))
    assert len(paths) >= 2750
    spreads = [grey_std(np.asarray(Image.open(path).convert("RGB"))) for path in paths]
    assert min(spreads) > 2.5 * BLANK_STD_THRESHOLD  # the module doc: the least varied is 5.9
    assert round(min(spreads), 1) == 5.9


@pytest.mark.data
def test_no_isic_2017_image_is_taken_for_a_mask_and_every_mask_is(isic_data_dir):
    """The numbers of ``mask_image`` in the checks module doc: no photo has a flat second tone, nor any 1.3 times
    brighter; 1 of them 1.5 times brighter and 14 twice as bright fire; the masks have 1.0, and 0.95 as JPEG."""
    import io

    from PIL import Image

    from melanoma.inference.checks import MASK_TONE_SHARE, two_tone_share

    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(isic_data_dir.glob("images/*/*.jpg"))]
    assert len(photos) >= 2750 and max(two_tone_share(photo) for photo in photos) == 0.0

    def fired(gain: float) -> int:
        brighter = (np.clip(photo.astype(np.float32) * gain, 0, 255).astype(np.uint8) for photo in photos)
        return sum(two_tone_share(image) >= MASK_TONE_SHARE for image in brighter)

    assert (fired(1.3), fired(1.5), fired(2.0)) == (0, 1, 14)
    masks, as_jpeg = [], []
    for path in sorted(isic_data_dir.glob("masks/*/*_segmentation.png")):
        mask = np.asarray(Image.open(path).convert("RGB"))
        buffer = io.BytesIO()
        Image.fromarray(mask).save(buffer, "JPEG", quality=75)
        masks.append(two_tone_share(mask))
        as_jpeg.append(two_tone_share(np.asarray(Image.open(buffer).convert("RGB"))))
    assert len(masks) >= 2150 and min(masks) == 1.0
    assert round(min(as_jpeg), 2) >= 0.95


def test_greyscale_images_are_flagged_and_their_colours_not_measured(tiny_models_dir):
    import io

    from PIL import Image

    from melanoma.inference.batch import prediction_row
    from melanoma.inference.checks import colour_spread, image_checks
    from melanoma.inference.predictor import Predictor

    lesion, _ = synthetic_lesion(256, seed=5)
    grey = np.repeat(np.asarray(Image.fromarray(lesion).convert("L"))[:, :, None], 3, axis=2)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, "JPEG", quality=75)  # a grey JPEG: its chroma noise stays below the limit
    assert colour_spread(lesion) > 4 and colour_spread(grey) == 0
    assert image_checks(lesion) == ()
    assert [c.code for c in image_checks(grey)] == ["greyscale_image"]
    # a uniform grey frame is not assessed rather than greyscale
    assert [c.code for c in image_checks(np.full((256, 256, 3), 90, np.uint8))] == ["blank_image"]
    prediction = Predictor.from_dir(tiny_models_dir).predict(buffer.getvalue(), name="grey.jpg")
    assert "greyscale_image" in {c.code for c in prediction.quality_checks}
    assert prediction.decision_text.endswith("; the image has no colour, which makes this output less reliable")
    # the tiny segmenter outlines a lesion here, so there are measurements whose colours must be left out
    assert prediction.measurements is not None and prediction.measurements.area_pixels > 0
    assert prediction.measurements.colour_variegation is None and prediction.measurements.colours_present == ()
    row = prediction_row("grey.jpg", prediction)
    assert row["colour_variegation"] == ""
    assert row["colours_present"] == "" and row["asymmetry"] != ""


def test_greyscale_study_compares_the_same_images_in_colour_and_grey():
    study = load_script("greyscale_images")
    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 0] = 200
    grey = study.greyscale(image)
    assert grey.shape == image.shape and (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert grey[0, 0, 0] == round(200 * 0.299)


@pytest.mark.data
def test_no_isic_2017_image_is_greyscale(isic_data_dir):
    """The numbers of ``greyscale_image`` in the checks module doc: the least colourful ISIC 2017 image spreads 4.1
    grey levels; every one of them made grey and saved as JPEG at quality 75 spreads 0."""
    import io

    from PIL import Image

    from melanoma.inference.checks import GREYSCALE_SPREAD, colour_spread

    paths = sorted(isic_data_dir.glob("images/*/*.jpg"))
    assert len(paths) >= 2750
    spreads, grey = [], []
    for index, path in enumerate(paths):
        with Image.open(path) as image:
            spreads.append(colour_spread(np.asarray(image.convert("RGB"))))
            if index % 10 == 0:  # every tenth, made grey as an export would make it
                buffer = io.BytesIO()
                image.convert("L").convert("RGB").save(buffer, "JPEG", quality=75)
                grey.append(colour_spread(np.asarray(Image.open(buffer).convert("RGB"))))
    assert round(min(spreads), 1) == 4.1 and min(spreads) > 4 * GREYSCALE_SPREAD
    assert max(grey) < GREYSCALE_SPREAD


@pytest.mark.data
def test_greyscale_study_runs_on_the_validation_images(isic_data_dir):
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert load_script("greyscale_images").main(["--data-dir", str(isic_data_dir)]) == 0
    report = json.loads(buffer.getvalue())
    committed = json.loads((REPO_ROOT / "models" / "eval" / "greyscale_images.json").read_text())
    for key in ("colour", "greyscale"):
        for metric in ("mean_jaccard", "auc"):
            assert report[key][metric] == pytest.approx(committed[key][metric], abs=1e-6)
    assert report["greyscale_image_fired"] == committed["greyscale_image_fired"]
