"""Model factories and the offline ImageNet weight conversion."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require
from PIL import Image

from melanoma.models import ARCHS, build_classifier, build_segmenter
from melanoma.models.factory import build_imagenet_classifier
from melanoma.models.pretrained import convert_state_dict, weight_file

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def _imagenet_input(image: np.ndarray, size: int = 224) -> torch.Tensor:
    resized = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255
    return torch.from_numpy((resized - 0.5) / 0.5).permute(2, 0, 1)[None]


@pytest.mark.parametrize("arch", ARCHS)
def test_converted_weights_recognise_imagenet_photos(arch):
    skimage_data = require("skimage.data")
    model = build_imagenet_classifier(arch).eval()
    with torch.no_grad():
        cat = model(_imagenet_input(skimage_data.chelsea())).argmax().item()
        coffee = model(_imagenet_input(skimage_data.coffee())).argmax().item()
    assert cat in IMAGENET_CATS
    assert coffee == ESPRESSO


def test_conversion_rejects_a_mismatched_architecture():
    source = torch.load(weight_file("tf_efficientnet_lite0"), map_location="cpu", weights_only=True)
    with pytest.raises(ValueError, match="does not match"):
        convert_state_dict(source, [1, 2, 2, 3, 3, 4])  # lite0 has 16 blocks, not 15


def test_unknown_arch_lists_the_valid_ones():
    with pytest.raises(ValueError, match="tf_efficientnet_lite0"):
        build_classifier("resnet50", pretrained=False)


@pytest.mark.parametrize(
    ("builder", "kwargs", "input_shape", "output_shape"),
    [
        (build_classifier, {"pretrained": False}, (2, 3, 64, 64), (2, 1)),
        (
            build_segmenter,
            {"pretrained": False, "decoder_channels": [32, 16, 16, 8, 8]},
            (2, 3, 64, 64),
            (2, 1, 64, 64),
        ),
        (
            build_segmenter,
            {"pretrained": False, "decoder_channels": [32, 16, 16, 8, 8]},
            (1, 3, 96, 96),
            (1, 1, 96, 96),
        ),
        (
            build_segmenter,
            {
                "pretrained": False,
                "decoder_channels": [32, 16, 16, 8, 8],
                "decoder_attention": "scse",
                "decoder_interpolation": "bilinear",
            },
            (2, 3, 64, 64),
            (2, 1, 64, 64),
        ),
    ],
)
def test_shapes_finite_outputs_and_gradients(builder, kwargs, input_shape, output_shape):
    torch.manual_seed(0)
    model = builder(**kwargs).train()
    output = model(torch.randn(*input_shape))
    assert output.shape == output_shape
    assert torch.isfinite(output).all()
    output.float().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad


def test_scse_decoder_squeezes_like_smp_and_keeps_two_channels_in_narrow_blocks():
    """smp squeezes C channels to C // 16 (0 for the shipped decoder's 8- and 16-channel blocks); ours keeps >= 2."""
    plain = build_segmenter(pretrained=False, decoder_channels=[128, 64, 32, 16, 8])
    scse = build_segmenter(pretrained=False, decoder_channels=[128, 64, 32, 16, 8], decoder_attention="scse")
    *joined, last = scse.decoder.blocks
    assert isinstance(last.attention1.attention, torch.nn.Identity)  # no skip connection: nothing to join
    squeezes = []
    for block in scse.decoder.blocks:
        for attention in (block.attention2,) if block is last else (block.attention1, block.attention2):
            channels = attention.attention.cSE[1].in_channels
            squeezes.append(attention.attention.cSE[1].out_channels)
            assert squeezes[-1] == max(channels // 16, 2)
            assert attention.attention.sSE[0].in_channels == channels
    assert squeezes[:2] == [(320 + 112) // 16, 128 // 16]  # the wide first block is smp's own scSE
    assert min(squeezes) == 2
    extra = sum(p.numel() for p in scse.parameters()) - sum(p.numel() for p in plain.parameters())
    assert 0 < extra < 0.02 * sum(p.numel() for p in plain.parameters())
    with pytest.raises(ValueError, match="decoder_attention"):
        build_segmenter(pretrained=False, decoder_attention="cbam")
    with pytest.raises(ValueError, match="decoder_interpolation"):
        build_segmenter(pretrained=False, decoder_interpolation="bicubic")


def test_pretrained_segmenter_encoder_carries_imagenet_weights():
    seeded = build_segmenter("tf_efficientnet_lite0", pretrained=True)
    classifier = build_imagenet_classifier("tf_efficientnet_lite0")
    assert torch.equal(seeded.encoder.model.conv_stem.weight, classifier.conv_stem.weight)
    assert torch.equal(seeded.encoder.model.blocks[3][0].conv_pw.weight, classifier.blocks[3][0].conv_pw.weight)


def test_classifier_head_init():
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        zero = build_classifier(pretrained=True, head_init="zero").eval()(x)
        torch.manual_seed(0)
        timm_init = build_classifier(pretrained=True, head_init="timm").eval()(x)
    assert torch.equal(zero, torch.zeros(4, 1))  # balanced start: loss begins at its prior value
    assert timm_init.abs().max() > 0.1
    with pytest.raises(ValueError, match="head_init"):
        build_classifier(pretrained=False, head_init="xavier")


def test_eval_is_deterministic():
    model = build_classifier(pretrained=False, head_init="timm").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_archs_have_weights():
    """Every arch the configs accept has its ImageNet weight file installed (the recognition test above loads it)."""
    assert ARCHS == ("tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2")
    for arch in ARCHS:
        path = Path(weight_file(arch))
        assert path.suffix == ".pth" and path.is_file() and path.stat().st_size > 1_000_000


def _cast(rgb: torch.Tensor, gains) -> torch.Tensor:
    """Normalised input of ``rgb`` (in [0, 1]) under per-channel ``gains``."""
    return (rgb * torch.tensor(gains).view(1, 3, 1, 1) - 0.5) / 0.5


def test_shades_of_gray_divides_out_a_colour_cast_and_an_exposure_change():
    from melanoma.models.factory import ShadesOfGray

    step = ShadesOfGray()
    rgb = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.7 + 0.05  # no clipping below
    plain = step(_cast(rgb, (1.0, 1.0, 1.0)))
    for gains in [(1.0, 0.88, 0.72), (0.78, 0.9, 1.0), (0.7, 0.7, 0.7), (1.3, 1.3, 1.3)]:
        torch.testing.assert_close(step(_cast(rgb, gains)), plain, atol=1e-5, rtol=0)
    # A uniformly lit surface of any colour comes out the grey level; one already at it is unchanged.
    tinted = step(_cast(torch.ones(1, 3, 4, 4), (0.8, 0.6, 0.4))) * 0.5 + 0.5
    torch.testing.assert_close(tinted, torch.full_like(tinted, 0.65))
    grey = _cast(torch.ones(1, 3, 4, 4), (0.65, 0.65, 0.65))
    torch.testing.assert_close(step(grey), grey)


@pytest.mark.parametrize("builder", [build_classifier, build_segmenter])
def test_colour_constancy_makes_the_network_blind_to_a_colour_cast(builder):
    torch.manual_seed(0)
    kwargs = {"pretrained": False, "colour_constancy": "shades_of_gray"}
    if builder is build_segmenter:
        kwargs["decoder_channels"] = [32, 16, 16, 8, 8]
    else:
        kwargs["head_init"] = "timm"  # a zero head would give every image the same output
    model = builder(**kwargs).eval()
    rgb = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 0.7 + 0.05
    with torch.no_grad():
        plain, cast = model(_cast(rgb, (1.0, 1.0, 1.0))), model(_cast(rgb, (1.0, 0.88, 0.72)))
        unguarded = builder(**{**kwargs, "colour_constancy": "none"}).eval()
        unguarded.load_state_dict({k.replace("conv_stem.1.", "conv_stem."): v for k, v in model.state_dict().items()})
        moved = unguarded(_cast(rgb, (1.0, 1.0, 1.0))) - unguarded(_cast(rgb, (1.0, 0.88, 0.72)))
    torch.testing.assert_close(cast, plain, atol=1e-4, rtol=0)
    assert moved.abs().max() > 1e-3  # without the step the same weights do see the cast
    output = model.train()(_cast(rgb, (1.0, 1.0, 1.0)))
    output.float().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_unknown_colour_constancy_lists_the_valid_ones():
    with pytest.raises(ValueError, match="none, shades_of_gray"):
        build_classifier(pretrained=False, colour_constancy="grey_world")
