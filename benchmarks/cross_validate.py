"""K-fold cross-validation of training settings on the ISIC 2017 train split, with a paired decision rule.

Usage:
    python benchmarks/cross_validate.py --config configs/classification.yaml --folds 5 --out runs/cv \\
        --setting "base" --setting "size256: data.image_size=256" [--only-folds 0 1 | --no-train] [--served] \\
        [--ensemble "NAME=base+size256" [--reference NAME]] [--data-dir DIR] [--json FILE]

Each ``--setting`` is ``NAME`` or ``NAME: key=value key=value`` (config overrides, as for ``melanoma train``);
the first setting is the baseline. Every setting is trained on every fold into ``OUT/NAME/foldK`` with
``data.cv_folds=N data.cv_fold=K`` added: the validation set is fold K of a stratified split (seed 0) of the
official train split, so all settings see the same folds and the official validation set stays untouched.
The study is resumable: a fold whose ``metrics.csv`` has all ``optim.epochs`` rows is skipped, one with
``last.pt`` is resumed, any other is trained from scratch. ``--only-folds`` trains only those folds (e.g. to
share a study between machines), ``--no-train`` none; the report covers every fold completed so far.

Each fold's score is the best value of the task's selection metric over its epochs (val_auc for
classification, val_jaccard for segmentation; the epoch ``fit`` keeps as best.pt). Per setting the report
gives the per-fold scores, their mean and sample sd. Each other setting is compared with the baseline on the
folds both have completed: the per-fold differences (setting - baseline), their mean and a 95% t-interval
(mean +- t(0.975, n-1) * sd / sqrt(n)). Decision rule: "adopt" when the interval's lower bound is above 0,
"reject" when its upper bound is below 0, otherwise "no evidence" (also with fewer than 2 paired folds).

Classification also gets a pooled out-of-fold comparison, which has far more power than a t-interval over a few
folds: each completed fold's ``best.pt`` predicts its own validation fold (cached in ``RUN/oof.csv``), the
predictions of all folds that both settings have completed are pooled (every train image once per completed fold),
and ``paired_auc_difference`` gives the AUC gain over the baseline on those images with a paired stratified
bootstrap 95% interval. Its decision: "adopt" when the interval lies above 0, "reject" when below 0, else
"no evidence". Both analyses are reported; a setting is adopted when either says "adopt" and neither "reject".
Segmentation gets the same kind of pooled analysis on images: each completed fold's ``best.pt`` scores every image
of its validation fold (Jaccard at threshold 0.5, as ``val_jaccard``; cached in ``RUN/oof_jaccard.csv``), and
``paired_mean_difference`` gives the gain in mean Jaccard over the baseline on the images of the shared folds
with a paired bootstrap 95% interval, same decision rule: far more power than one number per fold.
``--ensemble NAME=A+B`` also scores an ensemble of settings without training anything: on each fold that all of
A, B, ... have completed, the mean of their out-of-fold melanoma probabilities per image (what ``melanoma export
A_RUN --ensemble B_RUN`` serves), or for segmentation the Jaccard of the mean of their probability maps (each
resized to the mask first; recomputed from each fold's best.pt, cached in ``OUT/NAME/foldK/oof_jaccard.csv``); it is
compared with the baseline like a setting, the per-fold analysis pairing it with the baseline's out-of-fold score
on the same folds. ``--reference NAME`` (classification) also compares every ensemble listed after the ensemble
NAME with it, by the same two analyses and rule (``vs_reference`` in their rows): e.g. a third network against the
shipped pair.
Runs trained with ``optim.ema_decay`` also report their raw (non-averaged) weights' best score per fold.
With ``--served`` the pooled predictions come through each fold's ONNX export instead (``melanoma export RUN
--no-calibrate``, with ``--segmenter DIR`` for lesion-crop settings; cached in ``RUN/oof_served.csv``): the serving
path, where a lesion-crop classifier crops around the segmenter's mask rather than the ground truth's.
``--leave-out-copies`` (classification) leaves out of every score the training images that have a copy among the
other training images (content fingerprints within ``COPY_DISTANCE``; ``benchmarks/duplicates.py`` found 20 in ISIC
2017): a fold may validate one copy of a photograph while it trains on the other. Each fold's score is then the AUC
of its ``best.pt``'s out-of-fold predictions on the images left, and the report lists those left out.
Prints JSON (and writes it to --json FILE).
"""

from __future__ import annotations

import csv
import math
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from melanoma.config import TrainConfig, load_config, load_run_config, to_dict
from melanoma.metrics import classification_scores, paired_auc_difference, paired_mean_difference
from melanoma.reporting import emit_json, script_parser


def require_fold_runs(run_dirs: list[Path]) -> None:
    """Stop with a clear error unless every folder is a trained run (``config.yaml`` + ``best.pt``)."""
    for run_dir in run_dirs:
        missing = [name for name in ("config.yaml", "best.pt") if not (run_dir / name).is_file()]
        if missing:
            raise SystemExit(f"error: {run_dir} has no {' or '.join(missing)}: pass a trained fold run folder")


def parse_setting(text: str) -> tuple[str, list[str]]:
    """``"NAME"`` or ``"NAME: key=value key=value"`` -> (name, overrides)."""
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name or "/" in name or name in (".", ".."):
        raise SystemExit(
            f"error: --setting {text!r} needs a name usable as a folder, e.g. 'size256: data.image_size=256'"
        )
    overrides = shlex.split(rest)
    bad = [item for item in overrides if "=" not in item]
    if bad:
        raise SystemExit(f"error: --setting {text!r}: {bad[0]!r} is not a key=value override")
    return name, overrides


def parse_ensemble(text: str, settings: list[str]) -> tuple[str, list[str]]:
    """``"NAME=A+B"`` -> ``("NAME", ["A", "B"])``: an ensemble of two or more of the study's settings."""
    name, _, combined = text.partition("=")
    members = [member.strip() for member in combined.split("+")]
    name = name.strip()
    if not name or "/" in name or name in settings or len(members) < 2 or len(set(members)) != len(members):
        raise SystemExit(
            f"error: --ensemble {text!r}: expected NAME=A+B[+...] with a new NAME and two or more different settings"
        )
    unknown = [member for member in members if member not in settings]
    if unknown:
        raise SystemExit(f"error: --ensemble {text!r}: no --setting named {', '.join(unknown)}")
    return name, members


def copied_training_images(config: TrainConfig) -> set[str]:
    """The images of the train split (all folds of ``config``'s cross-validation) that have a copy among the others."""
    from collections import Counter

    from melanoma.training.datasets import grouped_by_copies, load_splits

    train, val, _ = load_splits(config.data)
    grouped = grouped_by_copies(train + val)  # a fold's two parts: the whole train split
    sizes = Counter(sample.group for sample in grouped)
    return {sample.image_id for sample in grouped if sizes[sample.group] > 1}


def _fold_auc(predictions: dict[str, tuple[int, float]]) -> float | None:
    labels = [label for label, _ in predictions.values()]
    if len(set(labels)) < 2:
        return None
    return classification_scores(labels, [p for _, p in predictions.values()])["auc"]


def combined_predictions(
    name: str, members: list[str], predictions: dict[str, dict[int, dict[str, tuple[int, float]]]]
) -> dict[int, dict[str, tuple[int, float]]]:
    """Per fold all ``members`` completed, each image's (label, mean of the members' out-of-fold probabilities)."""
    folds = sorted(set.intersection(*(set(predictions[member]) for member in members)))
    combined: dict[int, dict[str, tuple[int, float]]] = {}
    for fold in folds:
        first = predictions[members[0]][fold]
        if any(predictions[member][fold].keys() != first.keys() for member in members):
            raise SystemExit(f"error: ensemble {name}: its members predicted different images on fold {fold}")
        combined[fold] = {
            image_id: (label, statistics.fmean(predictions[m][fold][image_id][1] for m in members))
            for image_id, (label, _) in first.items()
        }
    return combined


def reference_comparison(
    reference: str,
    ensembles: dict[str, list[str]],
    name: str,
    predictions: dict[str, dict[int, dict[str, tuple[int, float]]]],
) -> dict[str, Any]:
    """The ensemble ``name`` against the ensemble ``reference`` (e.g. three networks against the shipped two), by
    the same two analyses and rule as against the baseline: per-fold AUC differences, pooled paired bootstrap."""
    ref = combined_predictions(reference, ensembles[reference], predictions)
    other = combined_predictions(name, ensembles[name], predictions)
    ref_auc = {fold: auc for fold, values in ref.items() if (auc := _fold_auc(values)) is not None}
    other_auc = {fold: auc for fold, values in other.items() if (auc := _fold_auc(values)) is not None}
    per_fold, pooled = paired_comparison(ref_auc, other_auc), pooled_comparison(ref, other)
    return {"name": reference, "vs": per_fold, "pooled_vs": pooled, "decision": _decision(per_fold, pooled)}


def ensemble_row(
    name: str,
    members: list[str],
    baseline: str,
    predictions: dict[str, dict[int, dict[str, tuple[int, float]]]],
) -> dict[str, Any]:
    """The study row of an ensemble: per fold all members completed, the mean of their out-of-fold probabilities."""
    combined = combined_predictions(name, members, predictions)
    per_fold = {fold: auc for fold, values in combined.items() if (auc := _fold_auc(values)) is not None}
    base = {fold: auc for fold, values in predictions[baseline].items() if (auc := _fold_auc(values)) is not None}
    pooled = [pair for fold in combined.values() for pair in fold.values()]
    row = _ensemble_row(
        name,
        members,
        per_fold,
        paired_comparison(base, per_fold),
        pooled_comparison(predictions[baseline], combined),
        "AUC of the mean out-of-fold probability; the per-fold gain pairs it with the baseline's out-of-fold AUC "
        "on the same fold",
    )
    if len({label for label, _ in pooled}) == 2:
        row["pooled_out_of_fold_auc"] = classification_scores(*zip(*pooled, strict=True))["auc"]
    return row


def _ensemble_row(
    name: str,
    members: list[str],
    per_fold: dict[int, float],
    vs_baseline: dict[str, Any],
    pooled_vs_baseline: dict[str, Any],
    source: str,
) -> dict[str, Any]:
    """The fields every ensemble row has, with the decision of its two analyses (as a setting's)."""
    return {
        "name": name,
        "overrides": [],
        "members": members,
        "per_fold": {f"fold{k}": v for k, v in per_fold.items()},
        "per_fold_source": source,
        "mean": statistics.fmean(per_fold.values()) if per_fold else None,
        "sd": statistics.stdev(per_fold.values()) if len(per_fold) >= 2 else None,
        "vs_baseline": vs_baseline,
        "pooled_vs_baseline": pooled_vs_baseline,
        "decision": _decision(vs_baseline, pooled_vs_baseline),
    }


def _decision(vs_baseline: dict[str, Any], pooled_vs_baseline: dict[str, Any]) -> str:
    """Adopt when either analysis adopts and neither rejects; reject when either rejects."""
    decisions = {vs_baseline["decision"], pooled_vs_baseline["decision"]}
    return "reject" if "reject" in decisions else "adopt" if "adopt" in decisions else "no evidence"


def segmentation_ensemble_row(
    name: str,
    members: list[str],
    baseline: str,
    jaccards: dict[str, dict[int, dict[str, float]]],
    configs: dict[tuple[str, int], TrainConfig],
    out: Path,
) -> dict[str, Any]:
    """The study row of a segmentation ensemble: per fold all members completed, the Jaccard of the mean of their
    probability maps (``ensemble_jaccards``, cached in ``OUT/NAME/foldK/oof_jaccard.csv``), paired image by image
    with the baseline's."""
    folds = sorted(set.intersection(*(set(jaccards[member]) for member in members)))
    combined = {
        fold: ensemble_jaccards(
            [configs[member, fold] for member in members],
            [out / member / f"fold{fold}" for member in members],
            out / name / f"fold{fold}" / "oof_jaccard.csv",
        )
        for fold in folds
    }
    per_fold = {fold: statistics.fmean(values.values()) for fold, values in combined.items()}
    base = {fold: statistics.fmean(values.values()) for fold, values in jaccards[baseline].items()}
    pooled = [value for values in combined.values() for value in values.values()]
    row = _ensemble_row(
        name,
        members,
        per_fold,
        paired_comparison(base, per_fold),
        pooled_jaccard_comparison(jaccards[baseline], combined),
        "mean Jaccard of the mean probability map at threshold 0.5; the per-fold gain pairs it with the "
        "baseline's out-of-fold mean Jaccard on the same fold",
    )
    if pooled:
        row["pooled_mean_jaccard"] = statistics.fmean(pooled)
    return row


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """The rows of ``run_dir/metrics.csv`` as floats (empty when it does not exist)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def fold_status(run_dir: Path, epochs: int) -> str:
    """ "done" when all ``epochs`` have a metrics row, "resume" when ``last.pt`` exists, else "new"."""
    # Count distinct epochs: a run resumed after a crash between writing its row and last.pt repeats a row.
    if len({row["epoch"] for row in read_metrics(run_dir)}) >= epochs:
        return "done"
    return "resume" if (run_dir / "last.pt").is_file() else "new"


def _check_same_config(run_dir: Path, config: TrainConfig) -> None:
    # A study folder reused with other overrides would silently mix runs of two different settings.
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    saved = to_dict(load_run_config(yaml.safe_load(saved_path.read_text()) or {}))
    current = to_dict(config)
    for values in (saved, current):  # how a run was computed, not what was trained: runs may differ in these
        del values["command"], values["channels_last"], values["threads"], values["data"]["num_workers"]
    if saved["data"]["prepared_size"] is None and saved["data"]["source"] == "isic2017":
        # A fold from before data.prepared_size read the 256 px ISIC images as stored: the same pixels.
        saved["data"]["prepared_size"] = current["data"]["prepared_size"]
    if saved != current:
        raise SystemExit(
            f"error: {run_dir} was trained with another config than this setting now asks for; "
            "use a new --out or setting name (or delete that folder to retrain it)"
        )


def paired_comparison(baseline: dict[int, float], other: dict[int, float]) -> dict[str, Any]:
    """Per-fold differences ``other - baseline`` on the folds both have, their mean, 95% t-interval and decision."""
    from scipy import stats  # imported here: scipy is slow to import

    folds = sorted(set(baseline) & set(other))
    differences = [other[k] - baseline[k] for k in folds]
    result: dict[str, Any] = {
        "folds": folds,
        "differences": differences,
        "mean": statistics.fmean(differences) if differences else None,
        "ci95": None,
        "decision": "no evidence",
    }
    if len(differences) >= 2:
        half = stats.t.ppf(0.975, len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
        low, high = result["mean"] - half, result["mean"] + half
        result["ci95"] = [low, high]
        if low > 0:
            result["decision"] = "adopt"
        elif high < 0:
            result["decision"] = "reject"
    return result


def out_of_fold_predictions(config: TrainConfig, run_dir: Path) -> dict[str, tuple[int, float]]:
    """``image_id -> (label, melanoma probability)`` of ``run_dir/best.pt`` on the fold's validation images.

    Computed once and cached in ``run_dir/oof.csv`` (recomputed when best.pt is newer). Lesion-crop settings crop
    the validation images around their ground-truth masks, as the training loop's validation does.
    """
    cache = run_dir / "oof.csv"
    if _is_fresh(cache, run_dir / "best.pt"):
        return _read_predictions(cache)
    import dataclasses

    import torch
    from torch.utils.data import DataLoader

    from melanoma.data.transforms import classification_transforms
    from melanoma.models.factory import build_model
    from melanoma.training.checkpoint import load_checkpoint
    from melanoma.training.datasets import LesionDataset, collate, load_splits
    from melanoma.training.distributed import DistInfo
    from melanoma.training.engine import predict_loader

    info = DistInfo(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    model = build_model(config.task, dataclasses.replace(config.model, pretrained=False))
    model.load_state_dict(load_checkpoint(run_dir / "best.pt")["model"])
    model.to(info.device)
    samples = load_splits(config.data)[1]
    crop = config.data.crop_margin if config.data.lesion_crop else None
    transform = classification_transforms(config.data.image_size, False)
    prepared = None if crop is not None else config.data.prepared_size  # as training (make_loaders) reads them
    dataset = LesionDataset(samples, config.task, transform, crop_margin=crop, prepared_size=prepared)
    loader = DataLoader(dataset, batch_size=config.data.batch_size, collate_fn=collate)
    result: dict[str, tuple[int, float]] = {}
    for batch, probabilities in predict_loader(model, loader, config, info):
        for index, probability in zip(batch["index"].tolist(), probabilities, strict=True):
            sample = samples[index]
            result[sample.image_id] = (int(sample.melanoma), float(probability))
    _write_predictions(cache, result)
    return result


def out_of_fold_jaccards(config: TrainConfig, run_dir: Path) -> dict[str, float]:
    """``image_id -> Jaccard`` of ``run_dir/best.pt`` on each image of the fold's validation set (threshold 0.5,
    scored at the mask's own size, as the training loop's ``val_jaccard``). Cached in ``run_dir/oof_jaccard.csv``."""
    return ensemble_jaccards([config], [run_dir], run_dir / "oof_jaccard.csv")


def ensemble_jaccards(configs: list[TrainConfig], run_dirs: list[Path], cache: Path) -> dict[str, float]:
    """``image_id -> Jaccard`` of the mean lesion probability map of the runs' ``best.pt`` (one run: its own map)
    on their fold's validation images, threshold 0.5, each map resized to the mask's own size first (so runs
    trained at different input sizes average pixel by pixel). Cached in ``cache`` (recomputed when a best.pt is
    newer)."""
    if all(_is_fresh(cache, run_dir / "best.pt") for run_dir in run_dirs):
        with cache.open(newline="") as handle:
            return {row["image_id"]: float(row["jaccard"]) for row in csv.DictReader(handle)}
    from melanoma.metrics import jaccard

    sums: dict[str, Any] = {}
    masks: dict[str, Any] = {}
    for config, run_dir in zip(configs, run_dirs, strict=True):
        for image_id, probability, full in probability_maps(config, run_dir):
            sums[image_id] = sums.get(image_id, 0) + probability
            masks[image_id] = full
    if any(len(sums) != len(load_split_ids(config)) for config in configs):
        raise SystemExit(f"error: {', '.join(map(str, run_dirs))} were validated on different images")
    result = {image_id: jaccard(total / len(run_dirs) >= 0.5, masks[image_id]) for image_id, total in sums.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "jaccard"])
        writer.writerows([image_id, f"{value:.8f}"] for image_id, value in sorted(result.items()))
    return result


def load_split_ids(config: TrainConfig) -> set[str]:
    """The image ids of ``config``'s validation fold."""
    from melanoma.training.datasets import load_splits

    return {sample.image_id for sample in load_splits(config.data)[1]}


def probability_maps(config: TrainConfig, run_dir: Path):
    """Yield ``(image_id, lesion probability map, full-size mask)`` of ``run_dir/best.pt`` on its validation fold."""
    import dataclasses

    import torch
    from torch.utils.data import DataLoader

    from melanoma.data.transforms import segmentation_transforms
    from melanoma.models.factory import build_model
    from melanoma.training.checkpoint import load_checkpoint
    from melanoma.training.datasets import LesionDataset, collate, load_splits
    from melanoma.training.distributed import DistInfo
    from melanoma.training.engine import predict_loader

    info = DistInfo(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    model = build_model(config.task, dataclasses.replace(config.model, pretrained=False))
    model.load_state_dict(load_checkpoint(run_dir / "best.pt")["model"])
    model.to(info.device)
    samples = load_splits(config.data)[1]
    transform = segmentation_transforms(config.data.image_size, train=False)
    dataset = LesionDataset(
        samples, config.task, transform, keep_full_mask=True, prepared_size=config.data.prepared_size
    )
    loader = DataLoader(dataset, batch_size=config.data.batch_size, collate_fn=collate)
    with torch.no_grad():
        for batch, maps in predict_loader(model, loader, config, info):
            for index, probability, full in zip(batch["index"].tolist(), maps, batch["full_mask"], strict=True):
                yield samples[index].image_id, probability, full


def pooled_jaccard_comparison(
    baseline: dict[int, dict[str, float]], other: dict[int, dict[str, float]], n_resamples: int = 2000
) -> dict[str, Any]:
    """Paired bootstrap gain in mean per-image Jaccard of ``other`` over ``baseline`` on the shared folds' images.

    Both arguments map fold -> image_id -> Jaccard; only the folds both have are pooled.
    """
    folds = sorted(set(baseline) & set(other))
    keys = [(fold, image_id) for fold in folds for image_id in sorted(baseline[fold])]
    result: dict[str, Any] = {"folds": folds, "images": len(keys), "decision": "no evidence"}
    if not keys:
        return result
    gain = paired_mean_difference([baseline[f][i] for f, i in keys], [other[f][i] for f, i in keys], n_resamples)
    result.update(gain)
    result["decision"] = {"better": "adopt", "worse": "reject"}.get(gain["decision"], "no evidence")
    return result


def served_out_of_fold_predictions(config: TrainConfig, run_dir: Path) -> dict[str, tuple[int, float]]:
    """As ``out_of_fold_predictions``, but through the fold's ONNX export ``run_dir/export`` and the Predictor:
    exactly the serving path, so a lesion-crop classifier sees the crop around its segmenter's mask, not the
    ground truth's. Cached in ``run_dir/oof_served.csv``."""
    export = run_dir / "export"
    if not (export / "classification.onnx").is_file():
        raise SystemExit(
            f"error: --served needs each fold's export, and {export} has none: run "
            f"`melanoma export {run_dir} --no-calibrate` (add `--segmenter models` for a lesion-crop setting)"
        )
    cache = run_dir / "oof_served.csv"
    if _is_fresh(cache, export / "classification.onnx"):
        return _read_predictions(cache)
    from melanoma.inference.image_io import load_image
    from melanoma.inference.predictor import Predictor
    from melanoma.training.datasets import load_splits

    predictor = Predictor.from_dir(export)
    samples = load_splits(config.data)[1]
    result: dict[str, tuple[int, float]] = {}
    for start in range(0, len(samples), 16):
        batch = samples[start : start + 16]
        probabilities = predictor.classify([load_image(s.image_path) for s in batch])[0]
        result.update({s.image_id: (int(s.melanoma), float(p)) for s, p in zip(batch, probabilities, strict=True)})
    _write_predictions(cache, result)
    return result


def _is_fresh(cache: Path, source: Path) -> bool:
    # A study copied back from another machine without its checkpoints keeps its cached predictions.
    return cache.is_file() and (not source.exists() or cache.stat().st_mtime_ns >= source.stat().st_mtime_ns)


def _read_predictions(path: Path) -> dict[str, tuple[int, float]]:
    with path.open(newline="") as handle:
        return {row["image_id"]: (int(row["label"]), float(row["probability"])) for row in csv.DictReader(handle)}


def _write_predictions(path: Path, predictions: dict[str, tuple[int, float]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "label", "probability"])
        writer.writerows([image_id, label, f"{p:.8f}"] for image_id, (label, p) in sorted(predictions.items()))


def pooled_comparison(
    baseline: dict[int, dict[str, tuple[int, float]]],
    other: dict[int, dict[str, tuple[int, float]]],
    n_resamples: int = 2000,
) -> dict[str, Any]:
    """Paired bootstrap AUC gain of ``other`` over ``baseline`` on the pooled out-of-fold predictions.

    Both arguments map fold -> image_id -> (label, probability); only the folds both have are pooled.
    """
    folds = sorted(set(baseline) & set(other))
    keys = [(fold, image_id) for fold in folds for image_id in sorted(baseline[fold])]
    result: dict[str, Any] = {"folds": folds, "images": len(keys), "decision": "no evidence"}
    labels = [baseline[fold][image_id][0] for fold, image_id in keys]
    if len(set(labels)) < 2:
        return result
    base_scores, other_scores = [baseline[f][i][1] for f, i in keys], [other[f][i][1] for f, i in keys]
    gain = paired_auc_difference(labels, base_scores, other_scores, n_resamples)
    result.update(melanomas=int(sum(labels)), **gain)
    result["decision"] = {"better": "adopt", "worse": "reject"}.get(gain["decision"], "no evidence")
    return result


def _raw_weight_scores(setting_dir: Path, scores: dict[int, float], monitor: str) -> dict[str, Any]:
    """For runs that kept a weight average (``optim.ema_decay``): each fold's best ``raw_<monitor>``."""
    raw = {}
    for fold in scores:
        rows = read_metrics(setting_dir / f"fold{fold}")
        if rows and f"raw_{monitor}" in rows[0]:
            raw[f"fold{fold}"] = max(row[f"raw_{monitor}"] for row in rows)
    return {"per_fold_raw_weights": raw} if raw else {}


def main(argv: list[str] | None = None) -> None:
    command = ["python", *sys.argv] if argv is None else ["python", "benchmarks/cross_validate.py", *argv]
    parser = script_parser(__doc__)
    parser.add_argument("--config", required=True, help="YAML training config, e.g. configs/classification.yaml")
    parser.add_argument("--folds", type=int, default=5, help="number of folds of the train split (>= 2)")
    parser.add_argument("--out", required=True, help="study folder: runs go to OUT/NAME/foldK")
    parser.add_argument(
        "--setting", action="append", required=True, help="'NAME' or 'NAME: key=value ...'; the first is the baseline"
    )
    parser.add_argument("--only-folds", type=int, nargs="+", help="train only these folds (report all completed)")
    parser.add_argument(
        "--no-train", action="store_true", help="train nothing: report the folds completed so far (e.g. mid-study)"
    )
    parser.add_argument("--data-dir", help="ISIC 2017 data root (adds data.data_dir=DIR)")
    parser.add_argument(
        "--served",
        action="store_true",
        help="pool out-of-fold predictions through each fold's ONNX export (RUN/export) instead of its best.pt",
    )
    parser.add_argument(
        "--ensemble",
        action="append",
        default=[],
        metavar="NAME=A+B[+...]",
        help="also score the ensemble of these settings: the mean of their out-of-fold probabilities (segmentation: "
        "of their probability maps)",
    )
    parser.add_argument(
        "--reference",
        metavar="ENSEMBLE",
        help="classification: also compare every --ensemble listed after this one with it (e.g. a third network "
        "against the shipped pair), by the same analyses and rule (vs_reference in their rows)",
    )
    parser.add_argument(
        "--leave-out-copies",
        action="store_true",
        help="classification: score without the training images that have a copy among the other training images",
    )
    parser.add_argument("--note", help="free text kept in the report, e.g. where and how the folds were trained")
    parser.add_argument("--json", help="also write the JSON report here")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error(f"--folds {args.folds}: cross-validation needs at least 2 folds")
    train_folds = list(range(args.folds)) if args.only_folds is None else sorted(set(args.only_folds))
    if args.no_train:
        train_folds = []
    if any(not 0 <= k < args.folds for k in train_folds):
        parser.error(f"--only-folds {args.only_folds}: folds are 0 .. {args.folds - 1}")
    settings = dict(parse_setting(text) for text in args.setting)
    if len(settings) != len(args.setting):
        parser.error("each --setting needs its own NAME")
    ensembles = dict(parse_ensemble(text, list(settings)) for text in args.ensemble)
    if args.reference and args.reference not in ensembles:
        parser.error(
            f"--reference {args.reference}: not one of the --ensemble names ({', '.join(ensembles) or 'none'})"
        )

    from melanoma.training.engine import MONITOR, fit

    # Resolve every config first, so that a typo in the last setting fails before hours of training.
    out = Path(args.out)
    configs: dict[tuple[str, int], TrainConfig] = {}
    for name, overrides in settings.items():
        for fold in range(args.folds):
            extra = [f"data.cv_folds={args.folds}", f"data.cv_fold={fold}"]
            if args.data_dir:
                extra.append(f"data.data_dir={args.data_dir}")
            config = load_config(args.config, [*overrides, *extra])
            config.command = shlex.join(command)
            _check_same_config(out / name / f"fold{fold}", config)
            configs[name, fold] = config
    task = configs[next(iter(settings)), 0].task
    if any(config.task != task for config in configs.values()):
        parser.error("all settings must train the same task (their metrics are compared)")
    if ensembles and args.served:
        parser.error("--ensemble averages each fold's best.pt predictions: leave out --served")
    monitor = MONITOR[task]
    if args.leave_out_copies and task != "classification":
        parser.error("--leave-out-copies re-scores classifiers' out-of-fold AUC: leave it out for segmentation")
    left_out = copied_training_images(configs[next(iter(settings)), 0]) if args.leave_out_copies else set()

    # Fold by fold (all settings on fold 0, then fold 1, ...), so an interrupted study already has paired folds.
    for fold in train_folds:
        for name in settings:
            config, run_dir = configs[name, fold], out / name / f"fold{fold}"
            status = fold_status(run_dir, config.optim.epochs)
            print(f"cross_validate: {name} fold {fold}: {status}", file=sys.stderr, flush=True)
            if status != "done":
                fit(config, run_dir, resume=status == "resume")

    rows = []
    scores: dict[str, dict[int, float]] = {}
    predictions: dict[str, dict[int, dict[str, tuple[int, float]]]] = {}
    for name, overrides in settings.items():
        scores[name] = {}
        for fold in range(args.folds):
            run_dir = out / name / f"fold{fold}"
            if fold_status(run_dir, configs[name, fold].optim.epochs) == "done":
                # fit keeps the first epoch with the highest value as best.pt: the best score is the column's max.
                scores[name][fold] = max(row[monitor] for row in read_metrics(run_dir))
        values = list(scores[name].values())
        row: dict[str, Any] = {
            "name": name,
            "overrides": overrides,
            "per_fold": {f"fold{k}": v for k, v in scores[name].items()},
            **_raw_weight_scores(out / name, scores[name], monitor),
            "missing_folds": [k for k in range(args.folds) if k not in scores[name]],
            "mean": statistics.fmean(values) if values else None,
            "sd": statistics.stdev(values) if len(values) >= 2 else None,
        }
        if task == "classification":
            predict = served_out_of_fold_predictions if args.served else out_of_fold_predictions
            predictions[name] = {
                fold: predict(configs[name, fold], out / name / f"fold{fold}") for fold in scores[name]
            }
            if left_out:  # each fold scored on the images left (its best.pt's out-of-fold AUC on them)
                predictions[name] = {
                    fold: {i: pair for i, pair in values.items() if i not in left_out}
                    for fold, values in predictions[name].items()
                }
                scores[name] = {fold: _fold_auc(values) for fold, values in predictions[name].items()}
                row["per_fold"] = {f"fold{k}": v for k, v in scores[name].items()}
                row["mean"] = statistics.fmean(scores[name].values()) if scores[name] else None
                row["sd"] = statistics.stdev(scores[name].values()) if len(scores[name]) >= 2 else None
            pooled = [pair for fold in predictions[name].values() for pair in fold.values()]
            if len({label for label, _ in pooled}) == 2:
                row["pooled_out_of_fold_auc"] = classification_scores(*zip(*pooled, strict=True))["auc"]
        else:
            predictions[name] = {
                fold: out_of_fold_jaccards(configs[name, fold], out / name / f"fold{fold}") for fold in scores[name]
            }
            pooled_values = [value for fold in predictions[name].values() for value in fold.values()]
            if pooled_values:
                row["pooled_mean_jaccard"] = statistics.fmean(pooled_values)
        if rows:
            row["vs_baseline"] = paired_comparison(scores[rows[0]["name"]], scores[name])
            compare = pooled_comparison if task == "classification" else pooled_jaccard_comparison
            row["pooled_vs_baseline"] = compare(predictions[rows[0]["name"]], predictions[name])
            row["decision"] = _decision(row["vs_baseline"], row["pooled_vs_baseline"])
        rows.append(row)
    if args.reference and task != "classification":
        parser.error("--reference compares classifier ensembles' pooled AUC: leave it out for segmentation")
    after_reference = False
    for name, members in ensembles.items():
        if task == "classification":
            rows.append(ensemble_row(name, members, rows[0]["name"], predictions))
            if after_reference:
                rows[-1]["vs_reference"] = reference_comparison(args.reference, ensembles, name, predictions)
            after_reference = after_reference or name == args.reference
        else:
            rows.append(segmentation_ensemble_row(name, members, rows[0]["name"], predictions, configs, out))
    report = {
        "command": shlex.join(command),
        "config": args.config,
        "task": task,
        "metric": monitor,
        "folds": args.folds,
        "out": str(out),
        "baseline": rows[0]["name"],
        "out_of_fold": "served (each fold's ONNX export through the Predictor)" if args.served else "best.pt",
        "decision_rule": "adopt if the 95% t-interval of the paired per-fold differences vs the baseline is above 0, "
        "reject if below 0, else no evidence; the out-of-fold predictions of the shared folds are also pooled "
        "(classification: paired stratified bootstrap of the AUC gain; segmentation: paired bootstrap of the gain "
        "in mean per-image Jaccard; same rule) and a setting is adopted when either analysis adopts and neither "
        "rejects",
        "settings": rows,
    }
    if left_out:
        from melanoma.inference.fingerprint import COPY_DISTANCE

        report["left_out"] = {
            "rule": f"training images with a copy among the other training images (content fingerprints at most "
            f"{COPY_DISTANCE} bits apart)",
            "images": sorted(left_out),
        }
    if args.note:
        report["note"] = args.note
    emit_json(report, args.json)


if __name__ == "__main__":
    main()
