"""The classifier's activation map (exported as a second ONNX output) points at where the evidence is."""

import numpy as np
import onnxruntime as ort
import torch

from melanoma.inference.export import export_onnx
from melanoma.models import build_classifier

SIZE = 128


def _images(count: int, positive: bool, rng: np.random.Generator) -> np.ndarray:
    """Skin-like noise; positives carry a dark blotch somewhere in the RIGHT half only."""
    images = rng.normal(0.55, 0.08, (count, 3, SIZE, SIZE)).astype(np.float32)
    if positive:
        for image in images:
            y, x = rng.integers(8, SIZE - 40), rng.integers(SIZE // 2 + 4, SIZE - 36)
            image[:, y : y + 32, x : x + 32] = rng.normal(0.15, 0.05, (3, 32, 32))
    return (images - 0.5) / 0.5


def test_activation_map_highlights_the_half_that_carries_the_signal(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_classifier("tf_efficientnet_lite0", pretrained=True, drop_rate=0.0)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    model.train()
    for _ in range(25):
        batch = np.concatenate([_images(4, True, rng), _images(4, False, rng)])
        labels = torch.tensor([1.0] * 4 + [0.0] * 4)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(torch.from_numpy(batch)).view(-1), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    export_onnx(model, "classification", SIZE, tmp_path / "classifier.onnx")
    session = ort.InferenceSession(str(tmp_path / "classifier.onnx"), providers=["CPUExecutionProvider"])
    positives = _images(8, True, np.random.default_rng(1))
    negatives = _images(8, False, np.random.default_rng(2))
    probability, cam = session.run(None, {"image": positives})
    negative_probability, _ = session.run(None, {"image": negatives})
    assert probability.mean() > negative_probability.mean() + 0.3  # it learned the task
    half = cam.shape[2] // 2
    right, left = cam[:, :, half:].mean(axis=(1, 2)), cam[:, :, :half].mean(axis=(1, 2))
    assert (right > left).all(), (right, left)
