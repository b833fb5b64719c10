"""Post-hoc classifier experiments on validation data, through the exported ONNX model, with paired bootstrap.

Test-time augmentation (mean probability over the image and its horizontal / vertical flips, the
``test_time_flips`` a model config can ask the Predictor for) vs the plain image, and other classifiers
(``--candidate NAME=DIR``: another model folder, e.g. a differently trained run's export or an int8 copy; a
lesion-crop classifier's folder holds the segmenter that places its crops; ``NAME=DIR,DIR,...`` is the ensemble
that averages those folders' probabilities, e.g. two cross-validation folds) vs the base model. A variant counts
as better only when the paired stratified bootstrap 95% interval of its AUC gain over the base lies above zero
(30 validation melanomas are few: most gains are noise).

Usage: python benchmarks/classification_experiments.py [--models DIR] [--candidate NAME=DIR[,DIR...] ...]
       [--data-dir DIR] [--json FILE]
Prints JSON (and writes the rows the model card renders when --json is given).
"""

from __future__ import annotations

import shlex
import sys

import numpy as np
from sklearn.metrics import roc_auc_score

from melanoma.data.isic import read_isic2017
from melanoma.inference.image_io import load_image
from melanoma.inference.predictor import Model, Predictor
from melanoma.metrics import paired_auc_difference
from melanoma.reporting import emit_json, script_parser

VARIANTS = {"plain": [], "tta_hflip": ["hflip"], "tta_hflip_vflip": ["hflip", "vflip"]}


def probabilities(predictor: Predictor, images: list[np.ndarray], flips: list[str]) -> np.ndarray:
    """Melanoma probabilities through the Predictor's classification path (lesion crops included), with flips."""
    model = Model(predictor.classifier.session, {**predictor.classifier.config, "test_time_flips": flips})
    variant = Predictor(predictor.segmenter, model, predictor.models_dir)
    return np.concatenate([variant.classify(images[i : i + 16])[0] for i in range(0, len(images), 16)])


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--models", help="the base classifier's model folder (default: the shipped models)")
    parser.add_argument(
        "--candidate",
        action="append",
        default=[],
        metavar="NAME=DIR[,DIR...]",
        help="another classifier's model folder (several: the mean of their probabilities)",
    )
    parser.add_argument("--data-dir", help="ISIC 2017 layout (default: $MELANOMA_DATA or ../shared/data/isic2017)")
    parser.add_argument("--json", help="also write the JSON to this file")
    args = parser.parse_args()
    predictor = Predictor.from_dir(args.models)
    samples = read_isic2017(args.data_dir, "val")
    labels = np.asarray([s.melanoma for s in samples])
    images = [load_image(s.image_path) for s in samples]
    scores = {name: probabilities(predictor, images, flips) for name, flips in VARIANTS.items()}
    rows = []
    served = list(predictor.classifier.config.get("test_time_flips", []))
    for name, values in scores.items():
        auc = roc_auc_score(labels, values)
        shipped = " (shipped)" if VARIANTS[name] == served else ""
        if name == "plain":
            rows.append({"name": "plain image" + shipped, "result": f"val AUC {auc:.4f}", "decision": "baseline"})
            continue
        low, high = paired_auc_difference(labels, scores["plain"], values)["ci95"]
        rows.append({
            "name": f"test-time augmentation: {name.removeprefix('tta_').replace('_', ' + ')}{shipped}",
            "result": f"val AUC {auc:.4f}; gain vs plain 95% CI [{low:+.4f}, {high:+.4f}]",
            "decision": "AUC gain" if low > 0 else "no AUC gain: within noise",
        })  # fmt: skip
    for spec in args.candidate:
        name, _, folder = spec.rpartition("=")  # the name may hold "=", a folder rarely does
        if not folder:
            raise SystemExit(f"error: --candidate {spec!r}: expected NAME=DIR")
        # several folders: an ensemble, the mean of their probabilities
        values = np.mean([probabilities(Predictor.from_dir(f), images, []) for f in folder.split(",")], axis=0)
        gain = paired_auc_difference(labels, scores["plain"], values)
        (low, high), auc = gain["ci95"], gain["other_auc"]
        rows.append({
            "name": name,
            "result": f"val AUC {auc:.4f}; gain vs the --models classifier (one view each), 95% CI "
            f"[{low:+.4f}, {high:+.4f}]",
            "decision": gain["decision"],
        })  # fmt: skip
    result = {"command": shlex.join(["python", *sys.argv]), "n": int(labels.size), "rows": rows}
    result["networks"] = predictor.networks()  # the --models folder's, which every row is measured against
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
