"""Quality checks shown with each prediction: when the outputs, the lesion outline and its measurements deserve less
trust.

Each check reads the segmenter's lesion probability map at the model's input size, or the image itself (numpy
only, well under a millisecond; ``training_image`` also reduces it with Pillow and compares it with the stored
fingerprints of the training images, timed within the post-processing stage of ``benchmarks/bench_inference.py``),
and names a reason to look twice; none changes the outputs. The threshold of
``outline_uncertain`` was fitted on held-out train images of the shipped segmenter's recipe and checked on the ISIC
2017 validation set by ``python benchmarks/quality_checks.py`` (report: ``models/eval/quality_checks.json``; model
card, "Quality checks").

An image that is ``blank_image`` or ``mask_image`` is not assessed (``NOT_ASSESSED``): predict and the app show no
probability or outline for it, and ``melanoma evaluate`` leaves it out of its scores.

- ``blank_image``: the image is almost uniform (grey-level standard deviation below ``BLANK_STD_THRESHOLD``): a
  black frame, a lens cap, a solid colour. The least varied of the 2750 ISIC 2017 images has a standard deviation of
  5.9 (``tests/test_checks.py`` checks that none fires), so the check cannot fire on a real dermoscopic image.
  Shown with or without a segmenter.
- ``mask_image``: nearly all of the image lies in two flat grey tones (``two_tone_share`` at or above
  ``MASK_TONE_SHARE``): a lesion mask, a drawing, a screenshot of one, such as masks kept in a folder that
  ``melanoma predict`` searches. A tone is an 8-level grey bin; the second tone's centre lies at least ``TONE_GAP``
  levels from the first's, and it must hold at least half of the pixels outside the first (``SECOND_TONE_DOMINANCE``:
  the rest of a mask is its other flat tone, where a lesion in a photo spreads over many tones). None of the 2750
  ISIC 2017 images has such a second tone (share 0), nor any of them made 1.3 times brighter; 1.5 times brighter
  (skin clipped to white) 1 of them fires, twice as bright 14. The 2150 ISIC 2017 masks have 1.0, and at least 0.95
  when saved as JPEG at quality 75. ``tests/test_checks.py`` measures all of these. Shown with or without a segmenter;
  not checked on an image that is already ``blank_image``.
- ``small_image``: the image is smaller than ``MIN_RELIABLE_SIDE`` pixels on its shorter side (its size as uploaded,
  EXIF orientation applied). The models see every image enlarged or reduced to their input size; the ISIC 2017
  validation images shrunk to 96 px and below lost mean Jaccard and AUC beyond noise, at 128 px and above they did
  not (``python benchmarks/small_images.py``, rule written before it ran; report ``models/eval/small_images.json``).
  Below ``image_io.MIN_SIDE`` (16 px), where the same study found the classifier ranking no better than chance, an
  image is not checked but refused when loaded.
- ``elongated_image``: the long side of the image as uploaded is at least ``MAX_ASPECT`` times its short side (a
  panorama, a strip cut from a photo). The models see every image squashed to a square, as they saw their 4:3 to 3:2
  training photographs, so such an image shows its lesion stretched unlike any of them. The ISIC 2017 validation
  images cut to centre bands of 2.5:1 and 3:1 (from 4:3 or 3:2 originals) lost mean Jaccard or AUC beyond noise, at
  16:9 and 2:1 they did not (``python benchmarks/aspect_ratios.py``, rule written before it ran; report
  ``models/eval/aspect_ratios.json``).
- ``dark_frame``: at least three of the image's four corners are dark (``dark_corners``): the black frame many
  dermatoscopes leave around a round field of view. 82 of the 2000 ISIC 2017 training images have one, 34% of them
  melanomas against 18% of the others, and none of the 150 validation images; given a black round frame, the
  validation images scored a higher melanoma probability and more of the benign lesions crossed the threshold
  (``python benchmarks/vignettes.py``, rule written before it ran; report ``models/eval/vignettes.json``). Not
  checked on an image that is not assessed.
- ``greyscale_image``: the image has no colour (``colour_spread``, the mean difference between a pixel's largest and
  smallest channel, below ``GREYSCALE_SPREAD``): a greyscale export or scan. The least colourful of the 2750 ISIC 2017
  images spreads 4.1 levels, and grey images, even saved as JPEG, 0 (``tests/test_checks.py`` measures both). The
  models learned from colour dermoscopy; ``python benchmarks/greyscale_images.py`` measures what the validation
  images made grey lose (report ``models/eval/greyscale_images.json``), and the lesion's colours are not measured
  (``LesionMeasurements.without_colour``). Not checked on an image that is not assessed.
- ``training_image``: the image is a copy of one the models were trained on, found by its content whatever its
  file name (``melanoma.inference.fingerprint``; the Predictor compares it with the fingerprints the model configs
  keep). Its output shows what the networks learned from that very image, not how they do on new ones. 3 of the
  150 ISIC 2017 validation images are such copies (``python benchmarks/duplicates.py``). Not checked on an image that
  is not assessed.
- ``no_lesion``: the segmenter outlined nothing; there is nothing to measure, and a classifier looks at the whole
  image anyway.
- ``outline_uncertain``: many pixels of the map lie between 0.2 and 0.8 compared with the size of the outlined
  lesion (``uncertain_ratio``), where the outline is most often far from a dermatologist's.

Another check, "the lesion reaches the image edge", was tried by ``benchmarks/quality_checks.py`` and is not shown:
on validation it found 11 of the 18 lesions whose annotation reaches the edge, short of the 0.7 sensitivity its rule
asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BLANK_STD_THRESHOLD",
    "DARK_CORNERS_MIN",
    "DARK_CORNER_GREY",
    "DARK_CORNER_SHARE",
    "GREYSCALE_SPREAD",
    "MASK_TONE_SHARE",
    "MAX_ASPECT",
    "MIN_RELIABLE_SIDE",
    "NOT_ASSESSED",
    "SECOND_TONE_DOMINANCE",
    "QUALITY_CHECKS",
    "UNCERTAIN_BAND",
    "UNCERTAIN_RATIO_THRESHOLD",
    "QualityCheck",
    "colour_spread",
    "dark_corners",
    "grey_std",
    "image_checks",
    "quality_checks",
    "two_tone_share",
    "uncertain_ratio",
]

#: ``blank_image`` fires below this standard deviation of the grey levels (0-255).
BLANK_STD_THRESHOLD = 2.0
#: ``mask_image`` fires at or above this share of pixels in two grey tones (see the module doc for what it measured).
MASK_TONE_SHARE = 0.9
#: The centres of the two tones of ``mask_image`` (8-level grey bins) lie at least this many grey levels apart ...
TONE_GAP = 24
#: ... the second tone holds at least this share of all pixels (a mask with a lesion in it) ...
MIN_TONE_SHARE = 0.001
#: ... and at least this share of the pixels outside the first tone (it is flat, not a lesion's spread of tones).
SECOND_TONE_DOMINANCE = 0.5
#: ``small_image`` fires when the shorter side of the image as uploaded is below this many pixels
#: (``min_reliable_side`` of ``models/eval/small_images.json``).
MIN_RELIABLE_SIDE = 128
#: ``elongated_image`` fires when the long side of the image as uploaded is at least this many times its short side
#: (``max_aspect`` of ``models/eval/aspect_ratios.json``).
MAX_ASPECT = 2.5
#: ``greyscale_image`` fires below this ``colour_spread`` (grey levels; see the module doc for what it measured).
GREYSCALE_SPREAD = 1.0
GREYSCALE_MESSAGE = (
    "The image has no colour (greyscale). The models learned from colour dermoscopy images: validation images made "
    'grey were outlined and ranked measurably worse than in colour (model card, "Quality checks"). The lesion\'s '
    "colours are not measured. Use the colour original if you have it."
)
#: Map values strictly between these two count as uncertain pixels.
UNCERTAIN_BAND = (0.2, 0.8)
#: ``outline_uncertain`` fires above this ``uncertain_ratio`` (fitted on held-out train images, see the module doc).
UNCERTAIN_RATIO_THRESHOLD = 0.2


@dataclass(frozen=True)
class QualityCheck:
    """One reason to trust a prediction's outputs or outline less: a stable ``code`` (CSV, JSON) and a sentence for
    people."""

    code: str
    message: str


QUALITY_CHECKS: dict[str, QualityCheck] = {
    check.code: check
    for check in (
        QualityCheck(
            "blank_image",
            "The image is almost uniform, with no visible structure: it is probably not a photo of a skin lesion "
            "(a black frame, a lens cap, a solid colour), and the outputs mean nothing.",
        ),
        QualityCheck(
            "mask_image",
            "Nearly all of the image is two flat tones, as in a lesion mask or a drawing: it is probably not a photo "
            "of a skin lesion, and the outputs mean nothing.",
        ),
        QualityCheck(
            "small_image",
            f"The image is smaller than {MIN_RELIABLE_SIDE} pixels on its shorter side. Validation images this "
            'small were outlined and ranked measurably worse than at full size (model card, "Quality checks"): '
            "use a larger image if you have one.",
        ),
        QualityCheck(
            "elongated_image",
            f"The image's long side is at least {MAX_ASPECT:g} times its short side. The models see every image "
            "squashed to a square, as they saw their 4:3 to 3:2 training photographs: validation images cut to bands "
            'this long were outlined and ranked measurably worse (model card, "Elongated images"). Crop it around the '
            "lesion to about 4:3 if you can.",
        ),
        QualityCheck(
            "dark_frame",
            "The image has a dark frame around its field of view, as many dermatoscopes leave. The networks learned "
            "from training images in which such frames came with more melanomas: validation images given a black "
            "round frame scored higher melanoma probabilities, and more benign lesions crossed the threshold (model "
            'card, "Dark frames"). If the lesion lies well inside the frame, crop the frame away.',
        ),
        QualityCheck(
            "greyscale_image",
            GREYSCALE_MESSAGE,
        ),
        QualityCheck(
            "training_image",
            "The image is a copy of one the models were trained on (found by its content, whatever its file name): "
            "the output shows what they learned from this very image, not how they do on new ones.",
        ),
        QualityCheck(
            "no_lesion",
            "The segmenter outlined no lesion, so there are no measurements; the melanoma probability is about the "
            "whole image, and means little unless it is a dermoscopic image of a skin lesion.",
        ),
        QualityCheck(
            "outline_uncertain",
            "The segmenter was unsure where this lesion ends. Outlines this unsure miss a dermatologist's outline far "
            'more often than others (model card, "Quality checks"): check the outline by eye before using the '
            "measurements.",
        ),
    )
}


def uncertain_ratio(probability: np.ndarray, threshold: float = 0.5) -> float:
    """Pixels with a lesion probability inside ``UNCERTAIN_BAND``, per pixel at or above ``threshold``.

    0 for a crisp map; around 0.05 for a confident outline of a mid-sized lesion (a thin band of intermediate
    values along its border); above 1 when the uncertain zone is larger than the lesion itself. An empty outline
    divides by 1 pixel.
    """
    probability = np.asarray(probability, dtype=np.float32)
    low, high = UNCERTAIN_BAND
    uncertain = np.count_nonzero((probability > low) & (probability < high))
    return float(uncertain / max(np.count_nonzero(probability >= threshold), 1))


def quality_checks(probability: np.ndarray, threshold: float = 0.5) -> tuple[QualityCheck, ...]:
    """The checks that fire for a segmenter's lesion probability map (HxW in [0, 1], at the model's size).

    Args:
        probability: the segmenter's output map for one image.
        threshold: the segmenter's mask threshold (its config's ``threshold``).

    Returns:
        The checks that fire (empty when none does).
    """
    if not (np.asarray(probability) >= threshold).any():
        return (QUALITY_CHECKS["no_lesion"],)
    if uncertain_ratio(probability, threshold) > UNCERTAIN_RATIO_THRESHOLD:
        return (QUALITY_CHECKS["outline_uncertain"],)
    return ()


def grey_std(image: np.ndarray) -> float:
    """Standard deviation of an RGB uint8 image's grey levels (0-255), from about 128x128 evenly spaced pixels."""
    return float(_grey_sample(image).std())


#: The checks after which an image is not assessed: its outputs mean nothing and are not shown or scored.
NOT_ASSESSED = ("blank_image", "mask_image")


def _grey_sample(image: np.ndarray) -> np.ndarray:
    """Grey levels (0-255, float32) of about 128x128 evenly spaced pixels of an RGB uint8 image."""
    step = max(1, max(np.shape(image)[:2]) // 128)  # the spread, not the detail, is asked: well under a millisecond
    return np.asarray(image)[::step, ::step].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def colour_spread(image: np.ndarray) -> float:
    """The mean difference between the largest and the smallest channel of an RGB uint8 image's pixels (0-255),
    from about 128x128 evenly spaced pixels: 0 for a greyscale image."""
    step = max(1, max(np.shape(image)[:2]) // 128)
    sample = np.asarray(image)[::step, ::step].astype(np.int16)
    return float((sample.max(axis=2) - sample.min(axis=2)).mean())


#: A corner patch of ``dark_corners`` is this share of each side ...
DARK_CORNER_SHARE = 0.05
#: ... and dark when its mean grey level (0-255) is below this ...
DARK_CORNER_GREY = 40.0
#: ... and an image has a dark frame when at least this many of its four corner patches are dark.
DARK_CORNERS_MIN = 3


def dark_corners(image: np.ndarray) -> bool:
    """Whether an RGB uint8 image has the black frame a dermatoscope leaves around a round field of view: at least
    ``DARK_CORNERS_MIN`` of its four corner patches (``DARK_CORNER_SHARE`` of each side) with a mean grey level
    below ``DARK_CORNER_GREY``."""
    image = np.asarray(image)
    height, width = image.shape[:2]
    rows, columns = max(1, round(height * DARK_CORNER_SHARE)), max(1, round(width * DARK_CORNER_SHARE))
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    patches = (image[:rows, :columns], image[:rows, -columns:], image[-rows:, :columns], image[-rows:, -columns:])
    dark = sum(float((patch.astype(np.float32) @ luma).mean()) < DARK_CORNER_GREY for patch in patches)
    return dark >= DARK_CORNERS_MIN


def two_tone_share(image: np.ndarray) -> float:
    """The share of an RGB uint8 image's pixels in its two most common grey tones (8-level bins whose centres lie at
    least ``TONE_GAP`` levels apart): 1.0 for a two-valued mask. 0 when the second tone is not flat: it holds under
    ``MIN_TONE_SHARE`` of the pixels, or under ``SECOND_TONE_DOMINANCE`` of those outside the first tone (a photo,
    whose tones spread, even one whose skin is clipped to white)."""
    counts = np.bincount((np.clip(_grey_sample(image), 0, 255).astype(np.int64) // 8).ravel(), minlength=32)
    first = int(np.argmax(counts))
    near = -(-TONE_GAP // 8) - 1  # bins closer than TONE_GAP to the first: 2 on each side
    far = counts.copy()
    far[max(0, first - near) : first + near + 1] = 0
    second, total = int(np.argmax(far)), int(counts.sum())
    if far[second] < MIN_TONE_SHARE * total or far[second] < SECOND_TONE_DOMINANCE * (total - counts[first]):
        return 0.0
    return float((counts[first] + far[second]) / total)


def image_checks(image: np.ndarray, original_size: tuple[int, int] | None = None) -> tuple[QualityCheck, ...]:
    """The checks that fire for the image itself (HxWx3 uint8 RGB): ``blank_image``, ``mask_image`` or
    ``greyscale_image``, and ``dark_frame``, ``small_image`` and ``elongated_image``.

    ``original_size``: (width, height) of the image as uploaded, when ``image`` was decoded smaller (a big JPEG);
    by default ``image``'s own size.
    """
    checks: tuple[QualityCheck, ...] = ()
    if grey_std(image) < BLANK_STD_THRESHOLD:
        checks += (QUALITY_CHECKS["blank_image"],)
    elif two_tone_share(image) >= MASK_TONE_SHARE:
        checks += (QUALITY_CHECKS["mask_image"],)
    elif colour_spread(image) < GREYSCALE_SPREAD:
        checks += (QUALITY_CHECKS["greyscale_image"],)
    width, height = original_size if original_size is not None else (image.shape[1], image.shape[0])
    if min(width, height) < MIN_RELIABLE_SIDE:
        checks += (QUALITY_CHECKS["small_image"],)
    if not any(check.code in NOT_ASSESSED for check in checks) and dark_corners(image):
        checks += (QUALITY_CHECKS["dark_frame"],)
    if max(width, height) >= MAX_ASPECT * min(width, height):
        checks += (QUALITY_CHECKS["elongated_image"],)
    return checks
