"""Compare exported training runs side by side: validation metrics (from each export) and ONNX CPU latency.

Usage: python benchmarks/compare_runs.py RUN_DIR [RUN_DIR ...] [--json FILE] [--repeats 30]
Each RUN_DIR must hold an ``export/`` folder (``melanoma export RUN_DIR``). Latency is the median of
single-image ONNX Runtime calls on one random input of the model's size, measured in one process, runs
interleaved, so the ratios are comparable even on a noisy machine. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from melanoma.inference.calibrate import onnx_session
from melanoma.reporting import emit_json

KEYS = ("jaccard", "thresholded_jaccard", "dice", "auc", "average_precision", "sensitivity", "specificity")


def describe(run_dir: Path) -> dict:
    (config_path,) = [p for p in (run_dir / "export").glob("*.json")]
    config = json.loads(config_path.read_text())
    training = config["training"]
    history = training["history"]
    return {
        "run": str(run_dir),
        "task": config["task"],
        "arch": config["arch"],
        "input_size": config["input_size"],
        "decoder_channels": training["config"]["model"].get("decoder_channels")
        if config["task"] == "segmentation"
        else None,
        "epochs": len(history),
        "train_minutes": round(sum(row["epoch_seconds"] for row in history) / 60, 1),
        "threshold": config["threshold"],
        "validation": {k: config["validation"][k] for k in KEYS if k in config["validation"]},
        "onnx_mb": round((run_dir / "export" / config["onnx_file"]).stat().st_size / 2**20, 1),
        "_onnx": str(run_dir / "export" / config["onnx_file"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = [describe(run) for run in args.runs]
    sessions = [onnx_session(Path(row["_onnx"])) for row in rows]
    inputs = [
        np.random.default_rng(0).normal(size=(1, 3, r["input_size"], r["input_size"])).astype(np.float32) for r in rows
    ]
    times: list[list[float]] = [[] for _ in rows]
    for session, x in zip(sessions, inputs, strict=True):
        session.run(None, {"image": x})  # warm-up
    for _ in range(args.repeats):
        for i, (session, x) in enumerate(zip(sessions, inputs, strict=True)):
            start = time.perf_counter()
            session.run(None, {"image": x})
            times[i].append(time.perf_counter() - start)
    for row, samples in zip(rows, times, strict=True):
        row["onnx_ms_per_image"] = round(statistics.median(samples) * 1000, 2)
        del row["_onnx"]
    emit_json(rows, args.json)


if __name__ == "__main__":
    main()
