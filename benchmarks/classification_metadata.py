"""Does the patient's age and sex add to the image? A held-out study of the ISIC 2017 metadata.

ISIC 2017 ships ``age_approximate`` (5-year steps or ``unknown``) and ``sex`` (``male``/``female``/``unknown``) for
each training and validation image (``DATA/metadata``). Melanoma is rarer in the young: age alone ranks melanomas
with an AUC near 0.7. The candidate combines it with the image as a naive Bayes model would:

    score = logit(p_image) + logit(p_metadata) - logit(melanoma rate of the metadata model's training images)

i.e. the metadata's likelihood ratio is added to the image's log-odds, with weight 1 and nothing fitted on held-out
predictions. ``p_metadata`` is a logistic regression (scikit-learn defaults) on age/100 (unknown: the median of its
training images), an age-unknown flag, and male / unknown-sex flags, fit on training images outside the scored set.

1. ``fold``: the out-of-fold probabilities of a cross-validation fold model (``--oof``, e.g.
   ``runs/cv-sog/lite2-sog/fold0/oof.csv`` from ``benchmarks/cross_validate.py``); the metadata model is fit on the
   training images outside that fold.
2. ``validation``: the shipped classifier (``--models``) on the 150 validation images, through the Predictor; the
   metadata model is fit on all 2000 training images.

Each gets the paired stratified bootstrap AUC gain of the combined score over the image alone, and both AUCs.

Usage: python benchmarks/classification_metadata.py --oof CSV [--models DIR] [--data-dir DIR] [--json FILE]
"""

from __future__ import annotations

import csv
import shlex
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from melanoma.data.isic import read_isic2017, resolve_data_dir
from melanoma.inference.predictor import Predictor
from melanoma.metrics import paired_auc_difference
from melanoma.reporting import emit_json, script_parser

METADATA_FILES = {"train": "ISIC-2017_Training_Data_metadata.csv", "val": "ISIC-2017_Validation_Data_metadata.csv"}
EPSILON = 1e-6


def read_metadata(data_dir: Path, split: str) -> dict[str, tuple[float | None, str]]:
    """``image_id -> (age or None, sex)`` from the split's ISIC 2017 metadata CSV."""
    path = data_dir / "metadata" / METADATA_FILES[split]
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    return {row["image_id"]: (_age(row["age_approximate"]), row["sex"].strip().lower()) for row in rows}


def _age(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def features(metadata: list[tuple[float | None, str]], median_age: float) -> np.ndarray:
    """Rows of [age/100 (unknown -> median), age unknown, male, sex unknown]."""
    return np.array(
        [
            [
                (median_age if age is None else age) / 100.0,
                float(age is None),
                float(sex == "male"),
                float(sex not in ("male", "female")),
            ]
            for age, sex in metadata
        ]
    )


def metadata_log_likelihood_ratio(
    fit: list[tuple[float | None, str]], fit_labels: np.ndarray, score: list[tuple[float | None, str]]
) -> np.ndarray:
    """The metadata model's log-odds on ``score`` minus the log-odds of the melanoma rate it was fit on."""
    median_age = float(np.median([age for age, _ in fit if age is not None]))
    model = LogisticRegression().fit(features(fit, median_age), fit_labels)
    rate = float(np.mean(fit_labels))
    return model.decision_function(features(score, median_age)) - np.log(rate / (1 - rate))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


def _study(labels: np.ndarray, image_probability: np.ndarray, llr: np.ndarray) -> dict:
    combined = _logit(image_probability) + llr
    result = paired_auc_difference(labels, _logit(image_probability), combined)
    return {
        "images": int(len(labels)),
        "melanomas": int(labels.sum()),
        "image_auc": round(result["baseline_auc"], 4),
        "combined_auc": round(result["other_auc"], 4),
        "gain": round(result["difference"], 4),
        "ci95": [round(x, 4) for x in result["ci95"]],
        "decision": result["decision"],
    }


def fold_study(oof_csv: Path, train_labels: dict[str, int], train_meta: dict) -> dict:
    with oof_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    held_out = {row["image_id"] for row in rows}
    fit_ids = sorted(set(train_labels) - held_out)
    ids = [row["image_id"] for row in rows]
    labels = np.array([int(row["label"]) for row in rows])
    llr = metadata_log_likelihood_ratio(
        [train_meta[i] for i in fit_ids], np.array([train_labels[i] for i in fit_ids]), [train_meta[i] for i in ids]
    )
    return {"oof": str(oof_csv), **_study(labels, np.array([float(row["probability"]) for row in rows]), llr)}


def validation_study(models: Path | None, data_dir: Path, train_labels: dict[str, int], train_meta: dict) -> dict:
    samples = read_isic2017(data_dir, "val")
    predictor = Predictor.from_dir(models)
    probabilities = np.array(
        [
            prediction.melanoma_probability
            for start in range(0, len(samples), 16)
            for prediction in predictor.predict_batch([s.image_path for s in samples[start : start + 16]])
        ]
    )
    val_meta = read_metadata(data_dir, "val")
    fit_ids = sorted(train_labels)
    llr = metadata_log_likelihood_ratio(
        [train_meta[i] for i in fit_ids],
        np.array([train_labels[i] for i in fit_ids]),
        [val_meta[s.image_id] for s in samples],
    )
    labels = np.array([int(s.melanoma) for s in samples])
    networks = {"classification": predictor.networks()["classification"]}
    return {"models_dir": str(predictor.models_dir), "networks": networks, **_study(labels, probabilities, llr)}


def main(argv: list[str] | None = None) -> int:
    parser = script_parser(__doc__)
    parser.add_argument("--oof", type=Path, required=True, help="out-of-fold probabilities of a fold model")
    parser.add_argument("--models", type=Path, default=None, help="exported models (default: the shipped ones)")
    parser.add_argument("--data-dir", default=None, help="ISIC 2017 folder (default: $MELANOMA_DATA or ../shared)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    train = read_isic2017(data_dir, "train")
    train_labels = {s.image_id: int(s.melanoma) for s in train}
    train_meta = read_metadata(data_dir, "train")
    report = {
        "command": "python benchmarks/classification_metadata.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "fold": fold_study(args.oof, train_labels, train_meta),
        "validation": validation_study(args.models, data_dir, train_labels, train_meta),
    }
    emit_json(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
