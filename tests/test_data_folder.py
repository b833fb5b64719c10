"""A user's own folder of images: reading, stratified splitting and validation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_lesion
from PIL import Image

from melanoma.data.folder import check_samples, read_image_folder, stratified_split
from melanoma.data.samples import DataError, Sample, read_labels_csv, read_mask

SUFFIXES = (".jpg", ".png", ".bmp", ".tif", ".webp", ".tiff")  # .jpeg counts as .jpg


def _write_folder(root: Path, count: int = 6, positives: int = 2) -> tuple[Path, Path, Path]:
    """Images in every supported format, their masks and a labels CSV with an extra column."""
    images_dir, masks_dir = root / "images", root / "masks"
    images_dir.mkdir(parents=True)
    masks_dir.mkdir()
    rows = ["image_id,melanoma,notes"]
    for index in range(count):
        image_id = f"lesion_{index:02d}"
        image, mask = synthetic_lesion(32, seed=index)
        Image.fromarray(image).save(images_dir / f"{image_id}{SUFFIXES[index % len(SUFFIXES)]}")
        Image.fromarray(mask).save(masks_dir / f"{image_id}_segmentation.png")
        rows.append(f"{image_id},{int(index < positives)},x")
    labels_csv = root / "labels.csv"
    labels_csv.write_text("\n".join(rows) + "\n")
    return images_dir, labels_csv, masks_dir


@pytest.fixture
def user_folder(tmp_path: Path) -> tuple[Path, Path, Path]:
    return _write_folder(tmp_path / "user")


def _labelled(count: int, positives: int) -> list[Sample]:
    return [Sample(f"img_{i:03d}", Path(f"img_{i:03d}.jpg"), None, int(i < positives)) for i in range(count)]


# --- read_image_folder ------------------------------------------------------------------------------------------


def test_reads_images_labels_and_masks(user_folder):
    images_dir, labels_csv, masks_dir = user_folder
    samples = read_image_folder(images_dir, labels_csv, masks_dir, require_masks=True)
    assert [s.image_id for s in samples] == [f"lesion_{i:02d}" for i in range(6)]
    assert {s.image_path.suffix for s in samples} == set(SUFFIXES)
    assert [s.melanoma for s in samples] == [1, 1, 0, 0, 0, 0]
    assert all(s.mask_path == masks_dir / f"{s.image_id}_segmentation.png" for s in samples)
    check_samples(samples)


def test_images_only(user_folder):
    samples = read_image_folder(user_folder[0])
    assert len(samples) == 6
    assert all(s.melanoma is None and s.mask_path is None for s in samples)


def test_accepts_str_paths(user_folder):
    images_dir, labels_csv, masks_dir = user_folder
    assert len(read_image_folder(str(images_dir), str(labels_csv), str(masks_dir))) == 6


def test_optional_masks_may_be_missing(user_folder):
    images_dir, _, masks_dir = user_folder
    (masks_dir / "lesion_03_segmentation.png").unlink()
    samples = read_image_folder(images_dir, masks_dir=masks_dir)
    assert [s.mask_path is None for s in samples] == [False, False, False, True, False, False]


def test_masks_beside_images_are_not_images(user_folder):
    images_dir, labels_csv, masks_dir = user_folder
    for mask in masks_dir.iterdir():
        mask.rename(images_dir / mask.name)
    Image.new("RGB", (32, 32)).save(images_dir / "lesion_00_superpixels.png")
    samples = read_image_folder(images_dir, labels_csv, images_dir, require_masks=True)
    assert [s.image_id for s in samples] == [f"lesion_{i:02d}" for i in range(6)]


def test_required_mask_missing(user_folder):
    images_dir, labels_csv, masks_dir = user_folder
    (masks_dir / "lesion_03_segmentation.png").unlink()
    with pytest.raises(DataError, match=r"lesion_03\.\w+ has no mask: expected .*lesion_03_segmentation\.png"):
        read_image_folder(images_dir, labels_csv, masks_dir, require_masks=True)
    for mask in masks_dir.glob("*_segmentation.png"):  # masks named another way: the error shows what is there
        mask.rename(mask.with_name(mask.name.replace("_segmentation", "_mask")))
    with pytest.raises(DataError, match=r"\(the folder holds lesion_00_mask\.png, lesion_01_mask\.png, lesion_02_mask"):
        read_image_folder(images_dir, labels_csv, masks_dir, require_masks=True)


def test_required_masks_without_folder(user_folder):
    with pytest.raises(DataError, match="no masks folder"):
        read_image_folder(user_folder[0], require_masks=True)


def test_missing_masks_folder(user_folder, tmp_path):
    with pytest.raises(DataError, match="masks folder .* does not exist"):
        read_image_folder(user_folder[0], masks_dir=tmp_path / "nowhere")


def test_csv_missing_column(user_folder):
    images_dir, labels_csv, _ = user_folder
    labels_csv.write_text("image_id,label\nlesion_00,1\n")
    with pytest.raises(DataError, match="no column 'melanoma'.*expected a header 'image_id,melanoma'.*--label-column"):
        read_image_folder(images_dir, labels_csv)


def test_isic_2020_csv_is_read_with_its_label_column(user_folder):
    """ISIC 2020's ground truth names the image image_name and the label target, beside other columns."""
    images_dir, labels_csv, _ = user_folder
    rows = labels_csv.read_text().splitlines()[1:]
    labels_csv.write_text(
        "image_name,patient_id,benign_malignant,target\n"
        + "".join(f"{row.split(',')[0]},IP_{i // 2},x,{row.split(',')[1]}\n" for i, row in enumerate(rows))
    )
    expected = "no column 'melanoma'.*--label-column target .evaluate, calibrate. or data.label_column=target"
    with pytest.raises(DataError, match=expected):
        read_image_folder(images_dir, labels_csv)
    samples = read_image_folder(images_dir, labels_csv, label_column="target", group_column="patient_id")
    assert [s.melanoma for s in samples] == [1, 1, 0, 0, 0, 0]
    assert [s.group for s in samples] == ["IP_0", "IP_0", "IP_1", "IP_1", "IP_2", "IP_2"]


def test_isic_2019_csv_reads_float_labels_of_its_mel_column(user_folder):
    images_dir, labels_csv, _ = user_folder
    rows = labels_csv.read_text().splitlines()[1:]
    labels_csv.write_text("image,MEL,NV\n" + "".join(f"{r.split(',')[0]},{float(r.split(',')[1])},0.0\n" for r in rows))
    samples = read_image_folder(images_dir, labels_csv, label_column="MEL")
    assert [s.melanoma for s in samples] == [1, 1, 0, 0, 0, 0]


def test_a_csv_with_two_image_columns_says_which_one_it_matched(user_folder):
    images_dir, labels_csv, _ = user_folder
    rows = labels_csv.read_text().splitlines()[1:]
    labels_csv.write_text("image_id,image_name,melanoma\n" + "".join(f"{1000 + i},{r}\n" for i, r in enumerate(rows)))
    with pytest.raises(
        DataError,
        match="matched on its column 'image_id', the first it has of image_id, image_name: if 'image_name' holds "
        "the file names, name it with --id-column",
    ):
        read_image_folder(images_dir, labels_csv)
    samples = read_image_folder(images_dir, labels_csv, id_column="image_name")  # as --id-column image_name
    assert [s.melanoma for s in samples] == [1, 1, 0, 0, 0, 0]


def test_csv_without_an_image_column(user_folder):
    images_dir, labels_csv, _ = user_folder
    labels_csv.write_text("file,melanoma\nlesion_00,1\n")
    with pytest.raises(
        DataError, match="no image column .*image_id or image_name or isic_id or image.*it has file.*--id-column"
    ):
        read_image_folder(images_dir, labels_csv)


def test_a_clinics_own_image_column_is_read_when_named(user_folder):
    """--id-column: a CSV whose images are named in a column of its own (file names with their suffix), saved by a
    European spreadsheet (semicolons), with a keratosis column read through the same names."""
    images_dir, labels_csv, _ = user_folder
    rows = [row.split(",")[:2] for row in labels_csv.read_text().splitlines()[1:]]
    labels_csv.write_text("Filename; Melanoma; seborrheic_keratosis\n" + "".join(f"{i}.jpg;{m};0\n" for i, m in rows))
    with pytest.raises(DataError, match="no image column .*it has filename, melanoma"):
        read_image_folder(images_dir, labels_csv)
    samples = read_image_folder(images_dir, labels_csv, id_column="FileName")
    assert [s.melanoma for s in samples] == [1, 1, 0, 0, 0, 0] and {s.keratosis for s in samples} == {0}
    with pytest.raises(DataError, match="has no column 'file_name' .--id-column.; it has filename, melanoma"):
        read_image_folder(images_dir, labels_csv, id_column="file_name")


def test_label_not_binary(user_folder):
    images_dir, labels_csv, _ = user_folder
    labels_csv.write_text(labels_csv.read_text().replace("lesion_04,0", "lesion_04,2"))
    with pytest.raises(DataError, match=r"line 6: melanoma label '2' is not 0 or 1"):
        read_image_folder(images_dir, labels_csv)
    labels_csv.write_text(labels_csv.read_text().replace("lesion_04,2", "lesion_04,"))
    with pytest.raises(DataError, match=r"line 6: image 'lesion_04' has no melanoma label; give it 0 or 1, or remove"):
        read_image_folder(images_dir, labels_csv)


def test_image_without_label(user_folder):
    images_dir, labels_csv, _ = user_folder
    lines = labels_csv.read_text().splitlines()
    labels_csv.write_text("\n".join(line for line in lines if not line.startswith("lesion_05")) + "\n")
    with pytest.raises(DataError, match=r"lesion_05\.\w+ has no label in .*add a row 'lesion_05,<0 or 1>'"):
        read_image_folder(images_dir, labels_csv)


def test_unlabelled_images_say_why_when_their_names_tell(user_folder):
    images_dir, labels_csv, _ = user_folder
    first = sorted(images_dir.iterdir())[0]
    Image.new("L", (16, 16)).save(images_dir / f"{first.stem}_mask.png")  # a mask kept beside the images
    with pytest.raises(DataError, match=r"followed by '_mask\.png'.*`--mask-suffix _mask\.png`"):
        read_image_folder(images_dir, labels_csv)
    (images_dir / f"{first.stem}_mask.png").unlink()
    text = labels_csv.read_text()
    labels_csv.write_text(text.replace("lesion_", "case_"))  # the CSV's ids and the file names never meet
    with pytest.raises(DataError, match=r"No image matches any row: the CSV's ids begin 'case_\d+'.*named 'lesion_"):
        read_image_folder(images_dir, labels_csv)


def test_label_without_image(user_folder):
    images_dir, labels_csv, _ = user_folder
    next(images_dir.glob("lesion_02.*")).unlink()
    with pytest.raises(DataError, match="lists image 'lesion_02' but .* has no image with that name"):
        read_image_folder(images_dir, labels_csv)


def test_rows_without_an_image_may_be_skipped_to_score_a_subset(user_folder):
    images_dir, labels_csv, _ = user_folder
    next(images_dir.glob("lesion_02.*")).unlink()
    samples = read_image_folder(images_dir, labels_csv, ignore_rows_without_image=True)
    assert [s.image_id for s in samples] == ["lesion_00", "lesion_01", "lesion_03", "lesion_04", "lesion_05"]


def test_missing_csv(user_folder, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_image_folder(user_folder[0], tmp_path / "labels.csv")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="is empty"):
        read_image_folder(tmp_path / "empty")


def test_folder_of_masks_only(user_folder):
    with pytest.raises(DataError, match="only masks"):
        read_image_folder(user_folder[2])


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_image_folder(tmp_path / "nowhere")


def test_two_images_with_one_stem(user_folder):
    images_dir = user_folder[0]
    Image.new("RGB", (32, 32)).save(images_dir / "lesion_00.png")
    with pytest.raises(DataError, match="share the id 'lesion_00'"):
        read_image_folder(images_dir)


# --- stratified_split -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "positives", "val_fraction", "val_count", "val_positives"),
    [(50, 10, 0.2, 10, 2), (100, 20, 0.3, 30, 6), (40, 8, 0.25, 10, 2)],
)
def test_split_is_stratified(count, positives, val_fraction, val_count, val_positives):
    samples = _labelled(count, positives)
    train, val = stratified_split(samples, val_fraction=val_fraction, seed=0)
    assert len(val) == val_count
    assert sum(s.melanoma for s in val) == val_positives
    assert sum(s.melanoma for s in train) == positives - val_positives
    assert {s.image_id for s in train} | {s.image_id for s in val} == {s.image_id for s in samples}
    assert not {s.image_id for s in train} & {s.image_id for s in val}


def test_split_keeps_input_order():
    samples = _labelled(50, 10)
    train, val = stratified_split(samples)
    order = {s.image_id: i for i, s in enumerate(samples)}
    assert [order[s.image_id] for s in train] == sorted(order[s.image_id] for s in train)
    assert [order[s.image_id] for s in val] == sorted(order[s.image_id] for s in val)


def test_split_is_reproducible_with_a_seed():
    samples = _labelled(60, 12)
    assert stratified_split(samples, seed=7) == stratified_split(list(samples), seed=7)
    assert stratified_split(samples, seed=7)[1] != stratified_split(samples, seed=8)[1]


def test_split_needs_labels():
    samples = [*_labelled(10, 3), Sample("unlabelled", Path("unlabelled.jpg"))]
    with pytest.raises(DataError, match="1 sample.*no label.*unlabelled"):
        stratified_split(samples)


def test_a_set_without_any_label_is_split_at_random():
    samples = [Sample(f"x{i}", Path(f"x{i}.jpg"), Path(f"x{i}_segmentation.png")) for i in range(10)]
    train, val = stratified_split(samples, 0.2, seed=0)
    assert len(train) == 8 and len(val) == 2 and {s.image_id for s in train + val} == {s.image_id for s in samples}
    assert stratified_split(samples, 0.2, seed=0) == (train, val)


def test_split_needs_two_samples_per_class():
    with pytest.raises(DataError, match="at least 2 samples"):
        stratified_split(_labelled(10, 1))


@pytest.mark.parametrize("val_fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_fraction_out_of_range(val_fraction):
    with pytest.raises(DataError, match="between 0 and 1"):
        stratified_split(_labelled(10, 5), val_fraction=val_fraction)


# --- check_samples ----------------------------------------------------------------------------------------------


@pytest.fixture
def samples(user_folder) -> list[Sample]:
    images_dir, labels_csv, masks_dir = user_folder
    return read_image_folder(images_dir, labels_csv, masks_dir, require_masks=True)


def test_check_passes_on_good_data(samples):
    check_samples(samples)
    check_samples(samples, check_pixels=False)


def test_check_empty():
    with pytest.raises(DataError, match="no samples"):
        check_samples([])


def test_check_corrupt_image(samples):
    samples[1].image_path.write_bytes(b"this is not an image")
    with pytest.raises(DataError, match=rf"{samples[1].image_path.name} cannot be read as an image"):
        check_samples(samples)
    check_samples(samples, check_pixels=False)


def test_check_truncated_jpeg(samples):
    jpeg = next(s.image_path for s in samples if s.image_path.suffix == ".jpg")
    big, _ = synthetic_lesion(256, seed=3)
    Image.fromarray(big).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[:2000])
    with pytest.raises(DataError, match=rf"{jpeg.name} cannot be read.*re-export it or remove it"):
        check_samples(samples)


def test_check_mask_size_differs(samples):
    Image.new("L", (20, 24)).save(samples[2].mask_path)
    with pytest.raises(DataError, match=r"mask .*lesion_02_segmentation\.png is 20x24 but its image .* is 32x32"):
        check_samples(samples)


def test_check_image_without_mask(samples):
    samples[4] = replace(samples[4], mask_path=None)
    with pytest.raises(DataError, match=r"lesion_04\.\w+ has no mask while 5 other image\(s\) have one"):
        check_samples(samples)


def test_check_mask_file_gone(samples):
    samples[0].mask_path.unlink()
    with pytest.raises(DataError, match=r"mask .*lesion_00_segmentation\.png .* does not exist"):
        check_samples(samples)


def test_check_image_without_label(samples):
    samples[3] = replace(samples[3], melanoma=None)
    with pytest.raises(DataError, match=r"lesion_03\.\w+ has no label while 5 other"):
        check_samples(samples)


def test_check_label_not_binary(samples):
    samples[3] = replace(samples[3], melanoma=2)
    with pytest.raises(DataError, match="melanoma label 2; use 0 or 1"):
        check_samples(samples)


def test_check_duplicate_ids(samples):
    with pytest.raises(DataError, match="appears twice"):
        check_samples([*samples, samples[0]])


def test_check_sixteen_bit_image(samples, tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((32, 32), 40000, np.uint16)).save(path)
    samples[0] = replace(samples[0], image_path=path)
    with pytest.raises(DataError, match=r"deep\.png has pixel mode 'I;16'.*convert it"):
        check_samples(samples)


def test_check_lists_every_problem(samples):
    for sample in samples:
        sample.image_path.write_bytes(b"broken")
    with pytest.raises(DataError, match=r"^6 problem\(s\) in the data") as error:
        check_samples(samples)
    assert str(error.value).count("cannot be read") == 6


# --- Mask files from other tools --------------------------------------------------------------------------------


def _lesion() -> np.ndarray:
    mask = np.zeros((20, 30), bool)
    mask[5:12, 8:20] = True
    return mask


def _palette(mask: np.ndarray, lesion_rgb: tuple[int, int, int]) -> Image.Image:
    image = Image.fromarray(mask.astype(np.uint8), mode="L").convert("P")
    image.putpalette([0, 0, 0, *lesion_rgb] + [0] * 762)
    return image


MASK_FORMATS = {
    "official {0, 255}": lambda m: Image.fromarray(m.astype(np.uint8) * 255),
    "label map {0, 1}": lambda m: Image.fromarray(m.astype(np.uint8)),
    "bilevel": lambda m: Image.fromarray(m),
    "16-bit {0, 65535}": lambda m: Image.fromarray(m.astype(np.uint16) * 65535),
    "16-bit {0, 1}": lambda m: Image.fromarray(m.astype(np.uint16)),
    "red lesion on black (RGB)": lambda m: Image.fromarray(np.stack([m * 255, m * 0, m * 0], -1).astype(np.uint8)),
    "palette, red lesion": lambda m: _palette(m, (255, 0, 0)),
    "palette, dark blue lesion": lambda m: _palette(m, (0, 0, 128)),
    "label map {0, 1, 2}, lesion as 2": lambda m: Image.fromarray(m.astype(np.uint8) * 2),
    "red lesion on a transparent white layer (RGBA)": lambda m: Image.fromarray(
        np.where(m[..., None], [255, 0, 0, 255], [255, 255, 255, 0]).astype(np.uint8), mode="RGBA"
    ),
    "lesion in the alpha channel only (LA)": lambda m: Image.fromarray(
        np.stack([np.zeros_like(m, np.uint8), m.astype(np.uint8) * 255], -1), mode="LA"
    ),
}


@pytest.mark.parametrize("kind", MASK_FORMATS)
def test_read_mask_finds_the_lesion_whatever_tool_saved_it(tmp_path, kind):
    mask = _lesion()
    path = tmp_path / "m_segmentation.png"
    MASK_FORMATS[kind](mask).save(path)
    read = read_mask(path)
    assert read.dtype == bool and read.shape == mask.shape
    assert (read == mask).all()


def test_read_mask_keeps_the_official_rule_for_interpolated_masks(tmp_path):
    resized = Image.fromarray(_lesion().astype(np.uint8) * 255).resize((61, 41), Image.Resampling.BILINEAR)
    assert len(np.unique(np.asarray(resized))) > 2  # soft edges: many gray values
    resized.save(tmp_path / "soft.png")
    assert (read_mask(tmp_path / "soft.png") == (np.asarray(resized) > 127)).all()
    Image.fromarray(np.ones((4, 4), np.uint8)).save(tmp_path / "all_ones.png")
    assert read_mask(tmp_path / "all_ones.png").all()  # a {0, 1} map that is lesion everywhere
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "empty.png")
    assert not read_mask(tmp_path / "empty.png").any()


def test_read_mask_reads_a_label_map_saved_as_jpeg(tmp_path):
    """A {0, 1} mask saved as JPEG spreads to a few low values: any non-zero one is lesion, near the true outline."""
    mask = np.zeros((60, 80), bool)
    mask[15:45, 20:60] = True
    Image.fromarray(mask.astype(np.uint8)).save(tmp_path / "m.jpg", quality=90)
    read = read_mask(tmp_path / "m.jpg")
    assert (read & mask).sum() / (read | mask).sum() > 0.9  # JPEG blurs the edges: 0.93 here (it read nothing before)
    alpha_constant = np.dstack([np.full(mask.shape + (3,), 255, np.uint8), np.full(mask.shape, 255, np.uint8)])
    alpha_constant[mask, :3] = 0  # an opaque RGBA mask: its alpha says nothing, the grey values do (dark lesion)
    Image.fromarray(alpha_constant, mode="RGBA").save(tmp_path / "opaque.png")
    assert (read_mask(tmp_path / "opaque.png") == ~mask).all()  # two values: the brighter one is lesion, as before


def test_read_mask_names_an_unreadable_file(tmp_path):
    path = tmp_path / "broken_segmentation.png"
    path.write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken_segmentation.png"):
        read_mask(path)


def test_labels_csv_as_spreadsheets_save_it(user_folder):
    images_dir, labels_csv, _ = user_folder
    rows = labels_csv.read_text().splitlines()
    named = [rows[0]] + [f"{row.split(',')[0]}.JPG,{row.split(',', 1)[1]}" for row in rows[1:]]
    labels_csv.write_bytes(("\n".join(named) + "\n").encode("utf-8-sig"))  # byte-order mark, ids as file names
    expected = {row.split(",")[0]: int(row.split(",")[1]) for row in rows[1:]}
    assert {s.image_id: s.melanoma for s in read_image_folder(images_dir, labels_csv)} == expected


def test_labels_csv_with_an_image_listed_twice(user_folder):
    images_dir, labels_csv, _ = user_folder
    text = labels_csv.read_text()
    labels_csv.write_text(text + "lesion_03,0,again\n")  # same label again: fine
    assert len(read_image_folder(images_dir, labels_csv)) == 6
    labels_csv.write_text(text + "lesion_03,1,again\n")
    with pytest.raises(DataError, match=r"line 8: image 'lesion_03' is listed again with another label"):
        read_image_folder(images_dir, labels_csv)


def test_hidden_files_are_not_images(user_folder):
    images_dir, labels_csv, masks_dir = user_folder
    (images_dir / "._lesion_00.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    samples = read_image_folder(images_dir, labels_csv, masks_dir=masks_dir, require_masks=True)
    assert len(samples) == 6 and not any(s.image_id.startswith(".") for s in samples)


@pytest.mark.parametrize("kind", ["label map {0, 1}", "16-bit {0, 1}", "palette, red lesion"])
def test_pre_training_check_accepts_the_masks_read_mask_reads(user_folder, kind):
    images_dir, labels_csv, masks_dir = user_folder
    samples = read_image_folder(images_dir, labels_csv, masks_dir=masks_dir, require_masks=True)
    for sample in samples:
        lesion = read_mask(sample.mask_path)
        MASK_FORMATS[kind](lesion).save(sample.mask_path)
        assert (read_mask(sample.mask_path) == lesion).all()
    check_samples(samples)  # decodes every image and mask: no error


def test_training_data_is_checked_before_the_first_epoch(user_folder):
    from melanoma.config import DataConfig
    from melanoma.training.datasets import load_splits

    images_dir, labels_csv, masks_dir = user_folder
    data = DataConfig(source="folder", images_dir=str(images_dir), labels_csv=str(labels_csv), masks_dir=str(masks_dir))
    train, val, _ = load_splits(data)
    assert len(train) + len(val) == 6
    # A mask of another size and a truncated image: both named, before any training.
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(masks_dir / "lesion_01_segmentation.png")
    (jpeg,) = images_dir.glob("lesion_00.jpg")
    jpeg.write_bytes(jpeg.read_bytes()[:200])
    with pytest.raises(DataError) as error:
        load_splits(data)
    assert "lesion_01_segmentation.png is 16x16 but its image" in str(error.value)
    assert "lesion_00.jpg cannot be read as an image" in str(error.value)


def test_a_segmentation_folder_needs_no_labels(user_folder):
    from melanoma.config import DataConfig
    from melanoma.training.datasets import load_splits

    images_dir, _, masks_dir = user_folder
    train, val, provenance = load_splits(
        DataConfig(source="folder", images_dir=str(images_dir), masks_dir=str(masks_dir))
    )
    assert len(train) + len(val) == 6 and all(s.mask_path for s in train + val)
    assert provenance["split"] == "random 80%/20%, seed 0" and provenance["masks_dir"] == str(masks_dir)


# --- own-data mistakes: each named with the setting that fixes it --------------------------------------------------


def _check_task(task: str, **data) -> None:
    """A folder run's data read and checked for ``task`` as training does before its first epoch."""
    from melanoma.config import load_config
    from melanoma.training.datasets import load_splits
    from melanoma.training.engine import check_task_data

    config = load_config(None, [f"task={task}", "data.source=folder", *(f"data.{k}={v}" for k, v in data.items())])
    train, val, _ = load_splits(config.data)
    check_task_data(config, train + val)


def test_a_classifier_without_labels_or_with_one_class_is_told_what_to_pass(user_folder, tmp_path):
    images_dir, labels_csv, masks_dir = user_folder
    with pytest.raises(ValueError, match="needs a melanoma label for every image.*pass data.labels_csv=FILE"):
        _check_task("classification", images_dir=images_dir)
    benign = tmp_path / "benign.csv"
    benign.write_text("image_id,melanoma\n" + "".join(f"lesion_{i:02d},0\n" for i in range(6)))
    with pytest.raises(ValueError, match="all 6 images are labelled 0 .not melanoma.: a classifier needs melanomas"):
        _check_task("classification", images_dir=images_dir, labels_csv=benign)
    _check_task("classification", images_dir=images_dir, labels_csv=labels_csv)  # both classes: fine


def test_a_classifier_reads_its_labels_from_data_label_column(user_folder, tmp_path):
    """ISIC 2020's CSV layout trains with data.label_column=target; the run records the column it read."""
    from melanoma.config import load_config
    from melanoma.training.datasets import load_splits

    images_dir, labels_csv, _ = user_folder
    renamed = tmp_path / "train.csv"
    renamed.write_text(labels_csv.read_text().replace("image_id,melanoma,notes", "image_name,target,notes"))
    with pytest.raises(DataError, match="--label-column target .evaluate, calibrate. or data.label_column=target"):
        _check_task("classification", images_dir=images_dir, labels_csv=renamed)
    _check_task("classification", images_dir=images_dir, labels_csv=renamed, label_column="target")
    folder = ["data.source=folder", f"data.images_dir={images_dir}", f"data.labels_csv={renamed}"]
    train, val, provenance = load_splits(load_config(None, [*folder, "data.label_column=target"]).data)
    assert sum(s.melanoma for s in train + val) == 2 and provenance["label_column"] == "target"
    assert "label_column" not in load_splits(load_config(None, folder[:2] + [f"data.labels_csv={labels_csv}"]).data)[2]


def test_a_segmenter_without_masks_is_told_where_they_should_be(user_folder):
    images_dir, _, masks_dir = user_folder
    with pytest.raises(ValueError, match="pass data.masks_dir=FOLDER holding <image_id>_segmentation.png"):
        _check_task("segmentation", images_dir=images_dir)
    _check_task("segmentation", images_dir=images_dir, masks_dir=masks_dir)  # every mask there: fine
    for mask in masks_dir.iterdir():  # saved by another tool under another name
        mask.rename(mask.with_name(mask.name.replace("_segmentation", "_mask")))
    with pytest.raises(ValueError, match=r"expected lesion_\d\d_segmentation.png in .* \(it holds lesion_00_mask.png"):
        _check_task("segmentation", images_dir=images_dir, masks_dir=masks_dir)
    _check_task("segmentation", images_dir=images_dir, masks_dir=masks_dir, mask_suffix="_mask.png")  # as named


@pytest.mark.parametrize(
    "layout", ["_mask.png in a folder of its own", ".png in a folder of its own", "_mask.png beside"]
)
def test_masks_named_otherwise_are_found_through_their_suffix(user_folder, tmp_path, layout):
    images_dir, labels_csv, masks_dir = user_folder
    suffix, place = layout.split(" ", 1)
    target = images_dir if place == "beside" else tmp_path / "other_masks"
    target.mkdir(exist_ok=True)
    for mask in sorted(masks_dir.iterdir()):
        mask.rename(target / mask.name.replace("_segmentation.png", suffix))
    expected = (
        "lesion_00_mask.png has no label" if place == "beside" else "expected .*_00_segmentation.png.*--mask-suffix"
    )
    with pytest.raises(DataError, match=expected):  # beside the images, they are read as images without labels
        read_image_folder(images_dir, labels_csv, target, require_masks=True)
    samples = read_image_folder(images_dir, labels_csv, target, require_masks=True, mask_suffix=suffix)
    assert [s.image_id for s in samples] == [f"lesion_{i:02d}" for i in range(6)]  # the masks beside are not images
    assert all(Path(s.mask_path).name == f"{s.image_id}{suffix}" for s in samples)
    check_samples(samples)


def test_masks_under_their_own_suffix_are_never_read_as_images(user_folder, tmp_path):
    """Beside the images with no masks folder given (a classifier's data), in a masks subfolder, and saved .PNG."""
    images_dir, labels_csv, masks_dir = user_folder
    for mask in sorted(masks_dir.iterdir()):
        mask.rename(images_dir / mask.name.replace("_segmentation.png", "_mask.png"))
    samples = read_image_folder(images_dir, labels_csv, mask_suffix="_mask.png")
    assert [s.image_id for s in samples] == [f"lesion_{i:02d}" for i in range(6)]
    assert not any(s.mask_path for s in samples)
    nested = images_dir / "masks"
    nested.mkdir()
    for mask in sorted(images_dir.glob("*_mask.png")):
        mask.rename(nested / mask.name.replace("_mask.png", "_mask.PNG"))
    samples = read_image_folder(images_dir, labels_csv, nested, require_masks=True, mask_suffix="_mask.png")
    assert [Path(s.mask_path).name for s in samples] == [f"lesion_{i:02d}_mask.PNG" for i in range(6)]
    check_samples(samples)


@pytest.mark.parametrize("suffix", ["", "_mask", "masks/_segmentation.png"])
def test_a_mask_suffix_must_end_a_file_name(user_folder, suffix):
    images_dir, _, masks_dir = user_folder
    with pytest.raises(DataError, match="--mask-suffix, data.mask_suffix.*is not the end of a mask's file name"):
        read_image_folder(images_dir, masks_dir=masks_dir, mask_suffix=suffix)


def test_folder_keys_need_the_folder_source_and_the_isic_root_needs_the_isic_source():
    from melanoma.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="data.images_dir set, but data.source is isic2017.*data.source=folder"):
        load_config(None, ["data.images_dir=/x/images"])
    with pytest.raises(ConfigError, match="data.data_dir / --data-dir .* but data.source is folder"):
        load_config(None, ["data.source=folder", "data.images_dir=/x", "data.data_dir=/y"])
    with pytest.raises(ConfigError, match="data.mask_suffix=_mask.png names your own masks, but data.source is isic"):
        load_config(None, ["data.mask_suffix=_mask.png"])
    with pytest.raises(ConfigError, match="data.label_column=target names a column of your own labels CSV"):
        load_config(None, ["data.label_column=target"])
    with pytest.raises(ConfigError, match="data.val_fraction=0.5 splits your own folder, but data.source is isic"):
        load_config(None, ["data.val_fraction=0.5"])
    with pytest.raises(ConfigError, match="optim.epochs=0: train for at least one epoch"):
        load_config(None, ["optim.epochs=0"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=-1", "optim.lr=-1.0: the learning rate must be positive"),
        ("optim.lr=.nan", "optim.lr=nan: the learning rate must be positive"),
        ("data.limit_train=0", r"data.limit_train=0: null \(no limit\) or at least 1"),
        ("optim.max_steps_per_epoch=0", "optim.max_steps_per_epoch=0: null"),
        ("model.drop_rate=2", r"model.drop_rate=2.0: a dropout probability, in \[0, 1\)"),
        ("data.batch_size=0", "data.batch_size=0: at least 1 image per batch"),
        ("data.num_workers=-1", "data.num_workers=-1: 0"),
        ("data.source=folder data.val_fraction=1", "data.val_fraction=1.0: the validation share"),
        ("optim.min_lr_ratio=2", "optim.min_lr_ratio=2.0: the cosine's final fraction"),
        ("threads=0", "threads=0: null"),
    ],
)
def test_config_numbers_out_of_range_are_refused_before_training(override, message):
    """Such a run would otherwise train to the end (a negative learning rate), read 0 as "no limit", or fail only
    after the data were decoded with a message that does not name the key."""
    from melanoma.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message):
        load_config(None, override.split())
    load_config(None, ["optim.lr=4e-4", "data.limit_train=1", "model.drop_rate=0", "optim.ema_decay=0.998"])


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16"])
def test_a_labels_csv_saved_in_another_encoding_says_how_to_save_it(tmp_path, encoding):
    from melanoma.data.samples import read_labels_csv

    path = tmp_path / "labels.csv"
    path.write_bytes("image_id,melanoma,note\nlésion_01,1,tâche\n".encode(encoding))
    with pytest.raises(DataError, match=r"labels.csv is not UTF-8 text .*save it as 'CSV UTF-8'"):
        read_labels_csv(path)


def test_images_in_class_subfolders_are_pointed_out(tmp_path):
    for name in ("benign", "melanoma"):
        (tmp_path / "images" / name).mkdir(parents=True)
        Image.fromarray(synthetic_lesion(32)[0]).save(tmp_path / "images" / name / "a.jpg")
    with pytest.raises(DataError, match="it holds only folders .benign, melanoma.: put the images directly in"):
        read_image_folder(tmp_path / "images")


def test_transparent_images_train_as_they_are_served(tmp_path):
    from melanoma.inference.image_io import load_image
    from melanoma.training.datasets import _read_rgb

    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 120  # half-transparent red: served composited on white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(_read_rgb(tmp_path / "a.png"), load_image(tmp_path / "a.png"))


def test_export_and_resume_refuse_data_that_changed_since_training(user_folder, tmp_path):
    from melanoma.config import DataConfig
    from melanoma.training.datasets import check_same_split, load_splits

    images_dir, labels_csv, masks_dir = user_folder
    data = DataConfig(source="folder", images_dir=str(images_dir), masks_dir=str(masks_dir))
    _, _, before = load_splits(data)
    check_same_split(before, before, "calibrating the export")  # unchanged: fine
    check_same_split({}, before, "resuming")  # a run from before the fingerprint: nothing to compare
    for index in range(6, 9):  # the researcher adds images after training
        image, mask = synthetic_lesion(32, seed=index)
        Image.fromarray(image).save(images_dir / f"lesion_{index:02d}.png")
        Image.fromarray(mask).save(masks_dir / f"lesion_{index:02d}_segmentation.png")
    _, _, after = load_splits(data)
    with pytest.raises(ValueError, match=r"the data changed since this run trained \(4 training and 2 validation"):
        check_same_split(before, after, "calibrating the export")


def test_training_reads_an_exif_rotated_photo_as_shown_like_evaluate_and_serving(tmp_path):
    from melanoma.inference.image_io import load_image
    from melanoma.training.datasets import _mask_uint8, _read_rgb

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    image, mask = synthetic_lesion(64, seed=5)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 96x64, shown turned a quarter: 64x96
    Image.fromarray(image).resize((96, 64)).save(images / "rotated.jpg", exif=exif)
    shown = np.asarray(Image.fromarray(mask).resize((96, 64), Image.Resampling.NEAREST).rotate(-90, expand=True))
    Image.fromarray(shown).save(masks / "rotated_segmentation.png")  # drawn on the image as shown
    samples = read_image_folder(images, masks_dir=masks, require_masks=True)
    check_samples(samples)
    np.testing.assert_array_equal(_read_rgb(images / "rotated.jpg"), load_image(images / "rotated.jpg"))
    assert _read_rgb(images / "rotated.jpg").shape[:2] == _mask_uint8(masks / "rotated_segmentation.png").shape
    # A mask drawn on the stored pixels instead: named, with the EXIF tag as the reason.
    Image.fromarray(shown).rotate(90, expand=True).save(masks / "rotated_segmentation.png")
    with pytest.raises(DataError, match=r"is 96x64 but its image .* is 64x96 as shown; the image carries an EXIF"):
        check_samples(samples)


def test_an_isic_layout_without_labels_points_at_its_labels_files(shared_synthetic_isic_dir):
    from melanoma.config import load_config
    from melanoma.training.engine import check_task_data

    config = load_config(None, ["task=classification", f"data.data_dir={shared_synthetic_isic_dir}"])
    unlabelled = [Sample("ISIC_0000001", Path("ISIC_0000001.jpg"))]
    with pytest.raises(ValueError, match="labels/ISIC-2017_Training_Part3_GroundTruth.csv"):
        check_task_data(config, unlabelled)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Image_ID,Melanoma\nISIC_1,1\nISIC_2,0\n", {"ISIC_1": 1, "ISIC_2": 0}),  # header case
        ("image_id;melanoma;note\nISIC_1;1;x\nISIC_2;0;y\n", {"ISIC_1": 1, "ISIC_2": 0}),  # European Excel
        ("image_id,melanoma\r\nISIC_1,1\r\n,\r\n,,\r\n", {"ISIC_1": 1}),  # empty trailing rows
        ("\ufeffimage_id;melanoma\r\nISIC_1;0\r\n", {"ISIC_1": 0}),  # byte-order mark and semicolons
        ("image_id;melanoma;notes, free text\nISIC_1;1;a, b\n", {"ISIC_1": 1}),  # a comma inside a column name
    ],
)
def test_labels_csv_with_other_separators_cases_and_empty_rows(tmp_path, text, expected):
    from melanoma.data.samples import read_labels_csv

    path = tmp_path / "labels.csv"
    path.write_bytes(text.encode("utf-8"))
    assert read_labels_csv(path) == expected


def test_images_in_subfolders_beside_images_stop_the_read_instead_of_dropping_out(tmp_path):
    images = tmp_path / "images"
    (images / "more").mkdir(parents=True)
    (images / ".cache").mkdir()
    (images / "overlays").mkdir()
    for path in (images / "a.jpg", images / "more" / "b.jpg", images / ".cache" / "c.jpg"):
        Image.fromarray(synthetic_lesion(32)[0]).save(path)
    Image.fromarray(synthetic_lesion(32)[0]).save(images / "overlays" / "00001_a_overlay.png")
    Image.fromarray(synthetic_lesion(32)[1].astype(np.uint8) * 255).save(images / "more" / "b_segmentation.png")
    with pytest.raises(DataError, match=r"has 1 images of its own and 1 more in subfolders \(more/b.jpg\)"):
        read_image_folder(images)
    (images / "more" / "b.jpg").unlink()  # left: a hidden folder, an overlay and a mask, which are not images
    assert [s.image_id for s in read_image_folder(images)] == ["a"]


def test_a_tab_separated_labels_file_is_read(user_folder):
    images_dir, labels_csv, _ = user_folder
    expected = [s.melanoma for s in read_image_folder(images_dir, labels_csv)]
    labels_csv.write_text(labels_csv.read_text().replace(",", "\t"))
    assert [s.melanoma for s in read_image_folder(images_dir, labels_csv)] == expected


def test_a_labels_path_that_is_a_folder_or_an_image_says_so(user_folder):
    images_dir, _, _ = user_folder
    with pytest.raises(DataError, match="is a folder; pass the CSV file itself"):
        read_labels_csv(images_dir)
    image = next(p for p in images_dir.iterdir() if p.suffix == ".jpg")
    with pytest.raises(DataError, match="is an image, not a labels CSV"):
        read_labels_csv(image)
