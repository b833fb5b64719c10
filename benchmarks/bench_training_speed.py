"""Training throughput (images/s) of the networks on this machine, fp32 vs bf16 autocast, each with the default
(NCHW) and the channels-last (NHWC, ``channels_last: true`` in a training config) memory layout, side by side.

Usage: python benchmarks/bench_training_speed.py [--task segmentation] [--arch NAME] [--size 192] [--steps 6]
           [--batch 16] [--decoder 256,128,64,32,16] [--json FILE]
       python benchmarks/bench_training_speed.py --shipped [--steps 6] [--json FILE]
           (the shipped networks at their shipped sizes and batch sizes: the U-Net at 256 px with the narrow
           decoder, batch 16; the Lite0 and Lite2 classifiers at 224 px, batch 32)
Prints JSON. Synthetic inputs: this measures compute only, not data loading. bf16 autocast pays off only on CPUs
with bf16 instructions (``cpu_bf16_flags``: avx512_bf16 / amx_bf16 from /proc/cpuinfo).
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from melanoma.config import ModelConfig
from melanoma.models.factory import build_model
from melanoma.reporting import emit_json, script_parser
from melanoma.training.engine import autocast_context
from melanoma.training.losses import bce_dice_loss

SHIPPED = (
    {
        "task": "segmentation",
        "arch": "tf_efficientnet_lite0",
        "size": 256,
        "batch": 16,
        "decoder": [128, 64, 32, 16, 8],
    },
    {"task": "classification", "arch": "tf_efficientnet_lite0", "size": 224, "batch": 32},
    {"task": "classification", "arch": "tf_efficientnet_lite2", "size": 224, "batch": 32},
)


def images_per_second(
    task: str,
    size: int,
    amp: str,
    steps: int,
    batch: int,
    decoder: list[int],
    arch: str = "tf_efficientnet_lite0",
    channels_last: bool = False,
) -> float:
    torch.manual_seed(0)
    model = build_model(task, ModelConfig(arch=arch, pretrained=False, decoder_channels=decoder)).train()
    images = torch.randn(batch, 3, size, size)
    if channels_last:  # as the training loop does with channels_last: true
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4)
    target = (torch.rand(batch, 1, size, size) > 0.5).float() if task == "segmentation" else torch.rand(batch)
    loss_fn = bce_dice_loss if task == "segmentation" else torch.nn.BCEWithLogitsLoss()
    start = None
    for step in range(steps + 1):
        if step == 1:
            start = time.perf_counter()  # the first step warms up allocators and kernels
        with autocast_context(amp, torch.device("cpu")):
            logits = model(images)
        loss = loss_fn(logits.float().view_as(target), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start)


def measure(network: dict, steps: int) -> dict:
    """fp32 and bf16 autocast images/s of one network setting in both memory layouts, and the ratios."""
    result = dict(network)
    decoder = network.get("decoder", [256, 128, 64, 32, 16])
    for channels_last in (False, True):
        for amp in ("none", "bf16"):
            speed = images_per_second(
                network["task"], network["size"], amp, steps, network["batch"], decoder, network["arch"], channels_last
            )
            result[f"{amp}{'_channels_last' if channels_last else ''}_images_per_s"] = round(speed, 2)
    result["bf16_speedup"] = round(result["bf16_images_per_s"] / result["none_images_per_s"], 3)
    for amp in ("none", "bf16"):
        ratio = result[f"{amp}_channels_last_images_per_s"] / result[f"{amp}_images_per_s"]
        result[f"channels_last_speedup_{amp}"] = round(ratio, 3)
    return result


def cpu_info() -> dict:
    """The CPU's model name and bf16 instruction sets (from /proc/cpuinfo where readable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")]
    flags = sorted({flag for flag in text.split() if flag in ("avx512_bf16", "amx_bf16")})
    return {"cpu": names[0] if names else platform.machine(), "cpu_bf16_flags": flags}


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument(
        "--task", default="segmentation", choices=["segmentation", "classification"], help="default: segmentation"
    )
    parser.add_argument("--arch", default="tf_efficientnet_lite0", help="default: tf_efficientnet_lite0")
    parser.add_argument("--size", type=int, default=192, help="input side in pixels (default: 192)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per setting, --shipped too (default: 6)")
    parser.add_argument("--batch", type=int, default=16, help="images per step (default: 16)")
    parser.add_argument(
        "--decoder", default="256,128,64,32,16", help="U-Net decoder channels (default: 256,128,64,32,16)"
    )
    parser.add_argument(
        "--shipped", action="store_true", help="the shipped networks at their sizes (ignores --task to --decoder)"
    )
    parser.add_argument("--json", help="also write the JSON to this file")
    args = parser.parse_args()
    if args.shipped:
        networks = list(SHIPPED)
    else:
        decoder = [int(c) for c in args.decoder.split(",")]
        networks = [{"task": args.task, "arch": args.arch, "size": args.size, "batch": args.batch, "decoder": decoder}]
    report = {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        **cpu_info(),
        "steps": args.steps,
        "networks": [measure(network, args.steps) for network in networks],
    }
    emit_json(report, args.json)


if __name__ == "__main__":
    main()
