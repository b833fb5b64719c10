"""Loss functions for both tasks (pure functions of logits and targets)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per image, averaged over the batch (logits and target of shape [B, 1, H, W])."""
    return soft_tversky_loss(logits, target, alpha=0.5, beta=0.5, eps=eps / 2)  # (2TP + eps) / (2TP + FP + FN + eps)


def soft_tversky_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.3, beta: float = 0.7, eps: float = 1.0
) -> torch.Tensor:
    """1 - soft Tversky index per image, averaged over the batch (Salehi et al. 2017).

    Tversky = TP / (TP + alpha * FP + beta * FN); alpha = beta = 0.5 is the soft Dice. ``beta > alpha`` makes a
    missed lesion pixel cost more than a false one, which pushes the masks outwards: the shipped segmenter's
    worst validation images are under-segmented (it outlines the dark core, the annotation the paler rim).
    """
    probability = torch.sigmoid(logits.float()).flatten(1)
    target = target.float().flatten(1)
    true_positive = (probability * target).sum(1)
    false_positive = (probability * (1.0 - target)).sum(1)
    false_negative = ((1.0 - probability) * target).sum(1)
    index = (true_positive + eps) / (true_positive + alpha * false_positive + beta * false_negative + eps)
    return (1.0 - index).mean()


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice: BCE keeps per-pixel gradients, Dice fights foreground imbalance."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
    return bce + dice_weight * soft_dice_loss(logits, target)


def bce_tversky_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus the soft Tversky loss (alpha 0.3 on false positives, beta 0.7 on misses)."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
    return bce + soft_tversky_loss(logits, target)


def bce_lovasz_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus the Lovasz hinge per image (smp), a convex surrogate of each image's Jaccard.

    The ISIC score is the mean of per-image Jaccard indices; the Lovasz hinge optimises exactly that quantity's
    surrogate, where soft Dice optimises a neighbour of it.
    """
    from segmentation_models_pytorch.losses import LovaszLoss

    bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
    return bce + LovaszLoss(mode="binary", per_image=True)(logits.float(), target.float())


class WeightedBCE(torch.nn.Module):
    """``BCEWithLogitsLoss`` with ``pos_weight = negatives / positives`` of the training set."""

    def __init__(self, pos_weight: float):
        super().__init__()
        self.register_buffer("pos_weight", torch.tensor([pos_weight], dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(
            logits.float().view(-1), target.float().view(-1), pos_weight=self.pos_weight
        )


class MelanomaKeratosisBCE(torch.nn.Module):
    """Multi-task loss for ``model.keratosis_aux``: the melanoma logit's ``WeightedBCE`` plus ``aux_weight`` times the
    same loss on the seborrheic-keratosis logit, each class balanced by its own ``negatives / positives``.

    Logits and targets are [B, 2] (melanoma, keratosis).
    """

    def __init__(self, melanoma_weight: float, keratosis_weight: float, aux_weight: float = 1.0):
        super().__init__()
        self.melanoma = WeightedBCE(melanoma_weight)
        self.keratosis = WeightedBCE(keratosis_weight)
        self.aux_weight = aux_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.melanoma(logits[:, 0], target[:, 0]) + self.aux_weight * self.keratosis(logits[:, 1], target[:, 1])


def positive_weight(labels: list[int]) -> float:
    """negatives / positives; raises when a class is absent (the loss would be meaningless)."""
    positives = sum(1 for label in labels if label == 1)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        raise ValueError(f"training labels need both classes, got {positives} melanoma and {negatives} other")
    return negatives / positives
