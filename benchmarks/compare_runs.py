"""Compare exported models side by side: validation metrics (from each export) and ONNX CPU latency.

Usage: python benchmarks/compare_runs.py PATH [PATH ...] [--task segmentation] [--json FILE] [--repeats 30]
Each PATH is a training run with an ``export/`` folder (``melanoma export RUN_DIR``) or a model folder such
as ``models/`` or the output of ``melanoma quantize``. Latency is the median over single-image calls, runs
interleaved in one process so the ratios are comparable on a noisy machine: ``view_ms`` is one ONNX Runtime
call on a model-sized input; ``image_ms`` is the serving path for one 256x256 image (resize, normalise and
the test-time flips the model's config asks for). Prints JSON.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

from melanoma.inference.predictor import Model, onnx_session
from melanoma.reporting import emit_json, script_parser

KEYS = ("jaccard", "thresholded_jaccard", "dice", "auc", "average_precision", "sensitivity", "specificity")


def describe(path: Path, task: str) -> dict:
    folder = path / "export" if (path / "export").is_dir() else path
    config_path = folder / f"{task}.json"
    if not config_path.is_file():
        other = "classification" if task == "segmentation" else "segmentation"
        if (folder / f"{other}.json").is_file():
            raise SystemExit(f"error: {folder} holds a {other} model, not a {task} one: pass --task {other}")
        raise SystemExit(f"error: {config_path} is missing: export the run (`melanoma export {path}`)")
    config = json.loads(config_path.read_text())
    training = config["training"]
    # An ensemble (melanoma export --ensemble) was trained as several runs: its cost is theirs together, and a
    # setting its members differ in is listed per member.
    trainings = [m["training"] for m in config.get("ensemble", {}).get("members", [])] or [training]
    histories = [t["history"] for t in trainings]

    def setting(section: str, key: str, default):
        values = [t["config"][section].get(key, default) for t in trainings]
        return values[0] if len(set(values)) == 1 else values

    return {
        "run": str(path),
        "task": config["task"],
        "arch": config["arch"],
        "input_size": config["input_size"],
        "decoder_channels": training["config"]["model"].get("decoder_channels")
        if config["task"] == "segmentation"
        else None,
        # runs from before the head_init option were trained with timm's head init
        "head_init": setting("model", "head_init", "timm") if config["task"] == "classification" else None,
        "strong_augmentation": setting("data", "strong_augmentation", False),
        "ema_decay": training["config"]["optim"].get("ema_decay", 0.0),  # > 0: the export holds a weight average
        "lesion_crop_margin": (config.get("input_crop") or {}).get("margin"),  # classifier sees a lesion crop
        "ensemble_members": len(histories),
        "epochs": "+".join(str(len(history)) for history in histories),
        "train_minutes": round(sum(row["epoch_seconds"] for history in histories for row in history) / 60, 1),
        "threshold": config["threshold"],
        "test_time_flips": config.get("test_time_flips", []),
        "quantization": (config.get("quantization") or {}).get("method"),
        "validation": {k: config["validation"][k] for k in KEYS if k in config["validation"]},
        "onnx_mb": round((folder / config["onnx_file"]).stat().st_size / 2**20, 1),
        "_model": Model(onnx_session(folder / config["onnx_file"]), config),
    }


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("paths", nargs="+", type=Path, help="run directories and/or model folders")
    parser.add_argument(
        "--task",
        choices=["segmentation", "classification"],
        default="segmentation",
        help="which model of each folder to compare (default: segmentation)",
    )
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per model (default: 30)")
    parser.add_argument("--json", help="also write the JSON to this file")
    args = parser.parse_args()
    rows = [describe(path, args.task) for path in args.paths]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    calls = []
    for row in rows:
        model = row.pop("_model")
        view = rng.normal(size=(1, 3, row["input_size"], row["input_size"])).astype(np.float32)
        calls.append(
            {
                "view_ms": lambda model=model, view=view: model.session.run(None, {"image": view}),
                "image_ms": lambda model=model: model.run([image]),
            }
        )
    times = [{name: [] for name in call} for call in calls]
    for call in calls:
        for function in call.values():
            function()  # warm-up
    for _ in range(args.repeats):
        for call, samples in zip(calls, times, strict=True):
            for name, function in call.items():
                start = time.perf_counter()
                function()
                samples[name].append(time.perf_counter() - start)
    for row, samples in zip(rows, times, strict=True):
        row.update({name: round(statistics.median(values) * 1000, 2) for name, values in samples.items()})
    emit_json(rows, args.json)


if __name__ == "__main__":
    main()
