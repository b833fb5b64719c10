"""Export-time calibration on validation data, run through the exported ONNX graph (the serving path).

Segmentation: the probability threshold and which post-processing steps (largest connected component,
hole filling) to keep, each step's effect on validation Jaccard measured and kept only when it helps.
Classification: the decision threshold by Youden's J on the validation ROC curve, with the sensitivity and
specificity it gives, bootstrap 95% intervals, and ROC / calibration plots written into the model folder.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from melanoma.data.samples import Sample, read_mask
from melanoma.inference.postprocess import lesion_mask, resize_mask
from melanoma.inference.predictor import TASK_CONFIGS, Model, Predictor, load_for, load_model, onnx_session
from melanoma.inference.preprocess import FLIP_MODES
from melanoma.metrics import SegmentationMeter, classification_scores, cross_fitted_summary

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.30, 0.71, 0.05))
POSTPROCESS_VARIANTS = {
    "none": (False, False),
    "largest_component": (True, False),
    "fill_holes": (False, True),
    "largest_component+fill_holes": (True, True),
}
TTA_FLIPS = ["hflip", "vflip"]
MIN_GAIN = 0.001  # a post-processing step must raise mean validation Jaccard by at least this much to be kept
#: Fewer validation images than this, and the segmenter's threshold and post-processing choices are noise (export
#: warns, and the Predictor repeats it wherever the folder serves).
MIN_SEGMENTATION_IMAGES = 30


def batched_outputs(
    model: Model, samples: Sequence[Sample], batch_size: int = 16, desc: str = "segmentation validation"
) -> Iterator[tuple[Sample, list[np.ndarray]]]:
    """Run ``model`` (the Predictor's path) over the samples' images; yield each sample with its outputs."""
    for start in tqdm(range(0, len(samples), batch_size), desc=desc, leave=False):
        chunk = samples[start : start + batch_size]
        outputs = model.run([load_for(s.image_path, model) for s in chunk])  # decoded as served
        for i, sample in enumerate(chunk):
            yield sample, [output[i] for output in outputs]


def _threshold_scores(model: Model, samples: Sequence[Sample], targets: list[np.ndarray]) -> dict:
    meters = {(t, v): SegmentationMeter() for t in THRESHOLDS for v in POSTPROCESS_VARIANTS}
    for (_, (probability,)), target in zip(batched_outputs(model, samples), targets, strict=True):
        full = resize_mask(probability[0], (target.shape[1], target.shape[0]))
        for t in THRESHOLDS:
            for variant, (largest, fill) in POSTPROCESS_VARIANTS.items():
                steps = {"largest_component": largest, "fill_holes": fill}
                meters[(t, variant)].update(lesion_mask(full, t, steps), target)
    return {key: meter.compute() for key, meter in meters.items()}


def _best_jaccard(scores: dict) -> float:
    return max(score["jaccard"] for (_, variant), score in scores.items() if variant == "none")


def calibrate_segmentation(
    session, samples: Sequence[Sample], model_config: dict[str, Any], flips: str = "auto"
) -> dict[str, Any]:
    """Choose test-time flips and the threshold, then keep each post-processing step only if it helps.

    Each choice is kept only when it raises mean validation Jaccard by at least ``MIN_GAIN``. ``flips="off"``
    never uses test-time flips (they triple the segmenter's cost); both scores are still recorded.
    """
    if flips not in FLIP_MODES:
        raise ValueError(f"unknown test-time flips mode {flips!r}; valid: {', '.join(FLIP_MODES)}")
    targets = [read_mask(sample.mask_path) for sample in samples]
    plain = _threshold_scores(Model(session, {**model_config, "test_time_flips": []}), samples, targets)
    flipped = _threshold_scores(Model(session, {**model_config, "test_time_flips": TTA_FLIPS}), samples, targets)
    use_flips = flips == "auto" and _best_jaccard(flipped) - _best_jaccard(plain) >= MIN_GAIN
    scores = flipped if use_flips else plain
    threshold_table = [{"threshold": t, "jaccard": round(scores[(t, "none")]["jaccard"], 4)} for t in THRESHOLDS]
    threshold = max(THRESHOLDS, key=lambda t: (scores[(t, "none")]["jaccard"], -abs(t - 0.5)))
    base = scores[(threshold, "none")]["jaccard"]
    ablation = {v: round(scores[(threshold, v)]["jaccard"], 4) for v in POSTPROCESS_VARIANTS}
    keep = {
        step: scores[(threshold, step)]["jaccard"] - base >= MIN_GAIN for step in ("largest_component", "fill_holes")
    }
    chosen = "+".join(step for step, kept in keep.items() if kept) or "none"
    final = scores[(threshold, chosen)]
    few = (
        {
            "warning": (
                f"threshold, post-processing and test-time flips chosen on {final['n']} validation images: with fewer "
                f"than {MIN_SEGMENTATION_IMAGES}, gains of a thousandth of Jaccard cannot be told from noise; export "
                "it again on more annotated images (and with --test-time-flips off unless they are shown to help)"
            )
        }
        if final["n"] < MIN_SEGMENTATION_IMAGES
        else {}
    )
    return {
        "threshold": threshold,
        "postprocess": keep,
        "test_time_flips": TTA_FLIPS if use_flips else [],
        "test_time_flips_mode": flips,
        "validation": {
            **few,
            "n": final["n"],
            "jaccard": round(final["jaccard"], 4),
            "thresholded_jaccard": round(final["thresholded_jaccard"], 4),
            "dice": round(final["dice"], 4),
            "threshold_search": threshold_table,
            "postprocess_ablation_jaccard": ablation,
            "test_time_flips_best_jaccard": {
                "none": round(_best_jaccard(plain), 4),
                "+".join(TTA_FLIPS): round(_best_jaccard(flipped), 4),
            },
            "note": "chosen on these validation images; measured through the exported ONNX model",
        },
    }


#: Fewer melanomas (or other lesions) than this, and Youden's cut-point is noise (export warns, calibrate refuses).
MIN_PER_CLASS = 10


def calibrate_classification(
    session, samples: Sequence[Sample], model_config: dict[str, Any], out_dir: Path, segmenter: Model | None = None
) -> dict[str, Any]:
    """Youden-J threshold on validation, its sensitivity/specificity, bootstrap intervals, ROC + calibration plots.

    Runs the Predictor's classification path; a lesion-crop classifier (``input_crop``) needs the ``segmenter``
    whose masks place its crops when serving.
    """
    predictor = Predictor(segmenter, Model(session, model_config), out_dir)
    labels, probabilities = [], []
    for start in tqdm(range(0, len(samples), 16), desc="classification validation", leave=False):
        chunk = samples[start : start + 16]
        images = [load_for(s.image_path, segmenter, predictor.classifier) for s in chunk]  # decoded as served
        probability, _cams, _boxes = predictor.classify(images)
        labels += [int(s.melanoma) for s in chunk]
        probabilities += [float(p) for p in probability]
    scores = classification_scores(np.asarray(labels), np.asarray(probabilities), bootstrap=1000, seed=0)
    try:
        from melanoma.plots import plot_calibration, plot_roc

        plot_roc(labels, probabilities, scores["threshold"], out_dir / "roc_validation.png")
        plot_calibration(labels, probabilities, out_dir / "calibration_validation.png")
    except ImportError:
        pass
    validation = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}
    validation["note"] = "threshold chosen on these validation images (Youden's J); measured through the ONNX model"
    validation["cross_fitted"] = cross_fitted_summary(labels, probabilities)
    positives = int(sum(labels))
    if min(positives, len(labels) - positives) < MIN_PER_CLASS:
        validation["warning"] = (
            f"threshold fitted on {positives} melanoma and {len(labels) - positives} other validation images: "
            f"with fewer than {MIN_PER_CLASS} of either, Youden's cut-point is noise; re-fit it with `melanoma "
            "calibrate` on more labelled images before serving"
        )
    return {"threshold": scores["threshold"], "validation": validation}


def calibrate_model(
    onnx_path: Path,
    model_config: dict[str, Any],
    train_config,
    out_dir: Path,
    flips: str = "auto",
    segmenter_dir: Path | None = None,
) -> dict[str, Any]:
    """Calibrate an exported model on its run's validation split; returns the keys to merge into its config.

    ``flips`` ("auto" or "off") is the segmenter's test-time flip rule; classifiers ignore it. A lesion-crop
    classifier is calibrated with the segmenter it will be served with: ``out_dir``'s, else ``segmenter_dir``'s.
    """
    from melanoma.training.datasets import check_same_split, load_splits

    _, val_samples, provenance = load_splits(train_config.data)
    members = model_config.get("ensemble", {}).get("members", [])
    for training in [model_config.get("training", {}), *(member.get("training", {}) for member in members)]:
        check_same_split(training.get("data", {}), provenance, "calibrating the export")
    session = onnx_session(onnx_path)
    if model_config["task"] == "segmentation":
        return calibrate_segmentation(session, val_samples, model_config, flips)
    segmenter = None
    if model_config.get("input_crop"):
        segmenter = find_segmenter([Path(out_dir), *([Path(segmenter_dir)] if segmenter_dir else [])])
    calibrated = calibrate_classification(session, val_samples, model_config, out_dir, segmenter)
    if segmenter is not None:  # its threshold fits the crops this segmenter places: the Predictor checks the pair
        crop = {**model_config["input_crop"], "segmenter_onnx_sha256": segmenter.config.get("onnx_sha256")}
        calibrated["input_crop"] = crop
    return calibrated


def find_segmenter(folders: Sequence[Path]) -> Model:
    """The segmentation model of the first of ``folders`` that has one (a lesion-crop classifier's crops)."""
    for folder in folders:
        if (folder / TASK_CONFIGS["segmentation"]).is_file():
            return load_model(folder, "segmentation")
    raise FileNotFoundError(
        "this classifier was trained on lesion crops (data.lesion_crop) and is calibrated on the crops the "
        f"segmenter it is served with chooses, but none of {', '.join(map(str, folders))} has "
        f"{TASK_CONFIGS['segmentation']}: export into a model folder with a segmenter or pass --segmenter DIR"
    )
