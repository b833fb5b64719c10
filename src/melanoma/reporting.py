"""One way to report results: pretty JSON on standard output, and the same text in a file when asked."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def emit_json(payload: Any, path: str | Path | None = None) -> str:
    """Print ``payload`` as indented JSON and, when ``path`` is given, write the same text there."""
    text = json.dumps(payload, indent=2)
    if path:  # written before printing, so a closed stdout (``... | head``) cannot lose the file
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)  # a long evaluation must not end in a missing folder
            Path(path).write_text(text + "\n")
        except OSError as error:
            print(text)  # the results of a long evaluation are not lost with the file
            raise OSError(f"cannot write {path}: {error.strerror or error}; the results are printed above") from error
    print(text)
    return text


def script_parser(doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of a benchmark or script: its whole module docstring (what it measures, its usage lines
    and their defaults) as the ``--help`` text, laid out as written."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def study_parser(doc: str | None) -> argparse.ArgumentParser:
    """``script_parser`` with the options of a study of the shipped models on the ISIC 2017 validation images:
    ``--models``, ``--data-dir`` and ``--json``."""
    parser = script_parser(doc)
    parser.add_argument("--models", default=None, help="exported models folder (default: the shipped models)")
    parser.add_argument("--data-dir", default=None, help="ISIC 2017 data (default: $MELANOMA_DATA or ../shared/...)")
    parser.add_argument("--json", default=None, help="also write the report to this file")
    return parser


def both_models(parser: argparse.ArgumentParser, models: str | None) -> Any:
    """The Predictor of ``models`` (default: the shipped models), which must hold a segmenter and a classifier."""
    from melanoma.inference.predictor import Predictor

    predictor = Predictor.from_dir(models)
    if predictor.segmenter is None or predictor.classifier is None:
        parser.error("--models must hold both a segmenter and a classifier")
    return predictor


def emit_study(report: dict[str, Any], script: str, argv: list[str] | None, predictor: Any, path: str | None) -> int:
    """Add the command that ran ``script`` (``benchmarks/NAME.py``) and the networks measured, then ``emit_json``."""
    import shlex
    import sys

    arguments = argv if argv is not None else sys.argv[1:]
    report["command"] = shlex.join(["python", script, *arguments])
    report["networks"] = predictor.networks()
    emit_json(report, path)
    return 0


def predict_uploads(predictor: Any, images: list[Any], batch: int = 16) -> tuple[list[float], list[Any]]:
    """(melanoma probabilities, lesion masks at each image's size) of RGB uint8 arrays predicted as uploads of
    their own size, ``batch`` at a time: the prediction loop of the studies of the shipped models."""
    import numpy as np

    probabilities: list[float] = []
    masks: list[Any] = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        sizes = [(image.shape[1], image.shape[0]) for image in chunk]
        names = [f"image {start + i}" for i in range(len(chunk))]
        for prediction in predictor.predict_arrays(chunk, sizes, names):
            probabilities.append(float(prediction.melanoma_probability))
            masks.append(np.asarray(prediction.lesion_mask, dtype=bool))
    return probabilities, masks


def lost_beyond_noise(difference: dict[str, Any], by: float = -0.02) -> bool:
    """Whether a paired difference (``metrics.paired_*_difference``) is a loss: its 95% interval lies below 0 and its
    point is at ``by`` or less (the rule of the studies of the shipped models, -0.02 unless they say otherwise)."""
    return difference["ci95"][1] < 0 and difference["difference"] <= by
