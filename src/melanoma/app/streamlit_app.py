"""The melanoma web app: upload dermoscopic images, see what the models say. UI only: the Predictor does the work.

Start it with ``melanoma app [--port N] [--models DIR]`` (see ``melanoma.app.server``). Uploads stay in memory:
each file's bytes go straight to ``Predictor.predict``. Predictions are cached per browser session in
``st.session_state``, keyed by Streamlit's upload id, so moving an overlay control re-draws the overlay
without predicting again. Every file is handled on its own: a bad or unexpected file shows an error naming it
and the other files still show.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from melanoma import DISCLAIMER
from melanoma.app import MAX_UPLOAD_MB, PROBABILITY_LABEL, probability_marker
from melanoma.inference.batch import CSV_COLUMNS, overlay_footer, prediction_row, spreadsheet_safe
from melanoma.inference.image_io import ImageLoadError
from melanoma.inference.measurements import LesionMeasurements
from melanoma.inference.overlay import render_overlay, to_png_bytes, with_footer
from melanoma.inference.predictor import (
    MODELS_ENV_VAR,
    TASK_CONFIGS,
    ModelsNotFoundError,
    Prediction,
    Predictor,
    default_models_dir,
)

UPLOAD_TYPES = ("jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "gif")
PAGE_TITLE = "Melanoma detection (research)"
FULL_DISCLAIMER = (
    f"**{DISCLAIMER}** This app shows what neural networks compute from a dermoscopic image. "
    "It has not been clinically validated and must not be used to diagnose, rule out or treat anything. "
    "Whatever it shows, have any skin lesion that worries you examined by a doctor."
)
INTENDED_USE_LIMITS = (
    "Dermoscopic images only (a dermatoscope's close-up of one lesion, as in the ISIC archive); phone "
    "snapshots, clinical photos and non-skin images give meaningless outputs.",
    "Performance outside the population of the training data (other skin types, cameras, clinics) is unknown.",
    "The model sees one image; a clinician also uses the patient's history, the lesion's evolution and touch.",
    "A probability below the threshold does not rule out melanoma.",
    "The lesion outline follows the visible pigment: where the border is faint or the lesion ill-defined, a "
    "dermatologist may draw it wider, and the lesion measurements follow the outline shown.",
)
MEASUREMENT_NOTE = (
    "Descriptive numbers in the spirit of the dermoscopic ABCD rule, computed from the lesion outline; "
    "they are not a validated ABCD score and the classifier does not use them."
)
_SESSION_CACHE = "melanoma_predictions"
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadedImage:
    """One uploaded file, in memory.

    Attributes:
        name: the file name as uploaded.
        data: the file's bytes.
        upload_id: Streamlit's id of this upload (unique per upload, stable across reruns).
    """

    name: str
    data: bytes
    upload_id: str


@dataclass(frozen=True)
class FailedImage:
    """A file that could not be analysed: its name and the message the page shows for it."""

    name: str
    error: str


Outcome = Prediction | FailedImage


@dataclass(frozen=True)
class OverlayOptions:
    """What to draw over each image."""

    show_contour: bool = True
    show_fill: bool = False  # a tint hides the pigment structures inside the outline
    show_heatmap: bool = False
    opacity: float = 0.35


def main() -> None:
    """Draw the page (Streamlit runs this file top to bottom on every interaction)."""
    st.set_page_config(page_title=PAGE_TITLE, page_icon=":microscope:", layout="wide")
    st.title(PAGE_TITLE)
    st.warning(FULL_DISCLAIMER, icon=":material/warning:")
    predictor = _predictor_or_explanation()
    if predictor is None:
        return
    for warning in predictor.warnings:
        st.error(_escape(_sentence(warning)), icon=":material/warning:")
    _render_model_facts(predictor.model_configs)
    uploads = st.file_uploader(
        "Dermoscopic images",
        type=list(UPLOAD_TYPES),
        accept_multiple_files=True,
        max_upload_size=MAX_UPLOAD_MB,
        help=f"{', '.join(t.upper() for t in UPLOAD_TYPES)}; up to {MAX_UPLOAD_MB} MB each. Files stay in memory.",
    )
    if not uploads:
        st.session_state.pop(_SESSION_CACHE, None)  # all files removed: forget their predictions
        st.info("Upload one or more dermoscopic images to see the models' outputs.")
        return
    options = _overlay_options(predictor)
    files = [UploadedImage(uploaded.name, uploaded.getvalue(), uploaded.file_id) for uploaded in uploads]
    render_results(predictor, files, options)


# --- models -------------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the models…")
def _load_predictor(models_dir: str) -> Predictor:
    # One Predictor serves every session (it is thread-safe); keyed by folder so $MELANOMA_MODELS can change.
    return Predictor.from_dir(models_dir)


def _predictor_or_explanation() -> Predictor | None:
    """The shared Predictor, or None after explaining on the page why there is none and what to do."""
    models_dir = default_models_dir()
    try:
        return _load_predictor(str(models_dir))
    except ModelsNotFoundError as error:
        _render_missing_models(models_dir, error)
    except Exception as error:  # a damaged model must not end in a traceback on the page
        _LOG.exception("loading the models from %s failed", models_dir)
        st.error(
            f"The models in `{models_dir}` could not be loaded ({type(error).__name__}; the server's console has "
            "the details). Re-export them with `melanoma export RUN_DIR --out DIR`, or start the app on another "
            "folder with `melanoma app --models DIR`."
        )
    return None


def _render_missing_models(models_dir: Path, error: Exception) -> None:
    expected = " and/or ".join(f"`{name}`" for name in TASK_CONFIGS.values())
    if not models_dir.is_dir():
        st.error(f"**The models folder `{models_dir}` does not exist**, so there is nothing to analyse images with.")
        found = "The app found no folder there."
    elif not any((models_dir / name).is_file() for name in TASK_CONFIGS.values()):
        st.error("**No model is installed yet**, so there is nothing to analyse images with.")
        found = f"The app looked in `{models_dir}` and found no exported model ({expected} with its `.onnx` file)."
    else:  # a model is there but incomplete: say what is wrong with it first
        st.error(f"**The models in `{models_dir}` cannot be used:** {_escape(_sentence(str(error)))}")
        found = f"An exported model is {expected} with the `.onnx` file it names."
    st.markdown(
        f"{found}\n\n"
        "To get one:\n"
        "1. **Train and export** a model (needs the `[train]` extra and the ISIC 2017 data):\n"
        "   `melanoma train classification --config configs/classification.yaml --out runs/classification`, then\n"
        "   `melanoma export runs/classification --out models/` (the same for `segmentation`).\n"
        "2. **Or point the app at a folder of exported models**: `melanoma app --models DIR` "
        f"(or set `{MODELS_ENV_VAR}=DIR`).\n\n"
        "Then reload this page."
    )
    st.caption(f"Details: {_escape(str(error))}")


# --- sidebar: model facts -----------------------------------------------------------------------------------


def _render_model_facts(configs: dict[str, dict[str, Any]]) -> None:
    with st.sidebar:
        st.header("Model facts")
        try:
            _render_facts_of_each_model(configs)
        except Exception as error:  # an unexpected config must not take the page down
            _LOG.exception("reading the model configs failed")
            st.warning(
                f"Could not read the model facts ({type(error).__name__}; the server's console has the details); "
                "see the raw configs."
            )
        st.subheader("Intended use and limits")
        intended = next((c["intended_use"] for c in configs.values() if c.get("intended_use")), None)
        st.markdown("\n".join(f"- {line}" for line in ([intended] if intended else []) + list(INTENDED_USE_LIMITS)))
        with st.expander("Raw model configs"):
            st.json(without_server_paths(configs), expanded=False)


def _render_facts_of_each_model(configs: dict[str, dict[str, Any]]) -> None:
    if "classification" in configs:
        st.subheader("Melanoma classifier")
        st.markdown(_classifier_facts(configs["classification"]))
    else:
        st.info("No melanoma classifier is installed: no probabilities.")
    if "segmentation" in configs:
        st.subheader("Lesion segmenter")
        st.markdown(_segmenter_facts(configs["segmentation"]))
    else:
        st.info("No lesion segmenter is installed: no lesion outline or measurements.")


def _classifier_facts(config: dict[str, Any]) -> str:
    validation = config.get("validation", {})
    lines = [_model_line(config), _training_data_line(config)]
    if "auc" in validation:
        measured_on = "Site images" if config.get("recalibration") else "Validation"  # melanoma calibrate's
        lines.append(
            f"- **{measured_on}** on {_count(validation.get('n'), validation.get('n_positive'))}: "
            f"AUC {_with_interval(validation, 'auc', '{:.3f}')}, "
            f"average precision {_with_interval(validation, 'average_precision', '{:.3f}')}"
        )
    lines.append(_threshold_line(config))
    lines.append(_small_validation_warning(validation.get("n")))
    return "\n".join(line for line in lines if line)


def _threshold_line(config: dict[str, Any]) -> str:
    validation = config.get("validation", {})
    threshold = float(config["threshold"])
    if "sensitivity" not in validation or "specificity" not in validation:
        return f"- **Threshold** {threshold:.1%} (not calibrated on validation data)"
    return (
        f"- **Threshold** {threshold:.1%}, {_threshold_source(config)}. At it the model flagged "
        f"{_with_interval(validation, 'sensitivity', '{:.0%}')} of the melanomas (sensitivity) and cleared "
        f"{_with_interval(validation, 'specificity', '{:.0%}')} of the other lesions (specificity)"
        f"{_cross_fitted_clause(validation.get('cross_fitted'))}. "
        "A lower threshold would miss fewer melanomas but raise more false alarms; a higher one the reverse."
    )


def _threshold_source(config: dict[str, Any]) -> str:
    """Where the threshold was fitted: the validation images, or a site's own (``melanoma calibrate``)."""
    site = config.get("recalibration")
    if not site:
        return "chosen on the validation images"
    previous = site.get("previous", {}).get("threshold")
    was = f"; it was {float(previous):.1%} before" if previous is not None else ""
    images = _count(config["validation"].get("n"), config["validation"].get("n_positive"))
    return f"re-fitted for this site with `melanoma calibrate` on {images} from {Path(site['images_dir']).name}{was}"


def _cross_fitted_clause(point: dict[str, Any] | None) -> str:
    """Those figures flatter a threshold fitted on the same images; the cross-fitted ones (export) do not."""
    if not point or "sensitivity" not in point:
        return ""
    return (
        f"; with the threshold fitted on {point.get('folds', 5) - 1} of {point.get('folds', 5)} parts of those "
        "images and applied to the part left out, it flagged "
        f"{point['sensitivity']:.0%} and cleared {point['specificity']:.0%} (an estimate for new images that the "
        "fit does not flatter)"
    )


def _segmenter_facts(config: dict[str, Any]) -> str:
    validation = config.get("validation", {})
    lines = [_model_line(config), _training_data_line(config)]
    if "jaccard" in validation:
        lines.append(
            f"- **Validation** on {_count(validation.get('n'), None)}: Jaccard {validation['jaccard']:.3f}, "
            f"thresholded Jaccard {validation.get('thresholded_jaccard', float('nan')):.3f}, "
            f"Dice {validation.get('dice', float('nan')):.3f}"
        )
    lines.append(f"- **Mask threshold** {float(config['threshold']):.2f} on the lesion probability")
    lines.append(_small_validation_warning(validation.get("n")))
    return "\n".join(line for line in lines if line)


def _model_line(config: dict[str, Any]) -> str:
    exported = str(config.get("exported", ""))[:10]
    crop = config.get("input_crop")
    sees = (
        f", on a square crop around the segmented lesion ({crop.get('margin', 0):.0%} of its size added per side)"
        if crop
        else ""
    )
    mirrors = {"hflip": "left-right", "vflip": "upside-down"}
    flips = [mirrors.get(f, f) for f in config.get("test_time_flips", [])]
    averaged = f", averaged with its {' and '.join(flips)} mirror image" if flips else ""
    members = [m.get("arch", "?") for m in (config.get("ensemble") or {}).get("members", [])]
    network = (
        f"an ensemble of {len(members)} networks ({', '.join(f'`{a}`' for a in members)}; their mean probability)"
        if members
        else f"`{config.get('arch', '?')}`"
    )
    digest = config.get("onnx_sha256")
    checked = f"; file SHA-256 `{digest[:12]}…`, checked at load" if digest else ""
    return (
        f"- **Network** {network} at {config.get('input_size', '?')} px{sees}{averaged}"
        + (f", exported {exported}" if exported else "")
        + checked
    )


def _training_data_line(config: dict[str, Any]) -> str:
    data = config.get("training", {}).get("data") or {}
    if not data:
        return "- **Training data** not recorded"
    train = _count(data.get("n_train"), data.get("n_train_melanoma"), "training ")
    held_out = _count(data.get("n_validation"), data.get("n_validation_melanoma"), "validation ")
    return f"- **Training data** {data.get('dataset', 'unnamed')}: {train}, {held_out}"


def _count(images: Any, melanomas: Any, kind: str = "") -> str:
    """E.g. ``8 training images (3 melanoma)``."""
    if images is None:
        return f"? {kind}images"
    return f"{images} {kind}images" + (f" ({melanomas} melanoma)" if melanomas is not None else "")


def _with_interval(metrics: dict[str, Any], name: str, number_format: str) -> str:
    text = number_format.format(metrics[name])
    interval = metrics.get("ci95", {}).get(name)
    if interval and interval[0] == interval[1] and name in ("sensitivity", "specificity"):
        # Every image of the class on one side of the threshold: resampling them cannot move it, which says nothing
        # about new images (12 of 12 is still compatible with a true rate near 74%).
        text += " (every one of these images; resampling gives no interval, more images would)"
    elif interval:
        low, high = (number_format.format(value) for value in interval)
        text += f" (95% CI {low}–{high})"
    return text


def _small_validation_warning(images: Any) -> str:
    if isinstance(images, int) and images < 100:
        return f"- :orange[Measured on only {images} validation images: these numbers are very uncertain.]"
    return ""


# --- controls -----------------------------------------------------------------------------------------------


def _overlay_options(predictor: Predictor) -> OverlayOptions:
    no_mask, no_heatmap = predictor.segmenter is None, predictor.classifier is None
    contour, fill, heatmap, opacity = st.columns([1, 1, 1, 2], vertical_alignment="center")
    return OverlayOptions(
        show_contour=contour.toggle("Lesion contour", value=True, disabled=no_mask, key="show_contour"),
        show_fill=fill.toggle("Lesion fill", value=False, disabled=no_mask, key="show_fill"),
        show_heatmap=heatmap.toggle(
            "Heatmap",
            value=False,
            disabled=no_heatmap,
            key="show_heatmap",
            help="Where in each image the classifier found the most melanoma evidence (class activation map, scaled "
            "to the image's own peak, so a low-probability image shows yellow too); not a lesion outline.",
        ),
        opacity=opacity.slider("Overlay opacity", 0.0, 1.0, 0.35, 0.05, key="opacity"),
    )


# --- results ------------------------------------------------------------------------------------------------


def render_results(predictor: Predictor, files: Sequence[UploadedImage], options: OverlayOptions) -> None:
    """Predict (or reuse the session's predictions) and show every file; a failing file shows an error.

    Args:
        predictor: the loaded Predictor.
        files: the uploads, in upload order.
        options: overlay drawing options.
    """
    cache: dict[str, Prediction | str] = st.session_state.setdefault(_SESSION_CACHE, {})
    keys = [f"{predictor.models_dir}|{file.upload_id}" for file in files]
    # Forget files that were removed from the uploader, so a long session does not accumulate images.
    for stale in set(cache) - set(keys):
        del cache[stale]
    names = unique_names([file.name for file in files])
    new = sum(key not in cache for key in keys)
    progress = st.progress(0.0, text=f"Analysing {new} images…") if new > 1 else None
    outcomes = []
    for name, file, key in zip(names, files, keys, strict=True):
        if progress is not None and key not in cache:
            done = len(outcomes)
            progress.progress(done / len(files), text=f"Analysing image {done + 1} of {len(files)}…")
        outcomes.append(_analyse(predictor, name, file.data, cache, key))
    if progress is not None:
        progress.empty()
    if len(files) > 1:
        _render_summary(
            [o if isinstance(o, Prediction) else FailedImage(n, o) for n, o in zip(names, outcomes, strict=True)]
        )
    for index, (name, outcome) in enumerate(zip(names, outcomes, strict=True)):
        render_result(name, outcome, options, key=f"file{index}")


def unique_names(names: Sequence[str]) -> list[str]:
    """The file names, a repeated one numbered from its second upload on ("lesion.jpg (2)"), so that each section,
    table row and download can be told apart."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


def _download_stem(name: str) -> str:
    """A safe file-name stem for an upload's downloads: "lesion.jpg (2)" -> "lesion-2"."""
    numbered = re.fullmatch(r"(.*) \((\d+)\)", name)
    base, copy = (numbered.group(1), f"-{numbered.group(2)}") if numbered else (name, "")
    return re.sub(r"[^\w.-]+", "_", base.rsplit(".", 1)[0] + copy) or "image"


def render_result(name: str, outcome: Prediction | str, options: OverlayOptions, key: str) -> None:
    """One file's section: its prediction, or an error naming the file (never an exception).

    Args:
        name: the file name.
        outcome: the Prediction, or the message saying why the file could not be analysed.
        options: overlay drawing options.
        key: unique among the page's sections (its widgets' keys start with it; the same file may be uploaded
            twice).
    """
    with st.container(border=True):
        st.subheader(_escape(name), anchor=False)
        if isinstance(outcome, str):
            st.error(f"**Could not analyse {_escape(name)}.** {_escape(outcome)}", icon=":material/error:")
            return
        try:
            _render_prediction(outcome, options, key)
        except Exception as error:  # a display bug must cost one file, not the page
            _LOG.exception("showing the result of upload %s failed", key)  # no file name in the server's logs
            st.error(
                f"**Could not show the result for {_escape(name)}** ({type(error).__name__}; the server's console "
                "has the details)."
            )


def _analyse(
    predictor: Predictor, name: str, data: bytes, cache: dict[str, Prediction | str], key: str
) -> Prediction | str:
    """The file's Prediction (cached per session), or a message saying why it could not be analysed."""
    if key in cache:
        return cache[key]
    try:
        with st.spinner(f"Analysing {_escape(name)}…"):
            prediction = predictor.predict(data, name=name)
    except ImageLoadError as error:
        cache[key] = _sentence(str(error))
        return cache[key]
    except Exception as error:  # not cached: the next interaction retries
        _LOG.exception("predicting upload %s failed", key.rsplit("|", 1)[-1])  # no file name in the server's logs
        return (  # only the type: the message may hold server paths; it goes to the server's console above
            f"Unexpected error ({type(error).__name__}; the server's console has the details). Try again; if it "
            "persists, report it."
        )
    # The app draws and measures at the work size and never asks for the original-size mask (``lesion_mask``):
    # a session keeps each result at that size.
    cache[key] = prediction
    return cache[key]


def _render_prediction(prediction: Prediction, options: OverlayOptions, key: str) -> None:
    overlay = _overlay(prediction, options)
    overlay_png = to_png_bytes(overlay)
    image_column, result_column = st.columns([3, 2], gap="large")
    # output_format="PNG": the bytes are already PNG, so Streamlit serves them as they are (no JPEG re-encode).
    image_column.image(overlay_png, caption=_overlay_caption(prediction, options), width="stretch", output_format="PNG")
    with result_column:
        _render_probability(prediction)
        _render_quality_checks(prediction)  # beside the number they qualify, not below the fold on a phone
        _render_downloads(prediction, lambda: to_png_bytes(with_footer(overlay, overlay_footer(prediction))), key)
        st.caption(_timing_text(prediction))
    if prediction.assessable:
        _render_measurements(prediction.measurements, prediction.original_size)
    else:  # an outline on a black frame measures nothing
        st.markdown("**Lesion measurements**", help=MEASUREMENT_NOTE)
        st.caption(f"The image is {prediction.not_assessed_reason}, so nothing is outlined or measured.")


def _overlay(prediction: Prediction, options: OverlayOptions):
    if not prediction.assessable:  # the image as uploaded: an outline or heatmap on it would read as a finding
        return prediction.image
    return render_overlay(
        prediction.image,
        prediction.work_mask,
        prediction.heatmap,
        show_contour=options.show_contour,
        show_fill=options.show_fill,
        show_heatmap=options.show_heatmap and prediction.heatmap is not None,
        opacity=options.opacity,
    )


def _overlay_caption(prediction: Prediction, options: OverlayOptions) -> str:
    """What the overlay shows, told by shape and brightness rather than colour names alone (colour-blind users)."""
    if not prediction.assessable:
        return f"The uploaded image ({prediction.not_assessed_reason}: nothing is outlined)."
    parts = []
    if prediction.work_mask is not None and options.show_contour:
        parts.append("outline (light line with a dark inner edge): the lesion as the segmenter outlined it")
    if prediction.work_mask is not None and options.show_fill:
        parts.append("tint: the outlined area")
    if options.show_heatmap and prediction.heatmap is not None:
        parts.append(
            "heatmap (viridis): brightest, yellow, where the classifier found the most melanoma evidence in this "
            "image, darkest, purple, the least (relative to this image's own peak, whatever its probability)"
        )
    return ("; ".join(parts) or "the uploaded image").capitalize() + "."


def _render_probability(prediction: Prediction) -> None:
    if prediction.melanoma_probability is None:
        st.info("No melanoma classifier is installed, so there is no melanoma probability.")
        return
    probability, threshold = prediction.melanoma_probability, prediction.threshold
    decimals = _distinguishing_decimals(probability, threshold)
    left, right = st.columns(2)
    if prediction.assessable:
        left.metric(
            "Melanoma probability", f"{probability:.{decimals}%}", help="The classifier's output for this image."
        )
    else:  # the number exists (CSV, JSON) but means nothing for an image without structure: not shown as a result
        left.metric(
            "Melanoma probability",
            "—",
            help=f"Not assessed: the image is {prediction.not_assessed_reason} (see the box below).",
        )
    right.metric(
        "Decision threshold",
        f"{threshold:.{decimals}%}",
        help="See Model facts in the sidebar for the images it was fitted on and what it trades off.",
    )
    if prediction.assessable:
        marker = f"{probability_marker(probability, decimals)} (threshold {threshold:.{decimals}%})"
    else:  # the number is noise for an image without structure: not even in the sentence
        marker = f"{PROBABILITY_LABEL}: not assessed"
    sentence = f"{marker} — {prediction.decision_text}."
    if not prediction.assessable:
        st.error(sentence, icon=":material/block:")
    elif prediction.decision:
        st.warning(sentence, icon=":material/visibility:")
    else:
        st.info(sentence, icon=":material/info:")
    st.markdown("*A model output from this image alone, not a diagnosis.*")  # full contrast: a caption is faint


def _distinguishing_decimals(probability: float, threshold: float) -> int:
    """1, or up to 3 decimals when a probability just below the threshold would otherwise print the same."""
    decimals = 1
    while decimals < 3 and f"{probability:.{decimals}%}" == f"{threshold:.{decimals}%}":
        decimals += 1
    return decimals


def _render_quality_checks(prediction: Prediction) -> None:
    """One caution per quality check that fired (``no_lesion`` is said by the measurements section)."""
    for check in prediction.quality_checks:
        if check.code != "no_lesion":
            st.warning(check.message, icon=":material/rule:")


def _render_measurements(measurements: LesionMeasurements | None, original_size: tuple[int, int]) -> None:
    st.markdown("**Lesion measurements**", help=MEASUREMENT_NOTE)
    if measurements is None:
        st.caption("No lesion segmenter is installed, so there are no measurements.")
        return
    if measurements.area_pixels == 0:
        st.caption("The segmenter found no lesion in this image, so there is nothing to measure.")
        return
    st.table(measurement_rows(measurements, original_size), hide_index=True)


def measurement_rows(measurements: LesionMeasurements, original_size: tuple[int, int]) -> list[dict[str, str]]:
    """The measurements table: one row per measurement with its value and a short explanation.

    Args:
        measurements: the lesion measurements.
        original_size: (width, height) of the uploaded image, whose pixels the diameter is given in.

    Returns:
        Rows with the keys ``Measurement``, ``Value`` and ``What it means``.
    """
    colours = ", ".join(measurements.colours_present)
    width, height = original_size
    rows = [
        ("Lesion area", f"{measurements.area_fraction:.1%}", "Share of the image that the segmenter marks as lesion."),
        ("Asymmetry", f"{measurements.asymmetry:.2f}", "0 = mirror-symmetric about both main axes; up to 1."),
        ("Border irregularity", f"{measurements.border_irregularity:.2f}", "1 = round and smooth; higher = more "
         "elongated or ragged."),
        ("Colour variegation", "not measured: the image has no colour" if measurements.colour_variegation is None
         else f"{measurements.colour_variegation} of 6" + (f" ({colours})" if colours else ""),
         "How many of the six dermoscopic colours cover at least 5% of the lesion."),
        ("Diameter", f"{measurements.equivalent_diameter_px:.0f} px", f"Of a disc with the lesion's area, in pixels "
         f"of the {width}×{height} uploaded image; the image has no physical scale."),
    ]  # fmt: skip
    return [{"Measurement": name, "Value": value, "What it means": meaning} for name, value, meaning in rows]


def _timing_text(prediction: Prediction) -> str:
    timings = prediction.timings_ms
    # Pipeline order (the Predictor adds "decode" last).
    stages = " · ".join(f"{stage} {timings[stage]:.0f}" for stage in sorted(set(timings) - {"total"}, key=_stage_order))
    original_width, original_height = prediction.original_size
    analysed_height, analysed_width = prediction.image.shape[:2]
    return (
        f"Processed in {timings.get('total', 0):.0f} ms ({stages} ms). Original image "
        f"{original_width}×{original_height}, analysed at {analysed_width}×{analysed_height}."
    )


_STAGES = ("decode", "preprocess", "classification", "segmentation", "postprocess", "measurements")


def _stage_order(stage: str) -> tuple[int, str]:
    return (_STAGES.index(stage) if stage in _STAGES else len(_STAGES), stage)


def _render_downloads(prediction: Prediction, overlay_png: Callable[[], bytes], key: str) -> None:
    """The image's download buttons; the overlay PNG carries the image's name, the model's output and the disclaimer
    below the image (``with_footer``, ``overlay_footer``)."""
    stem = _download_stem(prediction.name)
    buttons: list[tuple[str, Callable[[], bytes | str], str, str]] = [
        ("Overlay PNG", overlay_png, f"{stem}_overlay.png", "image/png"),
        ("Results CSV", lambda: results_csv([prediction]), f"{stem}_results.csv", "text/csv"),
        ("Results JSON", lambda: results_json([prediction]), f"{stem}_results.json", "application/json"),
    ]
    with st.container(horizontal=True):
        for label, data, file_name, mime in buttons:
            st.download_button(
                label,
                data,
                file_name=file_name,
                mime=mime,
                key=f"{key}-{label}",
                help=f"{label} of {_escape(prediction.name)}",  # several images: each button says whose file it is
                on_click="ignore",
                icon=":material/download:",
            )


def _render_summary(outcomes: Sequence[Outcome]) -> None:
    """The table of every upload (numbers stay numbers, so the columns sort) and the combined downloads, which
    list the files that could not be analysed too, with their errors, as ``melanoma predict``'s CSV does."""
    st.subheader("All images", anchor=False)
    failed = sum(isinstance(outcome, FailedImage) for outcome in outcomes)
    if failed:
        st.caption(f"{failed} file(s) could not be analysed; see below.")
    st.dataframe(
        [summary_row(outcome) for outcome in outcomes],
        hide_index=True,
        placeholder="—",
        alt="Table of every uploaded image: file, melanoma probability, decision, quality checks and lesion area.",
        column_config={
            "File": st.column_config.TextColumn(width="medium"),
            "Melanoma probability": st.column_config.NumberColumn(format="%.1f%%", width="small"),
            "Decision": st.column_config.TextColumn(
                help="The model's output against its threshold; each image's section below words it in full."
            ),
            "Checks": st.column_config.TextColumn(help="Quality checks that fired: reasons to trust the outputs less."),
            "Lesion area": st.column_config.NumberColumn(format="%.1f%%", width="small"),
        },
    )
    with st.container(horizontal=True):
        st.download_button(
            "All results CSV",
            lambda: results_csv(outcomes),
            file_name="melanoma_results.csv",
            mime="text/csv",
            on_click="ignore",
            icon=":material/download:",
        )
        st.download_button(
            "All results JSON",
            lambda: results_json(outcomes),
            file_name="melanoma_results.json",
            mime="application/json",
            on_click="ignore",
            icon=":material/download:",
        )


def summary_row(outcome: Outcome) -> dict[str, Any]:
    """One row of the "All images" table; percentages as numbers (0-100) or None, so that the columns sort.

    Columns, most needed first (a narrow screen shows the first ones): ``File``, ``Melanoma probability``,
    ``Decision`` (short; each image's section words it in full), ``Checks``, ``Lesion area``. An image that was
    not assessed (``Prediction.assessable``) shows neither number: they mean nothing for it.
    """
    if isinstance(outcome, FailedImage):
        return {
            "File": spreadsheet_safe(outcome.name),  # the table's own CSV download opens in spreadsheets too
            "Melanoma probability": None,
            "Decision": f"not analysed: {outcome.error}",
            "Checks": "—",
            "Lesion area": None,
        }
    assessable = outcome.assessable
    probability = outcome.melanoma_probability if assessable else None
    area = outcome.lesion_area_fraction if assessable else None
    return {
        "File": spreadsheet_safe(outcome.name),
        "Melanoma probability": None if probability is None else round(100 * probability, 3),
        "Decision": _short_decision(outcome),
        "Checks": ", ".join(check.code.replace("_", " ") for check in outcome.quality_checks) or "—",
        "Lesion area": None if area is None else round(100 * area, 3),
    }


def _short_decision(prediction: Prediction) -> str:
    if prediction.decision is None:
        return "no classifier"
    if not prediction.assessable:
        return "not assessed"
    return "above threshold" if prediction.decision else "below threshold"


# --- downloads ----------------------------------------------------------------------------------------------


def result_record(prediction: Outcome) -> dict[str, Any]:
    """Everything the page shows about one image, JSON-ready.

    Args:
        prediction: the image's prediction, or the file that could not be analysed.

    Returns:
        A dict with the file name, probability and decision (``above_threshold``; both None when the image was
        not assessed, see ``Prediction.assessable``), threshold, lesion area and measurements (None when no lesion
        was outlined or the image was not assessed), sizes, timings and the quality checks that fired; for a failed
        file its name and ``error``.
    """
    if isinstance(prediction, FailedImage):
        return {"file": prediction.name, "error": prediction.error, "disclaimer": DISCLAIMER}
    analysed_height, analysed_width = prediction.image.shape[:2]
    assessed = prediction.assessable  # a mask's "lesion" is no finding: neither area nor measurements
    measurements = prediction.measurements if assessed else None
    return {
        "file": prediction.name,
        "melanoma_probability": prediction.melanoma_probability if assessed else None,  # noise, not shown
        "threshold": prediction.threshold,
        "above_threshold": prediction.decision if prediction.assessable else None,
        "model_output": prediction.decision_text,
        "lesion_area_fraction": prediction.lesion_area_fraction if assessed else None,
        "measurements": measurements.to_dict() if measurements and measurements.area_pixels > 0 else None,
        "original_size": list(prediction.original_size),
        "analysed_size": [analysed_width, analysed_height],
        "timings_ms": dict(prediction.timings_ms),
        "quality_checks": [{"code": c.code, "message": c.message} for c in prediction.quality_checks],
        "disclaimer": DISCLAIMER,
    }


def result_row(prediction: Outcome) -> dict[str, Any]:
    """One CSV row for an image: the columns of ``melanoma predict``'s CSV (``CSV_COLUMNS``), so files from both
    can be put together; a file that could not be analysed gets its ``error``, as there."""
    if isinstance(prediction, FailedImage):
        return prediction_row(prediction.name, prediction.error)
    return prediction_row(prediction.name, prediction)


def results_csv(predictions: Sequence[Outcome]) -> str:
    """The results of ``predictions`` as CSV text, one row per file (see ``result_row``)."""
    rows = [result_row(p) for p in predictions]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def results_json(predictions: Sequence[Outcome]) -> str:
    """The results of ``predictions`` as a JSON document (see ``result_record``)."""
    return json.dumps({"disclaimer": DISCLAIMER, "results": [result_record(p) for p in predictions]}, indent=2)


# --- text helpers -------------------------------------------------------------------------------------------

# An absolute path of two or more parts (POSIX or Windows), not inside a URL or a relative path.
_ABSOLUTE_PATH = re.compile(r"""(?<![\w.:/\\~-])(?:/|[A-Za-z]:[\\/])(?:[^\s/\\'"`]+[/\\])+([^\s/\\'"`]+)""")


def without_server_paths(value: Any) -> Any:
    """A config as every visitor may see it: each absolute path (a site's image folder recorded by ``melanoma
    calibrate``, the server's run folders) cut to ``…/`` and its last part; the files on the server keep them. The
    lists of training and validation image ids and their fingerprints (thousands of names, about 92 KB of base64
    per config, sent to every visitor on every rerun) are counted instead."""
    if isinstance(value, dict):
        return {key: _shown(key, item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_server_paths(item) for item in value]
    if isinstance(value, str):
        return _ABSOLUTE_PATH.sub(lambda match: f"…/{match.group(1)}", value)
    return value


def _shown(key: str, item: Any) -> Any:
    if key == "image_ids" and isinstance(item, dict):
        return _counted(item)
    if key == "image_fingerprints" and isinstance(item, dict):
        return {
            part: f"{len(text) * 3 // 4 // 32} fingerprints (in the model's JSON file)"
            if part != "method" and isinstance(text, str)
            else text
            for part, text in item.items()
        }
    return without_server_paths(item)


def _counted(image_ids: dict[str, Any]) -> dict[str, Any]:
    """``{"train": [2000 ids], ...}`` -> ``{"train": "2000 image ids (in the model's JSON file)", ...}``."""
    return {
        part: f"{len(ids)} image ids (in the model's JSON file)" if isinstance(ids, list) else ids
        for part, ids in image_ids.items()
    }


# "." and "@" too: Streamlit's markdown turns www.example.org and name@example.org into links by themselves.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-!|~$:.@&=])")


def _escape(text: str) -> str:
    """Show user-controlled text (file names, messages) literally in Streamlit markdown."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _sentence(message: str) -> str:
    message = message.strip()
    return (message[:1].upper() + message[1:]).rstrip(".") + "."


if __name__ == "__main__":
    main()
