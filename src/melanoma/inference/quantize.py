"""Post-training int8 quantization of exported models (ONNX Runtime static quantization, QDQ format).

Weights become int8 (per output channel) and activations uint8, with ranges observed on
*training* images (never the validation images the threshold is chosen on). The last convolution and everything
after it (head, sigmoid outputs, activation map) stay in float, so probabilities near a low decision threshold keep
their resolution. The quantized model is then re-calibrated through its own graph exactly as ``melanoma
export`` does (segmentation threshold / flips / post-processing, classifier Youden threshold), so its JSON
config states what the int8 graph itself measures. Needs the [train] extra (``onnx``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from melanoma.inference.predictor import Model, load_for, onnx_digest
from melanoma.inference.preprocess import resize_for, to_input

CALIBRATION_IMAGES = 64


class _ImageReader:
    """ONNX Runtime ``CalibrationDataReader`` over preprocessed images (the model's own preprocessing)."""

    def __init__(self, paths: Sequence[Path], config: dict[str, Any], batch_size: int = 8, desc: str = "int8 ranges"):
        self.batches = iter(self._batches(list(paths), config, batch_size, desc))

    @staticmethod
    def _batches(
        paths: list[Path], config: dict[str, Any], batch_size: int, desc: str
    ) -> Iterator[dict[str, np.ndarray]]:
        # ONNX Runtime runs the float graph on every batch here, silently: the bar says what the wait is for.
        with tqdm(total=len(paths), desc=desc, unit="img", leave=False, file=sys.stderr) as bar:
            for start in range(0, len(paths), batch_size):
                model = Model(None, config)  # its sizes only: the images are decoded as served
                batch = paths[start : start + batch_size]
                images = [resize_for(load_for(p, model), config) for p in batch]
                yield {"image": to_input(images, config["mean"], config["std"])}
                bar.update(len(batch))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def calibration_paths(train_config, count: int = CALIBRATION_IMAGES, seed: int = 0) -> list[Path]:
    """``count`` training images drawn at random (seeded), stratified by melanoma label when labels exist."""
    from melanoma.training.datasets import load_splits

    train, _, _ = load_splits(train_config.data)
    if not train:
        raise ValueError("the model's training split is empty: cannot pick calibration images")
    rng = random.Random(seed)
    groups: dict[Any, list] = {}
    for sample in train:
        groups.setdefault(sample.melanoma, []).append(sample)
    picked = []
    for samples in groups.values():
        share = max(1, round(count * len(samples) / len(train)))
        picked += rng.sample(samples, min(share, len(samples)))
    return [s.image_path for s in picked[:count]]


def float_tail(model_path: Path) -> list[str]:
    """Names of the last Conv node and every node after it (the head): they stay float.

    The classifier's pooled features, logit, sigmoid and activation map, and the segmenter's 1-channel head,
    keep full resolution; everything before (where the compute is) is quantized.
    """
    import onnx

    nodes = onnx.load(str(model_path), load_external_data=False).graph.node
    last_conv = max(i for i, node in enumerate(nodes) if node.op_type == "Conv")
    return [node.name for node in nodes[last_conv:] if node.op_type != "Constant"]


def quantize_onnx(source: Path, target: Path, calibration: Sequence[Path], config: dict[str, Any]) -> None:
    """Write an int8 (QDQ) copy of the ONNX model ``source`` to ``target``, ranges from ``calibration`` images."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from melanoma.inference.export import freeze_dynamic_pads

    with tempfile.TemporaryDirectory() as tmp:
        frozen, prepared = Path(tmp) / "frozen.onnx", Path(tmp) / "prepared.onnx"
        freeze_dynamic_pads(source, frozen)  # models exported before pads were frozen at export
        quant_pre_process(str(frozen), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            _ImageReader(calibration, config, desc=f"{config.get('task', 'model')} int8 activation ranges"),
            quant_format=QuantFormat.QDQ,
            nodes_to_exclude=float_tail(prepared),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )


#: Files of the float folder that describe it and would misdescribe the int8 copy (as ``melanoma calibrate``).
_NOT_COPIED = ("MODEL_CARD.md", "README.md")


def _configs_to_quantize(
    models_dir: Path, tasks: Sequence[str] | None, data_dir: str | None
) -> dict[str, tuple[dict[str, Any], Any]]:
    """The JSON config and the training config of each model to quantize, checked before any of them is (a late
    error would leave a half-written folder): present, not quantized yet, and its data still split as it trained."""
    from melanoma.config import load_run_config, use_data_dir
    from melanoma.training.datasets import check_same_split, load_splits

    present = [task for task in ("segmentation", "classification") if (models_dir / f"{task}.json").is_file()]
    if tasks is None:
        if not present:
            raise FileNotFoundError(f"{models_dir} holds no exported model (segmentation.json, classification.json)")
        tasks = present
    configs = {}
    for task in tasks:
        config_path = models_dir / f"{task}.json"
        if not config_path.is_file():
            held = f"--tasks {' '.join(present)}" if present else "export a model first (`melanoma export`)"
            raise FileNotFoundError(f"{config_path} is missing: {models_dir} holds no {task} model; use {held}")
        config = json.loads(config_path.read_text())
        if config.get("quantization"):
            raise ValueError(f"{config_path} is already quantized ({config['quantization']['method']})")
        if config.get("recalibration"):
            raise ValueError(
                f"{config_path} carries a threshold re-fitted for a site by `melanoma calibrate`, which quantizing "
                "would replace with one fitted on the run's validation images: quantize the exported models first, "
                "then run `melanoma calibrate --models INT8_DIR` on the site's images"
            )
        if config.get("input_crop") and not (models_dir / "segmentation.json").is_file():
            raise FileNotFoundError(
                f"{config_path} is a lesion-crop classifier, calibrated on the crops its segmenter places, but "
                f"{models_dir} holds no segmentation.json: export the segmenter into {models_dir} first"
            )
        train_config = load_run_config(config["training"]["config"])
        use_data_dir(train_config.data, data_dir)
        check_same_split(config["training"].get("data", {}), load_splits(train_config.data)[2], "quantizing")
        configs[task] = (config, train_config)
    return configs


def quantize_models(
    models_dir: Path,
    out_dir: Path,
    tasks: Sequence[str] | None = None,
    calibration_images: int = CALIBRATION_IMAGES,
    data_dir: str | None = None,
    flips: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Quantize the exported models in ``models_dir`` into ``out_dir`` and re-calibrate them on validation data.

    ``tasks``: which models to quantize; None: every model ``models_dir`` holds. All are checked before any work.
    ``flips`` is the segmenter's test-time flip rule for re-calibration ("auto" or "off"); by default the float
    model's own rule.

    The other files of ``models_dir`` (model card, plots) are copied along unless ``out_dir`` has them, so
    ``out_dir`` is a complete model folder; a quantized task's own files (``<task>_train_config.yaml``) always
    replace what ``out_dir`` had, so quantizing into an existing model folder updates one task consistently.
    Returns the new JSON configs by task.
    """
    models_dir, out_dir = Path(models_dir), Path(out_dir)
    if models_dir.resolve() == out_dir.resolve():
        raise ValueError("write the quantized models to a new folder (--out), not over the float ones")
    configs = _configs_to_quantize(models_dir, tasks, data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, dict[str, Any]] = {}
    for task, (config, train_config) in configs.items():
        paths = calibration_paths(train_config, calibration_images)
        onnx_path = out_dir / config["onnx_file"]
        # Staged beside the folder's files and moved in with its config: a failure leaves a matching pair behind.
        staged = out_dir / f".{onnx_path.name}.partial"
        try:
            _quantize_task(task, config, train_config, models_dir, out_dir, staged, paths, flips)
        finally:
            staged.unlink(missing_ok=True)
            (out_dir / f".{task}.json.partial").unlink(missing_ok=True)
        written[task] = json.loads((out_dir / f"{task}.json").read_text())
    for path in models_dir.iterdir():  # a quantized task's own files (its train config) replace older copies
        if path.name in _NOT_COPIED:
            continue
        if path.is_file() and (
            not (out_dir / path.name).exists() or path.name.startswith(tuple(f"{t}_" for t in configs))
        ):
            shutil.copy(path, out_dir / path.name)
    return written


def _quantize_task(
    task: str,
    config: dict[str, Any],
    train_config: Any,
    models_dir: Path,
    out_dir: Path,
    staged: Path,
    paths: list[Path],
    flips: str | None,
) -> None:
    """Quantize one model into ``staged``, re-calibrate it there, then put the network and its config in place."""
    from melanoma.inference.calibrate import calibrate_model

    quantize_onnx(models_dir / config["onnx_file"], staged, paths, config)
    quantized = {
        **config,
        "quantization": {
            "method": "ONNX Runtime static quantization, QDQ: weights int8 per channel, activations uint8",
            "float_ops": "the last convolution and everything after it (head, sigmoid, activation map)",
            "calibration": f"{len(paths)} training images (seeded draw, stratified by label), min-max ranges",
            "float_validation": config.get("validation"),
        },
    }
    quantized.pop("calibrated", None)  # re-calibrated here, whatever the float export skipped
    rule = flips or config.get("test_time_flips_mode", "auto")
    quantized.update(calibrate_model(staged, quantized, train_config, out_dir, rule, models_dir))
    quantized["onnx_sha256"] = onnx_digest(staged)  # the int8 file's, not the float model's
    staged_config = out_dir / f".{task}.json.partial"
    staged_config.write_text(json.dumps(quantized, indent=2) + "\n")
    os.replace(staged, out_dir / config["onnx_file"])
    os.replace(staged_config, out_dir / f"{task}.json")
