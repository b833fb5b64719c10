"""One factory per task: ``build_classifier`` and ``build_segmenter``, both from an arch name.

Backed by timm (classifiers, encoders) and segmentation_models_pytorch (U-Net decoder).
"""

from __future__ import annotations

import torch
from torch import nn

from melanoma.config import ModelConfig
from melanoma.models.pretrained import WEIGHT_PACKAGES, load_imagenet_state_dict

ARCHS = tuple(WEIGHT_PACKAGES)


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(ARCHS)}")


def _block_counts(model: nn.Module) -> list[int]:
    return [len(stage) for stage in model.blocks]


def build_classifier(
    arch: str = "tf_efficientnet_lite0", pretrained: bool = True, drop_rate: float = 0.2, head_init: str = "zero"
) -> nn.Module:
    """A timm EfficientNet-Lite with one melanoma logit, initialised from ImageNet when ``pretrained``.

    ``head_init="zero"`` zeroes the new head so every image starts at logit 0; ``"timm"`` keeps timm's init.
    """
    import timm

    _check_arch(arch)
    model = timm.create_model(arch, pretrained=False, num_classes=1, drop_rate=drop_rate)
    if pretrained:
        state = load_imagenet_state_dict(arch, _block_counts(model))
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) != {"classifier.weight", "classifier.bias"}:
            raise RuntimeError(f"ImageNet weights did not fit {arch}: missing={missing} unexpected={unexpected}")
    if head_init == "zero":
        nn.init.zeros_(model.classifier.weight)
        nn.init.zeros_(model.classifier.bias)
    elif head_init != "timm":
        raise ValueError(f"unknown head_init {head_init!r}; valid: zero, timm")
    return model


def build_imagenet_classifier(arch: str = "tf_efficientnet_lite0") -> nn.Module:
    """The full 1000-class ImageNet model (used to prove the weight conversion)."""
    import timm

    _check_arch(arch)
    model = timm.create_model(arch, pretrained=False)
    model.load_state_dict(load_imagenet_state_dict(arch, _block_counts(model)), strict=True)
    return model


def build_segmenter(
    arch: str = "tf_efficientnet_lite0",
    pretrained: bool = True,
    decoder_channels: list[int] | tuple[int, ...] = (256, 128, 64, 32, 16),
) -> nn.Module:
    """A U-Net (segmentation_models_pytorch) with a timm EfficientNet-Lite encoder and one lesion logit."""
    import segmentation_models_pytorch as smp

    _check_arch(arch)
    net = smp.Unet(
        encoder_name=f"tu-{arch}",
        encoder_weights=None,
        encoder_depth=len(decoder_channels),
        decoder_channels=list(decoder_channels),
        classes=1,
    )
    if pretrained:
        encoder = net.encoder.model
        state = load_imagenet_state_dict(arch, _block_counts(encoder))
        own = encoder.state_dict()
        state = {k: v for k, v in state.items() if k in own}
        missing, _ = encoder.load_state_dict(state, strict=False)
        if missing:
            raise RuntimeError(f"ImageNet weights did not cover the {arch} encoder: missing {missing[:5]}")
    return net


def build_model(task: str, config: ModelConfig) -> nn.Module:
    """Build the network for ``task`` ("segmentation" or "classification") from its ``ModelConfig``."""
    if task == "segmentation":
        return build_segmenter(config.arch, config.pretrained, config.decoder_channels)
    if task == "classification":
        return build_classifier(config.arch, config.pretrained, config.drop_rate, config.head_init)
    raise ValueError(f"unknown task {task!r}; valid: segmentation, classification")


def encoder_parameters(task: str, model: nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """Split parameters into (pretrained backbone, new head/decoder) for per-group learning rates."""
    if task == "segmentation":
        backbone = list(model.encoder.parameters())
    else:
        backbone = [p for n, p in model.named_parameters() if not n.startswith("classifier.")]
    ids = {id(p) for p in backbone}
    return backbone, [p for p in model.parameters() if id(p) not in ids]
