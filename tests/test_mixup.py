"""``data.mixup_alpha``: training batches blended with a shuffled copy of themselves, loss blended alike."""

import pytest
import torch
from conftest import tiny_config

from melanoma.training.engine import _train_loss, check_classification_settings, fit, mixup
from melanoma.training.losses import MelanomaKeratosisBCE, WeightedBCE


def test_mixup_blends_each_image_with_its_permuted_partner():
    torch.manual_seed(0)
    images = torch.randn(6, 3, 8, 8)
    mixed, lam, perm = mixup(images, 0.4)
    assert 0.0 <= lam <= 1.0 and sorted(perm.tolist()) == list(range(6))
    torch.testing.assert_close(mixed, lam * images + (1 - lam) * images[perm])
    assert not torch.allclose(mixed, images)


class _Constant(torch.nn.Module):
    """Logits that do not depend on the image, so the blended loss can be checked by hand."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, images):
        return self.logits


@pytest.mark.parametrize("keratosis", [False, True])
def test_the_loss_is_blended_with_the_partners_labels(shared_synthetic_isic_dir, keratosis):
    overrides = {"data.mixup_alpha": "0.4", "model.keratosis_aux": str(keratosis).lower()}
    config = tiny_config("classification", shared_synthetic_isic_dir, **overrides)
    batch = {"image": torch.randn(4, 3, 8, 8), "label": torch.tensor([1.0, 0.0, 0.0, 1.0])}
    if keratosis:
        batch["keratosis"] = torch.tensor([0.0, 1.0, 0.0, 0.0])
        logits, loss_fn = torch.tensor([[2.0, -1.0], [-0.5, 0.3], [0.1, 1.5], [1.0, 0.0]]), MelanomaKeratosisBCE(3, 5)
        target = torch.stack([batch["label"], batch["keratosis"]], 1)
    else:
        logits, loss_fn = torch.tensor([[2.0], [-0.5], [0.1], [1.0]]), WeightedBCE(3.0)
        target = batch["label"]
    torch.manual_seed(3)
    loss = _train_loss(_Constant(logits), batch, loss_fn, config, torch.device("cpu"))
    torch.manual_seed(3)
    _, lam, perm = mixup(batch["image"], 0.4)
    expected = lam * loss_fn(logits, target) + (1 - lam) * loss_fn(logits, target[perm])
    torch.testing.assert_close(loss, expected)
    assert not torch.isclose(loss, loss_fn(logits, target))  # the partners' labels count


def test_mixup_off_is_the_plain_loss(shared_synthetic_isic_dir):
    config = tiny_config("classification", shared_synthetic_isic_dir)
    assert config.data.mixup_alpha == 0
    logits, batch = torch.tensor([[2.0], [-0.5]]), {"image": torch.zeros(2, 3, 8, 8), "label": torch.tensor([1.0, 0.0])}
    loss = _train_loss(_Constant(logits), batch, WeightedBCE(3.0), config, torch.device("cpu"))
    torch.testing.assert_close(loss, WeightedBCE(3.0)(logits, batch["label"]))


def test_a_mixup_setting_that_cannot_apply_is_refused(shared_synthetic_isic_dir):
    from melanoma.config import ConfigError

    with pytest.raises(ConfigError, match="data.mixup_alpha=-0.2: 0 .off. or a positive Beta parameter"):
        tiny_config("classification", shared_synthetic_isic_dir, **{"data.mixup_alpha": "-0.2"})
    config = tiny_config("segmentation", shared_synthetic_isic_dir, **{"data.mixup_alpha": "0.2"})
    with pytest.raises(ValueError, match="classification setting"):
        check_classification_settings(config)
    config = tiny_config("segmentation", shared_synthetic_isic_dir, **{"data.frame_augmentation": "true"})
    with pytest.raises(ValueError, match="data.frame_augmentation=true is a classification setting"):
        check_classification_settings(config)
    check_classification_settings(
        tiny_config("classification", shared_synthetic_isic_dir, **{"data.frame_augmentation": "true"})
    )


def test_a_mixup_run_trains_and_records_the_setting(shared_synthetic_isic_dir, tmp_path):
    config = tiny_config("classification", shared_synthetic_isic_dir, **{"data.mixup_alpha": "0.4"})
    fit(config, tmp_path / "run")
    assert "mixup_alpha: 0.4" in (tmp_path / "run" / "config.yaml").read_text()
    assert (tmp_path / "run" / "best.pt").is_file()
