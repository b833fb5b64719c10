"""Copies of one photograph among the ISIC 2017 images, and what they do to the validation scores.

Usage:
    python benchmarks/duplicates.py [--models DIR] [--data-dir DIR] [--json FILE]

Every train, validation and test image is fingerprinted (``melanoma.inference.fingerprint``: 256 bits) and every pair
of the 2750 compared. Reported:

- ``pairs``: every pair of different image ids whose fingerprints lie within ``COPY_DISTANCE`` bits: taken for
  copies of one photograph (many an ``ISIC_00001xx``/``ISIC_00002xx`` image and an ``ISIC_0014xxx``/``ISIC_0015xxx``
  re-publication of it with its colours processed), and ``nearest_beyond``, the ten nearest pairs past the limit.
  Looked at by eye (on 2026-12-07; ``judged_by_eye``, from ``JUDGED_BY_EYE``), each of the 29 pairs within the limit
  shows one lesion in one view: the same photograph, a re-publication of it with its colours processed, or a second
  shot taken moments apart. Of the ten beyond it (58 to 64 bits), five are such pairs too (four re-publications, one
  second shot), which the limit misses, and five are different lesions placed alike in a round dermatoscope field,
  the nearest 60 bits apart. The limit was set after that look: below the nearest different lesions, above the
  changed copies of ``transforms``.
- ``copies``: how many images of one split have a copy in another, and (``train_in_train``) how many training
  images have one among the other training images (the test set's count needs no label).
- ``transforms``: what share of the 150 validation images, changed as a site or a re-publisher might change them,
  still find their original as the nearest stored fingerprint within the limit (``found``), with the distances.
- ``fullres``: the six validation originals at full size (``fullres/val``), decoded as ``melanoma evaluate`` decodes
  them, against the 256 px images the models were trained and validated on.
- ``validation``: the shipped classifier's AUC, and the segmenter's mean Jaccard, on all 150 validation images and on
  those without a copy among the training images (which the networks may have learned by heart), each with its
  bootstrap 95% interval: how much the validation figures could owe to copies.

Prints JSON (and writes it to --json FILE). Needs only the serving install.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance
from tqdm import tqdm

from melanoma.data.isic import read_isic2017, resolve_data_dir
from melanoma.data.samples import read_mask
from melanoma.inference.fingerprint import COPY_DISTANCE, FINGERPRINT_METHOD, distances, fingerprint
from melanoma.inference.image_io import load_image
from melanoma.inference.predictor import Predictor
from melanoma.metrics import classification_scores, jaccard
from melanoma.reporting import both_models, emit_study, study_parser

SPLITS = ("train", "val", "test")
NEAREST_BEYOND = 10
#: Pairs looked at by eye (2026-12-07, each pair side by side at 256 px): every pair within the limit, and the ten
#: nearest beyond it. "same lesion": one lesion in one view (the same photograph, a re-publication of it with its
#: colours processed, or a second shot moments apart); "different lesions". Any other pair: "not looked at".
SAME, DIFFERENT = "same lesion", "different lesions"
JUDGED_BY_EYE: dict[tuple[str, str], str] = {
    **{
        pair: SAME
        for pair in (
            ("ISIC_0012175", "ISIC_0015982"), ("ISIC_0012271", "ISIC_0016018"), ("ISIC_0012970", "ISIC_0012127"),
            ("ISIC_0012221", "ISIC_0016002"), ("ISIC_0012152", "ISIC_0015979"), ("ISIC_0012216", "ISIC_0016001"),
            ("ISIC_0012290", "ISIC_0013594"), ("ISIC_0012887", "ISIC_0012989"), ("ISIC_0012222", "ISIC_0016003"),
            ("ISIC_0013163", "ISIC_0013109"), ("ISIC_0015986", "ISIC_0015987"), ("ISIC_0012672", "ISIC_0012673"),
            ("ISIC_0012756", "ISIC_0013184"), ("ISIC_0000171", "ISIC_0015124"), ("ISIC_0000201", "ISIC_0015023"),
            ("ISIC_0000164", "ISIC_0014795"), ("ISIC_0000174", "ISIC_0015071"), ("ISIC_0000222", "ISIC_0014846"),
            ("ISIC_0000165", "ISIC_0014788"), ("ISIC_0000184", "ISIC_0015310"), ("ISIC_0000193", "ISIC_0015436"),
            ("ISIC_0000204", "ISIC_0014748"), ("ISIC_0000162", "ISIC_0014826"), ("ISIC_0000209", "ISIC_0015016"),
            ("ISIC_0000185", "ISIC_0015155"), ("ISIC_0000224", "ISIC_0014791"), ("ISIC_0000177", "ISIC_0014657"),
            ("ISIC_0000215", "ISIC_0015313"), ("ISIC_0000229", "ISIC_0014771"),
            # beyond the limit
            ("ISIC_0015945", "ISIC_0015946"), ("ISIC_0000179", "ISIC_0014765"), ("ISIC_0000205", "ISIC_0014742"),
            ("ISIC_0000186", "ISIC_0014698"), ("ISIC_0000227", "ISIC_0015034"),
        )
    },
    **{
        pair: DIFFERENT
        for pair in (
            ("ISIC_0000338", "ISIC_0000340"), ("ISIC_0000316", "ISIC_0000374"), ("ISIC_0000330", "ISIC_0000332"),
            ("ISIC_0001134", "ISIC_0010016"), ("ISIC_0000315", "ISIC_0000336"),
        )
    },
}  # fmt: skip


def judged(a: str, b: str) -> str:
    """What the look by eye found for a pair of image ids (either order)."""
    return JUDGED_BY_EYE.get((a, b)) or JUDGED_BY_EYE.get((b, a)) or "not looked at"


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


#: How a copy may differ from the image a network saw: each changes a 256 px ISIC 2017 validation image.
TRANSFORMS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg_q40": lambda im: _jpeg(im, 40),
    "jpeg_q20": lambda im: _jpeg(im, 20),
    "enlarged_1024x768": lambda im: im.resize((1024, 768), Image.Resampling.BICUBIC),
    "reduced_64px": lambda im: im.resize((64, 64), Image.Resampling.BILINEAR),
    "reduced_48px": lambda im: im.resize((48, 48), Image.Resampling.BILINEAR),
    "brighter_1.3": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    "darker_0.7": lambda im: ImageEnhance.Brightness(im).enhance(0.7),
    "contrast_1.3": lambda im: ImageEnhance.Contrast(im).enhance(1.3),
    "saturation_1.5": lambda im: ImageEnhance.Color(im).enhance(1.5),
    "gamma_0.8": lambda im: im.point(lambda v: round(255 * (v / 255) ** 0.8)),
    "greyscale": lambda im: im.convert("L").convert("RGB"),
    "cropped_3pct": lambda im: im.crop((4, 4, im.width - 4, im.height - 4)),
    "mirrored": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
}


def mean_with_ci(values: np.ndarray, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """The mean of ``values`` with its percentile bootstrap 95% interval (items resampled with replacement)."""
    index = np.random.default_rng(seed).integers(0, values.size, size=(n_resamples, values.size))
    low, high = np.quantile(values[index].mean(axis=1), [0.025, 0.975])
    return float(values.mean()), float(low), float(high)


def pair_distances(table: np.ndarray) -> np.ndarray:
    """All pairwise bit distances of an (n, 32) fingerprint table (n x n, int32)."""
    return np.stack([distances(row, table) for row in table])


def copies_between(found: np.ndarray, ids: list[tuple[str, str]], left: str, right: str) -> int:
    """How many images of split ``left`` have a copy (another id) in split ``right``."""
    rows = [i for i, (split, _) in enumerate(ids) if split == left]
    cols = np.array([split == right for split, _ in ids])
    return int(sum(bool(np.any(found[r] & cols)) for r in rows))


def transform_study(images: list[Image.Image], table: np.ndarray, rows: list[int]) -> dict[str, Any]:
    """Per transform: the share of images whose changed copy finds its own row nearest, within the limit."""
    report = {}
    for name, change in tqdm(TRANSFORMS.items(), desc="transforms", unit="change"):
        own, hits = [], 0
        for image, row in zip(images, rows, strict=True):
            found = distances(fingerprint(change(image)), table)
            own.append(int(found[row]))
            hits += int(found[row] <= COPY_DISTANCE and found[row] == found.min())
        report[name] = {
            "found": round(hits / len(images), 4),
            "median_distance": float(np.median(own)),
            "max_distance": int(max(own)),
        }
    return report


def fullres_study(data_dir: Path, table: np.ndarray, index: dict[str, int]) -> list[dict[str, Any]]:
    """The full-size validation originals, decoded as evaluate decodes them, against their 256 px versions."""
    report = []
    for path in sorted((data_dir / "fullres" / "val").glob("ISIC_???????.jpg")):
        found = distances(fingerprint(load_image(path, min_side_for_draft=256)), table)
        row = index[path.stem]
        report.append({"image": path.stem, "distance": int(found[row]), "found": bool(found[row] <= COPY_DISTANCE)})
    return report


def validation_study(predictor: Predictor, data_dir: Path, with_copy: set[str]) -> dict[str, Any]:
    """Classifier AUC and segmenter mean Jaccard on all validation images and on those without a training copy."""
    samples = read_isic2017(data_dir, "val")
    probabilities, jaccards = [], []
    for start in tqdm(range(0, len(samples), 16), desc="validation", unit="batch"):
        chunk = samples[start : start + 16]
        for sample, prediction in zip(chunk, predictor.predict_batch([s.image_path for s in chunk]), strict=True):
            probabilities.append(float(prediction.melanoma_probability))
            jaccards.append(jaccard(prediction.lesion_mask, read_mask(sample.mask_path) > 0))
    labels = np.array([int(s.melanoma) for s in samples])
    keep = np.array([s.image_id not in with_copy for s in samples])

    def scores(mask: np.ndarray) -> dict[str, Any]:
        cls = classification_scores(labels[mask], np.array(probabilities)[mask], predictor.threshold, bootstrap=2000)
        mean, low, high = mean_with_ci(np.array(jaccards)[mask])
        return {
            "images": int(mask.sum()),
            "melanomas": int(labels[mask].sum()),
            "auc": round(cls["auc"], 4),
            "auc_ci95": [round(x, 4) for x in cls["ci95"]["auc"]],
            "sensitivity": round(cls["sensitivity"], 4),
            "specificity": round(cls["specificity"], 4),
            "mean_jaccard": round(mean, 4),
            "mean_jaccard_ci95": [round(low, 4), round(high, 4)],
        }

    return {
        "all": scores(np.ones(len(samples), dtype=bool)),
        "without_training_copies": scores(keep),
        "left_out": sorted(s.image_id for s in samples if s.image_id in with_copy),
        "threshold": predictor.threshold,
    }


def study(predictor: Predictor, data_dir: Path) -> dict[str, Any]:
    ids: list[tuple[str, str]] = []
    images: list[Image.Image] = []
    for split in SPLITS:
        for path in sorted((data_dir / "images" / split).glob("*.jpg")):
            ids.append((split, path.stem))
            images.append(Image.fromarray(load_image(path)))
    table = np.stack([fingerprint(image) for image in tqdm(images, desc="fingerprints", unit="img")])
    near = pair_distances(table)
    np.fill_diagonal(near, 10**6)
    found = near <= COPY_DISTANCE
    upper = np.triu_indices(len(ids), 1)
    order = np.argsort(near[upper], kind="stable")
    listed = [(int(upper[0][k]), int(upper[1][k])) for k in order]
    within = [(a, b) for a, b in listed if near[a, b] <= COPY_DISTANCE]
    beyond = listed[len(within) : len(within) + NEAREST_BEYOND]

    def pair(a: int, b: int) -> dict[str, Any]:
        return {
            "a": ids[a][1],
            "a_split": ids[a][0],
            "b": ids[b][1],
            "b_split": ids[b][0],
            "distance": int(near[a, b]),
            "judged_by_eye": judged(ids[a][1], ids[b][1]),
        }

    val_rows = [i for i, (split, _) in enumerate(ids) if split == "val"]
    index = {image_id: i for i, (split, image_id) in enumerate(ids) if split == "val"}
    train_cols = np.array([split == "train" for split, _ in ids])
    with_copy = {ids[r][1] for r in val_rows if np.any(found[r] & train_cols)}
    return {
        "fingerprint": FINGERPRINT_METHOD,
        "copy_distance": COPY_DISTANCE,
        "images": {split: sum(s == split for s, _ in ids) for split in SPLITS},
        "pairs": [pair(a, b) for a, b in within],
        "nearest_beyond": [pair(a, b) for a, b in beyond],
        "copies": {
            "val_in_train": copies_between(found, ids, "val", "train"),
            "test_in_train": copies_between(found, ids, "test", "train"),
            "test_in_val": copies_between(found, ids, "test", "val"),
            "test_in_train_or_val": copies_between(found, ids, "test", "train")
            + sum(
                bool(np.any(found[r] & np.array([s == "val" for s, _ in ids]))) and not np.any(found[r] & train_cols)
                for r, (split, _) in enumerate(ids)
                if split == "test"
            ),
            "train_in_train": copies_between(found, ids, "train", "train"),
        },
        "transforms": transform_study([images[r] for r in val_rows], table, val_rows),
        "fullres": fullres_study(data_dir, table, index),
        "validation": validation_study(predictor, data_dir, with_copy),
    }


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__)
    args = parser.parse_args(argv)
    predictor = both_models(parser, args.models)
    report = study(predictor, Path(resolve_data_dir(args.data_dir)))
    return emit_study(report, "benchmarks/duplicates.py", argv, predictor, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
