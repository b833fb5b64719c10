"""Inference-runtime levers for the exported models, measured side by side in one process.

For each model (float and, with --int8 DIR, its `melanoma quantize` copy): ONNX Runtime with 1 and with all
threads, graph optimisation basic vs all, batch 1 vs batch 16 (ms per image), and OpenVINO (fp32 and bf16)
on the same ONNX file when the `openvino` package is installed (`pip install openvino`; not a dependency).
Variants are interleaved over the repeats so drift on a noisy machine hits them alike. Each variant's
largest absolute output difference from ONNX Runtime fp32 is reported beside its speed.

Usage: python benchmarks/bench_runtimes.py [--models models] [--int8 DIR] [--repeats 20] [--json FILE]
Prints JSON. Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from melanoma.inference.predictor import network_record
from melanoma.reporting import emit_json, script_parser

# onnxruntime is imported inside the functions, after melanoma: the package opts it out of telemetry, which only
# works before its first import.

Run = Callable[[np.ndarray], list[np.ndarray]]


def ort_runner(path: Path, threads: int, level: str = "all") -> Run:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x})


def openvino_runners(path: Path, threads: int) -> dict[str, Run]:
    try:
        import openvino as ov
    except ImportError:
        return {}
    core = ov.Core()
    model = core.read_model(str(path))
    runners = {}
    for precision in ("f32", "bf16"):
        compiled = core.compile_model(
            model, "CPU", {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads}
        )
        runners[f"openvino_{precision}"] = lambda x, c=compiled: [c(x)[i] for i in range(len(c.outputs))]
    return runners


def bench_model(path: Path, size: int, repeats: int, with_openvino: bool, prefix: str = "") -> dict[str, dict]:
    threads = os.cpu_count() or 1
    variants: dict[str, Run] = {
        f"{prefix}ort_{threads}threads": ort_runner(path, threads),
        f"{prefix}ort_1thread": ort_runner(path, 1),
        f"{prefix}ort_{threads}threads_basic_opt": ort_runner(path, threads, "basic"),
    }
    if with_openvino:
        variants.update({prefix + k: v for k, v in openvino_runners(path, threads).items()})
    rng = np.random.default_rng(0)
    one = rng.normal(size=(1, 3, size, size)).astype(np.float32)
    batch = rng.normal(size=(16, 3, size, size)).astype(np.float32)
    reference = variants[f"{prefix}ort_{threads}threads"](batch)
    times: dict[str, dict[str, list[float]]] = {name: {"batch1": [], "batch16": []} for name in variants}
    errors = {}
    for name, run in variants.items():
        run(one)  # warm-up
        errors[name] = max(float(np.abs(a - b).max()) for a, b in zip(run(batch), reference, strict=True))
    for _ in range(repeats):
        for name, run in variants.items():
            start = time.perf_counter()
            run(one)
            times[name]["batch1"].append(time.perf_counter() - start)
        for name, run in variants.items():
            start = time.perf_counter()
            run(batch)
            times[name]["batch16"].append((time.perf_counter() - start) / len(batch))
    return {
        name: {
            "ms_per_image_batch1": round(statistics.median(t["batch1"]) * 1000, 2),
            "ms_per_image_batch16": round(statistics.median(t["batch16"]) * 1000, 2),
            "max_abs_diff_vs_ort": round(errors[name], 5),
        }
        for name, t in times.items()
    }


#: The validation metrics each export records (``melanoma quantize`` re-calibrates the int8 copy through its graph).
HEADLINE = ("jaccard", "thresholded_jaccard", "dice", "auc", "sensitivity", "specificity")


def headline(config: dict) -> dict:
    """A model's threshold and headline validation metrics, as its exported config records them."""
    return {"threshold": config["threshold"]} | {
        k: config["validation"][k] for k in HEADLINE if k in config["validation"]
    }


def main() -> None:
    import onnxruntime as ort

    parser = script_parser(__doc__)
    parser.add_argument("--models", default="models", help="float model folder (default: models)")
    parser.add_argument("--int8", help="the `melanoma quantize` output for the same models, timed alongside")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per setting (default: 20)")
    parser.add_argument("--json", help="also write the JSON to this file")
    args = parser.parse_args()
    result: dict[str, object] = {"cpu_count": os.cpu_count(), "onnxruntime": ort.__version__}
    try:
        import openvino

        result["openvino"] = openvino.__version__
    except ImportError:
        result["openvino"] = None
    for task in ("segmentation", "classification"):
        config_path = Path(args.models) / f"{task}.json"
        if not config_path.is_file():
            continue
        config = json.loads(config_path.read_text())
        rows = bench_model(Path(args.models) / config["onnx_file"], config["input_size"], args.repeats, True)
        result[task] = {"input_size": config["input_size"], "variants": rows}
        if args.int8 and (Path(args.int8) / f"{task}.json").is_file():
            int8 = json.loads((Path(args.int8) / f"{task}.json").read_text())
            if int8.get("quantization"):
                path = Path(args.int8) / int8["onnx_file"]
                rows.update(bench_model(path, int8["input_size"], args.repeats, False, prefix="int8_"))
                result[task]["validation"] = {"float": headline(config), "int8": headline(int8)}
        result.setdefault("networks", {})[task] = network_record(config)
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
