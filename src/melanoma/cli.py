"""The ``melanoma`` command: thin wrappers over library functions.

Training-side commands (train, export) import torch lazily, so ``predict``, ``evaluate`` and ``app``
run on the core install (onnxruntime + numpy + Pillow).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from melanoma import DISCLAIMER


class UsageError(ValueError):
    """A command line that cannot run as given (a wrong --out, a config of the other task): ``main`` prints it
    after ``error:`` and exits 2, as argparse does for its own usage errors and as every other refusal does."""


MASK_SUFFIX_HELP = (
    "what a mask's file name adds to its image's stem (default: _segmentation.png; e.g. _mask.png, or .png for masks "
    "named as their images in a folder of their own): segmentation reads the masks by it, and files so named among "
    "the images are masks, not images to score"
)
MODELS_DEFAULT = "(default: $MELANOMA_MODELS when set, else the shipped models)"
MODELS_HELP = f"model folder {MODELS_DEFAULT}"
LABEL_COLUMN_HELP = (
    "the labels CSV's 0/1 melanoma column (default: melanoma; ISIC 2020's CSV: target, ISIC 2019's: MEL); the image "
    "column may be image_id, image_name, isic_id or image (see --id-column)"
)
ID_COLUMN_HELP = (
    "the labels CSV's column naming each image by its file name, with or without the suffix (default: the first of "
    "image_id, image_name, isic_id, image it has; e.g. filename)"
)


def _train(args: argparse.Namespace) -> int:
    from melanoma.config import absolute_data_paths, load_config

    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    config = load_config(args.config, overrides)
    if config.task != args.task:
        overridden = any(item.lstrip("-").startswith("task=") for item in args.overrides)
        source = f"{args.config} with the override task={config.task}" if overridden else args.config
        raise UsageError(
            f"{source} is a {config.task} config, but you asked to train {args.task}: use a "
            f"{args.task} config, or add the override task={args.task}"
        )
    config.command = shlex.join(["melanoma", *args.argv])
    absolute_data_paths(config.data)  # export and quantize read them again, maybe from another directory
    out = Path(args.out or f"runs/{args.task}-{time.strftime('%Y%m%d-%H%M%S')}")
    args.out = str(out)  # a run folder named here is named in the Ctrl-C hint too
    if args.resume and not (out / "last.pt").is_file():
        raise UsageError(f"--resume needs {out / 'last.pt'}; pass the --out of the run to continue")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; pass a folder for the run")
    held = [name for name in ("last.pt", "best.pt") if (out / name).is_file()]
    if not args.resume and held:  # a new run would overwrite that run's checkpoints and metrics.csv
        finished = "last.pt" in held and _finished(out)
        hint = (
            f"it finished its epochs (export it with melanoma export {out}), so choose"
            if finished
            else "pass --resume to continue it, or"
            if "last.pt" in held
            else "choose"
        )
        raise UsageError(
            f"{out} already holds a run ({', '.join(held)}): {hint} another --out "
            "(delete the folder to train it again from scratch)"
        )

    from melanoma.training.engine import fit

    best = fit(config, out, resume=args.resume)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only the first process reports
        print(f"run directory: {out}")
        row = dict(best.get("row") or {})
        if row:
            epoch = int(row.pop("epoch"))
            shown = " ".join(f"{key}={value:.4g}" for key, value in row.items() if key.startswith("val_"))
            print(f"best epoch: {epoch} ({shown}); kept as {out / 'best.pt'}")
    return 0


def _run_progress(run_dir: Path) -> tuple[int, int] | None:
    """(finished epochs, planned epochs) of a run folder, from its metrics.csv rows and config.yaml; None when either
    is missing or unreadable."""
    import yaml

    try:
        rows = (run_dir / "metrics.csv").read_text().strip().splitlines()[1:]
        planned = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("optim", {}).get("epochs")
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return None
    return (len(rows), planned) if isinstance(planned, int) else None


def _finished(run_dir: Path) -> bool:
    progress = _run_progress(run_dir)
    return progress is not None and progress[0] >= progress[1]


def _export(args: argparse.Namespace) -> int:
    from melanoma.inference.export import add_to_export, export_run

    replaced = _previous_export(Path(args.run_dir), Path(args.out) if args.out else Path(args.run_dir) / "export")
    if args.add_to:
        _check_add_to_options(args)
        out = add_to_export(Path(args.run_dir), Path(args.add_to), Path(args.out) if args.out else None, args.data_dir)
    else:
        out = export_run(
            Path(args.run_dir),
            Path(args.out) if args.out else None,
            calibrate=not args.no_calibrate,
            flips=args.test_time_flips,
            segmenter_dir=Path(args.segmenter) if args.segmenter else None,
            classifier_flips=args.classifier_flips,
            ensemble=[Path(run) for run in args.ensemble],
            data_dir=args.data_dir,
        )
    print(f"exported to {out}")
    for run in (Path(args.run_dir), *map(Path, args.ensemble)):
        progress = _run_progress(run)
        if progress is not None and progress[0] < progress[1]:  # stopped early (Ctrl-C, stop_after)
            print(
                f"note: {run} stopped after {progress[0]} of its {progress[1]} epochs; its best epoch so far was "
                f"exported (to finish it: the same melanoma train command with --out {run} --resume, then export "
                "again)",
                file=sys.stderr,
            )
    if replaced:
        print(f"note: this replaced the {replaced} in {out}", file=sys.stderr)
    _print_export_warning(Path(args.run_dir), out)
    return 0


def _check_add_to_options(args: argparse.Namespace) -> None:
    """--add-to takes the exported classifier as it is: options that would change it are refused, not ignored."""
    given = {
        "--ensemble": args.ensemble,
        "--no-calibrate": args.no_calibrate,
        "--classifier-flips": args.classifier_flips,
        "--segmenter": args.segmenter,
        "--test-time-flips": args.test_time_flips != "auto",
    }
    clashing = [option for option, value in given.items() if value]
    if clashing:
        raise UsageError(
            f"--add-to cannot be combined with {', '.join(clashing)}: the network joins the exported classifier as "
            "it is (same flips, calibrated anew); to choose them, export all the runs with --ensemble"
        )


def _bar_beside(out) -> bool:
    """Whether a progress bar on stderr may run beside CSV rows written to ``out``: not when both are the terminal
    (the rows, printed as they come, are progress enough; a bar would share lines with them)."""
    return not (out.isatty() and sys.stderr.isatty())


def _run_task(run_dir: Path) -> str | None:
    """A run's task as its config.yaml saved it (an old run's settings need not pass today's config checks)."""
    import yaml

    if not (run_dir / "config.yaml").is_file():
        return None
    task = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("task")
    return task if task in ("segmentation", "classification") else None


def _previous_export(run_dir: Path, out: Path) -> str | None:
    """What an export into ``out`` is about to replace: the same task's model, said with its export date and its
    threshold (a model folder re-fitted by `melanoma calibrate`, or the shipped models, is then overwritten)."""
    import json

    task = _run_task(run_dir)
    path = out / f"{task}.json"
    if task is None or not path.is_file():
        return None
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return f"{task} model's files"
    recalibrated = " re-fitted by `melanoma calibrate`" if "recalibration" in previous else ""
    threshold = previous.get("threshold")
    shown = f"{threshold:.4f}" if isinstance(threshold, int | float) else "?"
    return f"{task} model exported {previous.get('exported', 'at an unknown date')} (threshold {shown}{recalibrated})"


def _print_export_warning(run_dir: Path, out: Path) -> None:
    """Say on the terminal what the exported config warns about (a threshold fitted on too few images)."""
    import json

    task = _run_task(run_dir)
    if task is None:  # the export itself reads the checkpoint; nothing to say
        return
    warning = json.loads((out / f"{task}.json").read_text()).get("validation", {}).get("warning")
    if warning:
        print(f"warning: {out / f'{task}.json'}: {warning}", file=sys.stderr)


def _quantize(args: argparse.Namespace) -> int:
    from melanoma.inference.quantize import quantize_models

    written = quantize_models(
        Path(args.models),
        Path(args.out),
        args.tasks,
        calibration_images=args.calibration_images,
        data_dir=args.data_dir,
        flips=args.test_time_flips,
    )
    for task, config in written.items():
        before, after = config["quantization"]["float_validation"] or {}, config["validation"]
        metric = "jaccard" if task == "segmentation" else "auc"
        print(f"{task}: int8 validation {metric} {after[metric]} (float {before.get(metric)})")
        if after.get("warning"):
            print(f"warning: {Path(args.out) / f'{task}.json'}: {after['warning']}", file=sys.stderr)
    print(
        f"quantized models written to {args.out}; check them with `melanoma evaluate segmentation|classification "
        f"--images DIR --masks DIR|--labels CSV --models {args.out} --baseline {args.models}`"
    )
    return 0


def _check_evaluate_options(args: argparse.Namespace) -> None:
    """Options of the other task are refused rather than ignored: a --labels given to a segmentation run would
    otherwise read as checked, and a --masks given to a classification run as used."""
    other = {
        "segmentation": {
            "--labels": args.labels,
            "--label-column": args.label_column,
            "--id-column": args.id_column,
            "--plots": args.plots,
        },
        "classification": {"--masks": args.masks},
    }[args.task]
    needed = "--masks" if args.task == "segmentation" else "--labels"
    if getattr(args, needed[2:]) is None:
        what = "DIR (the ground-truth masks)" if args.task == "segmentation" else "CSV (the 0/1 melanoma labels)"
        raise ValueError(f"evaluate {args.task} needs {needed} {what}")
    given = [option for option, value in other.items() if value is not None]
    if given:
        task = "classification" if args.task == "segmentation" else "segmentation"
        raise ValueError(
            f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} for `melanoma evaluate {task}`; "
            f"`evaluate {args.task}` reads {needed}: drop "
            f"{'it' if len(given) == 1 else 'them'}"
        )
    args.label_column = args.label_column or "melanoma"


def _evaluate(args: argparse.Namespace) -> int:
    from melanoma.inference.evaluate import evaluate_classification, evaluate_segmentation
    from melanoma.inference.predictor import Predictor

    _check_evaluate_options(args)
    predictor = Predictor.from_dir(args.models)
    baseline = _baseline_predictor(args.baseline, args.task)  # before the evaluation: a wrong folder fails at once
    if args.task == "segmentation":
        scores = evaluate_segmentation(predictor, Path(args.images), Path(args.masks), mask_suffix=args.mask_suffix)
        if baseline:
            scores["vs_baseline"] = _segmentation_gain(scores, baseline, args)
    else:
        plots = Path(args.plots) if args.plots else None
        scores = evaluate_classification(
            predictor,
            Path(args.images),
            Path(args.labels),
            plots_dir=plots,
            label_column=args.label_column,
            mask_suffix=args.mask_suffix,
            id_column=args.id_column,
        )
        if baseline:
            scores["vs_baseline"] = _classification_gain(scores, baseline, args)
    if not args.per_image:
        scores.pop("per_image")
    from melanoma.reporting import emit_json

    emit_json(scores, args.json)
    print(f"summary: {evaluation_summary(args.task, scores)}", file=sys.stderr)
    _warn_unreadable(scores["unreadable"])
    _warn_not_assessed(scores["not_assessed"])
    _warn_empty_annotations(scores.get("empty_annotations", []))
    _warn_orientation_unclear(scores.get("orientation_unclear", []))
    _note_rows_without_image(scores, args.labels if args.task == "classification" else None, args.images)
    _warn_seen(args.task, scores)
    from melanoma.inference.evaluate import few_images_warning

    if warning := few_images_warning(args.task, scores):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _note_rows_without_image(scores: dict, labels: str | None, images: str) -> None:
    """Say on stderr how many rows of the labels CSV were not scored because their image is not in the folder
    (expected when a subset is scored with a whole data set's CSV; a surprise when the folder is the wrong one)."""
    count = scores.get("labels_without_image", 0)
    if labels and count:
        print(
            f"note: {count} row(s) of {labels} have no image in {images} and are not scored (first: "
            f"{_first_names(scores.get('labels_without_image_first', []))}); {scores['n']} image(s) were",
            file=sys.stderr,
        )


def evaluation_summary(task: str, scores: dict) -> str:
    """The report's headline numbers in one line for people (the JSON on stdout has them all)."""
    ci = scores.get("ci95", {})

    def value(key: str, label: str) -> str:
        interval = f" (95% CI {ci[key][0]:.4f}-{ci[key][1]:.4f})" if key in ci else ""
        return f"{label} {scores[key]:.4f}{interval}"

    if task == "segmentation":
        metrics = [("jaccard", "mean Jaccard"), ("thresholded_jaccard", "thresholded Jaccard"), ("dice", "Dice")]
        return f"{scores['n']} images: " + ", ".join(value(key, label) for key, label in metrics)
    head = ", ".join(value(key, label) for key, label in (("auc", "AUC"), ("average_precision", "average precision")))
    point = ", ".join(
        value(key, label)
        for key, label in (
            ("sensitivity", "sensitivity"),
            ("specificity", "specificity"),
            ("balanced_accuracy", "balanced accuracy"),
        )
    )
    return (
        f"{scores['n']} images ({scores['n_positive']} melanoma): {head}; at the model's threshold "
        f"{scores['threshold']:.4f}: {point}"
    )


def _warn_empty_annotations(names: list[str]) -> None:
    """Say on stderr which annotation masks hold no lesion pixel (scored as such, but often a format read wrong)."""
    if names:
        print(
            f"warning: the masks of {len(names)} image(s) hold no lesion pixel and are scored as lesion-free: "
            f"{_first_names(names)} (listed under 'empty_annotations'); if they do show a lesion, check how the masks "
            "are stored (README, Data: lesion pixels above 127, or the other formats listed there)",
            file=sys.stderr,
        )


def _warn_orientation_unclear(names: list[str]) -> None:
    """Say on stderr which photos carry an EXIF turn that their masks' size cannot confirm."""
    if names:
        print(
            f"warning: {len(names)} image(s) carry an EXIF orientation tag that flips or turns them without changing "
            f"their size as shown: {_first_names(names)} (listed under 'orientation_unclear'); they are scored as a "
            "photo viewer shows them, so a mask drawn on the stored pixels is misaligned: check those masks on the "
            "image as shown",
            file=sys.stderr,
        )


def _first_names(names: list[str]) -> str:
    """'a, b, c and 4 more': the first three of a list of image names for a warning."""
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _warn_seen(task: str, scores: dict) -> None:
    """Say on stderr when the scored images include the network's own training or validation images."""
    from melanoma.inference.evaluate import seen_warning

    warning = seen_warning(task, scores.get("seen_in_training"), scores["n"])
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def _warn_unreadable(unreadable: dict[str, str]) -> None:
    """Say on stderr which files were left out of a score because they could not be read (the JSON lists them)."""
    if not unreadable:
        return
    shown = "; ".join(f"{name}: {error}" for name, error in list(unreadable.items())[:3])
    more = f"; and {len(unreadable) - 3} more (listed under 'unreadable')" if len(unreadable) > 3 else ""
    print(
        f"warning: {len(unreadable)} image(s) could not be read and are left out of the scores: {shown}{more}",
        file=sys.stderr,
    )


def _warn_not_assessed(names: list[str]) -> None:
    """Say on stderr which images were left out of a score as not assessed (the JSON lists them)."""
    if names:
        print(
            f"warning: {len(names)} image(s) are not assessed and left out of the scores (almost uniform, or two "
            f"flat tones as a mask or a drawing; listed under 'not_assessed'): {_first_names(names)}",
            file=sys.stderr,
        )


def _baseline_predictor(folder: str | None, task: str):
    """The ``--baseline`` folder's Predictor, or None without one; a folder without the task's model names the
    option, before the evaluation (whose results a late failure would throw away)."""
    from melanoma.inference.predictor import ModelsNotFoundError, Predictor

    if not folder:
        return None
    try:
        predictor = Predictor.from_dir(folder)
    except ModelsNotFoundError as error:
        raise ModelsNotFoundError(
            f"--baseline {folder}: no exported models there; give a folder written by `melanoma export` "
            "(segmentation.json / classification.json beside their ONNX files)"
        ) from error
    if getattr(predictor, "segmenter" if task == "segmentation" else "classifier") is None:
        raise ModelsNotFoundError(
            f"--baseline {folder}: no {task} model there (it holds only the other task's); give a folder with "
            f"{task}.json beside {task}.onnx"
        )
    return predictor


def _calibrate(args: argparse.Namespace) -> int:
    from melanoma.inference.recalibrate import recalibrate_threshold
    from melanoma.reporting import emit_json

    summary = recalibrate_threshold(
        args.models,
        Path(args.images),
        Path(args.labels),
        Path(args.out),
        label_column=args.label_column,
        mask_suffix=args.mask_suffix,
        id_column=args.id_column,
    )
    emit_json(summary, args.json)
    _warn_unreadable(summary.get("unreadable", {}))
    _warn_not_assessed(summary.get("not_assessed", []))
    _note_rows_without_image(summary, args.labels, args.images)
    _warn_seen("classification", summary)
    if "warning" in summary:
        print(f"warning: {summary['warning']}", file=sys.stderr)
    print(f"advice: {summary['advice']}.", file=sys.stderr)
    if summary["serve_refitted"]:
        then = f"serve them with `melanoma app --models {args.out}` or `melanoma predict --models {args.out} ...`"
    elif summary["ranked_at_chance"]:  # no threshold helps a classifier that does not rank these images
        then = (
            "kept as a record of this fit only; do not serve it: the classifier ranks this site's images no better "
            "than chance (warning above), which no threshold can mend"
        )
    elif (seen := summary.get("seen_in_training")) and (seen["train"] or seen["validation"]):
        if not seen.get("by_content"):  # by file name alone: it may be a clash of names
            unless = " (if these are other images that only share those file names, the advice above stands)"
        elif seen.get("name_only"):  # some share a name, not the content (warning above)
            unless = (
                " (if all it found are images that only share a file name with them, and they are other images, "
                "the advice above stands)"
            )
        else:
            unless = ""
        then = (
            "kept as a record of this fit only; do not serve it: the fit includes the model's own training or "
            "validation images (warning above), on which it scores better than on a site's new images; calibrate "
            f"on images it never saw{unless}"
        )
    elif summary["advice"].startswith("serve") and summary.get("seen_in_training", {}) is None:
        then = (
            "kept as a record of this fit; the advice above holds only if these images did not train the model, which "
            "its config cannot tell (warning above): serve it once you know they did not"
        )
    else:  # the record is still written: the fit and its numbers, for the site's files and a later comparison
        current = args.models or "the shipped models"
        then = (
            f"kept as a record of this fit; as advised above, go on serving {current} (serve {args.out} only once "
            "more labelled images of this site support it)"
        )
    print(f"models with the re-fitted threshold written to {args.out}: {then}. {DISCLAIMER}", file=sys.stderr)
    return 0


def _segmentation_gain(scores: dict, baseline, args: argparse.Namespace) -> dict:
    """The paired gain in mean Jaccard of the evaluated segmenter over ``baseline``'s on the same images."""
    from melanoma.inference.evaluate import evaluate_segmentation
    from melanoma.metrics import paired_mean_difference

    measured = evaluate_segmentation(baseline, Path(args.images), Path(args.masks), mask_suffix=args.mask_suffix)
    reference = measured["per_image"]
    ids = list(scores["per_image"])
    gain = paired_mean_difference([reference[i] for i in ids], [scores["per_image"][i] for i in ids])
    return _gain_record(baseline, measured, gain)


def _gain_record(baseline, measured: dict, gain: dict) -> dict:
    """A paired gain over ``baseline``, with the folder and the networks it was measured against."""
    return {
        "models_dir": str(baseline.models_dir),
        "networks": measured["networks"],
        **{k: _round(v) for k, v in gain.items()},
    }


def _classification_gain(scores: dict, baseline, args: argparse.Namespace) -> dict:
    """The paired gain in AUC of the evaluated classifier over ``baseline``'s on the same images."""
    from melanoma.inference.evaluate import evaluate_classification
    from melanoma.metrics import paired_auc_difference

    measured = evaluate_classification(
        baseline,
        Path(args.images),
        Path(args.labels),
        bootstrap=0,
        label_column=args.label_column,
        mask_suffix=args.mask_suffix,
        id_column=args.id_column,
    )
    reference = measured["per_image"]
    ids = list(scores["per_image"])
    labels = [scores["per_image"][i]["melanoma"] for i in ids]
    gain = paired_auc_difference(
        labels, [reference[i]["probability"] for i in ids], [scores["per_image"][i]["probability"] for i in ids]
    )
    return _gain_record(baseline, measured, gain)


def _round(value):
    return (
        [round(v, 4) for v in value]
        if isinstance(value, list)
        else round(value, 4)
        if isinstance(value, float)
        else value
    )


def _predict(args: argparse.Namespace) -> int:
    from melanoma.data.samples import IMAGE_SUFFIXES
    from melanoma.inference.batch import default_workers, expand_paths, predict_paths, threads_per_worker
    from melanoma.inference.predictor import Predictor

    if args.out and Path(args.out).suffix.lower() in IMAGE_SUFFIXES:  # `--out a.jpg b.jpg` meant two inputs
        raise UsageError(
            f"--out {args.out} names an image, but --out is the CSV file to write (e.g. --out "
            "predictions.csv); list every image to predict without --out in front of it"
        )
    workers = default_workers() if args.workers is None else args.workers
    predictor = Predictor.from_dir(args.models, threads=threads_per_worker(workers))
    for warning in predictor.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    site = predictor.classifier.config.get("recalibration") if predictor.classifier is not None else None
    if site:  # the CSV's threshold column then differs from the shipped one: say why
        validation, before = predictor.classifier.config.get("validation", {}), site.get("previous", {})
        print(
            f"note: the classifier's threshold {predictor.threshold:.4f} was re-fitted with `melanoma calibrate` on "
            f"{validation.get('n', '?')} site images ({str(site.get('date', '?'))[:10]}); it was "
            f"{before.get('threshold', float('nan')):.4f} before",
            file=sys.stderr,
        )
    paths = expand_paths(args.paths, warn=lambda message: print(f"warning: {message}", file=sys.stderr))
    if not paths:
        raise UsageError("no image files found in the given paths")
    if args.out and Path(args.out).resolve() in {path.resolve() for path in paths}:  # it would be emptied unread
        raise UsageError(f"--out {args.out} is one of the files to predict; give the CSV a new name")
    overlays = Path(args.overlays) if args.overlays else None
    if overlays is not None and overlays.exists() and not overlays.is_dir():
        raise UsageError(f"--overlays {overlays} is a file; give a folder (it is created if missing)")
    # A file name that is not valid UTF-8 (e.g. Latin-1 bytes from an old archive) is written back byte for byte
    # rather than stopping the run at its row.
    if args.out:
        with open(args.out, "w", newline="", errors="surrogateescape") as handle:
            succeeded, failed = predict_paths(predictor, paths, handle, overlays, args.batch_size, workers=workers)
    else:
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(errors="surrogateescape")
        succeeded, failed = predict_paths(
            predictor, paths, sys.stdout, overlays, args.batch_size, progress=_bar_beside(sys.stdout), workers=workers
        )
    print(f"{succeeded} predicted, {failed} failed. {DISCLAIMER}", file=sys.stderr)
    return 0 if succeeded else 1


def _app(args: argparse.Namespace) -> int:
    from melanoma.app.server import run_app

    return run_app(port=args.port, models_dir=args.models, address=args.address)


def _prepare(args: argparse.Namespace) -> int:
    from melanoma.data.prepare import prepare_isic2017

    counts = prepare_isic2017(Path(args.archives), Path(args.out), download=not args.no_download)
    print(f"prepared {args.out}: {counts}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from melanoma.inference.preprocess import (
        FLIP_MODES,  # numpy + Pillow only: no scikit-learn, SciPy or torch
        FLIPS,
    )

    parser = argparse.ArgumentParser(
        prog="melanoma", description=f"Melanoma detection and lesion segmentation. {DISCLAIMER}"
    )
    from melanoma import __version__

    parser.add_argument("--version", action="version", version=f"melanoma {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="train a model from a YAML config (needs the [train] extra)",
        description="Train a model from a YAML config (configs/*.yaml) plus KEY=VALUE overrides; every key, its "
        "type and default is in README's 'Config keys' (src/melanoma/config.py). The run folder (--out) gets "
        "config.yaml (the resolved config), split.csv, metrics.csv (a row per epoch), last.pt (to resume) and "
        "best.pt (the epoch with the best validation score, which `melanoma export RUN_DIR` exports). Ctrl-C stops "
        "after saying how to go on: the same command with --resume continues from the last finished epoch.",
    )
    train.add_argument("task", choices=["segmentation", "classification"])
    train.add_argument("--config", required=True, help="YAML file, e.g. configs/segmentation.yaml")
    train.add_argument("--data-dir", help="ISIC layout root (default: $MELANOMA_DATA or ../shared/data/isic2017)")
    train.add_argument("--out", help="run directory (default: runs/<task>-<time>)")
    train.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    train.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. optim.lr=3e-4 --data.image_size=192"
    )
    train.set_defaults(func=_train)

    export = commands.add_parser(
        "export", help="export a run's best checkpoint to ONNX + JSON config (needs the [train] extra)"
    )
    export.add_argument("run_dir")
    export.add_argument("--out", help="model folder to write (default: <run_dir>/export)")
    export.add_argument("--no-calibrate", action="store_true", help="skip the threshold search on validation data")
    export.add_argument("--data-dir", help="ISIC layout root, when the run's data moved since training")
    export.add_argument(
        "--test-time-flips",
        choices=FLIP_MODES,
        default="auto",
        help="segmentation: auto keeps h+v flips if they add >= 0.001 val Jaccard; off serves one view (3x faster)",
    )
    export.add_argument(
        "--segmenter",
        metavar="DIR",
        help="lesion-crop classifiers: model folder whose segmenter places the crops in calibration (default: --out's)",
    )
    export.add_argument(
        "--classifier-flips",
        nargs="+",
        default=[],
        choices=list(FLIPS),
        metavar="FLIP",
        help="classification: serve (and calibrate) the mean over the image and these flips (hflip, vflip), so a "
        "mirrored image gets the same probability; default: one view",
    )
    export.add_argument(
        "--ensemble",
        nargs="+",
        default=[],
        metavar="RUN_DIR",
        help="classification: more runs served with RUN_DIR as one model (one ONNX graph, mean probability); "
        "all must take the same input size and crop",
    )
    export.add_argument(
        "--add-to",
        metavar="MODELS_DIR",
        help="classification: serve RUN_DIR together with the classifier (or ensemble) already exported in "
        "MODELS_DIR, whose runs may be gone: one ONNX graph, the mean over all members, calibrated anew; "
        "written to --out (which may be MODELS_DIR)",
    )
    export.set_defaults(func=_export)

    quantize = commands.add_parser(
        "quantize", help="int8-quantize exported models (ONNX Runtime, QDQ) and re-calibrate them (needs [train])"
    )
    quantize.add_argument("--models", required=True, help="folder of exported float models (e.g. models)")
    quantize.add_argument("--out", required=True, help="new folder for the quantized model set")
    quantize.add_argument(
        "--tasks",
        nargs="+",
        choices=["segmentation", "classification"],
        default=None,
        help="which models to quantize (default: every model the --models folder holds)",
    )
    quantize.add_argument(
        "--calibration-images", type=_positive_int, default=64, help="training images for activation ranges"
    )
    quantize.add_argument("--data-dir", help="ISIC layout root (default: the one the model was trained on)")
    quantize.add_argument(
        "--test-time-flips", choices=FLIP_MODES, help="segmentation flip rule (default: the float model's)"
    )
    quantize.set_defaults(func=_quantize)

    evaluate = commands.add_parser(
        "evaluate",
        help="score the exported models on labelled images (official metrics)",
        description="Score the exported models on labelled images (official ISIC 2017 metrics, bootstrap 95% "
        "intervals): `evaluate segmentation` needs --masks, `evaluate classification` needs --labels.",
    )
    evaluate.add_argument("task", choices=["segmentation", "classification"])
    evaluate.add_argument("--images", required=True, help="folder of images")
    evaluate.add_argument(
        "--masks", help="segmentation: folder of the masks, <stem>_segmentation.png ({0,255}, {0,1} or two-valued)"
    )
    evaluate.add_argument("--mask-suffix", default="_segmentation.png", help=MASK_SUFFIX_HELP)
    evaluate.add_argument("--labels", help="classification: CSV with image_id,melanoma (see --label-column)")
    evaluate.add_argument("--label-column", help=f"classification: {LABEL_COLUMN_HELP}")
    evaluate.add_argument("--id-column", help=f"classification: {ID_COLUMN_HELP}")
    evaluate.add_argument("--models", help=MODELS_HELP)
    evaluate.add_argument("--json", help="also write the scores to this file")
    evaluate.add_argument("--plots", help="classification: write roc.png and calibration.png here")
    evaluate.add_argument(
        "--per-image",
        action="store_true",
        help="include per-image results (segmentation: Jaccard; classification: label and probability)",
    )
    evaluate.add_argument(
        "--baseline",
        help="also score this model folder's model on the same images and report the paired gain with a bootstrap "
        "95%% interval (vs_baseline): mean Jaccard for segmentation, AUC for classification",
    )
    evaluate.set_defaults(func=_evaluate)

    calibrate = commands.add_parser(
        "calibrate",
        help="re-fit the melanoma threshold on your own labelled images into a copy of the model folder",
        description="Score the classifier on your labelled images, report how its current threshold does there, fit "
        "Youden's threshold on them (bootstrap intervals, cross-fitted estimate) and write a copy of the model "
        "folder with that threshold. The networks are unchanged. Needs at least 10 melanomas and 10 other lesions.",
    )
    calibrate.add_argument("--images", required=True, help="folder of your images")
    calibrate.add_argument(
        "--labels", required=True, help="CSV with image_id,melanoma (image_id = file stem; see --label-column)"
    )
    calibrate.add_argument("--label-column", default="melanoma", help=LABEL_COLUMN_HELP)
    calibrate.add_argument("--id-column", help=ID_COLUMN_HELP)
    calibrate.add_argument(
        "--mask-suffix",
        default="_segmentation.png",
        help="what a mask's file name adds to its image's stem (default: _segmentation.png; e.g. _mask.png): files so "
        "named among the images are masks, and are neither scored nor fitted on",
    )
    calibrate.add_argument("--out", required=True, help="new folder for the model copy with the re-fitted threshold")
    calibrate.add_argument("--models", help=f"model folder to start from {MODELS_DEFAULT}")
    calibrate.add_argument("--json", help="also write the summary to this file")
    calibrate.set_defaults(func=_calibrate)

    predict = commands.add_parser("predict", help="predict images and folders; one CSV row per file")
    predict.add_argument(
        "paths",
        nargs="+",
        help="image files and/or folders (searched recursively; hidden files, masks and superpixel maps skipped)",
    )
    predict.add_argument("--models", help=MODELS_HELP)
    predict.add_argument("--out", help="CSV file to write (default: standard output)")
    predict.add_argument("--overlays", help="folder for overlay PNGs (lesion contour and fill)")
    predict.add_argument("--batch-size", type=_positive_int, default=4, help="images per model call (default: 4)")
    predict.add_argument(
        "--workers",
        type=_positive_int,
        help="batches predicted at once, each on its own share of the cores (default: one per CPU, at most 8)",
    )
    predict.set_defaults(func=_predict)

    app = commands.add_parser("app", help="start the web app (headless Streamlit server) on the shipped models")
    app.add_argument("--port", type=int, default=8501, help="TCP port (default: 8501)")
    app.add_argument(
        "--address",
        default="127.0.0.1",
        help="network interface to serve on (default: 127.0.0.1, this machine only: the app has no login; "
        "0.0.0.0 serves every interface, for a server or a container behind your own access control)",
    )
    app.add_argument("--models", help=MODELS_HELP)
    app.set_defaults(func=_app)

    data = commands.add_parser("data", help="data preparation")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    prepare = data_commands.add_parser("prepare", help="build the project's data layout from official archives")
    prepare.add_argument("dataset", choices=["isic2017"])
    prepare.add_argument("--archives", required=True, help="folder holding (or receiving) the official ISIC archives")
    prepare.add_argument("--out", required=True, help="output folder (the layout of ../shared/data/isic2017)")
    prepare.add_argument("--no-download", action="store_true", help="fail instead of downloading missing archives")
    prepare.set_defaults(func=_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = parser.parse_known_args(argv)
    args.argv = argv
    if extra:
        # Config overrides may come anywhere after `train TASK` (argparse binds positionals greedily).
        if args.command != "train" or any("=" not in item for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        _check_json_path(getattr(args, "json", None))
        return args.func(args)
    except (ValueError, ImportError) as error:
        print(f"error: {error}{_install_hint(error, args.command)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `melanoma predict ... | head`: the reader left; nothing more to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (Python flushes stdout at exit: not into the closed pipe)
        return 1
    except OSError as error:  # a missing or existing path, a read-only or full disk, a folder without permission
        if error.filename is None:  # our own messages (FileNotFoundError("... : export a model first")) and emit_json's
            print(f"error: {error}", file=sys.stderr)
        else:  # the operating system's, e.g. [Errno 17] File exists: 'x'
            reason = error.strerror or error
            print(f"error: cannot use {error.filename}: {reason}; check the path and its permissions", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted{_interrupt_hint(args)}", file=sys.stderr)
        return 130


#: Packages of the ``[train]`` extra (by import name): training, export, quantization and the plots need them.
TRAIN_MODULES = frozenset(
    {"torch", "torchvision", "timm", "segmentation_models_pytorch", "albumentations", "onnx", "matplotlib"}
)


def _check_json_path(path: str | None) -> None:
    """A ``--json`` the report cannot be written to is refused before the work, not after it (calibrate would have
    written its model folder, and the warnings printed after the report would be lost)."""
    if not path:
        return
    target = Path(path)
    if target.is_dir():
        raise UsageError(
            f"--json {path} is a folder; give the report a file name, e.g. --json {target / 'report.json'}"
        )
    blocking = next((parent for parent in target.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise UsageError(f"--json {path}: {blocking} is a file, not a folder; choose another path for the report")


def _install_hint(error: Exception, command: str) -> str:
    """What to install when a ``[train]`` package is missing (the serving install, ``make app``, has none of them)."""
    name = getattr(error, "name", None) or ""
    if not isinstance(error, ModuleNotFoundError) or name.split(".")[0] not in TRAIN_MODULES:
        return ""
    return (
        f"; `melanoma {command}` needs the training install, which the app's install (make app) leaves out: "
        "pip install -e '.[train]' in the repository (make test installs it too), or, for an installed wheel, "
        "pip install 'WHEEL_FILE[train]'"
    )


def _interrupt_hint(args: argparse.Namespace) -> str:
    """How to go on after Ctrl-C: a training run resumes from its last finished epoch, if it has one; a data
    preparation keeps the splits it finished."""
    if args.command == "data":
        return (
            " (the splits prepared so far are complete, the one in progress was left out: run the same command "
            "again to finish)"
        )
    if args.command != "train":
        return ""
    out = getattr(args, "out", None)
    if out and (Path(out) / "last.pt").is_file():
        return f" (continue the run from its last finished epoch: the same command with --out {out} --resume)"
    return " before the first epoch finished, so there is nothing to resume: run the same command again"


if __name__ == "__main__":
    sys.exit(main())
