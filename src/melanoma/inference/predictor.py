"""The one path from an image file to a result, shared by the CLI, the app and the benchmarks.

Runs on ONNX Runtime + numpy + Pillow only: importing this module never imports torch.
One ``Predictor`` is thread-safe (ONNX Runtime sessions are; the predictor holds no mutable state), so a
single instance serves every app session.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from melanoma.inference.checks import (
    DARK_CORNER_GREY,
    NOT_ASSESSED,
    QUALITY_CHECKS,
    QualityCheck,
    dark_corners,
    image_checks,
    quality_checks,
)
from melanoma.inference.fingerprint import (
    COPY_DISTANCE,
    FINGERPRINT_BITS,
    fingerprint,
    nearest,
    stored_fingerprints,
)
from melanoma.inference.image_io import ImageLoadError, ImageSource, load_image_with_size
from melanoma.inference.measurements import LesionMeasurements, measure_lesion
from melanoma.inference.postprocess import lesion_mask, resize_mask
from melanoma.inference.preprocess import (
    FULL_IMAGE,
    Box,
    crop_box,
    fill_dark_frame,
    lesion_box,
    resize_for,
    run_with_flips,
    to_input,
)

MODELS_ENV_VAR = "MELANOMA_MODELS"
WORK_MAX_SIDE = 1024  # masks are post-processed and measured at most at this size, then upsampled
TASK_CONFIGS = {"segmentation": "segmentation.json", "classification": "classification.json"}
#: Whether the classifier sees a dark frame painted over (``Predictor.fill_dark_frames``; ``benchmarks/vignettes.py``).
FILL_DARK_FRAMES = False


class ModelsNotFoundError(FileNotFoundError):
    """No exported model is installed where the Predictor looked."""


class ModelIntegrityError(ValueError):
    """An ONNX file is not the one its JSON config was exported with (replaced, damaged or a Git LFS pointer)."""


def network_record(config: dict[str, Any]) -> dict[str, Any]:
    """How a report names the network an exported config describes: architecture, export date, ONNX SHA-256."""
    return {key: config.get(key) for key in ("arch", "exported", "onnx_sha256")}


def onnx_digest(path: Path) -> str:
    """The SHA-256 of a model file, hex (recorded as ``onnx_sha256`` by ``melanoma export`` and ``quantize``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_models_dir() -> Path:
    """``$MELANOMA_MODELS``, else the models installed with the package, else the repository's ``models/``."""
    if os.environ.get(MODELS_ENV_VAR):
        return Path(os.environ[MODELS_ENV_VAR]).expanduser()
    packaged = Path(__file__).resolve().parents[1] / "shipped_models"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "models"


@dataclass(frozen=True)
class Prediction:
    """What the models say about one image (model outputs, not a diagnosis).

    Attributes:
        name: the image's name (file name or upload name).
        melanoma_probability: the classifier's melanoma probability in [0, 1], None without a classifier.
        decision: True when the probability is at or above the model's threshold.
        threshold: the classifier's decision threshold (chosen on validation data, see its config).
        work_mask: the lesion mask at ``image``'s size, bool (None without a segmenter): what overlays and
            measurements use. ``lesion_mask`` is the same at the original size, made when first asked for.
        lesion_area_fraction: fraction of the image covered by the lesion mask.
        measurements: ABCD-style lesion measurements (see ``measure_lesion``); areas and diameters in pixels of
            the original image (``original_size``), whatever size it was analysed at.
        heatmap: float class activation map in [0, 1] at ``image``'s size (where the classifier found evidence).
        image: the decoded RGB image used for display (may be smaller than the original for big JPEGs).
        original_size: (width, height) of the original image after EXIF orientation.
        timings_ms: time spent in each stage.
        quality_checks: reasons to trust the outputs less (``melanoma.inference.checks``): the image's own
            (``blank_image``, ``mask_image`` or ``greyscale_image``, ``dark_frame``, ``small_image``,
            ``elongated_image``) with or without a segmenter, ``training_image`` when the model configs keep their
            training images' fingerprints, and the outline's with a segmenter (the last two not for an image that
            is not assessed); empty when none applies.
    """

    name: str
    melanoma_probability: float | None
    decision: bool | None
    threshold: float | None
    work_mask: np.ndarray | None
    lesion_area_fraction: float | None
    measurements: LesionMeasurements | None
    heatmap: np.ndarray | None
    image: np.ndarray
    original_size: tuple[int, int]
    timings_ms: dict[str, float] = field(default_factory=dict)
    quality_checks: tuple[QualityCheck, ...] = ()

    @property
    def assessable(self) -> bool:
        """False when the image is no photo of a lesion (``NOT_ASSESSED``: almost uniform, or two flat tones as a
        mask): the outputs then mean nothing."""
        return self.not_assessed_reason is None

    @property
    def not_assessed_reason(self) -> str | None:
        """Why the image is not assessed, as a phrase ("almost uniform"), or None when it is assessed."""
        codes = {check.code for check in self.quality_checks}
        if "blank_image" in codes:
            return "almost uniform"
        if "mask_image" in codes:
            return "two flat tones, as a mask or a drawing"
        return None

    @property
    def decision_text(self) -> str:
        """The decision phrased as a model output."""
        if self.decision is None:
            return "no classifier installed"
        if not self.assessable:  # a black frame, a mask: the classifier still gives a number, but it is noise
            return (
                f"not assessed: the image is {self.not_assessed_reason}, so it is probably not a photo of a skin "
                "lesion and the model's output means nothing"
            )
        text = (
            "above the model's melanoma threshold: dermatologist review advised"
            if self.decision
            else "below the model's melanoma threshold"
        )
        # Blank skin, a photo of something else: the classifier still gives a number.
        codes = {check.code for check in self.quality_checks}
        if "no_lesion" in codes:
            text += "; but the segmenter found no lesion in this image, so check that it shows a skin lesion"
        if "small_image" in codes:
            text += "; the image is small, which makes this output less reliable"
        if "dark_frame" in codes:
            text += "; the image has a dark frame, which can push this probability up"
        if "elongated_image" in codes:
            text += "; the image is elongated, which makes this output less reliable"
        if "greyscale_image" in codes:
            text += "; the image has no colour, which makes this output less reliable"
        if "training_image" in codes:
            text += "; the image is a copy of one the models were trained on, so this is no test of them"
        return text

    @cached_property
    def lesion_mask(self) -> np.ndarray | None:
        """HxW bool lesion mask at the image's original size (None without a segmenter).

        Made on first use: a 12-megapixel photo's mask costs about as much as the rest of its analysis, and the
        app, which draws at the work size, never needs it."""
        if self.work_mask is None:
            return None
        if self.work_mask.shape[::-1] == tuple(self.original_size):
            return self.work_mask
        return _upsample_mask(self.work_mask, self.original_size)


@dataclass(frozen=True)
class Model:
    """One exported network: its ONNX Runtime session and its JSON config (preprocessing travels with it)."""

    session: Any
    config: dict[str, Any]

    @property
    def size(self) -> int:
        return int(self.config["input_size"])

    @property
    def crop_margin(self) -> float | None:
        """A classifier trained on lesion-centred crops: the crop's margin (see ``lesion_box``); else None."""
        crop = self.config.get("input_crop")
        return float(crop["margin"]) if crop else None

    def run(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The model's outputs for RGB uint8 images, with the test-time flips its config asks for."""
        resized = [resize_for(i, self.config) for i in images]
        batch = to_input(resized, self.config["mean"], self.config["std"])
        return run_with_flips(
            lambda x: self.session.run(None, {"image": x}), batch, self.config.get("test_time_flips", [])
        )


def onnx_session(path: Path, threads: int | None = None, spinning: bool = False):
    """An ONNX Runtime CPU session with every graph optimisation on.

    ``spinning=False`` lets the session's worker threads sleep as soon as a call ends instead of busy-waiting
    for the next one: the Predictor runs two sessions back to back (and the app several sessions' calls), and
    a spinning pool of one steals the cores the other needs (``benchmarks/bench_inference.py`` measures both).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_model(models_dir: Path, task: str, threads: int | None = None, spinning: bool = False) -> Model | None:
    """The exported ``task`` model of ``models_dir`` (None when the folder has no config for it).

    Raises:
        ModelsNotFoundError: the config names an ONNX file that is missing.
        ModelIntegrityError: the ONNX file's SHA-256 is not the config's ``onnx_sha256`` (configs without it, from
            exports before it was recorded, load unchecked), the config is not valid JSON, or ONNX Runtime cannot
            load the network.
    """
    config_path = models_dir / TASK_CONFIGS[task]
    if not config_path.is_file():
        return None
    try:
        config = json.loads(config_path.read_text())
        onnx_path = models_dir / config["onnx_file"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ModelIntegrityError(
            f"{config_path} is not a model config written by `melanoma export` ({type(error).__name__}: {error}): "
            "restore it together with its ONNX file, or export the model again with `melanoma export RUN_DIR --out DIR`"
        ) from error
    if not onnx_path.is_file():
        raise ModelsNotFoundError(f"{config_path} names {onnx_path.name}, which is missing from {models_dir}")
    expected = config.get("onnx_sha256")
    if expected and onnx_digest(onnx_path) != expected:
        raise ModelIntegrityError(
            f"{onnx_path} is not the network {config_path.name} was exported with (its SHA-256 differs from the "
            "config's onnx_sha256): the file was replaced or damaged, or is a Git LFS pointer (run `git lfs pull`). "
            "Its threshold and preprocessing would not fit it: restore both files together, or export the model "
            "again with `melanoma export RUN_DIR --out DIR`"
        )
    try:
        session = onnx_session(onnx_path, threads, spinning)
    except Exception as error:  # onnxruntime's InvalidProtobuf, Fail, ... share no public base class
        raise ModelIntegrityError(
            f"ONNX Runtime cannot load {onnx_path} ({type(error).__name__}: {str(error).strip()[:300]}): the file is "
            "damaged or not an ONNX model; restore it together with its config, or export the model again with "
            "`melanoma export RUN_DIR --out DIR`"
        ) from error
    return Model(session, config)


def trained_on(*models: Model | None) -> np.ndarray:
    """The fingerprints of the images these models were trained on, as their configs keep them (n, 32; each once,
    as a segmenter and a classifier trained on the same images list them twice): empty when none keeps any."""
    tables = [stored_fingerprints(m.config) for m in models if m is not None]
    prints = [table["train"][1] for table in tables if table is not None]
    return np.unique(np.concatenate(prints), axis=0) if prints else np.zeros((0, FINGERPRINT_BITS // 8), np.uint8)


def draft_side(*models: Model | None) -> int:
    """The shorter side a big JPEG keeps when decoded at reduced scale for these models: the largest of their input
    and prepared sizes. Export, quantization and serving decode through it, so that a threshold is fitted on the
    pixels it is served on."""
    return max(max(m.size, m.config.get("prepared_size") or 0) for m in models if m is not None)


def load_for(source: ImageSource, *models: Model | None) -> np.ndarray:
    """An image decoded as the Predictor decodes it for a folder holding ``models``."""
    return load_image_with_size(source, min_side_for_draft=draft_side(*models))[0]


def _work_image(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    scale = WORK_MAX_SIDE / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def _upsample_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask to (width, height) through 8-bit bilinear (smooth edges, ~20x faster than float)."""
    image = Image.fromarray(mask.astype(np.uint8) * 255).resize(tuple(size), Image.Resampling.BILINEAR)
    return np.asarray(image) > 127


def _place_heatmap(cam: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """A [0, 1] activation map of the region ``box`` of an image of ``size`` (width, height), zero outside it."""
    if box == FULL_IMAGE:
        return resize_mask(cam, size).clip(0, 1)
    heatmap = np.zeros(size[::-1], np.float32)
    region = crop_box(heatmap, box)  # a view: filling it fills the box
    region[...] = resize_mask(cam, (region.shape[1], region.shape[0])).clip(0, 1)
    return heatmap


class Predictor:
    """Melanoma probability, lesion mask, measurements and heatmap for dermoscopic images.

    Build it once with ``Predictor.from_dir(models_dir)``; ``predict`` and ``predict_batch`` are thread-safe.
    """

    def __init__(self, segmenter: Model | None, classifier: Model | None, models_dir: Path):
        if segmenter is None and classifier is None:
            raise ModelsNotFoundError(
                f"no model is installed in {models_dir}: expected {' and/or '.join(TASK_CONFIGS.values())} "
                "(train and export one with `melanoma train` + `melanoma export`, or pass --models DIR)"
            )
        if classifier is not None and classifier.crop_margin is not None and segmenter is None:
            raise ModelsNotFoundError(
                f"the classifier in {models_dir} looks at a crop around the lesion ({classifier.config['onnx_file']} "
                "was trained with data.lesion_crop) and needs the segmentation model beside it: put "
                f"{TASK_CONFIGS['segmentation']} and its ONNX file into {models_dir}"
            )
        self.segmenter = segmenter
        self.classifier = classifier
        self.models_dir = models_dir
        self._trained_on = trained_on(segmenter, classifier)

    @classmethod
    def from_dir(
        cls, models_dir: str | Path | None = None, threads: int | None = None, spinning: bool = False
    ) -> Predictor:
        """Load the exported models (``segmentation.json`` / ``classification.json`` + ONNX) from a folder.

        ``threads``: ONNX Runtime intra-op threads per model (default: one per physical core); ``spinning``:
        let idle worker threads busy-wait (off by default, see ``onnx_session``).
        """
        folder = Path(models_dir) if models_dir else default_models_dir()
        from_env = not models_dir and bool(os.environ.get(MODELS_ENV_VAR))
        if not folder.is_dir():
            if from_env:
                raise ModelsNotFoundError(
                    f"models folder {folder} (from ${MODELS_ENV_VAR}) does not exist; fix or unset {MODELS_ENV_VAR}, "
                    "or pass --models DIR"
                )
            raise ModelsNotFoundError(
                f"models folder {folder} does not exist; pass --models DIR or set {MODELS_ENV_VAR}"
            )
        models = [load_model(folder, task, threads, spinning) for task in ("segmentation", "classification")]
        try:
            predictor = cls(*models, folder)
        except ModelsNotFoundError as error:
            if not from_env:
                raise
            raise ModelsNotFoundError(f"{error}; {folder} came from ${MODELS_ENV_VAR}: fix or unset it") from error
        predictor.models_from_env = from_env
        return predictor

    #: True when ``from_dir`` found the folder through ``$MELANOMA_MODELS`` (errors then say so).
    models_from_env: bool = False
    #: Where ``dark_frame`` fires, the classifier sees the frame painted over (``preprocess.fill_dark_frame``); the
    #: segmenter always sees the image as it is. ``benchmarks/vignettes.py`` decides the default.
    fill_dark_frames: bool = FILL_DARK_FRAMES

    def missing_model(self, task: str) -> str:
        """What to say when a command needs the ``task`` model and this folder lacks it."""
        source = f" (from ${MODELS_ENV_VAR}: fix or unset it, or pass --models DIR)" if self.models_from_env else ""
        return f"no {task} model in {self.models_dir}{source}"

    def networks(self) -> dict[str, dict[str, Any]]:
        """Which networks this Predictor serves, by task: architecture, export date and the ONNX file's SHA-256 (the
        file ``from_dir`` checked against its config). Reports record it, so that a measurement can be told from one
        of other networks, e.g. of the models shipped before."""
        return {task: network_record(config) for task, config in self.model_configs.items()}

    @property
    def model_configs(self) -> dict[str, dict[str, Any]]:
        """The JSON configs of the loaded models, by task."""
        models = {"segmentation": self.segmenter, "classification": self.classifier}
        return {task: model.config for task, model in models.items() if model is not None}

    @property
    def warnings(self) -> list[str]:
        """What a user of these models must know before trusting their outputs (shown by the app and predict)."""
        warnings = [
            f"{TASK_CONFIGS[task]} in {self.models_dir} was exported with --no-calibrate: its threshold "
            f"({config.get('threshold')}) was not fitted on validation data and no metrics were measured; it is a "
            "quick check, not a model to serve (export it again without --no-calibrate)"
            for task, config in self.model_configs.items()
            if config.get("calibrated") is False
        ]
        warnings += [  # e.g. a threshold fitted on fewer than 10 melanomas (calibrate.MIN_PER_CLASS)
            f"{TASK_CONFIGS[task]} in {self.models_dir}: {config['validation']['warning']}"
            for task, config in self.model_configs.items()
            if isinstance(config.get("validation"), dict) and config["validation"].get("warning")
        ]
        if self.segmenter is None:
            warnings.append(
                f"{self.models_dir} holds no segmenter (segmentation.json): outputs come without a lesion outline, "
                "area or measurements; export a segmenter into this folder, or copy the shipped segmentation.onnx "
                "and segmentation.json beside the classifier"
            )
        if self.classifier is None:
            warnings.append(
                f"{self.models_dir} holds no classifier (classification.json): outputs come without a melanoma "
                "probability or decision; export a classifier into this folder, or copy the shipped "
                "classification.onnx and classification.json beside the segmenter"
            )
        crop = self.classifier.config.get("input_crop") if self.classifier is not None else None
        fitted_with = (crop or {}).get("segmenter_onnx_sha256")
        if fitted_with and self.segmenter is not None and self.segmenter.config.get("onnx_sha256") != fitted_with:
            warnings.append(
                f"the classifier in {self.models_dir} looks at crops placed by the segmenter, and its threshold and "
                "metrics were fitted with another segmenter than the one beside it now: its crops, and so its "
                "probabilities, have changed; export the classifier again into this folder to re-fit them"
            )
        return warnings

    @property
    def threshold(self) -> float | None:
        return float(self.classifier.config["threshold"]) if self.classifier else None

    @property
    def _draft_side(self) -> int:
        return draft_side(self.segmenter, self.classifier)

    def load(self, source: ImageSource, name: str | None = None) -> tuple[np.ndarray, tuple[int, int]]:
        """Decode an image the way the models need it (big JPEGs at reduced scale)."""
        return load_image_with_size(source, min_side_for_draft=self._draft_side, name=name)

    def predict(self, source: ImageSource, name: str | None = None) -> Prediction:
        """Predict one image (a path, bytes or a binary file object).

        Raises:
            ImageLoadError: the file is not a usable image; the message says why.
        """
        start = time.perf_counter()
        image, original_size = self.load(source, name)
        label = name or (Path(source).name if isinstance(source, str | Path) else "upload")
        decode_ms = (time.perf_counter() - start) * 1000
        (prediction,) = self.predict_arrays([image], [original_size], [label])
        prediction.timings_ms["decode"] = round(decode_ms, 2)
        prediction.timings_ms["total"] = round(prediction.timings_ms["total"] + decode_ms, 2)
        return prediction

    def predict_batch(self, sources: Sequence[ImageSource]) -> list[Prediction | ImageLoadError]:
        """Predict many images in one model call each; a file that fails to load yields its ImageLoadError."""
        loaded: list[tuple[int, np.ndarray, tuple[int, int], str]] = []
        results: list[Prediction | ImageLoadError | None] = [None] * len(sources)
        for index, source in enumerate(sources):
            name = Path(source).name if isinstance(source, str | Path) else f"image {index}"
            try:
                image, size = self.load(source, name)
            except ImageLoadError as error:
                results[index] = error
                continue
            loaded.append((index, image, size, name))
        if loaded:
            predictions = self.predict_arrays([x[1] for x in loaded], [x[2] for x in loaded], [x[3] for x in loaded])
            for (index, *_), prediction in zip(loaded, predictions, strict=True):
                results[index] = prediction
        return results  # type: ignore[return-value]

    def predict_arrays(
        self, images: Sequence[np.ndarray], original_sizes: Sequence[tuple[int, int]], names: Sequence[str]
    ) -> list[Prediction]:
        """Predict decoded RGB uint8 images (the models see them resized; masks come back at the original sizes)."""
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        work = [_work_image(image) for image in images]
        timings["preprocess"] = (time.perf_counter() - clock) * 1000
        probabilities, cams, lesion_maps = [None] * len(images), [None] * len(images), [None] * len(images)
        boxes = [FULL_IMAGE] * len(images)
        if self.segmenter is not None:
            clock = time.perf_counter()
            lesion_maps = self.segment(images)
            timings["segmentation"] = (time.perf_counter() - clock) * 1000
        if self.classifier is not None:
            clock = time.perf_counter()
            probability, cam, boxes = self.classify(images, lesion_maps)
            probabilities, cams = [float(p) for p in probability], list(cam)
            timings["classification"] = (time.perf_counter() - clock) * 1000
        shared = {k: v / len(images) for k, v in timings.items()}
        return [
            self._finish(
                names[i], work[i], original_sizes[i], probabilities[i], cams[i], boxes[i], lesion_maps[i], dict(shared)
            )
            for i in range(len(images))
        ]

    def segment(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The segmenter's lesion probability maps (model size, HxW) for RGB uint8 images."""
        (maps,) = self.segmenter.run(images)
        return [m[0] for m in maps]

    def classify(
        self, images: Sequence[np.ndarray], lesion_maps: Sequence[np.ndarray | None] | None = None
    ) -> tuple[np.ndarray, np.ndarray, list[Box]]:
        """(melanoma probabilities [N], activation maps [N, h, w], the region of each image the classifier saw).

        A classifier trained on lesion-centred crops sees the crop around the segmenter's mask (``lesion_maps``:
        the segmenter's outputs when already computed); any other sees the whole image (``FULL_IMAGE``).
        """
        margin = self.classifier.crop_margin
        boxes = [FULL_IMAGE] * len(images)
        if margin is not None:
            if lesion_maps is None or any(m is None for m in lesion_maps):
                lesion_maps = self.segment(images)
            boxes = [lesion_box(self._lesion_mask(m), margin) for m in lesion_maps]  # at the model's size
            images = [crop_box(image, box) for image, box in zip(images, boxes, strict=True)]
        if self.fill_dark_frames:
            images = [fill_dark_frame(image, DARK_CORNER_GREY) if dark_corners(image) else image for image in images]
        probability, cam = self.classifier.run(images)
        return probability.reshape(-1), cam, boxes

    def _is_training_image(self, image: np.ndarray) -> bool:
        """Whether ``image`` is a copy of one the models were trained on (by content, ``training_image``)."""
        return bool(len(self._trained_on)) and nearest(fingerprint(image), self._trained_on)[1] <= COPY_DISTANCE

    def _lesion_mask(self, lesion_map: np.ndarray) -> np.ndarray:
        """The segmenter's binary mask from its probability map (any size): its threshold and post-processing."""
        config = self.segmenter.config
        return lesion_mask(lesion_map, float(config["threshold"]), config.get("postprocess", {}))

    def _finish(self, name, image, original_size, probability, cam, box, lesion_map, timings) -> Prediction:
        clock = time.perf_counter()
        height, width = image.shape[:2]
        mask = measurements = area = None
        checks: tuple[QualityCheck, ...] = image_checks(image, tuple(original_size))
        if not any(check.code in NOT_ASSESSED for check in checks) and self._is_training_image(image):
            checks += (QUALITY_CHECKS["training_image"],)
        if lesion_map is not None:
            if not any(check.code in NOT_ASSESSED for check in checks):  # no outline is shown to check
                checks += quality_checks(lesion_map, float(self.segmenter.config["threshold"]))
            mask = self._lesion_mask(resize_mask(lesion_map, (width, height)))
            area = float(mask.mean())
            timings["postprocess"] = (time.perf_counter() - clock) * 1000
            clock = time.perf_counter()
            # Measured on the work image, reported in the original photo's pixels (a big JPEG is decoded and
            # analysed smaller: its diameter in those pixels would not be the photo's).
            scale = (original_size[0] / width, original_size[1] / height)
            measurements = measure_lesion(mask, image).rescaled(*scale)
            if any(check.code == "greyscale_image" for check in checks):
                measurements = measurements.without_colour()
            timings["measurements"] = (time.perf_counter() - clock) * 1000
        heatmap = None
        if cam is not None:
            positive = np.maximum(cam.astype(np.float32), 0)
            peak = float(positive.max())
            heatmap = _place_heatmap(positive / peak if peak > 0 else positive, box, (width, height))
        threshold = self.threshold
        decision = None if probability is None else bool(probability >= threshold)
        timings["total"] = sum(timings.values())
        return Prediction(
            name=name,
            melanoma_probability=probability,
            decision=decision,
            threshold=threshold,
            work_mask=mask,
            lesion_area_fraction=area,
            measurements=measurements,
            heatmap=heatmap,
            image=image,
            original_size=tuple(original_size),
            timings_ms={k: round(v, 2) for k, v in timings.items()},
            quality_checks=checks,
        )
