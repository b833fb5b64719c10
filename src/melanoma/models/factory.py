"""One factory per task: ``build_classifier`` and ``build_segmenter``, both from an arch name.

Backed by timm (classifiers, encoders) and segmentation_models_pytorch (U-Net decoder).
"""

from __future__ import annotations

import torch
from torch import nn

from melanoma.config import ModelConfig
from melanoma.models.pretrained import PRETRAINED_MEAN, PRETRAINED_STD, WEIGHT_PACKAGES, load_imagenet_state_dict

ARCHS = tuple(WEIGHT_PACKAGES)


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(ARCHS)}")


def _block_counts(model: nn.Module) -> list[int]:
    return [len(stage) for stage in model.blocks]


class ShadesOfGray(nn.Module):
    """Shades-of-Gray colour constancy (Finlayson & Trezzi 2004; Barata et al. 2015 for dermoscopy), per image.

    Each channel's illuminant is estimated as its Minkowski ``power``-mean over the image,
    ``e_c = mean(rgb_c ** power) ** (1 / power)``, and the channel is scaled so that its illuminant becomes the grey
    level ``gray``: ``rgb_c * gray / e_c``. A colour cast or an exposure change that multiplies each channel by a
    constant is removed exactly (up to clipping and rounding of the input). ``gray`` = 0.65 is the mean ``e_c`` of
    the ISIC 2017 training images (power 6), so a typical image keeps its range. Works on normalised images
    (``(rgb - mean) / std``) in and out, so the network and the served preprocessing are unchanged; it sits in front
    of the stem, so training, validation, the exported ONNX graph and its activation map all see it.
    """

    def __init__(self, power: float = 6.0, gray: float = 0.65, eps: float = 1e-3):
        super().__init__()
        self.power, self.gray, self.eps = power, gray, eps
        self.register_buffer("mean", torch.tensor(PRETRAINED_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(PRETRAINED_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        rgb = (image.float() * self.std + self.mean).clamp_min(0)
        illuminant = rgb.pow(self.power).mean(dim=(2, 3), keepdim=True).pow(1 / self.power).clamp_min(self.eps)
        return ((rgb * (self.gray / illuminant) - self.mean) / self.std).to(image.dtype)


def _with_colour_constancy(network: nn.Module, colour_constancy: str) -> None:
    """Put the colour-constancy step in front of ``network``'s stem convolution (timm EfficientNet or its
    feature extractor), in place."""
    if colour_constancy == "shades_of_gray":
        network.conv_stem = nn.Sequential(ShadesOfGray(), network.conv_stem)
    elif colour_constancy != "none":
        raise ValueError(f"unknown colour_constancy {colour_constancy!r}; valid: none, shades_of_gray")


def build_classifier(
    arch: str = "tf_efficientnet_lite0",
    pretrained: bool = True,
    drop_rate: float = 0.2,
    head_init: str = "zero",
    colour_constancy: str = "none",
    outputs: int = 1,
) -> nn.Module:
    """A timm EfficientNet-Lite with one melanoma logit, initialised from ImageNet when ``pretrained``.

    ``head_init="zero"`` zeroes the new head so every image starts at logit 0; ``"timm"`` keeps timm's init.
    ``colour_constancy="shades_of_gray"`` puts :class:`ShadesOfGray` in front of the stem.
    ``outputs=2`` adds a seborrheic-keratosis logit after the melanoma logit (training only; see
    :func:`melanoma_only`).
    """
    import timm

    _check_arch(arch)
    model = timm.create_model(arch, pretrained=False, num_classes=outputs, drop_rate=drop_rate)
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
    _with_colour_constancy(model, colour_constancy)
    return model


def melanoma_only(model: nn.Module) -> nn.Module:
    """A classifier trained with auxiliary logits, cut to its first (melanoma) logit in place: the same network and
    melanoma output, in the one-logit form that is exported and served."""
    head = model.classifier
    if head.out_features == 1:
        return model
    single = nn.Linear(head.in_features, 1).to(head.weight.device, head.weight.dtype)
    with torch.no_grad():
        single.weight.copy_(head.weight[:1])
        single.bias.copy_(head.bias[:1])
    model.classifier = single
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
    decoder_attention: str = "none",
    decoder_interpolation: str = "nearest",
    colour_constancy: str = "none",
) -> nn.Module:
    """A U-Net (segmentation_models_pytorch) with a timm EfficientNet-Lite encoder and one lesion logit.

    ``decoder_attention="scse"`` adds spatial and channel squeeze-and-excitation to every decoder block;
    ``decoder_interpolation`` is the decoder's 2x upsampling ("nearest" or "bilinear");
    ``colour_constancy="shades_of_gray"`` puts :class:`ShadesOfGray` in front of the encoder's stem.
    """
    import segmentation_models_pytorch as smp

    _check_arch(arch)
    if decoder_attention not in ("none", "scse"):
        raise ValueError(f"unknown decoder_attention {decoder_attention!r}; valid: none, scse")
    if decoder_interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"unknown decoder_interpolation {decoder_interpolation!r}; valid: nearest, bilinear")
    net = smp.Unet(
        encoder_name=f"tu-{arch}",
        encoder_weights=None,
        encoder_depth=len(decoder_channels),
        decoder_channels=list(decoder_channels),
        decoder_interpolation=decoder_interpolation,
        classes=1,
    )
    if decoder_attention == "scse":
        _add_scse(net)
    if pretrained:
        encoder = net.encoder.model
        state = load_imagenet_state_dict(arch, _block_counts(encoder))
        own = encoder.state_dict()
        state = {k: v for k, v in state.items() if k in own}
        missing, _ = encoder.load_state_dict(state, strict=False)
        if missing:
            raise RuntimeError(f"ImageNet weights did not cover the {arch} encoder: missing {missing[:5]}")
    _with_colour_constancy(net.encoder.model, colour_constancy)
    return net


def _add_scse(net: nn.Module) -> None:
    """Put scSE attention where smp's ``decoder_attention_type="scse"`` does: on each decoder block's concatenation
    with its skip connection (``attention1``; the last block has none) and on the block's output (``attention2``).

    smp squeezes ``C`` channels to ``C // 16``, which is 0 for the narrow blocks of the shipped decoder (8 or 16
    channels); here the squeeze keeps at least 2 channels (reduction ``min(16, C // 2)``); blocks of 32 channels or
    more are exactly smp's.
    """
    from segmentation_models_pytorch.base.modules import Attention

    def scse(channels: int) -> nn.Module:
        return Attention("scse", in_channels=channels, reduction=min(16, channels // 2))

    upsampled = net.encoder.out_channels[-1]
    for block in net.decoder.blocks:
        joined, outputs = block.conv1[0].in_channels, block.conv2[0].out_channels
        if joined > upsampled:  # a skip connection is concatenated
            block.attention1 = scse(joined)
        block.attention2 = scse(outputs)
        upsampled = outputs


def build_model(task: str, config: ModelConfig) -> nn.Module:
    """Build the network for ``task`` ("segmentation" or "classification") from its ``ModelConfig``."""
    if task == "segmentation":
        return build_segmenter(
            config.arch,
            config.pretrained,
            config.decoder_channels,
            config.decoder_attention,
            config.decoder_interpolation,
            config.colour_constancy,
        )
    if task == "classification":
        return build_classifier(
            config.arch,
            config.pretrained,
            config.drop_rate,
            config.head_init,
            config.colour_constancy,
            outputs=2 if config.keratosis_aux else 1,
        )
    raise ValueError(f"unknown task {task!r}; valid: segmentation, classification")


def encoder_parameters(task: str, model: nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """Split parameters into (pretrained backbone, new head/decoder) for per-group learning rates."""
    if task == "segmentation":
        backbone = list(model.encoder.parameters())
    else:
        backbone = [p for n, p in model.named_parameters() if not n.startswith("classifier.")]
    ids = {id(p) for p in backbone}
    return backbone, [p for p in model.parameters() if id(p) not in ids]
