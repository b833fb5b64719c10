"""Re-fit the classifier's decision threshold on a site's own labelled images, into a new model folder.

The shipped threshold is Youden's J on the 150 ISIC 2017 validation images, taken with ISIC's cameras. Another clinic
(other dermatoscopes, light, population) may see the probabilities shift, and the same threshold then flags a
different share of its melanomas. ``recalibrate_threshold`` scores the shipped models on the site's labelled images
through the serving path, reports how the shipped threshold does there, fits Youden's threshold on those images
(with bootstrap intervals and the cross-fitted estimate that the fit does not flatter), and writes a copy of the model
folder whose classifier config carries the new threshold. The networks are not changed; serve the copy with
``melanoma app --models OUT`` or ``melanoma predict --models OUT``.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from melanoma.data.folder import read_image_folder
from melanoma.data.samples import MASK_SUFFIX, DataError
from melanoma.inference.calibrate import MIN_PER_CLASS
from melanoma.inference.evaluate import evaluate_classification
from melanoma.inference.predictor import TASK_CONFIGS, Predictor
from melanoma.metrics import classification_scores, cross_fitted_summary

MODEL_FILES = ("*.onnx", "*.json", "*_train_config.yaml")  # what a served model folder needs (no card, no eval/)


def _check_classes(labels: list[int], images_dir: Path) -> None:
    positives = int(sum(labels))
    negatives = len(labels) - positives
    if min(positives, negatives) < MIN_PER_CLASS:
        raise DataError(
            f"{images_dir} has {positives} melanoma and {negatives} other labelled images; a threshold fitted on "
            f"fewer than {MIN_PER_CLASS} of either would be noise: add labelled images of "
            + ("both kinds" if max(positives, negatives) < MIN_PER_CLASS else "the kind short of it")
        )


def _check_new_folder(out_dir: Path) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):  # also refuses the model folder itself
        raise FileExistsError(f"{out_dir} already exists and is not empty: pass a new folder with --out")


def _copy_models(models_dir: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for pattern in MODEL_FILES:
        for path in sorted(models_dir.glob(pattern)):
            shutil.copy2(path, out_dir / path.name)


def _rounded(scores: dict[str, Any]) -> dict[str, Any]:
    result = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}
    if "ci95" in result:
        result["ci95"] = {k: [round(x, 4) for x in v] for k, v in result["ci95"].items()}
    return result


def recalibrate_threshold(
    models_dir: Path | str | None,
    images_dir: Path,
    labels_csv: Path,
    out_dir: Path,
    bootstrap: int = 1000,
    label_column: str = "melanoma",
    mask_suffix: str = MASK_SUFFIX,
    id_column: str | None = None,
) -> dict[str, Any]:
    """Fit the classifier's threshold on ``images_dir`` (labels in ``labels_csv``) and write the models to ``out_dir``.

    Args:
        models_dir: the model folder to start from (None: the shipped models).
        images_dir: the site's images.
        labels_csv: ``image_id,melanoma`` for them (``image_id`` = file stem), at least ``MIN_PER_CLASS`` of each.
        out_dir: a new (or empty) folder for the copy of the model folder with the re-fitted threshold.
        bootstrap: stratified bootstrap resamples for the 95% intervals.
        label_column: the column of ``labels_csv`` with the 0/1 melanoma label (ISIC 2020's CSV: ``target``).
        mask_suffix: files named ``<stem><mask_suffix>`` in ``images_dir`` are masks, not images to fit on.
        id_column: the column of ``labels_csv`` naming the images (None: the first of ``ID_COLUMNS`` it has).

    Returns:
        ``{"out_dir", "n", "n_positive", "auc", "current_threshold": {...}, "refitted_threshold": {...}}``: the
        operating point of the starting threshold on these images, and the new one's (in-sample, with ``ci95``
        and ``cross_fitted``); ``advice`` (``threshold_advice``) and ``serve_refitted``: whether to serve the new
        folder (the advice says so, the site is not ranked at chance and none of the images is one the model
        trained or was validated on, by file name or as a copy found by content: ``seen_in_training``).

    An image file that cannot be read is left out of the fit and listed under ``unreadable`` (in the summary and
    the re-fitted config's provenance).

    Raises:
        DataError: unreadable labels, no classifier, no readable image, or too few images of a class.
        FileExistsError: ``out_dir`` exists and is not empty.
    """
    predictor = Predictor.from_dir(models_dir)
    source = Path(predictor.models_dir)
    out_dir = Path(out_dir)
    _check_new_folder(out_dir)
    # The class counts from the folder and CSV alone, before every image is scored.
    samples = read_image_folder(
        Path(images_dir),
        Path(labels_csv),
        ignore_rows_without_image=True,
        label_column=label_column,
        mask_suffix=mask_suffix,
        id_column=id_column,
    )
    _check_classes([s.melanoma for s in samples], Path(images_dir))
    shipped = evaluate_classification(
        predictor,
        Path(images_dir),
        Path(labels_csv),
        bootstrap=bootstrap,
        label_column=label_column,
        mask_suffix=mask_suffix,
        id_column=id_column,
    )
    per_image = shipped.pop("per_image")
    labels = [row["melanoma"] for row in per_image.values()]
    probabilities = [row["probability"] for row in per_image.values()]
    _check_classes(labels, Path(images_dir))
    fitted = classification_scores(np.asarray(labels), np.asarray(probabilities), None, bootstrap)
    refitted = _rounded(fitted)
    refitted["cross_fitted"] = cross_fitted_summary(labels, probabilities)

    _copy_models(source, out_dir)
    provenance = {
        "images_dir": str(Path(images_dir).resolve()),  # absolute: the record holds from any working directory
        "labels_csv": str(Path(labels_csv).resolve()),
        **({"label_column": label_column} if label_column != "melanoma" else {}),
        **({"id_column": id_column} if id_column else {}),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "from_models": str(source.resolve()),
        "previous_threshold_here": _operating_point(shipped),
        **({"unreadable": shipped["unreadable"]} if shipped["unreadable"] else {}),
        **({"labels_without_image": shipped["labels_without_image"]} if shipped["labels_without_image"] else {}),
        **({"not_assessed": shipped["not_assessed"]} if shipped["not_assessed"] else {}),
    }
    config_path = out_dir / TASK_CONFIGS["classification"]
    reference = json.loads(config_path.read_text()).get("validation", {})
    warnings = [w for w in (chance_warning(refitted), ranking_warning(refitted, reference)) if w]
    warning = " ".join(warnings) or None
    # Kept in the served config too: predict and the app repeat a config's validation warning wherever it serves.
    _write_config(
        config_path, fitted["threshold"], {**refitted, **({"warning": warning} if warning else {})}, provenance
    )
    summary = {
        "out_dir": str(out_dir),
        "n": refitted["n"],
        "n_positive": refitted["n_positive"],
        "auc": refitted["auc"],
        "current_threshold": _operating_point(shipped),  # the --models folder's own threshold
        "refitted_threshold": {**_operating_point(refitted), "cross_fitted": refitted["cross_fitted"]},
    }
    summary["advice"] = threshold_advice(summary["current_threshold"], refitted["cross_fitted"])
    # Serve the new folder only when the advice says so, the site is not ranked at chance ("do not serve it") and
    # the images are known not to be the model's own training or validation images (a fit on them is flattered; a
    # config from before exports listed them cannot tell).
    summary["ranked_at_chance"] = chance_warning(refitted) is not None
    seen = shipped["seen_in_training"]
    summary["serve_refitted"] = (
        summary["advice"].startswith("serve")
        and not summary["ranked_at_chance"]
        and seen is not None
        and not (seen["train"] or seen["validation"])
    )
    if shipped["labels_without_image"]:  # rows of the CSV whose image is not in the folder: not in the fit
        summary["labels_without_image"] = shipped["labels_without_image"]
        summary["labels_without_image_first"] = shipped["labels_without_image_first"]
    if shipped["unreadable"]:  # left out of the fit: said beside the numbers and in the re-fitted config
        summary["unreadable"] = shipped["unreadable"]
    if shipped["not_assessed"]:  # almost uniform or a mask: left out of the fit, said as the unreadable files are
        summary["not_assessed"] = shipped["not_assessed"]
    # the model's own training / validation images (a flattered fit), or None: its config cannot tell
    summary["seen_in_training"] = shipped["seen_in_training"]
    return {**summary, "warning": warning} if warning else summary


def threshold_advice(current: dict[str, Any], cross_fitted: dict[str, Any]) -> str:
    """Whether the re-fitted threshold can be expected to do better on this site than the current one.

    The current threshold was fitted on other images, so its balanced accuracy here is a fair estimate; the re-fitted
    one's in-sample figures are flattered by the fit, its cross-fitted ones are not: those two are compared. Serving
    the re-fitted one is advised only when its cross-fitted balanced accuracy lies above the current threshold's 95%
    bootstrap interval on these images (a gain inside it is what another sample of the site's images could undo), and
    the advice always says what it trades: melanoma sensitivity against specificity."""
    now, refit = current.get("balanced_accuracy"), cross_fitted.get("balanced_accuracy")
    if now is None or refit is None:
        return "no comparison: too few images of a class for the cross-fitted estimate"
    trade = _trade(current, cross_fitted)
    interval = (current.get("ci95") or {}).get("balanced_accuracy")
    compared = (
        f"a balanced accuracy of {refit:.3f} on images it was not fitted on (cross-fitted) against {now:.3f} for the "
        "current threshold on these images"
    )
    if refit > now and interval and refit > interval[1]:
        return (
            f"serve the re-fitted threshold: it reaches {compared}, above the current one's 95% interval "
            f"({interval[0]:.3f}-{interval[1]:.3f}); {trade}"
        )
    if refit > now:
        noise = (
            f"inside the current one's 95% interval ({interval[0]:.3f}-{interval[1]:.3f}), a gain another sample of "
            "this site's images could undo"
            if interval
            else "with no interval to tell the gain from noise (scored without bootstrap)"
        )
        return (
            f"keep the current threshold: re-fitted, it reaches {compared}, {noise}; {trade}; more labelled images "
            "would tell them apart better"
        )
    return (
        f"keep the current threshold: re-fitted, it reaches {compared}; {trade}; more labelled images would tell them "
        "apart better"
    )


def _trade(current: dict[str, Any], cross_fitted: dict[str, Any]) -> str:
    """'re-fitted, melanoma sensitivity 0.917 -> 0.745 and specificity 0.750 -> 0.980 (cross-fitted)'."""
    pairs = [(key, current.get(key), cross_fitted.get(key)) for key in ("sensitivity", "specificity")]
    if any(now is None or refit is None for _, now, refit in pairs):
        return "the re-fitted threshold's sensitivity and specificity are in the report"
    (_, sens_now, sens_refit), (_, spec_now, spec_refit) = pairs
    fewer = " (it would miss more melanomas)" if sens_refit < sens_now else ""
    return (
        f"re-fitted, melanoma sensitivity {sens_now:.3f} -> {sens_refit:.3f}{fewer} and specificity {spec_now:.3f} -> "
        f"{spec_refit:.3f} (cross-fitted)"
    )


def _write_config(path: Path, threshold: float, scores: dict[str, Any], provenance: dict[str, Any]) -> dict:
    """Put the re-fitted ``threshold`` (unrounded, as export stores it) and its ``scores`` into the classifier config
    at ``path``, keeping the previous threshold and validation block under ``recalibration``; return those."""
    config = json.loads(path.read_text())
    previous = {"threshold": config["threshold"], "validation": config.get("validation", {})}
    config["threshold"] = threshold
    config["validation"] = {
        **scores,
        "note": (
            f"threshold re-fitted on these {scores['n']} images (Youden's J): the site's own, not the one the "
            "model was exported with"
        ),
    }
    config["recalibration"] = {**provenance, "previous": previous}
    config.pop("calibrated", None)  # the threshold is fitted now, whatever the export skipped
    path.write_text(json.dumps(config, indent=2) + "\n")
    return previous


def chance_warning(site: dict[str, Any]) -> str | None:
    """A sentence when the site's AUC interval reaches 0.5: no evidence the classifier ranks these images at all, so
    any threshold fitted on them is arbitrary."""
    low = site.get("ci95", {}).get("auc", [None, None])[0]
    if low is None or low > 0.5:
        return None
    return (
        f"on these images the classifier does not rank melanomas above other lesions beyond chance (AUC "
        f"{site['auc']:.3f}, 95% CI from {low:.3f}): a threshold fitted here is arbitrary; do not serve it."
    )


def ranking_warning(site: dict[str, Any], reference: dict[str, Any]) -> str | None:
    """A sentence when the classifier ranks the site's images clearly worse than the images its threshold came from
    (the site's AUC interval lies below the reference AUC): a new threshold cannot repair the ranking itself."""
    high = site.get("ci95", {}).get("auc", [None, None])[1]
    if high is None or "auc" not in reference or high >= reference["auc"]:
        return None
    return (
        f"the classifier ranks these images worse than the {reference.get('n', '?')} it was calibrated on: AUC "
        f"{site['auc']:.3f} (95% CI up to {high:.3f}) against {reference['auc']:.3f}. A re-fitted threshold moves the "
        "trade-off between missed melanomas and false alarms, it cannot make the ranking better: check image "
        "quality and acquisition (dermoscopic close-ups, as in the ISIC archive) before relying on it."
    )


#: The scores of a threshold (the ranking's AUC and average precision are the same at any threshold).
_AT_THRESHOLD = ("sensitivity", "specificity", "balanced_accuracy")


def _operating_point(scores: dict[str, Any]) -> dict[str, Any]:
    """A threshold and what it gives on the scored images, with those scores' 95% intervals only."""
    point = {key: scores[key] for key in ("threshold", *_AT_THRESHOLD) if key in scores}
    if "ci95" in scores:
        point["ci95"] = {key: scores["ci95"][key] for key in _AT_THRESHOLD if key in scores["ci95"]}
    return point
