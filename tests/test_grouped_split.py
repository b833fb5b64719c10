"""``data.group_column``: images of one patient or lesion stay on one side of every split."""

from pathlib import Path

import pytest
from conftest import synthetic_lesion, tiny_config
from PIL import Image

from melanoma.data.folder import read_image_folder, stratified_split
from melanoma.data.samples import DataError, Sample
from melanoma.training.datasets import cross_validation_split, load_splits


def _grouped(groups: int = 20, per_group: int = 3, melanoma_groups: int = 6) -> list[Sample]:
    return [
        Sample(f"img_{g:02d}_{k}", Path(f"img_{g:02d}_{k}.jpg"), melanoma=int(g < melanoma_groups), group=f"p{g}")
        for g in range(groups)
        for k in range(per_group)
    ]


def _sides(train: list[Sample], val: list[Sample]) -> tuple[set[str], set[str]]:
    return {s.group for s in train}, {s.group for s in val}


def test_a_grouped_validation_split_keeps_each_group_on_one_side():
    samples = _grouped()
    train, val = stratified_split(samples, 0.2, seed=0)
    train_groups, val_groups = _sides(train, val)
    assert not train_groups & val_groups and len(train) + len(val) == len(samples)
    assert 0.1 <= len(val) / len(samples) <= 0.3 and {s.melanoma for s in val} == {0, 1}
    assert stratified_split(samples, 0.2, seed=0) == (train, val)  # seeded
    # The same images without groups split image by image: some group then falls on both sides.
    ungrouped = [Sample(s.image_id, s.image_path, melanoma=s.melanoma) for s in samples]
    train, val = stratified_split(ungrouped, 0.2, seed=0)
    group_of = {s.image_id: s.group for s in samples}
    assert {group_of[s.image_id] for s in train} & {group_of[s.image_id] for s in val}


def test_grouped_cross_validation_folds_hold_each_group_once():
    samples = _grouped(groups=25)
    seen: list[str] = []
    for fold in range(5):
        train, val = cross_validation_split(samples, 5, fold)
        train_groups, val_groups = _sides(train, val)
        assert not train_groups & val_groups and {s.melanoma for s in val} == {0, 1}
        seen += [s.image_id for s in val]
    assert sorted(seen) == sorted(s.image_id for s in samples)


def test_the_group_column_is_read_from_the_labels_csv_and_checked(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a1", "a2", "b1"):
        (images / f"{name}.jpg").write_bytes(b"")
    labels = tmp_path / "labels.csv"
    labels.write_text("image_id,melanoma,Patient_ID\na1,1,A\na2,1,A\nb1,0,B\n")
    samples = read_image_folder(images, labels, group_column="patient_id")
    assert [(s.image_id, s.group) for s in samples] == [("a1", "A"), ("a2", "A"), ("b1", "B")]
    with pytest.raises(DataError, match="has no column 'lesion_id' .*it has image_id, melanoma, patient_id"):
        read_image_folder(images, labels, group_column="lesion_id")
    labels.write_text("image_id,melanoma,patient_id\na1,1,A\na2,1,\nb1,0,B\n")
    with pytest.raises(DataError, match="line 3: no patient_id for image 'a2'"):
        read_image_folder(images, labels, group_column="patient_id")
    with pytest.raises(DataError, match="pass data.labels_csv"):
        read_image_folder(images, group_column="patient_id")


def test_a_folder_run_records_its_grouped_split(tmp_path, shared_synthetic_isic_dir):
    images = tmp_path / "images"
    images.mkdir()
    rows = ["image_id,melanoma,patient"]
    for g in range(10):
        for k in range(2):
            name = f"p{g}_{k}"
            Image.fromarray(synthetic_lesion(48, seed=2 * g + k)[0]).save(images / f"{name}.jpg")
            rows.append(f"{name},{int(g < 4)},P{g}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    folder = {"data.source": "folder", "data.images_dir": images, "data.labels_csv": tmp_path / "labels.csv"}
    config = tiny_config("classification", tmp_path, **folder, **{"data.group_column": "patient"})
    train, val, provenance = load_splits(config.data)
    assert not {s.group for s in train} & {s.group for s in val}
    assert provenance["split"] == "stratified 80%/20%, grouped by patient, seed 0"
    isic = tiny_config("classification", shared_synthetic_isic_dir, **{"data.group_column": "patient"})
    with pytest.raises(ValueError, match="data.group_column needs data.source=folder"):
        load_splits(isic.data)
