"""The Streamlit app, driven headless by ``streamlit.testing.v1.AppTest`` (file_uploader ``set_value``).

Every test runs the real app script against the tiny exported models (``$MELANOMA_MODELS`` = ``tiny_models_dir``).
The real-browser check is ``test_app_browser.py``.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, synthetic_lesion
from corpus import build_corpus
from PIL import Image
from streamlit.testing.v1 import AppTest

from melanoma.app import MAX_UPLOAD_MB, PROBABILITY_PATTERN, parse_probability_marker, probability_marker, server
from melanoma.app import streamlit_app as app
from melanoma.inference.batch import CSV_COLUMNS
from melanoma.inference.image_io import load_image_with_size
from melanoma.inference.predictor import Predictor

APP_TIMEOUT_S = 60


def _lesion_jpeg(size: int = 128, seed: int = 0) -> bytes:
    image, _ = synthetic_lesion(size, seed=seed)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _texts(at: AppTest) -> list[str]:
    """The text of every markdown, caption and alert element (markdown escapes removed)."""
    elements = [*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.success]
    return [element.value.replace("\\", "") for element in elements]


def _probability_texts(at: AppTest) -> list[str]:
    return [text for text in _texts(at) if PROBABILITY_PATTERN.search(text)]


def _result_texts(at: AppTest) -> list[str]:
    """One per analysed image: its probability, or the note that an almost uniform image was not assessed."""
    return [
        t for t in _texts(at) if PROBABILITY_PATTERN.search(t) or t.startswith("Melanoma probability: not assessed")
    ]


def _errors(at: AppTest) -> list[str]:
    """Error boxes, except the one that says an almost uniform image was not assessed (a result, not a failure)."""
    texts = [element.value.replace("\\", "") for element in at.error]
    return [text for text in texts if "— not assessed: the image is almost uniform" not in text]


@pytest.fixture
def app_test(tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The app on the tiny models, run once (nothing uploaded yet)."""
    monkeypatch.setenv("MELANOMA_MODELS", str(tiny_models_dir))
    at = AppTest.from_file(str(server.APP_SCRIPT), default_timeout=APP_TIMEOUT_S)
    at.run()
    assert not at.exception, at.exception
    return at


def _upload(at: AppTest, files: list[tuple[str, bytes]]) -> AppTest:
    at.file_uploader[0].set_value([(name, data, "application/octet-stream") for name, data in files])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# --- the page -----------------------------------------------------------------------------------------------


def test_start_page_has_disclaimer_uploader_and_model_facts(app_test: AppTest) -> None:
    assert any(app.DISCLAIMER in warning.value for warning in app_test.warning)
    assert app_test.file_uploader[0].accept_multiple_files
    assert set(app_test.file_uploader[0].allowed_type) == {f".{t}" for t in app.UPLOAD_TYPES}
    sidebar = " ".join(element.value for element in app_test.sidebar.markdown)
    assert "Training data" in sidebar and "ISIC 2017" in sidebar
    assert "sensitivity" in sidebar and "specificity" in sidebar
    assert "Intended use and limits" in [header.value for header in app_test.sidebar.subheader]


def test_sidebar_quotes_the_shipped_validation_metrics_as_the_readme_does() -> None:
    # Two decimals would show a mean Jaccard of 0.7962 as 0.80, the target it misses.
    segmenter = json.loads((REPO_ROOT / "models" / "segmentation.json").read_text())
    classifier = json.loads((REPO_ROOT / "models" / "classification.json").read_text())
    seg, cls = segmenter["validation"], classifier["validation"]
    facts = app._segmenter_facts(segmenter)
    assert (
        f"Jaccard {seg['jaccard']:.3f}, thresholded Jaccard {seg['thresholded_jaccard']:.3f}, Dice {seg['dice']:.3f}"
        in facts
    )
    low, high = cls["ci95"]["auc"]
    assert f"AUC {cls['auc']:.3f} (95% CI {low:.3f}–{high:.3f})" in app._classifier_facts(classifier)


def test_valid_image_shows_probability_decision_and_measurements(app_test: AppTest) -> None:
    _upload(app_test, [("lesion.jpg", _lesion_jpeg())])
    (marker,) = _probability_texts(app_test)
    percent = parse_probability_marker(marker)
    assert percent is not None and 0.0 <= percent <= 100.0
    assert "the model's melanoma threshold" in marker and "threshold" in marker
    assert not _errors(app_test)
    assert [metric.label for metric in app_test.metric] == ["Melanoma probability", "Decision threshold"]
    assert app_test.metric[0].value == marker.split(": ")[1].split(" ")[0]
    assert any(text.startswith("Processed in") for text in _texts(app_test))
    table = app_test.table[0].value
    assert list(table["Measurement"]) == ["Lesion area", "Asymmetry", "Border irregularity", "Colour variegation",
                                          "Diameter"]  # fmt: skip
    assert len(app_test.get("download_button")) == 3


def test_quality_checks_show_as_cautions_and_in_the_summary(app_test: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    import melanoma.inference.predictor as predictor_module
    from melanoma.inference.checks import QUALITY_CHECKS

    unsure = QUALITY_CHECKS["outline_uncertain"]
    monkeypatch.setattr(predictor_module, "quality_checks", lambda probability, threshold: (unsure,))
    _upload(app_test, [("unsure.jpg", _lesion_jpeg()), ("again.jpg", _lesion_jpeg(seed=2))])
    assert sum(warning.value == unsure.message for warning in app_test.warning) == 2
    assert list(app_test.dataframe[0].value["Checks"]) == ["outline uncertain", "outline uncertain"]


def test_text_file_named_jpg_shows_an_error_naming_it(app_test: AppTest) -> None:
    _upload(app_test, [("notes.jpg", b"This is not an image, just a text file.\n" * 20)])
    (error,) = _errors(app_test)
    assert "notes.jpg" in error and "not a recognised image" in error
    assert not _probability_texts(app_test)
    assert app_test.file_uploader, "the page must stay usable"


def test_several_files_show_each_result_and_each_error(app_test: AppTest, tmp_path: Path) -> None:
    expected = build_corpus(tmp_path)
    uploadable = {name: loads for name, loads in expected.items() if name.rsplit(".", 1)[1] in app.UPLOAD_TYPES}
    files = [("lesion.jpg", _lesion_jpeg())] + [(name, (tmp_path / name).read_bytes()) for name in uploadable]
    _upload(app_test, files)
    assert len(_result_texts(app_test)) == 1 + sum(uploadable.values())
    errors = _errors(app_test)
    bad = [name for name, loads in uploadable.items() if not loads]
    assert len(errors) == len(bad)
    for name in bad:
        assert any(name in error for error in errors), f"no error names {name}"
    assert len(app_test.dataframe) == 1, "several files get a summary table"


def test_same_file_twice_shows_two_results(app_test: AppTest) -> None:
    data = _lesion_jpeg()
    _upload(app_test, [("lesion.jpg", data), ("lesion.jpg", data)])
    assert len(_probability_texts(app_test)) == 2
    assert not _errors(app_test)
    # Told apart: each section, table row and download is named after its upload.
    headings = [header.value.replace("\\", "") for header in app_test.main.subheader]
    assert [h for h in headings if h.startswith("lesion.jpg")] == ["lesion.jpg", "lesion.jpg (2)"]
    assert list(app_test.dataframe[0].value["File"]) == ["lesion.jpg", "lesion.jpg (2)"]
    assert app.unique_names(["a.jpg", "b.jpg", "a.jpg", "a.jpg"]) == ["a.jpg", "b.jpg", "a.jpg (2)", "a.jpg (3)"]
    assert [app._download_stem(n) for n in ("a.jpg (2)", "my scan (copy).jpg")] == ["a-2", "my_scan_copy_"]


def test_a_uniform_image_shows_no_probability_as_a_result(app_test: AppTest) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300)).save(buffer, format="PNG")
    _upload(app_test, [("black.png", buffer.getvalue())])
    assert app_test.metric[0].value == "—"  # no number, not even in the sentence
    (sentence,) = [
        error.value for error in app_test.error if "not assessed: the image is almost uniform" in error.value
    ]
    assert sentence.startswith("Melanoma probability: not assessed — ") and not PROBABILITY_PATTERN.search(sentence)
    assert not app_test.table, "no measurements of an outline on a blank frame"


def test_unexpected_error_in_one_file_does_not_break_the_others(
    app_test: AppTest, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = Predictor.predict

    def flaky_predict(self, source, name=None):
        if name == "boom.jpg":
            raise RuntimeError("simulated failure in /srv/clinic/models/segmentation.onnx")
        return original(self, source, name)

    monkeypatch.setattr(Predictor, "predict", flaky_predict)
    _upload(app_test, [("boom.jpg", _lesion_jpeg(seed=1)), ("lesion.jpg", _lesion_jpeg())])
    (error,) = _errors(app_test)
    assert "boom.jpg" in error and "RuntimeError" in error
    assert "simulated" not in error and "/srv" not in error, "only the type reaches the page (README)"
    assert len(_probability_texts(app_test)) == 1
    # The server's log keeps the traceback but not the file name (clinics name files after patients).
    assert "simulated failure" in caplog.text and "predicting upload" in caplog.text and "boom" not in caplog.text


def test_overlay_controls_redraw_without_predicting_again(app_test: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = Predictor.predict

    def counting_predict(self, source, name=None):
        calls.append(name)
        return original(self, source, name)

    monkeypatch.setattr(Predictor, "predict", counting_predict)
    _upload(app_test, [("lesion.jpg", _lesion_jpeg())])
    app_test.toggle(key="show_heatmap").set_value(True)
    app_test.toggle(key="show_fill").set_value(True)  # off by default
    app_test.slider(key="opacity").set_value(0.8)
    app_test.run()
    assert not app_test.exception
    assert calls == ["lesion.jpg"]
    caption = _image_captions(app_test)[0].lower()
    assert "heatmap" in caption and "tint" in caption and "outline" in caption
    app_test.file_uploader[0].set_value(None)
    app_test.run()
    assert "melanoma_predictions" not in app_test.session_state, "removed files must be forgotten"


def _image_captions(at: AppTest) -> list[str]:
    return [image.caption for element in at.get("image") for image in element.proto.imgs]


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_one_model_alone_still_shows_what_it_can(
    task: str, tiny_models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for suffix in (".json", ".onnx"):
        shutil.copy(tiny_models_dir / f"{task}{suffix}", tmp_path / f"{task}{suffix}")
    monkeypatch.setenv("MELANOMA_MODELS", str(tmp_path))
    at = AppTest.from_file(str(server.APP_SCRIPT), default_timeout=APP_TIMEOUT_S)
    at.run()
    _upload(at, [("lesion.jpg", _lesion_jpeg())])
    page = " ".join(_texts(at))
    if task == "classification":
        assert len(_probability_texts(at)) == 1
        assert "No lesion segmenter is installed" in page
        assert at.toggle(key="show_fill").disabled
    else:
        assert not _probability_texts(at)
        assert "No melanoma classifier is installed" in page
        assert len(at.table) == 1
        assert at.toggle(key="show_heatmap").disabled


def test_no_model_installed_explains_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MELANOMA_MODELS", str(tmp_path))
    at = AppTest.from_file(str(server.APP_SCRIPT), default_timeout=APP_TIMEOUT_S)
    at.run()
    assert not at.exception
    assert any("No model is installed yet" in error for error in _errors(at))
    page = " ".join(_texts(at))
    assert "melanoma export" in page and "--models DIR" in page
    assert any(app.DISCLAIMER in warning.value for warning in at.warning)
    assert not at.file_uploader


# --- downloads and helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prediction(tiny_models_dir: Path):
    return Predictor.from_dir(tiny_models_dir).predict(_lesion_jpeg(), name="lesion.jpg")


def test_results_csv_and_json(prediction) -> None:
    rows = list(csv.DictReader(io.StringIO(app.results_csv([prediction, prediction]))))
    assert len(rows) == 2 and rows[0]["image"] == "lesion.jpg"
    assert tuple(rows[0]) == CSV_COLUMNS  # the columns of melanoma predict's CSV
    assert float(rows[0]["melanoma_probability"]) == pytest.approx(prediction.melanoma_probability, abs=1e-6)
    assert rows[0]["model_output"] == prediction.decision_text
    assert rows[0]["colours_present"] == ";".join(prediction.measurements.colours_present)
    assert (rows[0]["width"], rows[0]["height"]) == ("128", "128") and rows[0]["error"] == ""
    assert int(rows[0]["area_px"]) == prediction.measurements.area_pixels > 0
    document = json.loads(app.results_json([prediction]))
    assert document["disclaimer"] == app.DISCLAIMER
    (record,) = document["results"]
    assert record["measurements"]["asymmetry"] == pytest.approx(prediction.measurements.asymmetry)
    assert record["original_size"] == [128, 128]


def test_every_csv_row_and_saved_overlay_carries_the_disclaimer(prediction) -> None:
    rows = list(csv.DictReader(io.StringIO(app.results_csv([prediction, app.FailedImage("bad.jpg", "Corrupt.")]))))
    assert [row["disclaimer"] for row in rows] == [app.DISCLAIMER, app.DISCLAIMER]
    overlay = app._overlay(prediction, app.OverlayOptions())
    saved = Image.open(io.BytesIO(app.to_png_bytes(app.with_footer(overlay, app.DISCLAIMER))))
    assert saved.info["Description"] == app.DISCLAIMER  # the PNG's text, and a strip below the image
    assert saved.size[0] == overlay.shape[1] and saved.size[1] > overlay.shape[0]


def test_the_combined_downloads_list_the_files_that_failed_too(prediction) -> None:
    failed = app.FailedImage("notes.jpg", "'notes.jpg' is not a recognised image.")
    rows = list(csv.DictReader(io.StringIO(app.results_csv([prediction, failed]))))
    assert [row["image"] for row in rows] == ["lesion.jpg", "notes.jpg"]
    assert rows[1]["error"] == failed.error and rows[1]["melanoma_probability"] == ""
    document = json.loads(app.results_json([prediction, failed]))
    assert document["results"][1] == {"file": "notes.jpg", "error": failed.error, "disclaimer": app.DISCLAIMER}
    # The summary table keeps numbers as numbers, so that sorting by probability sorts by value.
    row, bad = app.summary_row(prediction), app.summary_row(failed)
    assert row["Melanoma probability"] == pytest.approx(100 * prediction.melanoma_probability, abs=1e-3)
    assert isinstance(row["Lesion area"], float) and bad["Melanoma probability"] is None
    assert bad["Decision"].startswith("not analysed: ") and row["Decision"] in ("above threshold", "below threshold")


def test_summary_table_and_downloads_in_the_app_include_a_failed_file(app_test: AppTest) -> None:
    _upload(app_test, [("lesion.jpg", _lesion_jpeg()), ("notes.jpg", b"not an image" * 10)])
    table = app_test.dataframe[0].value
    assert list(table["File"]) == ["lesion.jpg", "notes.jpg"]
    assert table["Melanoma probability"].dtype.kind == "f"


def test_no_outline_leaves_the_measurements_empty(tiny_models_dir: Path) -> None:
    from dataclasses import replace

    from melanoma.inference.batch import prediction_row
    from melanoma.inference.measurements import measure_lesion

    prediction = Predictor.from_dir(tiny_models_dir).predict(_lesion_jpeg(), name="lesion.jpg")
    image = prediction.image
    empty = replace(prediction, measurements=measure_lesion(np.zeros(image.shape[:2], bool), image))
    row = prediction_row("x.jpg", empty)
    for column in ("asymmetry", "border_irregularity", "colour_variegation", "equivalent_diameter_px"):
        assert row[column] == ""  # not 0: an asymmetry of 0 would read "perfectly symmetric"
    assert app.result_record(empty)["measurements"] is None
    assert app.result_record(prediction)["measurements"] is not None


def test_a_uniform_image_is_not_assessed(tiny_models_dir: Path) -> None:
    from melanoma.inference.batch import prediction_row

    (blank,) = Predictor.from_dir(tiny_models_dir).predict_arrays(
        [np.zeros((300, 300, 3), np.uint8)], [(300, 300)], ["black.png"]
    )
    assert not blank.assessable and blank.decision_text.startswith("not assessed: the image is almost uniform")
    assert "review advised" not in blank.decision_text
    row = prediction_row("black.png", blank)
    assert row["decision"] == "not_assessed" and row["melanoma_probability"] == ""  # noise: not sortable either
    assert blank.melanoma_probability is not None  # the Predictor still returns it (evaluate lists such images)
    record = app.result_record(blank)
    assert record["above_threshold"] is None and record["melanoma_probability"] is None
    row = app.summary_row(blank)  # the table shows neither number for it, and a short decision
    assert row["Melanoma probability"] is None and row["Lesion area"] is None and row["Decision"] == "not assessed"
    options = app.OverlayOptions(show_contour=True, show_fill=True, show_heatmap=True, opacity=0.5)
    np.testing.assert_array_equal(app._overlay(blank, options), blank.image)  # no outline drawn on it


def test_an_incomplete_model_folder_says_what_is_wrong(
    tiny_models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(tiny_models_dir / "classification.json", tmp_path / "classification.json")  # without its ONNX
    monkeypatch.setenv("MELANOMA_MODELS", str(tmp_path))
    at = AppTest.from_file(str(server.APP_SCRIPT), default_timeout=APP_TIMEOUT_S)
    at.run()
    (error,) = _errors(at)
    assert "cannot be used" in error and "missing" in error and "No model is installed" not in error
    monkeypatch.setenv("MELANOMA_MODELS", str(tmp_path / "nowhere"))
    at = AppTest.from_file(str(server.APP_SCRIPT), default_timeout=APP_TIMEOUT_S)
    at.run()
    (error,) = _errors(at)
    assert "does not exist" in error


def test_measurement_rows_explain_each_value(prediction) -> None:
    rows = app.measurement_rows(prediction.measurements, (128, 128))
    assert [row["Measurement"] for row in rows][0] == "Lesion area"
    assert all(row["What it means"] for row in rows)
    assert "128×128" in rows[-1]["What it means"]
    grey = {row["Measurement"]: row["Value"] for row in app.measurement_rows(
        prediction.measurements.without_colour(), (128, 128))}  # fmt: skip
    assert grey["Colour variegation"] == "not measured: the image has no colour"


@pytest.mark.parametrize("probability", [0.0, 0.123, 0.5, 0.9996, 1.0])
@pytest.mark.parametrize("decimals", [1, 3])
def test_probability_marker_round_trips(probability: float, decimals: int) -> None:
    text = f"... {probability_marker(probability, decimals)} ..."
    assert parse_probability_marker(text) == pytest.approx(round(probability * 100, decimals))


@pytest.mark.parametrize(
    ("probability", "threshold", "decimals"), [(0.2, 0.5, 1), (0.9976, 0.9984, 2), (0.99841, 0.99842, 3)]
)
def test_probability_and_threshold_print_differently_when_possible(probability, threshold, decimals) -> None:
    assert app._distinguishing_decimals(probability, threshold) == decimals


def test_model_line_says_what_the_classifier_sees() -> None:
    config = {"arch": "tf_efficientnet_lite0", "input_size": 224, "exported": "2026-11-27T08:00:00"}
    assert app._model_line(config) == "- **Network** `tf_efficientnet_lite0` at 224 px, exported 2026-11-27"
    crop = {**config, "input_crop": {"source": "lesion_mask", "margin": 0.2}}
    assert (
        "at 224 px, on a square crop around the segmented lesion (20% of its size added per side), exported"
        in app._model_line(crop)
    )
    flipped = {**config, "test_time_flips": ["hflip"]}
    assert "at 224 px, averaged with its left-right mirror image, exported" in app._model_line(flipped)
    members = [{"arch": "tf_efficientnet_lite0"}, {"arch": "tf_efficientnet_lite2"}]
    ensemble = {**config, "arch": "tf_efficientnet_lite0+tf_efficientnet_lite2", "ensemble": {"members": members}}
    assert app._model_line(ensemble) == (
        "- **Network** an ensemble of 2 networks (`tf_efficientnet_lite0`, `tf_efficientnet_lite2`; their mean "
        "probability) at 224 px, exported 2026-11-27"
    )
    digested = {**config, "onnx_sha256": "33ef33bcda2b4b302f628518830e6938d5672c15f8bf88c153fd5429d31b6562"}
    assert app._model_line(digested).endswith("exported 2026-11-27; file SHA-256 `33ef33bcda2b…`, checked at load")


def test_threshold_line_adds_the_cross_fitted_operating_point_when_the_config_has_it() -> None:
    validation = {"sensitivity": 0.9, "specificity": 0.8167}
    config = {"threshold": 0.2455, "validation": validation}
    assert "parts of those images" not in app._threshold_line(config)
    skipped = {**validation, "cross_fitted": {"skipped": "needs at least 5 images of each class"}}
    assert "parts of those images" not in app._threshold_line({**config, "validation": skipped})
    point = {"folds": 5, "sensitivity": 0.8493, "specificity": 0.8215}
    line = app._threshold_line({**config, "validation": {**validation, "cross_fitted": point}})
    assert "flagged 90% of the melanomas (sensitivity) and cleared 82% of the other lesions (specificity); " in line
    assert (
        "fitted on 4 of 5 parts of those images and applied to the part left out, it flagged 85% and cleared 82%"
        in line
    )


def test_markdown_escape_shows_file_names_literally() -> None:
    assert app._escape("a*b_[c](d).jpg") == r"a\*b\_\[c\]\(d\)\.jpg"
    # GitHub-style bare links: a "." or "@" escaped breaks the domain, so no link is made of a name.
    assert app._escape("www.login.example.jpg") == r"www\.login\.example\.jpg"
    assert app._escape("me@example.org.png") == r"me\@example\.org\.png"
    assert app._escape("&lt;b&gt;=1.jpg") == r"\&lt;b\&gt;\=1\.jpg"  # no HTML entity either


def test_file_names_reach_csv_cells_as_text_not_formulas() -> None:
    from melanoma.inference.batch import prediction_row, spreadsheet_safe

    for name in ('=HYPERLINK("http://x.example","Open").jpg', "+1.jpg", "-2.jpg", "@SUM(A1).jpg", "\t=1.jpg"):
        assert spreadsheet_safe(name) == "'" + name
        assert prediction_row(name, "cannot read it")["image"] == "'" + name
    assert spreadsheet_safe("lesion=1.jpg") == "lesion=1.jpg"  # only a formula-like start matters
    assert prediction_row("=x.jpg", "=x.jpg is not an image")["error"] == "'=x.jpg is not an image"
    failed = app.summary_row(app.FailedImage("=cmd.jpg", "not an image"))
    assert failed["File"] == "'=cmd.jpg"


# --- launcher -----------------------------------------------------------------------------------------------


def test_config_toml_matches_command_line_options() -> None:
    config = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    flat = {f"{section}.{key}": value for section, values in config.items() for key, value in values.items()}
    assert flat == server.STREAMLIT_OPTIONS
    # This machine only however Streamlit starts, and no server paths or tracebacks in the page (README, The app).
    assert flat["server.address"] == "127.0.0.1" and flat["client.showErrorDetails"] == "type"
    assert flat["client.disableDataExport"] is True  # every CSV the app hands out carries the disclaimer
    assert server.streamlit_command(8600).count("--server.address=127.0.0.1") == 1
    assert server.streamlit_command(8600, "0.0.0.0").count("--server.address=0.0.0.0") == 1


def test_upload_limit_matches_the_image_loader() -> None:
    max_bytes = inspect.signature(load_image_with_size).parameters["max_bytes"].default
    assert max_bytes == MAX_UPLOAD_MB * 1024 * 1024


def test_streamlit_command_runs_the_app_headless() -> None:
    command = server.streamlit_command(port=8765, address="127.0.0.1")
    assert command[1:5] == ["-m", "streamlit", "run", str(server.APP_SCRIPT)]
    assert server.APP_SCRIPT.is_file()
    for flag in (
        "--server.port=8765",
        "--server.address=127.0.0.1",
        "--server.headless=true",
        f"--server.maxUploadSize={MAX_UPLOAD_MB}",
        "--browser.gatherUsageStats=false",
        "--server.fileWatcherType=none",
    ):
        assert flag in command


def test_app_environment_passes_the_models_dir(tmp_path: Path) -> None:
    assert server.app_environment(tmp_path)["MELANOMA_MODELS"] == str(tmp_path.resolve())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models_dir": "/no/such/models"}, "does not exist"),
        ({"models_dir": "EMPTY"}, "holds no model (neither segmentation.json nor classification.json)"),
        ({"port": 70000}, "between 1 and 65535"),
    ],
)
def test_run_app_refuses_bad_arguments_before_starting(kwargs, message, capsys, tmp_path) -> None:
    if kwargs.get("models_dir") == "EMPTY":
        kwargs = {"models_dir": str(tmp_path)}
    assert server.run_app(**kwargs) == 2
    assert message in capsys.readouterr().err


def test_run_app_names_a_busy_port_and_a_foreign_address_before_starting(capsys) -> None:
    import socket

    with socket.socket() as holder:  # another server on the port
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert server.run_app(port=port) == 2
        assert f"port {port} on 127.0.0.1 is in use (another app or server); pass another with --port N" in (
            capsys.readouterr().err
        )
    # 192.0.2.1 is reserved for documentation (RFC 5737): no machine has it; .invalid never resolves (RFC 2606)
    assert server.run_app(port=port, address="192.0.2.1") == 2
    assert "--address 192.0.2.1 is not an address of this machine" in capsys.readouterr().err
    assert server.run_app(port=port, address="no-such-host.invalid") == 2
    assert "--address no-such-host.invalid is neither an address nor a host name" in capsys.readouterr().err


def test_sigterm_to_melanoma_app_stops_its_server_too(tiny_models_dir) -> None:
    """systemd and `docker stop` send SIGTERM to `melanoma app` alone; its Streamlit child must not serve on."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import time

    port = server.free_port()
    command = [sys.executable, "-m", "melanoma.cli", "app", "--port", str(port), "--models", str(tiny_models_dir)]
    # Its own process group, so that cleanup reaches an orphaned server too; the SIGTERM goes to the launcher only.
    launcher = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    health = f"http://127.0.0.1:{port}/_stcore/health"
    try:
        deadline = time.monotonic() + 60
        while not server._is_healthy(health):
            assert launcher.poll() is None and time.monotonic() < deadline, "the app did not start"
            time.sleep(0.25)
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=30)
        deadline = time.monotonic() + 15
        while server._is_healthy(health) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert not server._is_healthy(health), "the Streamlit server still answers after `melanoma app` stopped"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=30)


def test_free_port_is_bindable() -> None:
    import socket

    port = server.free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_raw_configs_shown_to_visitors_keep_no_server_paths() -> None:
    site = {
        "images_dir": "/srv/clinic/patients_2026",
        "command": "melanoma calibrate --images /srv/clinic/p --labels C:\\site\\labels.csv --out site-models",
        "url": "https://challenge.isic-archive.com/landing/2017",
        "relative": "runs/classification",
        "members": [{"run": "/home/me/runs/lite0"}, 42, None],
    }
    assert app.without_server_paths(site) == {
        "images_dir": "…/patients_2026",
        "command": "melanoma calibrate --images …/p --labels …/labels.csv --out site-models",
        "url": "https://challenge.isic-archive.com/landing/2017",
        "relative": "runs/classification",
        "members": [{"run": "…/lite0"}, 42, None],
    }
    # the image lists of the shipped configs (thousands of ids) are counted, not sent to every visitor
    shipped = json.loads((REPO_ROOT / "models" / "classification.json").read_text())
    shown = app.without_server_paths(shipped)["ensemble"]["members"][0]["training"]["data"]["image_ids"]
    assert shown == {"train": "2000 image ids (in the model's JSON file)",
                     "validation": "150 image ids (in the model's JSON file)"}  # fmt: skip
    fingerprints = app.without_server_paths(shipped)["training"]["data"]["image_fingerprints"]
    assert fingerprints == {"method": shipped["training"]["data"]["image_fingerprints"]["method"],
                            "train": "2000 fingerprints (in the model's JSON file)",
                            "validation": "150 fingerprints (in the model's JSON file)"}  # fmt: skip
    assert len(json.dumps(app.without_server_paths(shipped))) < len(json.dumps(shipped)) / 4


def test_a_saved_overlay_says_which_image_and_what_the_model_output_was(prediction) -> None:
    from dataclasses import replace

    from melanoma.inference.batch import overlay_footer

    text = overlay_footer(prediction)
    probability, threshold = prediction.melanoma_probability, prediction.threshold
    side = "above" if prediction.decision else "below"
    assert text == (
        f"{prediction.name}: melanoma probability {probability:.1%}, {side} the model's threshold {threshold:.1%}. "
        f"{app.DISCLAIMER}"
    )
    no_classifier = replace(prediction, melanoma_probability=None, decision=None, threshold=None)
    assert overlay_footer(no_classifier).startswith(f"{prediction.name}: no classifier installed. ")


def test_a_degenerate_interval_is_not_shown_as_certainty() -> None:
    metrics = {"sensitivity": 1.0, "specificity": 0.4, "ci95": {"sensitivity": [1.0, 1.0], "specificity": [0.3, 0.5]}}
    assert app._with_interval(metrics, "sensitivity", "{:.0%}") == (
        "100% (every one of these images; resampling gives no interval, more images would)"
    )
    assert app._with_interval(metrics, "specificity", "{:.0%}") == "40% (95% CI 30%–50%)"
