"""The training engine: losses, schedule, a two-step fit on synthetic data, resume, the run directory."""

import csv
import math
import re

import pytest
import torch
from conftest import REPO_ROOT, tiny_config

from melanoma.config import load_config
from melanoma.training.checkpoint import load_checkpoint
from melanoma.training.engine import build_loss, fit, warmup_cosine
from melanoma.training.losses import (
    WeightedBCE,
    bce_dice_loss,
    bce_lovasz_loss,
    bce_tversky_loss,
    positive_weight,
    soft_dice_loss,
    soft_tversky_loss,
)


def test_soft_dice_is_zero_for_a_perfect_prediction_and_high_for_the_opposite():
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :] = 1
    perfect = (target * 2 - 1) * 50
    assert soft_dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-3)
    assert soft_dice_loss(-perfect, target).item() > 0.9
    assert bce_dice_loss(perfect, target).item() < bce_dice_loss(-perfect, target).item()


def test_lovasz_loss_is_zero_for_a_perfect_prediction_and_ranks_worse_ones_higher():
    target = torch.zeros(2, 1, 8, 8)
    target[..., :4, :] = 1
    perfect = (target * 2 - 1) * 50
    half = perfect.clone()
    half[..., :2, :] = -50  # half the lesion missed
    assert bce_lovasz_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-3)
    assert bce_lovasz_loss(perfect, target) < bce_lovasz_loss(half, target) < bce_lovasz_loss(-perfect, target)


def test_tversky_with_equal_weights_is_the_soft_dice_and_with_beta_above_alpha_punishes_misses_more():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:6, 2:6] = 1
    truth = (target * 2 - 1) * 50
    missed = truth.clone()
    missed[..., 2:4, 2:6] = -50  # 8 lesion pixels missed
    extra = truth.clone()
    extra[..., 0:2, 2:6] = 50  # 8 background pixels marked
    for logits in (truth, missed, extra, torch.randn(1, 1, 8, 8)):
        assert soft_tversky_loss(logits, target, alpha=0.5, beta=0.5, eps=0.5).item() == pytest.approx(
            soft_dice_loss(logits, target).item()
        )
    # the default weights (alpha 0.3 on false pixels, beta 0.7 on misses) against the same weights swapped
    assert soft_tversky_loss(missed, target) > soft_tversky_loss(missed, target, alpha=0.7, beta=0.3)
    assert soft_tversky_loss(extra, target) < soft_tversky_loss(extra, target, alpha=0.7, beta=0.3)
    assert soft_tversky_loss(truth, target).item() == pytest.approx(0.0, abs=1e-3)
    assert bce_tversky_loss(truth, target) < bce_tversky_loss(extra, target) < bce_tversky_loss(missed, target)


@pytest.mark.parametrize(
    ("name", "loss"),
    [("bce_dice", bce_dice_loss), ("bce_lovasz", bce_lovasz_loss), ("bce_tversky", bce_tversky_loss)],
)
def test_segmentation_loss_comes_from_the_config(shared_synthetic_isic_dir, name, loss):
    config = tiny_config("segmentation", shared_synthetic_isic_dir, loss=name)
    assert build_loss(config, []) is loss


def test_positive_weight_is_negatives_over_positives():
    assert positive_weight([1, 0, 0, 0, 1, 0]) == 2.0
    with pytest.raises(ValueError, match="both classes"):
        positive_weight([0, 0])


def test_weighted_bce_weighs_positives():
    logits, target = torch.zeros(2), torch.tensor([1.0, 0.0])
    plain = WeightedBCE(1.0)(logits, target)
    weighted = WeightedBCE(3.0)(logits, target)
    assert weighted.item() == pytest.approx(plain.item() * 2.0)  # (3*ln2 + ln2)/2 vs ln2


def test_warmup_then_cosine():
    values = [warmup_cosine(s, 100, 10, 0.01) for s in range(100)]
    assert values[0] == pytest.approx(0.1)
    assert values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0)
    assert values[-1] == pytest.approx(0.01, abs=0.01)
    assert all(b <= a + 1e-12 for a, b in zip(values[10:], values[11:], strict=False))
    assert not any(math.isnan(v) for v in values)


def _rows(run_dir):
    with (run_dir / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_run_directory_describes_itself(tiny_runs, task):
    run_dir = tiny_runs[task]
    assert {"config.yaml", "metrics.csv", "last.pt", "best.pt"} <= {p.name for p in run_dir.iterdir()}
    assert load_config(run_dir / "config.yaml").task == task
    rows = _rows(run_dir)
    assert len(rows) == 1
    monitor = "val_jaccard" if task == "segmentation" else "val_auc"
    assert 0.0 <= float(rows[0][monitor]) <= 1.0
    best = load_checkpoint(run_dir / "best.pt")
    assert "optimizer" not in best  # best.pt is weights + config only
    with (run_dir / "split.csv").open() as handle:  # which images trained it and which chose its best epoch
        split = [(row["image_id"], row["split"]) for row in csv.DictReader(handle)]
    recorded = best["provenance"]["image_ids"]
    assert split == [(i, "train") for i in recorded["train"]] + [(i, "validation") for i in recorded["validation"]]
    assert (len(recorded["train"]), len(recorded["validation"])) == (8, 4)  # the synthetic ISIC train and val
    assert set(load_checkpoint(run_dir / "last.pt")) >= {"model", "optimizer", "scheduler", "epoch", "config"}


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resume_continues_exactly_where_it_stopped(shared_synthetic_isic_dir, tmp_path, ema_decay):
    config = tiny_config("segmentation", shared_synthetic_isic_dir, **{"optim.epochs": 2, "optim.ema_decay": ema_decay})
    fit(config, tmp_path / "straight")
    fit(config, tmp_path / "resumed", stop_after=1)
    assert [r["epoch"] for r in _rows(tmp_path / "resumed")] == ["1"]
    # As if stopped after writing epoch 2's row but before its last.pt: the resumed run must not repeat that row.
    epoch2 = (tmp_path / "straight" / "metrics.csv").read_text().splitlines()[2]
    with (tmp_path / "resumed" / "metrics.csv").open("a") as handle:
        handle.write(epoch2 + "\n")
    fit(config, tmp_path / "resumed", resume=True)
    assert [r["epoch"] for r in _rows(tmp_path / "resumed")] == ["1", "2"]
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert resumed["epoch"] == straight["epoch"] == 1
    assert all(
        torch.allclose(straight["model"][k].float(), resumed["model"][k].float(), atol=1e-6) for k in straight["model"]
    )
    assert resumed["scheduler"]["last_epoch"] == straight["scheduler"]["last_epoch"]
    if ema_decay:
        assert all(
            torch.allclose(straight["ema"][k].float(), resumed["ema"][k].float(), atol=1e-6) for k in straight["ema"]
        )


def test_weight_average_is_validated_and_kept_as_best(shared_synthetic_isic_dir, tmp_path):
    config = tiny_config(
        "classification", shared_synthetic_isic_dir, **{"optim.epochs": 1, "optim.ema_decay": 0.9, "optim.lr": 0.05}
    )
    fit(config, tmp_path / "run")
    (row,) = _rows(tmp_path / "run")
    assert {"val_auc", "raw_val_auc"} <= set(row)
    last, best = load_checkpoint(tmp_path / "run" / "last.pt"), load_checkpoint(tmp_path / "run" / "best.pt")
    weights = [k for k in last["model"] if last["model"][k].is_floating_point() and "running" not in k]
    # The average lags the raw weights; best.pt (the only epoch) holds the average, not the raw weights.
    assert any(not torch.allclose(last["ema"][k], last["model"][k]) for k in weights)
    assert all(torch.equal(best["model"][k], last["ema"][k]) for k in last["ema"])


@pytest.mark.parametrize("decay", [-0.1, 1.0])
def test_weight_average_decay_out_of_range_is_an_error(shared_synthetic_isic_dir, tmp_path, decay):
    from melanoma.config import ConfigError

    with pytest.raises(ConfigError, match=rf"optim.ema_decay={decay}: must be in \[0, 1\)"):
        tiny_config("classification", shared_synthetic_isic_dir, **{"optim.ema_decay": decay})


def test_training_is_seeded(shared_synthetic_isic_dir, tmp_path):
    config = tiny_config("classification", shared_synthetic_isic_dir)
    fit(config, tmp_path / "a")
    fit(config, tmp_path / "b")
    a = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_channels_last_trains_the_same_model_in_another_memory_layout(shared_synthetic_isic_dir, tmp_path, task):
    config = tiny_config(task, shared_synthetic_isic_dir, **{"optim.ema_decay": 0.9})
    fit(config, tmp_path / "nchw")
    fit(
        tiny_config(task, shared_synthetic_isic_dir, **{"optim.ema_decay": 0.9, "channels_last": True}),
        tmp_path / "nhwc",
    )
    assert load_config(tmp_path / "nhwc" / "config.yaml").channels_last
    nhwc = load_checkpoint(tmp_path / "nhwc" / "last.pt")
    convs = [v for v in nhwc["model"].values() if v.dim() == 4]
    assert convs and all(v.is_contiguous(memory_format=torch.channels_last) for v in convs)
    # Same arithmetic in another order: the losses agree to rounding. Weights are not compared: Adam's first steps
    # move a weight by about the learning rate whatever its gradient's size, so rounding can flip their signs; the
    # tiny classifier's random head (logits ~30) turns that into visibly different losses after two steps, so
    # only the U-Net's are compared.
    (a,), (b,) = _rows(tmp_path / "nchw"), _rows(tmp_path / "nhwc")
    for column in ("train_loss", "val_loss"):
        assert math.isfinite(float(b[column]))
        if task == "segmentation":
            assert float(a[column]) == pytest.approx(float(b[column]), rel=2e-3)
    # A channels-last checkpoint loads into the default (NCHW) network, as export and evaluation build it.
    from melanoma.models.factory import build_model

    model = build_model(task, config.model).eval()
    model.load_state_dict(load_checkpoint(tmp_path / "nhwc" / "best.pt")["model"])
    # and the trained network computes the same outputs in either layout (both tasks)
    x = torch.rand(2, 3, config.data.image_size, config.data.image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        nchw = model(x)
        nhwc_out = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(nhwc_out, nchw, rtol=1e-4, atol=1e-3)


def test_resume_without_checkpoint_says_what_to_do(shared_synthetic_isic_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="drop --resume"):
        fit(tiny_config("segmentation", shared_synthetic_isic_dir), tmp_path / "empty", resume=True)


def test_resume_refuses_a_config_that_trains_something_else(shared_synthetic_isic_dir, tmp_path):
    import dataclasses

    config = tiny_config("segmentation", shared_synthetic_isic_dir, **{"optim.epochs": 2})
    config.command = "melanoma train segmentation --config tiny.yaml --out run"
    fit(config, tmp_path / "run", stop_after=1)

    def other(section: str, **values):
        return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **values)})

    for key, changed in (
        ("optim.epochs", other("optim", epochs=4)),
        ("data.image_size", other("data", image_size=48)),
        ("model.arch", other("model", arch="tf_efficientnet_lite1")),
    ):
        with pytest.raises(ValueError, match=rf"cannot resume .*last\.pt with another config \({re.escape(key)}: "):
            fit(changed, tmp_path / "run", resume=True)
    assert [r["epoch"] for r in _rows(tmp_path / "run")] == ["1"]  # nothing was trained on other terms
    # Where the data lie and how fast it runs may change; the run keeps the command that started it.
    faster = dataclasses.replace(config, threads=1, command="melanoma train ... --resume")
    fit(faster, tmp_path / "run", resume=True)
    assert [r["epoch"] for r in _rows(tmp_path / "run")] == ["1", "2"]
    assert load_checkpoint(tmp_path / "run" / "last.pt")["config"]["command"] == config.command
    assert load_config(tmp_path / "run" / "config.yaml").command == config.command


def test_resume_compares_a_key_the_saved_run_predates_with_how_that_run_trained():
    """A run saved before data.label_column read the melanoma column: resuming it on another column is refused."""
    import dataclasses
    from pathlib import Path

    from melanoma.config import to_dict
    from melanoma.training.engine import check_resume_config

    config = load_config(None, ["data.source=folder", "data.images_dir=/x", "data.labels_csv=/x.csv"])
    saved = to_dict(config)
    del saved["data"]["label_column"], saved["data"]["mask_suffix"]  # as written before the keys existed
    check_resume_config(saved, config, Path("run/last.pt"))  # the defaults: how the old run trained
    relabelled = dataclasses.replace(config, data=dataclasses.replace(config.data, label_column="target"))
    with pytest.raises(ValueError, match=r"another config \(data.label_column: 'melanoma' -> 'target'\)"):
        check_resume_config(saved, relabelled, Path("run/last.pt"))


# --- data.prepared_size: big photos are squashed once, when loaded, as the Predictor prepares an upload ------------


def _big_photo(tmp_path, suffix: str, size=(900, 600)):
    import numpy as np
    from conftest import synthetic_lesion
    from PIL import Image

    image, mask = synthetic_lesion(64, seed=5)
    image_path, mask_path = tmp_path / f"big{suffix}", tmp_path / "big_segmentation.png"
    Image.fromarray(np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))).save(image_path)
    Image.fromarray(mask).resize(size, Image.Resampling.NEAREST).save(mask_path)
    return image_path, mask_path


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_big_training_images_are_prepared_exactly_as_the_predictor_prepares_an_upload(tmp_path, suffix):
    import numpy as np

    from melanoma.inference.image_io import load_image
    from melanoma.inference.preprocess import resize_rgb
    from melanoma.training.datasets import _mask_uint8, _read_rgb

    image_path, mask_path = _big_photo(tmp_path, suffix)
    prepared = _read_rgb(image_path, 256)
    # The Predictor: decode (a JPEG at reduced scale, keeping 256 px), then squash to the prepared size.
    served = resize_rgb(load_image(image_path, min_side_for_draft=256), 256, "squash", "linear", prepared_size=256)
    assert prepared.shape == (256, 256, 3)
    np.testing.assert_array_equal(prepared, served)
    assert _read_rgb(image_path, None).shape == (600, 900, 3)  # prepared_size=null: as stored
    mask = _mask_uint8(mask_path, 256)
    stored = _mask_uint8(mask_path, None)
    assert mask.shape == (256, 256) and set(np.unique(mask)) == {0, 1}
    assert mask.mean() == pytest.approx(stored.mean(), abs=0.01)  # the same lesion, squashed


def test_a_dataset_of_big_photos_holds_them_at_the_prepared_size(tmp_path):
    from melanoma.data.samples import Sample
    from melanoma.data.transforms import segmentation_transforms
    from melanoma.training.datasets import LesionDataset

    image_path, mask_path = _big_photo(tmp_path, ".jpg", size=(1200, 800))
    samples = [Sample("big", image_path, mask_path, 1)]
    dataset = LesionDataset(samples, "segmentation", segmentation_transforms(64, train=False), prepared_size=256)
    assert dataset.images[0].shape == (256, 256, 3) and dataset.masks[0].shape == (256, 256)
    assert dataset[0]["image"].shape == (3, 64, 64)
    as_stored = LesionDataset(samples, "segmentation", segmentation_transforms(64, train=False))
    assert as_stored.images[0].shape == (800, 1200, 3)  # 36 times the memory of the prepared one


def test_prepared_size_below_the_input_size_is_a_config_error():
    from melanoma.config import ConfigError

    with pytest.raises(ConfigError, match="data.prepared_size=128 is smaller than data.image_size=224"):
        load_config(None, ["data.image_size=224", "data.prepared_size=128"])
    assert load_config(None, ["data.image_size=512", "data.prepared_size=null"]).data.prepared_size is None
    assert load_config(None).data.prepared_size == 256


def test_runs_from_before_prepared_size_keep_loading_images_as_stored(shared_synthetic_isic_dir, tmp_path):
    from melanoma.config import TrainConfig, load_run_config, to_dict
    from melanoma.inference.export import _prepared_size

    values = to_dict(TrainConfig())
    assert load_run_config(values).data.prepared_size == 256  # a run that recorded it keeps it
    del values["data"]["prepared_size"]
    assert "prepared_size" not in values["data"]
    old = load_run_config(values)
    assert old.data.prepared_size is None and "prepared_size" not in values["data"]  # the input is not changed
    # Export: an old folder run has no prepared size; a new one records its own; a lesion-crop classifier none.
    old.data.source = "folder"
    assert _prepared_size(old) is None
    assert _prepared_size(load_config(None, ["data.source=folder"])) == 256
    assert _prepared_size(load_config(None, ["data.lesion_crop=true"])) is None
    # Resume, again and again with the same command: an old run (its checkpoint has no prepared_size) keeps loading
    # its images as stored, although the command's config now says 64.
    run = tmp_path / "run"
    command = {"optim.epochs": 3, "data.prepared_size": 64}
    fit(tiny_config("segmentation", shared_synthetic_isic_dir, **command), run, stop_after=1)
    state = torch.load(run / "last.pt", weights_only=False)
    del state["config"]["data"]["prepared_size"]  # as a checkpoint written before the key existed
    torch.save(state, run / "last.pt")
    for epochs_done in (2, 3):
        config = tiny_config("segmentation", shared_synthetic_isic_dir, **command)
        fit(config, run, resume=True, stop_after=1)
        assert config.data.prepared_size is None
        assert load_checkpoint(run / "last.pt")["epoch"] + 1 == epochs_done


REPO_CONFIG = REPO_ROOT / "configs" / "tiny.yaml"


def test_a_folder_run_refuses_export_and_resume_once_images_were_added(tmp_path, capsys):
    from conftest import synthetic_lesion
    from PIL import Image

    from melanoma.inference.export import export_run

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()

    def add(index):
        image, mask = synthetic_lesion(64, seed=index)
        Image.fromarray(image).save(images / f"lesion_{index:02d}.png")
        Image.fromarray(mask).save(masks / f"lesion_{index:02d}_segmentation.png")

    for index in range(6):
        add(index)
    folder = ["task=segmentation", "data.source=folder", f"data.images_dir={images}", f"data.masks_dir={masks}"]
    run = tmp_path / "run"
    fit(load_config(REPO_CONFIG, [*folder, "optim.epochs=2"]), run, stop_after=1)
    assert len(load_checkpoint(run / "best.pt")["provenance"]["split_sha256"]) == 64
    add(6)
    with pytest.raises(ValueError, match="the data changed since this run trained"):
        export_run(run, tmp_path / "models")
    assert not (tmp_path / "models" / "segmentation.json").exists()
    with pytest.raises(ValueError, match="data changed since this run trained"):
        fit(load_config(REPO_CONFIG, [*folder, "optim.epochs=2"]), run, resume=True)
    for path in (images / "lesion_06.png", masks / "lesion_06_segmentation.png"):  # as it was: resumes and exports
        path.unlink()
    fit(load_config(REPO_CONFIG, [*folder, "optim.epochs=2"]), run, resume=True)
    export_run(run, tmp_path / "models")
    fit(load_config(REPO_CONFIG, [*folder, "optim.epochs=2"]), run, resume=True)  # all epochs done
    assert "already finished its 2 epochs: nothing to resume" in capsys.readouterr().err


def test_training_says_how_the_data_split_and_warns_of_a_small_validation_set(shared_synthetic_isic_dir, tmp_path,
                                                                               capsys):  # fmt: skip
    from melanoma.inference.calibrate import MIN_PER_CLASS
    from melanoma.training.engine import MIN_VALIDATION_PER_CLASS, describe_split

    assert MIN_VALIDATION_PER_CLASS == MIN_PER_CLASS  # one rule for the epoch and the export's threshold
    fit(tiny_config("classification", shared_synthetic_isic_dir), tmp_path / "run")
    err = capsys.readouterr().err
    assert "data: 8 train images (3 melanoma), 4 validation images (2 melanoma)" in err
    assert "warning: the validation split has 2 melanoma and 2 other images, fewer than 10 of a class" in err
    big = {"n_train": 2000, "n_validation": 150, "n_train_melanoma": 374, "n_validation_melanoma": 30, "split": "x"}
    assert describe_split("classification", big) == [
        "data: 2000 train images (374 melanoma), 150 validation images (30 melanoma); split: x"
    ]
    assert describe_split("segmentation", {"n_train": 8, "n_validation": 2}) == [
        "data: 8 train images, 2 validation images"
    ]
    # the advice fits how the run splits: ISIC's validation split is fixed, a folder's share is a setting
    assert "will be noise; add labelled validation images" in err
    small = {"n_train": 16, "n_validation": 4, "n_train_melanoma": 3, "n_validation_melanoma": 2}
    folder = describe_split("classification", {**small, "dataset": "user folder"}, limit_val=4)[1]
    assert folder.endswith("will be noise; raise or drop data.limit_val or add images or raise data.val_fraction")
    folds = describe_split("classification", {**small, "cv_folds": 5})[1]
    assert folds.endswith("use fewer data.cv_folds (each fold is larger)")
