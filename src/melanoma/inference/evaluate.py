"""Score the exported models through the Predictor (the serving path) on a folder of images.

Segmentation: each predicted mask is produced at its image's original size and compared with the ground-truth
mask, which must have the image's size (as shown, after EXIF orientation), with the official ISIC 2017 metrics.
Classification: AUC, average precision, and sensitivity / specificity / balanced accuracy at the model's
shipped threshold, with stratified bootstrap 95% intervals.

An image the Predictor reports as not assessed (almost uniform, ``blank_image``; two flat tones, ``mask_image``) is
left out of both scores and listed under ``not_assessed``. A file that cannot be read as an image (truncated, not an
image, unreadable) does not stop the pass: it is left out too and listed with its error under ``unreadable``, so one
bad file in a folder of hundreds costs the report one image, not the run. ``seen_in_training`` counts the scored images
that the network trained on or had as validation images: by file name, from the image lists its exported config
keeps, and by content, from the fingerprints it keeps of them (copies under other names are listed under
``copies``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from melanoma.data.folder import read_image_folder
from melanoma.data.samples import MASK_SUFFIX, DataError, Sample, read_labels_csv, read_mask
from melanoma.inference.checks import QUALITY_CHECKS
from melanoma.inference.fingerprint import COPY_DISTANCE, distances, fingerprint, nearest, stored_fingerprints
from melanoma.inference.image_io import displayed_size
from melanoma.inference.predictor import Prediction, Predictor
from melanoma.metrics import (
    FAILURE_INSIDE,
    FAILURE_JACCARD,
    SegmentationMeter,
    check_classification_inputs,
    classification_scores,
    cross_fitted_summary,
    segmentation_failure,
)


def _predictions(
    predictor: Predictor, samples: Sequence[Sample], batch_size: int, unreadable: dict[str, str]
) -> Iterator[tuple[Sample, Prediction]]:
    """Each readable sample with its prediction; a file that fails to load goes into ``unreadable`` (id -> error)."""
    with tqdm(total=len(samples), desc="evaluating", unit="img") as bar:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start : start + batch_size]
            results = predictor.predict_batch([s.image_path for s in chunk])
            bar.update(len(chunk))
            for sample, result in zip(chunk, results, strict=True):
                if not isinstance(result, Prediction):
                    unreadable[sample.image_id] = str(result)
                    continue
                yield sample, result


def _used_networks(predictor: Predictor) -> dict[str, dict[str, Any]]:
    """The networks a classification score depends on: the classifier, and the segmenter that places a lesion-crop
    classifier's crops."""
    networks = predictor.networks()
    return networks if predictor.classifier.config.get("input_crop") else {"classification": networks["classification"]}


def seen_in_training(
    config: dict[str, Any], image_ids: Sequence[str], fingerprints: Sequence[np.ndarray] | None = None
) -> dict[str, Any] | None:
    """How many of ``image_ids`` the exported network (every member of an ensemble) trained on (``train``) or had as
    validation images (``validation``: they chose its best epoch and threshold), from the image lists its config
    records; None when it records none (exports from before the lists were kept). An image can count in both (a
    validation image by name that is a copy of a training image).

    By file name, and, given the images' ``fingerprints`` (in the order of ``image_ids``) and a config that keeps
    its images' fingerprints (``by_content`` True), by content too: ``copies`` lists the images that are copies of
    one of them under another name (re-encoded, resized, colours changed: ``melanoma.inference.fingerprint``), and
    ``name_only`` those whose file name is one of them but whose content is not (another image of that name, or a
    copy changed beyond the copy limit); they still count, as their name says."""
    records = [m.get("training", {}) for m in config.get("ensemble", {}).get("members", [])]
    records = records or [config.get("training", {})]
    recorded = [r.get("data", {}).get("image_ids") for r in records]
    if not any(recorded):
        return None
    named = {part: {i for lists in recorded if lists for i in lists.get(part, [])} for part in ("train", "validation")}
    seen: dict[str, set[str]] = {part: {i for i in image_ids if i in named[part]} for part in named}
    tables = stored_fingerprints(config) if fingerprints is not None else None
    copies, name_only = [], []
    rows = {part: {i: row for row, i in enumerate(ids)} for part, (ids, _) in (tables or {}).items()}
    for image_id, print_ in zip(image_ids, fingerprints, strict=True) if tables is not None else ():
        for part, (ids, table) in tables.items():
            if image_id in named[part]:  # by name: is it that image's content too?
                if image_id in rows[part]:
                    distance = int(distances(print_, table[rows[part][image_id]][None])[0])
                    if distance > COPY_DISTANCE:
                        name_only.append({"image": image_id, "part": part, "distance": distance})
                continue
            row, distance = nearest(print_, table)
            if distance <= COPY_DISTANCE:
                seen[part].add(image_id)
                copies.append({"image": image_id, "copy_of": ids[row], "part": part, "distance": distance})
    return {
        "train": len(seen["train"]),
        "validation": len(seen["validation"]),
        "by_content": tables is not None,
        "copies": copies,
        "name_only": name_only,
    }


#: What ``seen_warning`` says when a model's config lists no images (``seen_in_training`` is None).
UNKNOWN_IMAGES = (
    "the {task} model's config lists no training or validation images (an export from before exports recorded "
    "them), so whether these images trained it, or chose its best epoch and threshold, is unknown; "
    "`python scripts/record_image_lists.py MODELS_DIR` records them for a model trained on the official ISIC 2017 "
    "splits"
)


def seen_warning(task: str, seen: dict[str, Any] | None, n: int) -> str | None:
    """A sentence when images scored were the network's training or validation images (no held-out score), or
    when its config cannot tell (``seen`` None)."""
    if seen is None:
        return UNKNOWN_IMAGES.format(task=task)
    if not (seen["train"] or seen["validation"]):
        return None
    copies = seen.get("copies", [])
    chose = "best epoch and threshold" if task == "classification" else "best epoch and post-processing"
    parts = []
    for part, what, which in (
        ("train", "trained it", "images that trained it"),
        ("validation", f"are its validation images, which chose its {chose}", f"its validation images, which chose "
         f"its {chose}"),
    ):  # fmt: skip
        count, copied = seen[part], sum(c["part"] == part for c in copies)
        if not count:
            continue
        if copied == count:
            parts.append(f"{count} are copies of {which}")
        elif copied:
            parts.append(f"{count} {what} ({copied} of them as copies under other names)")
        else:
            parts.append(f"{count} {what}")
    if seen.get("by_content"):
        how = "by file name, and by content for copies under other names"
        if copies:
            shown = ", ".join(f"{c['image']} = {c['copy_of']} ({c['distance']} bits apart)" for c in copies[:3])
            how += f": {shown}{f' and {len(copies) - 3} more' if len(copies) > 3 else ''}"
        unless = "(a copy heavily cropped, mirrored or rotated is not found)"
        name_only = seen.get("name_only", [])
        if name_only:
            shown = ", ".join(c["image"] for c in name_only[:3])
            more = f" and {len(name_only) - 3} more" if len(name_only) > 3 else ""
            unless = (
                f"(but {len(name_only)} of them, {shown}{more}, only share a file name with one of those images, "
                "not its content: if they are other images, this does not apply to them)"
            )
    else:
        how = "by file name"
        unless = "(if these are other images that share those file names, this does not apply)"
    return (
        f"of these {n} images, {' and '.join(parts)} (the {task} model's config lists them, {how}): scores on them "
        f"are not held-out and flatter the model; evaluate on images it never saw {unless}"
    )


#: Fewer images than this (of a class, for the classifier) and a bootstrap interval says little: it can only
#: resample the few there are, and comes out narrow, even of zero width, exactly where the uncertainty is largest.
MIN_FOR_INTERVALS = 10


def few_images_warning(task: str, scores: dict[str, Any]) -> str | None:
    """A sentence when the scored images are too few for the bootstrap intervals to mean much."""
    if task == "classification":
        positives, n = scores.get("n_positive", 0), scores.get("n", 0)
        counts = {"melanoma": positives, "other": n - positives}
    else:
        counts = {"": scores.get("n", 0)}
    short = {kind: count for kind, count in counts.items() if count < MIN_FOR_INTERVALS}
    if not short:
        return None
    named = " and ".join(f"{count} {kind} image(s)".replace("  ", " ") for kind, count in short.items())
    return (
        f"only {named} scored: the 95% intervals (ci95) resample just these and understate the uncertainty (with "
        f"every image right, an interval of zero width); score at least {MIN_FOR_INTERVALS}"
        + (" of each kind" if task == "classification" else "")
        + " before reading them"
    )


def _none_scored(images_dir: Path, not_assessed: list[str], unreadable: dict[str, str]) -> DataError:
    reasons = []
    if unreadable:
        first = next(iter(unreadable.items()))
        reasons.append(f"{len(unreadable)} could not be read (first: {first[0]}: {first[1]})")
    if not_assessed:
        reasons.append(f"{len(not_assessed)} are almost uniform or two flat tones (a mask), not photos")
    return DataError(f"no image in {images_dir} could be assessed: {' and '.join(reasons)}")


def evaluate_segmentation(
    predictor: Predictor,
    images_dir: Path,
    masks_dir: Path,
    batch_size: int = 8,
    bootstrap: int = 1000,
    mask_suffix: str = MASK_SUFFIX,
) -> dict[str, Any]:
    """Official ISIC 2017 segmentation scores of the shipped segmenter on ``images_dir`` against ``masks_dir``
    (each image's mask named ``<stem><mask_suffix>``), with image-bootstrap 95% intervals (``ci95``, ``bootstrap``
    resamples)."""
    if predictor.segmenter is None:
        raise DataError(predictor.missing_model("segmentation"))
    samples = read_image_folder(
        Path(images_dir), masks_dir=Path(masks_dir), require_masks=True, mask_suffix=mask_suffix
    )
    turned = _check_masks_fit(samples)  # every size before any image is scored: a late error loses the pass
    meter = SegmentationMeter()
    sizes = set()
    failures: dict[str, list[str]] = {"under": [], "over": [], "other": []}
    checks: list[set[str]] = []
    scored, not_assessed, unreadable, empty, prints = [], [], {}, [], []
    for sample, prediction in _predictions(predictor, samples, batch_size, unreadable):
        if not prediction.assessable:  # no photo of a lesion: served as "not assessed", so not scored either
            not_assessed.append(sample.image_id)
            continue
        scored.append(sample)
        prints.append(fingerprint(prediction.image))
        checks.append({check.code for check in prediction.quality_checks})
        target = read_mask(sample.mask_path)
        if not target.any():  # scored as annotated, but more often a mask format read wrong than a lesion-free photo
            empty.append(sample.image_id)
        predicted = prediction.lesion_mask
        sizes.add(predicted.shape)
        _check_mask_size(sample, predicted.shape, target.shape)
        meter.update(predicted, target)
        kind = segmentation_failure(predicted, target)
        if kind:
            failures[kind].append(sample.image_id)
    if not scored:
        raise _none_scored(images_dir, not_assessed, unreadable)
    scores = meter.compute()
    per_image = scores.pop("per_image_jaccard")
    flagged = {code: [code in fired for fired in checks] for code in QUALITY_CHECKS}
    return {
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()},
        "ci95": {k: [round(x, 4) for x in v] for k, v in meter.bootstrap_ci(bootstrap).items()},
        "per_image": dict(zip([s.image_id for s in scored], [round(j, 4) for j in per_image], strict=True)),
        "not_assessed": not_assessed,
        "unreadable": unreadable,
        "empty_annotations": empty,
        "orientation_unclear": [i for i in turned if i in {s.image_id for s in scored}],
        "seen_in_training": seen_in_training(predictor.segmenter.config, [s.image_id for s in scored], prints),
        "threshold": predictor.segmenter.config["threshold"],
        "postprocess": predictor.segmenter.config.get("postprocess", {}),
        "images_dir": str(images_dir),
        "masks_dir": str(masks_dir),
        "mask_suffix": mask_suffix,
        "mask_sizes_predicted": sorted({f"{w}x{h}" for h, w in sizes}),
        "models_dir": str(predictor.models_dir),
        "networks": {"segmentation": predictor.networks()["segmentation"]},
        "failures": {
            "rule": (
                f"images with Jaccard < {FAILURE_JACCARD}: under = at least {FAILURE_INSIDE:.0%} of the predicted "
                f"mask inside the annotation (part of the lesion missed), over = at least {FAILURE_INSIDE:.0%} of "
                "the annotation inside the prediction, other = neither"
            ),
            **{f"{kind}_segmented" if kind != "other" else kind: ids for kind, ids in failures.items()},
        },
        "quality_checks": {code: check_summary(per_image, marks) for code, marks in flagged.items()},
    }


#: EXIF orientations that flip or turn a photo by 180 degrees: its size as shown is its stored size.
_SIZE_KEEPING_TURNS = (2, 3, 4)


def _check_masks_fit(samples: Sequence[Sample]) -> list[str]:
    """Refuse, before any image is scored, masks whose size is not their image's as shown (all of them counted,
    the first three named); return the ids of images whose EXIF orientation a mask's size cannot confirm (a flip or
    a 180-degree turn, or a quarter turn of a square photo): the mask may have been drawn on the stored pixels."""
    wrong, unclear = [], []
    for sample in samples:
        shown = displayed_size(sample.image_path)
        if shown is None or sample.mask_path is None:  # unreadable: the scoring pass reports it
            continue
        (width, height), orientation = shown
        try:
            with Image.open(sample.mask_path) as mask:
                mask_size = mask.size
        except OSError:
            continue  # read_mask names the file in the pass
        if mask_size != (width, height):
            wrong.append((sample, (width, height), mask_size))
        elif orientation in _SIZE_KEEPING_TURNS or (orientation >= 5 and width == height):
            unclear.append(sample.image_id)
    if wrong:
        sample, (width, height), (mask_width, mask_height) = wrong[0]
        others = "; ".join(f"{s.mask_path.name} {m[0]}x{m[1]} for {i[0]}x{i[1]}" for s, i, m in wrong[1:3])
        more = f" ({len(wrong) - 1} more: {others}{' ...' if len(wrong) > 3 else ''})" if len(wrong) > 1 else ""
        try:
            _check_mask_size(sample, (height, width), (mask_height, mask_width))
        except DataError as error:
            raise DataError(f"{len(wrong)} mask(s) do not have their image's size{more}; the first: {error}") from None
    return unclear


def _check_mask_size(sample: Sample, predicted: tuple[int, ...], target: tuple[int, ...]) -> None:
    """The official scores compare masks pixel for pixel: a mask must have its image's size (as shown, after EXIF
    orientation), as the data checks ask of training masks; stretching one onto the other would score a
    misaligned outline."""
    if predicted == target:
        return
    (height, width), (mask_height, mask_width) = predicted, target
    hint = "save the mask at its image's size (nearest neighbour)"
    if (mask_height, mask_width) == (width, height):
        hint = (
            "the image carries an EXIF orientation tag, which the Predictor applies as a photo viewer does, so its "
            "mask was drawn on the stored pixels: rotate the mask the same way, or save the image without the tag"
        )
    raise DataError(
        f"mask {sample.mask_path} is {mask_width}x{mask_height} but its image {sample.image_path} is "
        f"{width}x{height}; {hint}"
    )


def check_summary(jaccards: Sequence[float], flagged: Sequence[bool]) -> dict[str, Any]:
    """How the images one quality check flagged scored against the others: counts, mean Jaccards, failures.

    A site can see on its own annotated images whether the check picks out the outlines to distrust.
    """
    values, marks = np.asarray(jaccards, dtype=float), np.asarray(flagged, dtype=bool)

    def mean(selected: np.ndarray) -> float | None:
        return round(float(selected.mean()), 4) if selected.size else None

    failed = values < FAILURE_JACCARD
    return {
        "flagged": int(marks.sum()),
        "mean_jaccard_flagged": mean(values[marks]),
        "mean_jaccard_other": mean(values[~marks]),
        "failures_flagged": int((failed & marks).sum()),
        "failures": int(failed.sum()),
    }


PLOT_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".pdf")


def check_plots_dir(plots_dir: Path) -> None:
    """``--plots`` names a folder that roc.png and calibration.png go into: refuse a file, or a file-like name."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError("--plots needs matplotlib, which is not installed; install it with: pip install matplotlib")
    if plots_dir.exists() and not plots_dir.is_dir():
        raise DataError(
            f"--plots {plots_dir} is a file; give a folder (roc.png and calibration.png are written into it)"
        )
    if not plots_dir.exists() and plots_dir.suffix.lower() in PLOT_SUFFIXES:
        raise DataError(
            f"--plots {plots_dir} looks like a file name; give a folder (roc.png and calibration.png are written "
            f"into it), e.g. --plots {plots_dir.parent / 'plots'}"
        )


def _check_classes_left(truth: list, probabilities: list, not_assessed: list, unreadable: dict) -> None:
    """Both classes still, without the images left out; an error says which were left out, as they explain it."""
    try:
        check_classification_inputs(truth, probabilities)
    except ValueError as error:
        left_out = []
        if unreadable:
            left_out.append(f"{len(unreadable)} unreadable file(s) (first: {next(iter(unreadable))})")
        if not_assessed:
            left_out.append(f"{len(not_assessed)} image(s) not assessed (first: {not_assessed[0]})")
        if not left_out:
            raise
        raise DataError(f"after leaving out {' and '.join(left_out)}: {error}") from error


def evaluate_classification(
    predictor: Predictor,
    images_dir: Path,
    labels_csv: Path,
    batch_size: int = 16,
    bootstrap: int = 1000,
    plots_dir: Path | None = None,
    label_column: str = "melanoma",
    mask_suffix: str = MASK_SUFFIX,
    id_column: str | None = None,
) -> dict[str, Any]:
    """Melanoma AUC, AP and thresholded metrics (at the shipped threshold) with bootstrap 95% intervals.

    The labels are ``labels_csv``'s ``label_column`` (0/1; ISIC 2020's CSV: ``target``), the images named by its
    ``id_column`` (None: the first of ``ID_COLUMNS`` it has); files named
    ``<stem><mask_suffix>`` (masks kept among the images) are not scored.

    ``per_image`` maps each image id to its label and the served melanoma probability. With ``bootstrap > 0``,
    ``cross_fitted`` also estimates the operating point of a Youden threshold fitted on other images than those it
    decides (5-fold cross-fitting over these images): when the shipped threshold was fitted on these same images,
    its sensitivity/specificity here are flattered by the fit, the cross-fitted ones are not.
    """
    if predictor.classifier is None:
        raise DataError(predictor.missing_model("classification"))
    if plots_dir is not None:  # checked before the long scoring pass, which a late failure would throw away
        check_plots_dir(Path(plots_dir))
    samples = read_image_folder(
        Path(images_dir),
        labels_csv=Path(labels_csv),
        ignore_rows_without_image=True,
        label_column=label_column,
        mask_suffix=mask_suffix,
        id_column=id_column,
    )
    # Rows of images not in the folder (the full ISIC CSV for a subset) are skipped: said in the report.
    found = {s.image_id for s in samples}
    labels = read_labels_csv(Path(labels_csv), label_column, id_column=id_column)
    unscored_rows = sorted(i for i in labels if i not in found)
    check_classification_inputs([s.melanoma for s in samples], [0.5] * len(samples))  # both classes, before scoring
    truth, probabilities, per_image, not_assessed, unreadable, prints = [], [], {}, [], {}, []
    for sample, prediction in _predictions(predictor, samples, batch_size, unreadable):
        if not prediction.assessable:  # no photo of a lesion: served as "not assessed", so not scored either
            not_assessed.append(sample.image_id)
            continue
        truth.append(sample.melanoma)
        probabilities.append(prediction.melanoma_probability)
        per_image[sample.image_id] = {"melanoma": int(sample.melanoma), "probability": prediction.melanoma_probability}
        prints.append(fingerprint(prediction.image))
    if not truth:
        raise _none_scored(images_dir, not_assessed, unreadable)
    _check_classes_left(truth, probabilities, not_assessed, unreadable)
    threshold = predictor.threshold
    scores = classification_scores(np.asarray(truth), np.asarray(probabilities), threshold, bootstrap=bootstrap)
    if plots_dir is not None:
        from melanoma.plots import plot_calibration, plot_roc

        Path(plots_dir).mkdir(parents=True, exist_ok=True)
        plot_roc(truth, probabilities, threshold, Path(plots_dir) / "roc.png")
        plot_calibration(truth, probabilities, Path(plots_dir) / "calibration.png")
    rounded = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}
    if "ci95" in rounded:
        rounded["ci95"] = {k: [round(x, 4) for x in v] for k, v in rounded["ci95"].items()}
    if bootstrap > 0:
        rounded["cross_fitted"] = cross_fitted_summary(truth, probabilities)
    return {
        **rounded,
        "images_dir": str(images_dir),
        "labels_csv": str(labels_csv),
        "label_column": label_column,
        **({"id_column": id_column} if id_column else {}),
        "labels_without_image": len(unscored_rows),
        "labels_without_image_first": unscored_rows[:3],
        "not_assessed": not_assessed,
        "unreadable": unreadable,
        "seen_in_training": seen_in_training(predictor.classifier.config, list(per_image), prints),
        "models_dir": str(predictor.models_dir),
        "networks": _used_networks(predictor),
        "per_image": per_image,
    }
