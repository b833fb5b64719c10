"""The same training command under torchrun: two CPU processes (gloo), metrics reduced across ranks."""

import csv
import os
import socket
import subprocess
import sys

import pytest
import torch

from melanoma.config import load_config
from melanoma.inference.export import load_run_model
from melanoma.training.distributed import DistInfo
from melanoma.training.engine import build_loss, evaluate, make_loaders

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("channels_last", [False, True])
def test_two_process_training_reduces_validation_over_ranks(shared_synthetic_isic_dir, tmp_path, channels_last):
    run = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    command += [f"--master_port={_free_port()}", "--master_addr=127.0.0.1", "-m", "melanoma.cli", "train"]
    command += ["segmentation", "--config", "configs/tiny.yaml", "--data-dir", str(shared_synthetic_isic_dir)]
    command += ["--out", str(run), f"channels_last={str(channels_last).lower()}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    with (run / "metrics.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    # Rank-reduced validation must equal a single-process evaluation of the same weights on all 4 images.
    model, config, _ = load_run_model(run, "last.pt")
    config = load_config(run / "config.yaml")
    _, val_loader, train_samples, _ = make_loaders(config, DistInfo())
    single = evaluate(model, val_loader, build_loss(config, train_samples), config, DistInfo())
    assert float(row["val_jaccard"]) == pytest.approx(single["val_jaccard"], abs=1e-6)
    assert float(row["val_loss"]) == pytest.approx(single["val_loss"], rel=1e-4)
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 0
