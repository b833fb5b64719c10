"""Training throughput (images/s) of the two networks on this machine, fp32 vs bf16 autocast, side by side.

Usage: python benchmarks/bench_training_speed.py [--task segmentation] [--size 192] [--steps 6] [--json FILE]
Prints JSON. Synthetic inputs: this measures compute only, not data loading.
"""

from __future__ import annotations

import argparse
import time

import torch

from melanoma.config import ModelConfig
from melanoma.models.factory import build_model
from melanoma.reporting import emit_json
from melanoma.training.engine import autocast_context
from melanoma.training.losses import bce_dice_loss


def images_per_second(task: str, size: int, amp: str, steps: int, batch: int, decoder: list[int]) -> float:
    torch.manual_seed(0)
    model = build_model(task, ModelConfig(pretrained=False, decoder_channels=decoder)).train()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4)
    images = torch.randn(batch, 3, size, size)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="segmentation", choices=["segmentation", "classification"])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--decoder", default="256,128,64,32,16")
    parser.add_argument("--json")
    args = parser.parse_args()
    decoder = [int(c) for c in args.decoder.split(",")]
    result = {"task": args.task, "size": args.size, "batch": args.batch, "threads": torch.get_num_threads()}
    for amp in ("none", "bf16"):
        result[f"{amp}_images_per_s"] = round(
            images_per_second(args.task, args.size, amp, args.steps, args.batch, decoder), 2
        )
    result["bf16_speedup"] = round(result["bf16_images_per_s"] / result["none_images_per_s"], 3)
    emit_json(result, args.json)


if __name__ == "__main__":
    main()
