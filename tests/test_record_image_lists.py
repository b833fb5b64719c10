"""scripts/record_image_lists.py: the image lists of configs exported before exports kept them."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import record_image_lists  # noqa: E402


def _legacy_config(**data):
    """A model config as exported before the lists were recorded: counts, no ``image_ids``."""
    block = {"dataset": record_image_lists.OFFICIAL, "train_split": "train", "validation_split": "val", **data}
    settings = {"data": {"source": "isic2017", "cv_folds": 0, "limit_train": None, "limit_val": None}}
    return {"task": "classification", "training": {"command": "melanoma train ...", "data": block, "config": settings}}


def test_lists_are_filled_from_the_official_splits_when_the_counts_match(shared_synthetic_isic_dir, tmp_path):
    from melanoma.data.isic import read_isic2017

    train, val = read_isic2017(shared_synthetic_isic_dir, "train"), read_isic2017(shared_synthetic_isic_dir, "val")
    counts = {"n_train": len(train), "n_validation": len(val), "n_train_melanoma": sum(s.melanoma for s in train)}
    good = tmp_path / "models"
    good.mkdir()
    (good / "classification.json").write_text(json.dumps(_legacy_config(**counts)))
    argv = [str(good), "--data-dir", str(shared_synthetic_isic_dir)]
    assert record_image_lists.main([*argv, "--check"]) == 1  # a list is missing
    assert record_image_lists.main(argv) == 0
    data = json.loads((good / "classification.json").read_text())["training"]["data"]
    assert data["image_ids"] == {"train": [s.image_id for s in train], "validation": [s.image_id for s in val]}
    assert data["image_ids_recorded_by"].startswith("python scripts/record_image_lists.py")
    # ... and the fingerprints of those image files, which find them under other names too
    from melanoma.inference.fingerprint import FINGERPRINT_METHOD, encode_fingerprints, fingerprint_files

    assert data["image_fingerprints"] == {
        "method": FINGERPRINT_METHOD,
        "train": encode_fingerprints(fingerprint_files([s.image_path for s in train])),
        "validation": encode_fingerprints(fingerprint_files([s.image_path for s in val])),
    }
    assert data["image_fingerprints_recorded_by"].startswith("python scripts/record_image_lists.py")
    assert record_image_lists.main([*argv, "--check"]) == 0


def test_fingerprints_are_added_to_a_config_that_lists_its_images_and_kept_when_there(
    shared_synthetic_isic_dir, tmp_path, capsys
):
    from melanoma.data.isic import read_isic2017

    ids = {
        "train": [s.image_id for s in read_isic2017(shared_synthetic_isic_dir, "train")],
        "validation": [s.image_id for s in read_isic2017(shared_synthetic_isic_dir, "val")],
    }
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "segmentation.json").write_text(json.dumps({**_legacy_config(image_ids=ids), "task": "segmentation"}))
    argv = [str(folder), "--data-dir", str(shared_synthetic_isic_dir)]
    assert record_image_lists.main([*argv, "--check"]) == 1  # lists kept, fingerprints missing
    assert record_image_lists.main(argv) == 0
    assert "fingerprints recorded" in capsys.readouterr().err
    written = (folder / "segmentation.json").read_text()
    assert record_image_lists.main(argv) == 0 and (folder / "segmentation.json").read_text() == written
    assert "fingerprints kept" in capsys.readouterr().err
    # a listed image the data does not hold: nothing is written, and the reason is said
    config = {**_legacy_config(image_ids={**ids, "train": [*ids["train"], "ISIC_9999999"]}), "task": "segmentation"}
    (folder / "segmentation.json").write_text(json.dumps(config))
    assert record_image_lists.main(argv) == 0
    assert "1 of its listed images are not in the data (first: ISIC_9999999)" in capsys.readouterr().err
    assert "image_fingerprints" not in json.loads((folder / "segmentation.json").read_text())["training"]["data"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"n_train": 1999}, "recorded counts differ from the data's: n_train 1999 against"),
        ({"dataset": "a folder of images"}, "trained on 'a folder of images'"),
    ],
)
def test_a_record_it_cannot_vouch_for_is_left_as_it_is(shared_synthetic_isic_dir, tmp_path, capsys, change, reason):
    folder = tmp_path / "models"
    folder.mkdir()
    config = _legacy_config(**change)
    (folder / "classification.json").write_text(json.dumps(config))
    assert record_image_lists.main([str(folder), "--data-dir", str(shared_synthetic_isic_dir)]) == 0
    assert json.loads((folder / "classification.json").read_text()) == config
    assert reason in capsys.readouterr().err


def test_a_fold_run_is_not_given_the_whole_split(shared_synthetic_isic_dir, tmp_path, capsys):
    folder = tmp_path / "models"
    folder.mkdir()
    config = _legacy_config()
    config["training"]["config"]["data"]["cv_folds"] = 5
    (folder / "classification.json").write_text(json.dumps(config))
    assert record_image_lists.main([str(folder), "--data-dir", str(shared_synthetic_isic_dir)]) == 0
    assert "image_ids" not in json.loads((folder / "classification.json").read_text())["training"]["data"]
    assert "not the whole official split" in capsys.readouterr().err


def test_a_fold_config_with_lists_is_left_without_fingerprints_and_said_why(
    shared_synthetic_isic_dir, tmp_path, capsys
):
    from melanoma.data.isic import read_isic2017

    train = [s.image_id for s in read_isic2017(shared_synthetic_isic_dir, "train")]
    config = _legacy_config(
        image_ids={"train": train[2:], "validation": train[:2]}, validation_split="fold 0 of 5 of the train split"
    )
    config["training"]["config"]["data"]["cv_folds"] = 5
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "classification.json").write_text(json.dumps(config))
    assert record_image_lists.main([str(folder), "--data-dir", str(shared_synthetic_isic_dir)]) == 0  # no traceback
    assert "no fingerprints written: a cross-validation fold's record" in capsys.readouterr().err
