"""Record the training and validation image lists, and their fingerprints, in model configs exported before exports
kept them.

Usage:
    python scripts/record_image_lists.py [MODELS_DIR] [--data-dir DIR] [--check]

``melanoma export`` writes, per network, which images trained it and which were its validation images
(``training.data.image_ids``), so that ``melanoma evaluate`` and ``melanoma calibrate`` can say when they are given
those images (a score or a threshold fitted on them is flattered). Configs exported before that record none, and
then nothing is checked. A network trained on the official ISIC 2017 splits (``training.data.dataset`` says so,
with no fold or limit) trained on all of the train split and validated on all of the val split, so its lists are
those splits' image ids: this script reads them from the data (``--data-dir``, ``$MELANOMA_DATA`` or
``../shared/data/isic2017``), checks them against the counts the config recorded at training time (images and
melanomas per split), and writes them in, marked ``image_ids_recorded_by`` this script.

Exports also keep the images' content fingerprints (``training.data.image_fingerprints``, once per config: every
member of an ensemble trained on the same images), which find them under other names too
(``melanoma.inference.fingerprint``). For a config whose own record lists official ISIC 2017 images and keeps no
fingerprints, this script fingerprints those image files and writes them in, marked
``image_fingerprints_recorded_by``.

Nothing else changes (the ONNX file and its ``onnx_sha256`` are untouched). A record it cannot vouch for (other data,
a fold, a limit, counts that differ) is left as it is and named. ``--check`` writes nothing and exits 1 when a list
or the fingerprints are missing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from melanoma.data.isic import read_isic2017
from melanoma.data.samples import DataError
from melanoma.inference.fingerprint import FINGERPRINT_METHOD, encode_fingerprints, fingerprint_files
from melanoma.reporting import script_parser

OFFICIAL = "ISIC 2017 challenge (official splits)"
RECORDED_BY = "python scripts/record_image_lists.py (the official ISIC 2017 splits the config names, counts checked)"
FINGERPRINTED_BY = "python scripts/record_image_lists.py (the listed official ISIC 2017 image files)"


def records(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every training record of a model config: the ensemble members' and the config's own."""
    members = [m["training"] for m in config.get("ensemble", {}).get("members", []) if "training" in m]
    return [*members, *([config["training"]] if "training" in config else [])]


def official_lists(data_dir: str | None, train_split: str, validation_split: str) -> dict[str, Any]:
    """Image ids and melanoma counts of two official splits."""
    train, val = read_isic2017(data_dir, train_split), read_isic2017(data_dir, validation_split)
    return {
        "image_ids": {"train": [s.image_id for s in train], "validation": [s.image_id for s in val]},
        "n_train": len(train),
        "n_validation": len(val),
        "n_train_melanoma": sum(int(s.melanoma or 0) for s in train),
        "n_validation_melanoma": sum(int(s.melanoma or 0) for s in val),
    }


def why_not(data: dict[str, Any], config: dict[str, Any], lists: dict[str, Any]) -> str | None:
    """Why the official lists cannot be vouched for as a record with this ``data`` block and training ``config``
    (None when they can)."""
    if data.get("dataset") != OFFICIAL:
        return f"trained on {data.get('dataset', 'data it does not name')!r}, not {OFFICIAL!r}"
    settings = config.get("data", {})
    if (
        settings.get("source") != "isic2017"
        or settings.get("cv_folds")
        or settings.get("limit_train")
        or (settings.get("limit_val"))
    ):
        return "its training config is not the whole official split (data.source, cv_folds, limit_train, limit_val)"
    differing = [key for key in lists if key != "image_ids" and key in data and data[key] != lists[key]]
    if differing:
        return "its recorded counts differ from the data's: " + ", ".join(
            f"{key} {data[key]} against {lists[key]}" for key in differing
        )
    return None


def fill(config: dict[str, Any], data_dir: str | None) -> tuple[int, list[str]]:
    """Write the lists into every record of ``config`` that lacks them; (records filled, reasons for the others)."""
    filled, skipped = 0, []
    for record in records(config):
        data = record.get("data", {})
        if data.get("image_ids"):
            continue
        lists = official_lists(data_dir, data.get("train_split", "train"), data.get("validation_split", "val"))
        reason = why_not(data, record.get("config", {}), lists)
        if reason:
            skipped.append(f"{record.get('command', 'a record')}: {reason}")
            continue
        data["image_ids"] = lists["image_ids"]
        data["image_ids_recorded_by"] = RECORDED_BY
        filled += 1
    return filled, skipped


def fill_fingerprints(config: dict[str, Any], data_dir: str | None) -> str | None:
    """Fingerprint the images the config's own record lists (official ISIC 2017 splits) when it keeps no
    fingerprints; None when written or already there, else why not."""
    record = config.get("training", {})
    data = record.get("data", {})
    if data.get("image_fingerprints") or not data.get("image_ids"):
        return None if data.get("image_fingerprints") else "it lists no images"
    if data.get("dataset") != OFFICIAL:
        return f"trained on {data.get('dataset', 'data it does not name')!r}, not {OFFICIAL!r}"
    if record.get("config", {}).get("data", {}).get("cv_folds"):
        return "a cross-validation fold's record: its validation images are a fold of the train split"
    paths = {}
    try:
        for split in {data.get("train_split", "train"), data.get("validation_split", "val")}:
            paths.update({s.image_id: s.image_path for s in read_isic2017(data_dir, split)})
    except DataError as error:  # a split this data does not have: said, and the other configs still done
        return str(error)
    missing = [i for ids in data["image_ids"].values() for i in ids if i not in paths]
    if missing:
        return f"{len(missing)} of its listed images are not in the data (first: {missing[0]})"
    data["image_fingerprints"] = {
        "method": FINGERPRINT_METHOD,
        **{
            part: encode_fingerprints(fingerprint_files([paths[i] for i in ids]))
            for part, ids in data["image_ids"].items()
        },
    }
    data["image_fingerprints_recorded_by"] = FINGERPRINTED_BY
    return None


def main(argv: list[str] | None = None) -> int:
    parser = script_parser(__doc__)
    parser.add_argument("models", nargs="?", default="models", help="exported models folder (default: models)")
    parser.add_argument("--data-dir", default=None, help="ISIC 2017 data (default: $MELANOMA_DATA or ../shared/...)")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a list or the fingerprints are missing"
    )
    args = parser.parse_args(argv)
    paths = sorted(Path(args.models).glob("*.json"))
    configs = {path: json.loads(path.read_text()) for path in paths}
    configs = {path: config for path, config in configs.items() if isinstance(config, dict) and "task" in config}
    if not configs:
        parser.error(f"{args.models} holds no model config (segmentation.json, classification.json)")
    missing = 0
    for path, config in configs.items():
        if args.check:
            lacking = [r.get("command", "?") for r in records(config) if not r.get("data", {}).get("image_ids")]
            unprinted = not config.get("training", {}).get("data", {}).get("image_fingerprints")
            missing += len(lacking) + unprinted
            state = "missing" if unprinted else "kept"
            print(f"{path}: {len(lacking)} record(s) without image lists; fingerprints {state}", file=sys.stderr)
            continue
        filled, skipped = fill(config, args.data_dir)
        for reason in skipped:
            print(f"{path}: left as it is: {reason}", file=sys.stderr)
        had = bool(config.get("training", {}).get("data", {}).get("image_fingerprints"))
        why = fill_fingerprints(config, args.data_dir)
        if why:
            print(f"{path}: no fingerprints written: {why}", file=sys.stderr)
        printed = not had and not why
        if filled or printed:
            path.write_text(json.dumps(config, indent=2) + "\n")
        print(
            f"{path}: image lists recorded for {filled} record(s); fingerprints "
            f"{'recorded' if printed else 'kept' if had else 'not recorded'}",
            file=sys.stderr,
        )
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
