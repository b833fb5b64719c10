"""One training loop for both tasks: ``train_one_epoch``, ``evaluate`` and a short ``fit``.

The task supplies the model, the loss and the validation metric; everything else is shared:
AdamW, linear warm-up + cosine decay, optional autocast, an optional moving average of the weights (EMA),
seeding, resumable checkpoints, ``metrics.csv`` rows, a progress bar, and DistributedDataParallel under torchrun.
"""

from __future__ import annotations

import contextlib
import csv
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from melanoma.config import LEGACY_DEFAULTS, TrainConfig, save_config, to_dict
from melanoma.metrics import SegmentationMeter, classification_scores, dice, jaccard
from melanoma.models.factory import build_model, encoder_parameters
from melanoma.training import distributed
from melanoma.training.checkpoint import load_checkpoint, save_checkpoint
from melanoma.training.datasets import LesionDataset, check_same_split, collate, image_fingerprints, load_splits
from melanoma.training.losses import (
    MelanomaKeratosisBCE,
    WeightedBCE,
    bce_dice_loss,
    bce_lovasz_loss,
    bce_tversky_loss,
    positive_weight,
)

MONITOR = {"segmentation": "val_jaccard", "classification": "val_auc"}


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA); DataLoader workers derive from torch's seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast_context(amp: str, device: torch.device):
    """The autocast context for ``amp`` ("auto": fp16 on CUDA, off on CPU; "bf16"; "fp16"; "none")."""
    if amp == "none" or (amp == "auto" and device.type != "cuda"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to ``min_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_loss(config: TrainConfig, train_samples) -> nn.Module | Any:
    if config.task == "segmentation":
        losses = {"bce_dice": bce_dice_loss, "bce_lovasz": bce_lovasz_loss, "bce_tversky": bce_tversky_loss}
        return losses[config.loss]
    melanoma = positive_weight([s.melanoma for s in train_samples])
    if config.model.keratosis_aux:
        return MelanomaKeratosisBCE(melanoma, positive_weight([s.keratosis for s in train_samples]))
    return WeightedBCE(melanoma)


def build_ema(config: TrainConfig, model: nn.Module) -> ModelEmaV3 | None:
    """The weights' exponential moving average for ``optim.ema_decay > 0`` (None when off).

    The decay warms up as ``1 - (1 + step) ** -0.75`` and is capped at ``ema_decay``, so the average forgets the
    random decoder/head of the first steps instead of carrying it for thousands of steps (a short CPU run has
    only ~1500). Buffers (BatchNorm statistics) are averaged too.
    """
    decay = config.optim.ema_decay  # in [0, 1): load_config refuses others
    if decay == 0.0:
        return None
    return ModelEmaV3(model, decay=decay, use_warmup=True, warmup_power=0.75)


def _images(batch, device: torch.device, channels_last: bool) -> torch.Tensor:
    """The batch's images on ``device``, in the network's memory layout (NHWC with ``channels_last``)."""
    images = batch["image"].to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def _loss(logits: torch.Tensor, batch, loss_fn, task: str, device) -> torch.Tensor:
    target = batch["mask"] if task == "segmentation" else batch["label"]
    if "keratosis" in batch:  # model.keratosis_aux: [B, 2] logits against (melanoma, keratosis)
        target = torch.stack([batch["label"], batch["keratosis"]], 1)
    return loss_fn(logits, target.to(device))


def mixup(images: torch.Tensor, alpha: float) -> tuple[torch.Tensor, float, torch.Tensor]:
    """Mixup (Zhang et al. 2018): the batch blended with a shuffled copy of itself, ``lam * x + (1 - lam) * x[perm]``
    with one ``lam ~ Beta(alpha, alpha)`` per batch. Returns the mixed images, ``lam`` and ``perm``; the loss is
    blended the same way (``_train_loss``), which keeps ``pos_weight`` and a keratosis output as they are."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(images.shape[0], device=images.device)
    return lam * images + (1.0 - lam) * images[perm], lam, perm


def _permuted(batch, perm: torch.Tensor):
    keys = ("label", "keratosis")
    return {**batch, **{k: batch[k][perm.to(batch[k].device)] for k in keys if k in batch}}


def _train_loss(model: nn.Module, batch, loss_fn, config: TrainConfig, device) -> torch.Tensor:
    images = _images(batch, device, config.channels_last)
    alpha = config.data.mixup_alpha if config.task == "classification" else 0.0
    if alpha <= 0:
        return _loss(model(images), batch, loss_fn, config.task, device)
    images, lam, perm = mixup(images, alpha)
    logits = model(images)
    return lam * _loss(logits, batch, loss_fn, config.task, device) + (1.0 - lam) * _loss(
        logits, _permuted(batch, perm), loss_fn, config.task, device
    )


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
    info: distributed.DistInfo,
    epoch: int,
    ema: ModelEmaV3 | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss, images/s and the last learning rate.

    ``ema``, when given, is updated after every optimizer step (step count = the scheduler's).
    """
    model.train()
    total_loss, seen, start = 0.0, 0, time.perf_counter()
    steps = (
        len(loader) if config.optim.max_steps_per_epoch is None else min(len(loader), config.optim.max_steps_per_epoch)
    )
    bar = tqdm(
        total=steps,
        desc=f"epoch {epoch + 1}/{config.optim.epochs}",
        disable=not info.is_main,
        mininterval=1.0 if sys.stderr.isatty() else 30.0,
        leave=False,
    )
    for step, batch in enumerate(loader):
        if step >= steps:
            break
        with autocast_context(config.amp, info.device):
            loss = _train_loss(model, batch, loss_fn, config, info.device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.optim.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update(getattr(model, "module", model), step=scheduler.last_epoch)
        count = batch["image"].shape[0]
        total_loss += loss.item() * count
        seen += count
        bar.update(1)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
    bar.close()
    loss_sum, count_sum = distributed.all_sum([total_loss, float(seen)], info)
    elapsed = time.perf_counter() - start
    return {
        "train_loss": loss_sum / max(count_sum, 1),
        "train_images_per_s": count_sum / elapsed,
        "lr": scheduler.get_last_lr()[0],
    }


@torch.no_grad()
def _predict_with_logits(model: nn.Module, loader: DataLoader, config: TrainConfig, info: distributed.DistInfo):
    """Yield (batch, probabilities, logits) over ``loader`` in eval mode (one forward pass per batch)."""
    model.eval()
    for batch in loader:
        with autocast_context(config.amp, info.device):
            logits = model(_images(batch, info.device, config.channels_last)).float()
        if config.task == "classification":
            # the melanoma logit is the first (a model.keratosis_aux network has a keratosis logit after it)
            yield batch, torch.sigmoid(logits[:, 0]).cpu().numpy(), logits
            continue
        maps = []
        for i, full in enumerate(batch["full_mask"]):
            resized = F.interpolate(logits[i : i + 1], size=full.shape, mode="bilinear", align_corners=False)
            maps.append(torch.sigmoid(resized)[0, 0].cpu().numpy())
        yield batch, maps, logits


def predict_loader(model: nn.Module, loader: DataLoader, config: TrainConfig, info: distributed.DistInfo):
    """Yield (batch, probabilities) over ``loader`` in eval mode; segmentation maps are resized to each full mask."""
    for batch, outputs, _ in _predict_with_logits(model, loader, config, info):
        yield batch, outputs


def evaluate(
    model: nn.Module, loader: DataLoader, loss_fn, config: TrainConfig, info: distributed.DistInfo
) -> dict[str, float]:
    """Validation loss and the task metric (official ISIC definitions), reduced over ranks."""
    total_loss, seen = 0.0, 0
    jaccards: list[float] = []
    dices: list[float] = []
    labels: list[int] = []
    probabilities: list[float] = []
    for batch, outputs, logits in _predict_with_logits(model, loader, config, info):
        with torch.no_grad():  # the loss from the same forward pass as the metric (autocast only wraps the network)
            loss = _loss(logits, batch, loss_fn, config.task, info.device)
        total_loss += loss.item() * batch["image"].shape[0]
        seen += batch["image"].shape[0]
        if config.task == "segmentation":
            for probability, full in zip(outputs, batch["full_mask"], strict=True):
                jaccards.append(jaccard(probability >= 0.5, full))
                dices.append(dice(probability >= 0.5, full))
        else:
            labels += batch["label"].int().tolist()
            probabilities += [float(p) for p in outputs]
    loss_sum, count = distributed.all_sum([total_loss, float(seen)], info)
    result = {"val_loss": loss_sum / max(count, 1)}
    if config.task == "segmentation":
        gathered = SegmentationMeter.from_scores(
            distributed.all_gather_lists(jaccards, info), distributed.all_gather_lists(dices, info)
        ).compute()
        result.update({f"val_{k}": gathered[k] for k in ("jaccard", "thresholded_jaccard", "dice")})
    else:
        labels = distributed.all_gather_lists(labels, info)
        probabilities = distributed.all_gather_lists(probabilities, info)
        scores = classification_scores(np.asarray(labels), np.asarray(probabilities))
        result.update(val_auc=scores["auc"], val_average_precision=scores["average_precision"])
    return result


def check_task_data(config: TrainConfig, samples: list) -> None:
    """What the task needs from every image, said with the setting that provides it: a label for each image and
    both classes (classification), a mask for each image (segmentation)."""
    data = config.data
    if config.task == "classification":
        unlabelled = [s for s in samples if s.melanoma is None]
        if unlabelled:
            provide = (
                f"pass data.labels_csv=FILE with the columns image_id,{data.label_column}"
                if data.source == "folder"
                else "the ISIC layout keeps them in labels/ISIC-2017_Training_Part3_GroundTruth.csv (and _Validation_) "
                "under the data folder: restore them (melanoma data prepare writes them)"
            )
            raise ValueError(
                f"classification needs a melanoma label for every image, and {len(unlabelled)} of {len(samples)} "
                f"have none (first: {unlabelled[0].image_path}): {provide}"
            )
        classes = {s.melanoma for s in samples}
        if len(classes) < 2:
            (only,) = classes
            raise ValueError(
                f"all {len(samples)} images are labelled {only} ({'melanoma' if only else 'not melanoma'}): a "
                "classifier needs melanomas and other lesions; add images of the other class"
            )
    if config.task == "classification" and config.model.keratosis_aux:
        unlabelled = [s for s in samples if s.keratosis is None]
        if unlabelled:
            raise ValueError(
                f"model.keratosis_aux needs a seborrheic keratosis label for every image, and {len(unlabelled)} of "
                f"{len(samples)} have none (first: {unlabelled[0].image_path}): give the labels CSV a "
                "seborrheic_keratosis column of 0/1 (the ISIC 2017 ground truth has one), or set "
                "model.keratosis_aux=false"
            )
    if config.task == "segmentation" and any(s.mask_path is None for s in samples):
        first = next(s for s in samples if s.mask_path is None)
        if not data.masks_dir and data.source == "folder":
            raise ValueError(
                f"segmentation needs a lesion mask for every image ({first.image_path} has none): pass "
                f"data.masks_dir=FOLDER holding <image_id>{data.mask_suffix} for each image"
            )
        held = sorted(p.name for p in Path(data.masks_dir).iterdir())[:3] if data.masks_dir else []
        holds = "" if not data.masks_dir else f" (it holds {', '.join(held)}, ...)" if held else " (it is empty)"
        raise ValueError(
            f"segmentation needs a lesion mask for every image: {first.image_path} has none, expected "
            f"{first.image_id}{data.mask_suffix} in {data.masks_dir or 'the masks folder'}{holds}"
            + ("; name the end your masks' names share with data.mask_suffix" if data.source == "folder" else "")
        )


def check_classification_settings(config: TrainConfig) -> None:
    """Refuse the classifier's training settings (mixup, dark frames) in a segmentation run, which would ignore them."""
    alpha = config.data.mixup_alpha  # >= 0: load_config refuses others
    if alpha > 0 and config.task != "classification":
        raise ValueError(
            f"data.mixup_alpha={alpha} is a classification setting (blended images get blended labels); set "
            "data.mixup_alpha=0 for segmentation"
        )
    if config.data.frame_augmentation and config.task != "classification":
        raise ValueError(
            "data.frame_augmentation=true is a classification setting (a frame drawn over a lesion would contradict "
            "its mask); set data.frame_augmentation=false for segmentation"
        )


def make_loaders(config: TrainConfig, info: distributed.DistInfo):
    """Datasets, samplers and loaders for the run (train augmented, validation resized only)."""
    from melanoma.data.transforms import classification_transforms, segmentation_transforms

    check_classification_settings(config)
    train_samples, val_samples, provenance = load_splits(config.data)
    check_task_data(config, train_samples + val_samples)
    if info.is_main:  # what the run's checkpoints keep; the other ranks save none
        provenance["image_fingerprints"] = image_fingerprints(train_samples, val_samples)
    if config.task == "classification" and len({s.melanoma for s in val_samples}) < 2:
        # Fail before training, not after the first epoch: AUC (the model-selection metric) needs both classes.
        raise ValueError(
            f"the validation split ({len(val_samples)} images) has only one class; model selection by AUC needs "
            f"melanoma and non-melanoma images ({_more_validation(provenance, config.data.limit_val)})"
        )
    size, strong, jpeg = config.data.image_size, config.data.strong_augmentation, config.data.jpeg_augmentation
    if config.task == "segmentation":
        train_tf = segmentation_transforms(size, train=True, strong=strong, jpeg=jpeg)
        val_tf = segmentation_transforms(size, train=False)
    else:
        frame = config.data.frame_augmentation
        train_tf = classification_transforms(size, train=True, strong=strong, jpeg=jpeg, frame=frame)
        val_tf = classification_transforms(size, train=False)
    crop = config.data.crop_margin if config.task == "classification" and config.data.lesion_crop else None
    # A lesion-crop classifier crops from the image as stored, as it is served (its export records no prepared size).
    prepared = None if crop is not None else config.data.prepared_size
    keratosis = config.task == "classification" and config.model.keratosis_aux
    train_set = LesionDataset(
        train_samples,
        config.task,
        train_tf,
        crop_margin=crop,
        crop_jitter=True,
        prepared_size=prepared,
        keratosis=keratosis,
    )
    val_set = LesionDataset(
        val_samples,
        config.task,
        val_tf,
        keep_full_mask=config.task == "segmentation",
        crop_margin=crop,
        prepared_size=prepared,
        keratosis=keratosis,
    )
    train_sampler = (
        DistributedSampler(train_set, info.world_size, info.rank, seed=config.seed) if info.enabled else None
    )
    val_sampler = DistributedSampler(val_set, info.world_size, info.rank, shuffle=False) if info.enabled else None
    common = {"batch_size": config.data.batch_size, "num_workers": config.data.num_workers, "collate_fn": collate}
    train_loader = DataLoader(
        train_set,
        sampler=train_sampler,
        shuffle=train_sampler is None,
        drop_last=len(train_set) > config.data.batch_size,
        **common,
    )
    val_loader = DataLoader(val_set, sampler=val_sampler, shuffle=False, **common)
    return train_loader, val_loader, train_samples, provenance


def build_optimizer(config: TrainConfig, model: nn.Module, steps_per_epoch: int):
    backbone, head = encoder_parameters(config.task, model)
    optim = config.optim
    optimizer = torch.optim.AdamW(
        [{"params": backbone, "lr": optim.lr * optim.encoder_lr_scale}, {"params": head, "lr": optim.lr}],
        weight_decay=optim.weight_decay,
    )
    total = optim.epochs * steps_per_epoch
    warmup = int(optim.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total, warmup, optim.min_lr_ratio)
    )
    return optimizer, scheduler


def _append_row(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


#: Fewer validation images of a class than this make the best epoch (and an exported threshold) noise-prone; the
#: export's threshold warning uses the same number (melanoma.inference.calibrate.MIN_PER_CLASS).
MIN_VALIDATION_PER_CLASS = 10


def _more_validation(provenance: dict[str, Any], limit_val: int | None) -> str:
    """How to get a larger validation split, for the way this run splits its data."""
    ways = ["raise or drop data.limit_val"] if limit_val else []
    if "cv_folds" in provenance:
        ways.append("use fewer data.cv_folds (each fold is larger)")
    elif provenance.get("dataset") == "user folder":
        ways += ["add images", "raise data.val_fraction"]
    else:  # the official ISIC validation split: fixed
        ways.append("use the whole official validation split" if limit_val else "add labelled validation images")
    return " or ".join(ways)


def describe_split(task: str, provenance: dict[str, Any], limit_val: int | None = None) -> list[str]:
    """Lines said when training starts: how many images train and validate (and melanomas), and a warning when the
    validation images that choose the best epoch are too few to tell epochs apart."""

    def count(part: str) -> str:
        n, melanoma = provenance[f"n_{part}"], provenance.get(f"n_{part}_melanoma")
        return f"{n} {part} images" + (f" ({melanoma} melanoma)" if melanoma is not None else "")

    how = provenance.get("validation_split") if "cv_folds" in provenance else provenance.get("split")
    lines = [f"data: {count('train')}, {count('validation')}" + (f"; split: {how}" if how else "")]
    melanoma = provenance.get("n_validation_melanoma")
    if task == "classification" and melanoma is not None:
        other = provenance["n_validation"] - melanoma
        if min(melanoma, other) < MIN_VALIDATION_PER_CLASS:
            lines.append(
                f"warning: the validation split has {melanoma} melanoma and {other} other images, fewer than "
                f"{MIN_VALIDATION_PER_CLASS} of a class: the best epoch (and the threshold an export fits on them) "
                f"will be noise; {_more_validation(provenance, limit_val)}"
            )
    return lines


def write_split(path: Path, image_ids: dict[str, list[str]]) -> None:
    """``image_id,split`` rows (train / validation): which images the run learned from and which chose its best
    epoch (and, at export, its threshold). Keep such images out of any held-out evaluation."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "split"])
        writer.writerows([image_id, part] for part, ids in image_ids.items() for image_id in ids)


def _drop_rows_after(path: Path, epoch: int) -> None:
    """Keep only the metrics rows up to ``epoch``: a run stopped between writing a row and last.pt repeats it."""
    if not path.exists():
        return
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, [row for row in reader if int(row["epoch"]) <= epoch]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


#: Settings a resumed run may change: where the data lie and how fast it runs, not what is trained.
RESUME_MAY_CHANGE = frozenset(
    {"command", "threads", "data.num_workers", "data.data_dir", "data.images_dir", "data.masks_dir", "data.labels_csv"}
)


def check_resume_config(saved: dict[str, Any], config: TrainConfig, checkpoint: Path) -> None:
    """Refuse to resume ``checkpoint`` (its config ``saved``) under a config that trains something else.

    A changed epoch count, learning rate, image size, data split or network would continue the saved schedule and
    weights on other terms and mix two runs in one ``metrics.csv``; only ``RESUME_MAY_CHANGE`` may differ.
    """
    before, now = _flatten(saved), _flatten(to_dict(config))
    # A key the saved config lacks was added to the schema after the run started, and the run trained as the key's
    # default does (as LEGACY_DEFAULTS says, where the default changed): a run from before data.label_column read
    # the melanoma column, and resuming it on another column would mix two label sets in one run.
    before = {**_flatten(to_dict(TrainConfig())), **LEGACY_DEFAULTS, **before}
    changed = sorted(k for k in before if k not in RESUME_MAY_CHANGE and before[k] != now.get(k))
    if changed:
        listed = "; ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise ValueError(
            f"cannot resume {checkpoint} with another config ({listed}): resume with the run's own settings "
            f"(they are in {checkpoint.parent / 'config.yaml'}), or train the new settings into another --out"
        )


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def _follow_legacy_settings(config: TrainConfig, saved: dict[str, Any]) -> None:
    """A resumed run keeps the ``LEGACY_DEFAULTS`` keys as it trained them (in place): its own value, or, for a run
    from before the key existed, the value that reproduces how it began. Resuming with the same command again and
    again must not change how the run reads its data."""
    before = _flatten(saved)
    for dotted, legacy in LEGACY_DEFAULTS.items():
        *sections, key = dotted.split(".")
        node = config
        for section in sections:
            node = getattr(node, section)
        setattr(node, key, before.get(dotted, legacy))


def fit(
    config: TrainConfig, out_dir: str | Path, resume: bool = False, stop_after: int | None = None
) -> dict[str, Any]:
    """Train ``config`` into ``out_dir`` (config.yaml, metrics.csv, last.pt, best.pt); returns the best row.

    Args:
        config: the run's configuration.
        out_dir: the run directory.
        resume: continue from ``out_dir/last.pt`` (same epoch, optimizer and schedule state).
        stop_after: leave after this many epochs of this call (the schedule still spans ``optim.epochs``);
            ``resume`` later continues exactly where it stopped.
    """
    info = distributed.setup()
    out = Path(out_dir)
    if config.threads:
        torch.set_num_threads(config.threads)
    state = None
    if resume:
        state = load_checkpoint(out / "last.pt", hint="train first (melanoma train ...) or drop --resume")
        _follow_legacy_settings(config, state["config"])
        check_resume_config(state["config"], config, out / "last.pt")
        if state["epoch"] + 1 >= config.optim.epochs:  # before the data are decoded
            if info.is_main:
                print(f"{out} already finished its {config.optim.epochs} epochs: nothing to resume", file=sys.stderr)
            distributed.teardown(info)
            return state["best"]
    seed_everything(config.seed)
    model = build_model(config.task, config.model).to(info.device)
    if config.channels_last:  # before the optimizer and the weight average see the parameters
        model = model.to(memory_format=torch.channels_last)
    train_loader, val_loader, train_samples, provenance = make_loaders(config, info)
    if info.is_main:  # after the data checks: a run refused for its data leaves no empty folder behind
        out.mkdir(parents=True, exist_ok=True)
        for line in describe_split(config.task, provenance, config.data.limit_val):
            print(line, file=sys.stderr, flush=True)
        print(f"run: {out} (config.yaml, split.csv, metrics.csv per epoch, last.pt, best.pt)", file=sys.stderr)
    loss_fn = build_loss(config, train_samples)
    if isinstance(loss_fn, nn.Module):
        loss_fn = loss_fn.to(info.device)
    steps = (
        len(train_loader)
        if config.optim.max_steps_per_epoch is None
        else min(len(train_loader), config.optim.max_steps_per_epoch)
    )
    optimizer, scheduler = build_optimizer(config, model, steps)
    ema = build_ema(config, model)
    start_epoch, best = 0, {"value": -math.inf, "row": None}
    if state is not None:
        check_same_split(state.get("provenance", {}), provenance, "resuming")
        config.command = state["config"].get("command", config.command)  # the command that started the run
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            if "ema" not in state:
                raise ValueError(f"{out / 'last.pt'} has no weight average; resume with optim.ema_decay=0 as it ran")
            ema.module.load_state_dict(state["ema"])
        start_epoch, best = state["epoch"] + 1, state["best"]
        if info.is_main:
            _drop_rows_after(out / "metrics.csv", start_epoch)
            print(f"resuming {out} at epoch {start_epoch + 1}", file=sys.stderr)
    elif info.is_main and (out / "metrics.csv").exists():
        (out / "metrics.csv").unlink()
    if info.is_main:
        save_config(config, out / "config.yaml")
        write_split(out / "split.csv", provenance["image_ids"])
    net = nn.parallel.DistributedDataParallel(model) if info.enabled else model
    monitor = MONITOR[config.task]
    last_epoch = config.optim.epochs if stop_after is None else min(config.optim.epochs, start_epoch + stop_after)
    for epoch in range(start_epoch, last_epoch):
        seed_everything(config.seed + epoch)
        # albumentations keeps its own generator: reseed it per epoch so a resumed run augments identically.
        train_loader.dataset.transform.set_random_seed(config.seed + epoch)
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        row: dict[str, Any] = {"epoch": epoch + 1}
        row.update(train_one_epoch(net, train_loader, loss_fn, optimizer, scheduler, config, info, epoch, ema))
        distributed.broadcast_buffers(model, info)  # each rank's last forward updated its own BN statistics
        if ema is None:
            row.update(evaluate(model, val_loader, loss_fn, config, info))
        else:  # the average is the model kept; the raw weights' score shows what averaging bought
            distributed.broadcast_buffers(ema.module, info)
            row.update(evaluate(ema.module, val_loader, loss_fn, config, info))
            row[f"raw_{monitor}"] = evaluate(model, val_loader, loss_fn, config, info)[monitor]
        row["epoch_seconds"] = round(time.perf_counter() - start, 1)
        improved = row[monitor] > best["value"]
        if improved:
            best = {"value": float(row[monitor]), "row": {k: float(v) for k, v in row.items()}}
        if info.is_main:
            _append_row(out / "metrics.csv", row)
            extra = {"config": to_dict(config), "provenance": provenance, "best": best}
            kept = model if ema is None else ema.module
            if improved:
                save_checkpoint(out / "best.pt", model=kept.state_dict(), epoch=epoch, metrics=best["row"], **extra)
            averaged = {} if ema is None else {"ema": ema.module.state_dict()}
            save_checkpoint(
                out / "last.pt",
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                epoch=epoch,
                **averaged,
                **extra,
            )
            shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
            print(shown + (" *" if improved else ""), file=sys.stderr, flush=True)
        distributed.barrier(info)
    distributed.teardown(info)
    return best
