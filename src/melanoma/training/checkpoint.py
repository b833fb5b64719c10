"""Checkpoints are plain dicts of tensors and primitives, loadable with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(path: str | Path, **state: Any) -> None:
    """Write ``state`` atomically (a crash mid-write never leaves a broken ``last.pt``)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:  # Ctrl-C mid-write: the old file stays, the partial one goes
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, hint: str = "train first (melanoma train ...)") -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint``; a missing file's error ends with ``hint``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; {hint}")
    return torch.load(path, map_location="cpu", weights_only=True)
