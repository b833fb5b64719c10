"""Inference speed: the original design's eager PyTorch pipeline vs the ONNX Runtime Predictor, side by side.

(a) eager: both networks in PyTorch fp32, one image at a time, PIL decode + resize (the original design);
    built from the shipped configs' architectures (weights do not change the cost of the computation). The
    original design runs one classifier: where the shipped one is an ensemble, (a) runs its first network, and
    `eager_shipped_networks_ms_per_image` / `speedup_same_networks` add the eager pipeline running all of them.
(b) the Predictor (ONNX Runtime), end to end from the file, one image at a time; also the same Predictor with
    ONNX Runtime's default busy-waiting worker threads (`predictor_spinning_threads_ms_per_image`), the lever
    the shipped Predictor turns off. (a) and both (b) variants take turns in blocks of 10 images.
Also: per-stage times, `melanoma predict` throughput over a folder (default: the 600 ISIC 2017 test images) as
shipped (one worker per CPU, each batch of 4 on one ONNX Runtime thread) and with one worker (batches of 16 on
all cores), interleaved, a 12-megapixel JPEG end to end, and the peak RSS of a fresh process that holds both models.

Usage: python benchmarks/bench_inference.py [--models DIR] [--data-dir DIR] [--n 50] [--json FILE]
Prints JSON. Needs the [train] extra for (a). Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from melanoma.data.isic import resolve_data_dir
from melanoma.inference.predictor import Predictor
from melanoma.reporting import emit_json, script_parser


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def network_configs(config: dict, all_members: bool = False) -> list[dict]:
    """The model settings of the networks behind one exported model: its first (or only) network, as the original
    design runs one classifier, or every member of an ensemble (``melanoma export --ensemble``)."""
    members = config.get("ensemble", {}).get("members") or [config]
    return [member["training"]["config"]["model"] for member in (members if all_members else members[:1])]


def eager_pipeline(predictor: Predictor, all_members: bool = False):
    """The original design: both models in eager PyTorch fp32, one image at a time, PIL decode and resize.
    ``all_members``: run every network of an ensemble (averaging their probabilities), the Predictor's work."""
    import torch

    from melanoma.config import ModelConfig
    from melanoma.models.factory import build_model

    torch.set_grad_enabled(False)
    models = []
    for task, config in predictor.model_configs.items():
        networks = [
            build_model(task, ModelConfig(**{**settings, "pretrained": False})).eval()
            for settings in network_configs(config, all_members)
        ]
        models.append((task, networks, config))

    def run(path: Path) -> None:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        for task, networks, config in models:
            size = config["input_size"]
            array = np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255
            tensor = torch.from_numpy((array - 0.5) / 0.5).permute(2, 0, 1)[None]
            probability = torch.stack([torch.sigmoid(network(tensor)) for network in networks]).mean(0)
            if task == "segmentation":
                torch.nn.functional.interpolate(probability, size=rgb.size[::-1], mode="bilinear")

    return run


def time_each(function, paths: list[Path], repeats: int = 1) -> list[float]:
    function(paths[0])  # warm-up
    times = []
    for _ in range(repeats):
        for path in paths:
            start = time.perf_counter()
            function(path)
            times.append(time.perf_counter() - start)
    return times


def time_interleaved(
    functions: dict[str, object], paths: list[Path], rounds: int = 2, block: int = 10
) -> dict[str, list[float]]:
    """Seconds per call of each function, taking turns in blocks of ``block`` images (the order rotating), so
    the machine's drift and its neighbours' load fall on every variant alike; blocks rather than single images
    so that one variant's busy-waiting threads (PyTorch's OpenMP, the spinning Predictor) spill over only into
    the first call of the next variant's block, which the median ignores."""
    names = list(functions)
    for name in names:
        functions[name](paths[0])  # warm-up
    times: dict[str, list[float]] = {name: [] for name in names}
    turn = 0
    for _ in range(rounds):
        for first in range(0, len(paths), block):
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                for path in paths[first : first + block]:
                    start = time.perf_counter()
                    functions[name](path)
                    times[name].append(time.perf_counter() - start)
            turn += 1
    return times


def stage_medians(predictor: Predictor, paths: list[Path]) -> dict[str, float]:
    stages: dict[str, list[float]] = {}
    for path in paths:
        for stage, value in predictor.predict(path).timings_ms.items():
            stages.setdefault(stage, []).append(value)
    return {stage: round(statistics.median(values), 2) for stage, values in stages.items()}


def predict_throughput(models_dir: str | None, folder: Path, rounds: int = 2) -> dict[str, float]:
    """``melanoma predict``'s throughput as shipped (parallel workers) and with one worker, interleaved."""
    from melanoma.inference.batch import default_workers, expand_paths, predict_paths, threads_per_worker

    paths = expand_paths([folder])
    workers = default_workers()
    settings = {  # name: (workers, ORT threads per model call, batch size)
        "predict": (workers, threads_per_worker(workers), 4),
        "predict_one_worker": (1, None, 16),  # the previous default: one batch of 16 at a time on all cores
    }
    predictors = {name: Predictor.from_dir(models_dir, threads=threads) for name, (_, threads, _) in settings.items()}
    rates: dict[str, list[float]] = {name: [] for name in settings}
    counts: dict[str, tuple[int, int]] = {}
    for _ in range(rounds):
        for name, (n_workers, _, batch_size) in settings.items():
            start = time.perf_counter()
            with open(os.devnull, "w") as sink:
                counts[name] = predict_paths(
                    predictors[name], paths, sink, batch_size=batch_size, progress=False, workers=n_workers
                )
            rates[name].append(counts[name][0] / (time.perf_counter() - start))
    ok, failed = counts["predict"]
    shipped, single = statistics.median(rates["predict"]), statistics.median(rates["predict_one_worker"])
    return {
        "predict_images": ok,
        "predict_failed": failed,
        "predict_workers": workers,
        "predict_batch_size": 4,
        "predict_images_per_s": round(shipped, 2),
        "predict_one_worker_images_per_s": round(single, 2),
        "predict_workers_speedup": round(shipped / single, 2),
    }


def big_jpeg(path: Path, out: Path, size=(4000, 3000)) -> Path:
    with Image.open(path) as image:
        image.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(out, quality=92)
    return out


def peak_rss_mb(models_dir: str | None, paths: list[Path]) -> float:
    """Peak resident memory (VmHWM) of a fresh process that loads both models and predicts a few images."""
    code = (
        "import sys\nfrom melanoma.inference.predictor import Predictor\n"
        f"p = Predictor.from_dir({models_dir!r})\n"
        f"for path in {[str(x) for x in paths]!r}: p.predict(path)\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(int(output.stdout.strip()) / 1024, 1)


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--models", help="model folder (default: the shipped models)")
    parser.add_argument("--data-dir", help="ISIC 2017 layout (default: $MELANOMA_DATA or ../shared/data/isic2017)")
    parser.add_argument("--n", type=int, default=50, help="validation images for the side-by-side timing (default: 50)")
    parser.add_argument(
        "--skip-eager", action="store_true", help="skip the PyTorch (eager) pipeline's timing and the speed-up"
    )
    parser.add_argument("--json", help="also write the JSON to this file")
    args = parser.parse_args()
    data = resolve_data_dir(args.data_dir)
    paths = sorted((data / "images" / "val").glob("*.jpg"))[: args.n]
    predictor = Predictor.from_dir(args.models)
    result: dict[str, object] = {
        "images": len(paths),
        "input": "256x256 JPEG (ISIC 2017 val)",
        "cpu_count": os.cpu_count(),
    }
    # the same Predictor with ONNX Runtime's default busy-waiting worker threads (the shipped one lets them sleep)
    functions = {"predictor": predictor.predict, "spinning": Predictor.from_dir(args.models, spinning=True).predict}
    ensemble = any(len(network_configs(c, all_members=True)) > 1 for c in predictor.model_configs.values())
    if not args.skip_eager:
        functions["eager"] = eager_pipeline(predictor)
        if ensemble:  # the same networks as the Predictor runs, for the ratio of like with like
            functions["eager_shipped_networks"] = eager_pipeline(predictor, all_members=True)
    times = time_interleaved(functions, paths)
    result["predictor_ms_per_image"] = _median_ms(times["predictor"])
    result["predictor_spinning_threads_ms_per_image"] = _median_ms(times["spinning"])
    if not args.skip_eager:
        result["eager_ms_per_image"] = _median_ms(times["eager"])
        result["speedup"] = round(result["eager_ms_per_image"] / result["predictor_ms_per_image"], 2)
    if "eager_shipped_networks" in times:
        result["eager_shipped_networks_ms_per_image"] = _median_ms(times["eager_shipped_networks"])
        result["speedup_same_networks"] = round(
            result["eager_shipped_networks_ms_per_image"] / result["predictor_ms_per_image"], 2
        )
    result["predictor_stage_ms"] = stage_medians(predictor, paths)
    with tempfile.TemporaryDirectory() as tmp:
        big = big_jpeg(paths[0], Path(tmp) / "big.jpg")
        result["big_jpeg"] = {"size": "4000x3000", "bytes": big.stat().st_size}
        result["big_jpeg_ms"] = _median_ms(time_each(predictor.predict, [big], repeats=5))
        result["big_jpeg_stage_ms"] = predictor.predict(big).timings_ms
    test_dir = data / "images" / "test"
    if test_dir.is_dir():
        result.update(predict_throughput(args.models, test_dir))
    result["peak_rss_mb_both_models"] = peak_rss_mb(args.models, paths[:10])
    result["networks"] = predictor.networks()
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
