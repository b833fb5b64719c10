"""Preparing the ISIC 2017 layout from (tiny, synthetic) official archives, and downloading them from a local server.

Nothing here touches the real network: downloads go to an ``http.server`` on 127.0.0.1, and any other connection
fails the test.
"""

from __future__ import annotations

import http.server
import io
import re
import shutil
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_lesion
from PIL import Image

from melanoma.data.folder import check_samples
from melanoma.data.isic import read_isic2017
from melanoma.data.prepare import download_file, prepare_isic2017, required_archives
from melanoma.data.samples import DataError

# split -> (archive prefix, [(width, height, melanoma)]); originals are small and not square, like the real ones.
SPLITS = {
    "train": ("ISIC-2017_Training", [(48, 36, 1), (40, 60, 0), (37, 29, 0), (64, 48, 1)]),
    "val": ("ISIC-2017_Validation", [(50, 40, 1), (44, 33, 0)]),
    "test": ("ISIC-2017_Test_v2", [(60, 45, 0), (45, 60, 1)]),
}
SIZE = 32


@dataclass
class Archives:
    """The synthetic official archives and the original pixels they hold."""

    folder: Path
    images: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    masks: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=100)
    return buffer.getvalue()


def _lesion(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    image, mask = synthetic_lesion(max(width, height), seed=seed, radius_fraction=0.35)
    return image[:height, :width], mask[:height, :width]


def _build_archives(folder: Path) -> Archives:
    """Zips and CSVs named and structured like the official ISIC 2017 downloads."""
    folder.mkdir(parents=True)
    archives = Archives(folder)
    index = 0
    for split, (prefix, shapes) in SPLITS.items():
        archives.images[split], archives.masks[split] = {}, {}
        labels = ["image_id,melanoma,seborrheic_keratosis"]
        metadata = ["image_id,age_approximate,sex"]
        with (
            zipfile.ZipFile(folder / f"{prefix}_Data.zip", "w") as data_zip,
            zipfile.ZipFile(folder / f"{prefix}_Part1_GroundTruth.zip", "w") as mask_zip,
        ):
            data_zip.writestr(f"{prefix}_Data/", b"")
            data_zip.writestr(f"__MACOSX/{prefix}_Data/._ISIC_0000000.jpg", b"resource fork")
            for width, height, melanoma in shapes:
                image_id = f"ISIC_{index:07d}"
                image, mask = _lesion(width, height, seed=index)
                index += 1
                archives.images[split][image_id], archives.masks[split][image_id] = image, mask
                data_zip.writestr(f"{prefix}_Data/{image_id}.jpg", _jpeg(image))
                data_zip.writestr(f"{prefix}_Data/{image_id}_superpixels.png", _png(image))
                mask_zip.writestr(f"{prefix}_Part1_GroundTruth/{image_id}_segmentation.png", _png(mask))
                labels.append(f"{image_id},{melanoma}.0,0.0")
                metadata.append(f"{image_id},{index * 5},female")
            data_zip.writestr(f"{prefix}_Data/{prefix}_Data_metadata.csv", "\n".join(metadata) + "\n")
        (folder / f"{prefix}_Part3_GroundTruth.csv").write_text("\n".join(labels) + "\n")
    return archives


@pytest.fixture(scope="module")
def official_archives(tmp_path_factory) -> Archives:
    return _build_archives(tmp_path_factory.mktemp("official") / "archives")


@pytest.fixture(autouse=True)
def _no_real_network(monkeypatch):
    """Fail any connection that is not to this machine, and keep proxies out of the way."""
    real_create_connection = socket.create_connection

    def loopback_only(address, *args, **kwargs):
        if address[0] not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"test tried to reach the network: {address}")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", loopback_only)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


# --- preparing from archives on disk ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(official_archives, tmp_path_factory) -> tuple[Path, dict[str, int]]:
    out_dir = tmp_path_factory.mktemp("prepared") / "isic2017"
    counts = prepare_isic2017(official_archives.folder, out_dir, download=False, size=SIZE, progress=False)
    return out_dir, counts


def test_counts(prepared):
    assert prepared[1] == {"train": 4, "val": 2, "test": 2}


def test_exact_layout(prepared, official_archives):
    out_dir, _ = prepared
    expected = {"labels/ISIC-2017_Training_Part3_GroundTruth.csv", "labels/ISIC-2017_Validation_Part3_GroundTruth.csv"}
    expected |= {"metadata/ISIC-2017_Training_Data_metadata.csv", "metadata/ISIC-2017_Validation_Data_metadata.csv"}
    for split, image_ids in official_archives.images.items():
        expected |= {f"images/{split}/{image_id}.jpg" for image_id in image_ids}
        if split != "test":
            expected |= {f"masks/{split}/{image_id}_segmentation.png" for image_id in image_ids}
    written = {path.relative_to(out_dir).as_posix() for path in out_dir.rglob("*") if path.is_file()}
    assert written == expected


def test_images_are_squashed_to_size(prepared, official_archives):
    out_dir, _ = prepared
    for split, originals in official_archives.images.items():
        for image_id, original in originals.items():
            with Image.open(out_dir / "images" / split / f"{image_id}.jpg") as image:
                assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (SIZE, SIZE))
                pixels = np.asarray(image, dtype=np.float32)
            # Whole image squashed (no crop), bicubic: only JPEG losses (quality 75, large on these small noisy
            # images) separate it from a direct resize, which it matches better than a centre crop or bilinear.
            squashed = np.asarray(Image.fromarray(original).resize((SIZE, SIZE), Image.Resampling.BICUBIC))
            height, width = original.shape[:2]
            side = min(height, width)
            top, left = (height - side) // 2, (width - side) // 2
            cropped = Image.fromarray(original[top : top + side, left : left + side])
            cropped = np.asarray(cropped.resize((SIZE, SIZE), Image.Resampling.BICUBIC))
            error = np.abs(pixels - squashed).mean()
            assert error < 8 and error < np.abs(pixels - cropped).mean(), image_id


def test_masks_are_binary_and_resized_like_the_images(prepared, official_archives):
    out_dir, _ = prepared
    for split in ("train", "val"):
        for image_id, original in official_archives.masks[split].items():
            with Image.open(out_dir / "masks" / split / f"{image_id}_segmentation.png") as mask_image:
                assert (mask_image.mode, mask_image.size) == ("L", (SIZE, SIZE))
                mask = np.asarray(mask_image)
            assert set(np.unique(mask).tolist()) == {0, 255}
            resized = np.asarray(Image.fromarray(original).resize((SIZE, SIZE), Image.Resampling.BILINEAR))
            np.testing.assert_array_equal(mask, np.where(resized > 127, 255, 0))


def test_labels_copied_and_test_ground_truth_withheld(prepared, official_archives):
    out_dir, _ = prepared
    for prefix in ("ISIC-2017_Training", "ISIC-2017_Validation"):
        name = f"{prefix}_Part3_GroundTruth.csv"
        assert (out_dir / "labels" / name).read_bytes() == (official_archives.folder / name).read_bytes()
    assert not (out_dir / "labels" / "ISIC-2017_Test_v2_Part3_GroundTruth.csv").exists()
    assert not (out_dir / "masks" / "test").exists()
    metadata = (out_dir / "metadata" / "ISIC-2017_Training_Data_metadata.csv").read_text().splitlines()
    assert metadata[0] == "image_id,age_approximate,sex"
    assert len(metadata) == 5


@pytest.mark.parametrize(("split", "count", "melanomas"), [("train", 4, 2), ("val", 2, 1), ("test", 2, None)])
def test_read_isic2017_reads_the_result(prepared, split, count, melanomas):
    samples = read_isic2017(prepared[0], split)
    assert len(samples) == count
    if melanomas is None:
        assert all(s.melanoma is None and s.mask_path is None for s in samples)
    else:
        assert sum(s.melanoma for s in samples) == melanomas
    check_samples(samples)


def test_other_size(official_archives, tmp_path):
    prepare_isic2017(official_archives.folder, tmp_path / "out", download=False, size=16, progress=False)
    with Image.open(tmp_path / "out" / "images" / "val" / "ISIC_0000004.jpg") as image:
        assert image.size == (16, 16)


def test_missing_archive_without_download(official_archives, tmp_path):
    partial = tmp_path / "archives"
    partial.mkdir()
    for name in required_archives():
        if name != "ISIC-2017_Validation_Part1_GroundTruth.zip":
            (partial / name).symlink_to(official_archives.folder / name)
    with pytest.raises(DataError, match=r"missing .*ISIC-2017_Validation_Part1_GroundTruth\.zip; download them from"):
        prepare_isic2017(partial, tmp_path / "out", download=False, progress=False)


def test_test_ground_truth_is_not_needed():
    assert required_archives() == [
        "ISIC-2017_Training_Data.zip",
        "ISIC-2017_Training_Part1_GroundTruth.zip",
        "ISIC-2017_Training_Part3_GroundTruth.csv",
        "ISIC-2017_Validation_Data.zip",
        "ISIC-2017_Validation_Part1_GroundTruth.zip",
        "ISIC-2017_Validation_Part3_GroundTruth.csv",
        "ISIC-2017_Test_v2_Data.zip",
    ]


def _copy_archives(official_archives: Archives, folder: Path) -> Path:
    folder.mkdir()
    for name in required_archives():
        (folder / name).write_bytes((official_archives.folder / name).read_bytes())
    return folder


def test_corrupt_archive(official_archives, tmp_path):
    folder = _copy_archives(official_archives, tmp_path / "archives")
    (folder / "ISIC-2017_Test_v2_Data.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"Test_v2_Data\.zip is not a readable zip archive.*download it again"):
        prepare_isic2017(folder, tmp_path / "out", download=False, progress=False)
    assert not (tmp_path / "out").exists()  # the last split's archive, found before the first split is converted


@pytest.mark.parametrize(
    ("saved_as", "from_file", "message"),
    [
        ("ISIC-2017_Training_Data.zip", "ISIC-2017_Training_Part1_GroundTruth.zip",
         r"Training_Data\.zip holds lesion masks \(first: ISIC_0000000_segmentation\), not the dermoscopic images"),
        ("ISIC-2017_Training_Data.zip", "ISIC-2017_Validation_Data.zip",
         r"Training_Data\.zip and .*Training_Part1_GroundTruth\.zip share no image id .*another split's file"),
        ("ISIC-2017_Training_Part3_GroundTruth.csv", "ISIC-2017_Validation_Part3_GroundTruth.csv",
         r"Training_Data\.zip and .*Training_Part3_GroundTruth\.csv share no image id"),
    ],
)  # fmt: skip
def test_an_archive_with_the_wrong_contents_is_named_before_anything_is_written(
    official_archives, tmp_path, saved_as, from_file, message
):
    folder = _copy_archives(official_archives, tmp_path / "archives")
    (folder / saved_as).write_bytes((official_archives.folder / from_file).read_bytes())
    with pytest.raises(DataError, match=message):
        prepare_isic2017(folder, tmp_path / "out", download=False, progress=False)
    assert not (tmp_path / "out").exists()


def test_an_error_page_saved_as_the_labels_csv_is_named(official_archives, tmp_path):
    folder = _copy_archives(official_archives, tmp_path / "archives")
    page = "<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>\n"
    (folder / "ISIC-2017_Validation_Part3_GroundTruth.csv").write_text(page)
    with pytest.raises(DataError, match=r"Validation_Part3_GroundTruth\.csv has no image column"):
        prepare_isic2017(folder, tmp_path / "out", download=False, progress=False)


def test_a_split_is_written_whole_or_not_at_all_and_foreign_files_are_refused(
    official_archives, tmp_path, monkeypatch, capsys
):
    from melanoma.data import prepare

    out = tmp_path / "out"
    real_write_mask = prepare._write_mask

    def interrupted_in_val(data, path, size):
        if path.parent.name == "val":
            raise KeyboardInterrupt
        return real_write_mask(data, path, size)

    monkeypatch.setattr(prepare, "_write_mask", interrupted_in_val)
    with pytest.raises(KeyboardInterrupt):
        prepare_isic2017(official_archives.folder, out, download=False, progress=False)
    # train is whole and readable; val, interrupted, is not there at all (its images were staged, not moved in)
    assert len(read_isic2017(out, "train")) == 4 and all(s.mask_path for s in read_isic2017(out, "train"))
    assert not (out / "images" / "val").exists()
    assert not (out / "labels" / "ISIC-2017_Validation_Part3_GroundTruth.csv").exists()
    monkeypatch.setattr(prepare, "_write_mask", real_write_mask)
    assert prepare_isic2017(official_archives.folder, out, download=False, progress=False) == {
        "train": 4, "val": 2, "test": 2
    }  # fmt: skip
    assert not (out / prepare.STAGING_NAME).exists()
    # a file no archive holds (another run's, other data) is refused rather than left mixed into the split
    (out / "images" / "train" / "ISIC_9999999.jpg").write_bytes(b"from another preparation")
    (out / "images" / "train" / ".DS_Store").write_bytes(b"Finder")  # hidden files are not in the way
    foreign = r"images/train holds 1 file\(s\) the archives do not have \(first: ISIC_9999999"
    with pytest.raises(DataError, match=foreign):
        prepare_isic2017(official_archives.folder, out, download=False, progress=False)
    (out / "images" / "train" / "ISIC_9999999.jpg").unlink()
    prepare_isic2017(official_archives.folder, out, download=False, progress=False)  # again: the same files
    assert sorted(p.name for p in (out / "images" / "train").iterdir()) == [f"ISIC_000000{i}.jpg" for i in range(4)]
    capsys.readouterr()


def test_a_non_empty_folder_without_a_layout_is_refused_as_out(official_archives, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("a user's own file")
    (home / ".profile").write_text("hidden files do not count")
    with pytest.raises(
        DataError, match=r"holds 1 other file\(s\) or folder\(s\) \(first: notes.txt\) and no ISIC layout"
    ):
        prepare_isic2017(official_archives.folder, home, download=False, progress=False)
    assert sorted(p.name for p in home.iterdir()) == [".profile", "notes.txt"]  # nothing was written
    # the archives folder inside --out is not in the way, nor is a folder with only hidden files
    archives = tmp_path / "data" / "archives"
    shutil.copytree(official_archives.folder, archives)
    counts = prepare_isic2017(archives, tmp_path / "data", download=False, progress=False)
    assert counts == {"train": 4, "val": 2, "test": 2}


def test_an_images_archive_without_its_metadata_csv_is_said(official_archives, tmp_path, capsys):
    folder = _copy_archives(official_archives, tmp_path / "archives")
    images_zip = folder / "ISIC-2017_Validation_Data.zip"
    with zipfile.ZipFile(official_archives.folder / images_zip.name) as source, zipfile.ZipFile(images_zip, "w") as out:
        for member in source.namelist():
            if not member.endswith("_metadata.csv"):
                out.writestr(member, source.read(member))
    prepare_isic2017(folder, tmp_path / "out", download=False, progress=False)
    assert "ISIC-2017_Validation_Data.zip holds no *_metadata.csv (age, sex)" in capsys.readouterr().err
    assert not (tmp_path / "out" / "metadata" / "ISIC-2017_Validation_Data_metadata.csv").exists()
    assert (tmp_path / "out" / "metadata" / "ISIC-2017_Training_Data_metadata.csv").is_file()


def test_image_without_mask_in_archives(official_archives, tmp_path):
    folder = _copy_archives(official_archives, tmp_path / "archives")
    masks_zip = folder / "ISIC-2017_Validation_Part1_GroundTruth.zip"
    with zipfile.ZipFile(masks_zip, "w") as archive:
        mask = official_archives.masks["val"]["ISIC_0000004"]
        archive.writestr("ISIC-2017_Validation_Part1_GroundTruth/ISIC_0000004_segmentation.png", _png(mask))
    with pytest.raises(DataError, match=r"no mask for 1 image\(s\) of ISIC-2017_Validation_Data.zip \(first: ISIC_0+5"):
        prepare_isic2017(folder, tmp_path / "out", download=False, progress=False)
    assert not (tmp_path / "out").exists()  # found before anything was written


def test_undecodable_image_in_archive(official_archives, tmp_path):
    folder = _copy_archives(official_archives, tmp_path / "archives")
    with zipfile.ZipFile(folder / "ISIC-2017_Test_v2_Data.zip", "w") as archive:
        archive.writestr("ISIC-2017_Test_v2_Data/ISIC_0000006.jpg", b"truncated")
    with pytest.raises(DataError, match=r"ISIC_0000006\.jpg cannot be decoded"):
        prepare_isic2017(folder, tmp_path / "out", download=False, progress=False)


# --- downloading ------------------------------------------------------------------------------------------------


class _ArchiveServer(http.server.ThreadingHTTPServer):
    """Serves a folder under /2017/, honouring ``Range: bytes=N-`` unless told not to; records each request."""

    def __init__(self, folder: Path):
        super().__init__(("127.0.0.1", 0), _RangeHandler)
        self.folder = folder
        self.requests: list[tuple[str, str | None]] = []
        self.honour_range = True
        self.cut_after: int | None = None  # drop the connection after this many body bytes

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/2017/"


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    server: _ArchiveServer

    def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        range_header = self.headers.get("Range")
        self.server.requests.append((self.path, range_header))
        path = self.server.folder / self.path.removeprefix("/2017/")
        if not self.path.startswith("/2017/") or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        start = int(match.group(1)) if match and self.server.honour_range else 0
        if start >= len(data) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        self.wfile.write(body if self.server.cut_after is None else body[: self.server.cut_after])

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (signature of the base class)
        pass


@pytest.fixture
def archive_server(official_archives) -> Iterator[_ArchiveServer]:
    server = _ArchiveServer(official_archives.folder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_prepare_downloads_missing_archives(archive_server, official_archives, tmp_path):
    archives_dir = tmp_path / "archives"
    archives_dir.mkdir()
    present = "ISIC-2017_Training_Data.zip"
    (archives_dir / present).write_bytes((official_archives.folder / present).read_bytes())
    counts = prepare_isic2017(
        archives_dir, tmp_path / "out", size=SIZE, progress=False, base_url=archive_server.base_url
    )
    assert counts == {"train": 4, "val": 2, "test": 2}
    fetched = sorted(path for path, _ in archive_server.requests)
    assert fetched == sorted(f"/2017/{name}" for name in required_archives() if name != present)
    for name in required_archives():
        assert (archives_dir / name).read_bytes() == (official_archives.folder / name).read_bytes()
    assert not list(archives_dir.glob("*.part"))
    assert len(read_isic2017(tmp_path / "out", "train")) == 4


def test_download_resumes_a_partial_file(archive_server, official_archives, tmp_path):
    name = "ISIC-2017_Training_Data.zip"
    original = (official_archives.folder / name).read_bytes()
    destination = tmp_path / name
    (tmp_path / f"{name}.part").write_bytes(original[:1000])
    download_file(archive_server.base_url + name, destination, progress=False)
    assert archive_server.requests == [(f"/2017/{name}", "bytes=1000-")]
    assert destination.read_bytes() == original
    assert not (tmp_path / f"{name}.part").exists()


def test_download_resumes_after_a_dropped_connection(archive_server, official_archives, tmp_path):
    name = "ISIC-2017_Validation_Data.zip"
    original = (official_archives.folder / name).read_bytes()
    destination = tmp_path / name
    archive_server.cut_after = 1500
    with pytest.raises(DataError, match=f"stopped at 1500 of {len(original)} bytes; run again to resume"):
        download_file(archive_server.base_url + name, destination, progress=False)
    assert (tmp_path / f"{name}.part").read_bytes() == original[:1500]
    assert not destination.exists()
    archive_server.cut_after = None
    download_file(archive_server.base_url + name, destination, progress=False)
    assert archive_server.requests[-1] == (f"/2017/{name}", "bytes=1500-")
    assert destination.read_bytes() == original


def test_download_restarts_when_the_server_ignores_ranges(archive_server, official_archives, tmp_path):
    name = "ISIC-2017_Validation_Part3_GroundTruth.csv"
    original = (official_archives.folder / name).read_bytes()
    (tmp_path / f"{name}.part").write_bytes(b"stale bytes from another file")
    archive_server.honour_range = False
    download_file(archive_server.base_url + name, tmp_path / name, progress=False)
    assert (tmp_path / name).read_bytes() == original


def test_download_of_an_already_complete_part_file(archive_server, official_archives, tmp_path):
    name = "ISIC-2017_Training_Part3_GroundTruth.csv"
    original = (official_archives.folder / name).read_bytes()
    (tmp_path / f"{name}.part").write_bytes(original)
    download_file(archive_server.base_url + name, tmp_path / name, progress=False)
    assert (tmp_path / name).read_bytes() == original


def test_download_restarts_when_the_part_file_is_too_long(archive_server, official_archives, tmp_path):
    name = "ISIC-2017_Validation_Part3_GroundTruth.csv"
    original = (official_archives.folder / name).read_bytes()
    (tmp_path / f"{name}.part").write_bytes(original + b"garbage")
    download_file(archive_server.base_url + name, tmp_path / name, progress=False)
    assert archive_server.requests == [(f"/2017/{name}", f"bytes={len(original) + 7}-"), (f"/2017/{name}", None)]
    assert (tmp_path / name).read_bytes() == original


def test_download_not_found(archive_server, tmp_path):
    with pytest.raises(DataError, match=r"HTTP 404 .*download the file yourself into"):
        download_file(archive_server.base_url + "missing.zip", tmp_path / "missing.zip", progress=False)
    assert not (tmp_path / "missing.zip").exists()


def test_download_unreachable_server(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DataError, match="failed .*run again to resume"):
        download_file(f"http://127.0.0.1:{port}/2017/x.zip", tmp_path / "x.zip", progress=False)


def test_download_shows_progress(archive_server, official_archives, tmp_path, capsys):
    name = "ISIC-2017_Training_Part3_GroundTruth.csv"
    download_file(archive_server.base_url + name, tmp_path / name, progress=True)
    assert name in capsys.readouterr().err


def test_a_write_error_is_reported_as_the_disk_not_the_archive(tmp_path):
    from melanoma.data import prepare

    def full_disk(data, member):
        prepare._save(Image.new("L", (4, 4)), tmp_path / "no-such-folder" / "x.png")

    with pytest.raises(FileNotFoundError) as error:  # an OSError naming the file, not "delete the archive"
        prepare._convert_member(full_disk, b"", "ISIC_0000000.jpg", tmp_path / "archive.zip")
    assert "archive" not in str(error.value) and error.value.filename.endswith("x.png")


@pytest.mark.data
def test_prepare_reproduces_the_stated_data_from_original_photos(isic_data_dir, tmp_path):
    """The 6 validation photos kept at their original size in the data folder, prepared as `melanoma data prepare`
    prepares an archive's images, give back the data folder's own 256 px files (to JPEG rounding), and their masks
    exactly: the command rebuilds the data the shipped models were trained on."""
    from melanoma.data.prepare import _write_image, _write_mask
    from melanoma.inference.image_io import load_image_with_size
    from melanoma.inference.preprocess import resize_rgb

    originals = sorted((isic_data_dir / "fullres" / "val").glob("ISIC_*.jpg"))
    assert len(originals) == 6
    served, bicubic = [], []
    for original in originals:
        image_id = original.stem
        _write_image(original.read_bytes(), tmp_path / f"{image_id}.jpg", 256)
        ours = np.asarray(Image.open(tmp_path / f"{image_id}.jpg").convert("RGB"), dtype=np.float32)
        stated = np.asarray(Image.open(isic_data_dir / "images" / "val" / original.name).convert("RGB"), np.float32)
        assert np.abs(ours - stated).mean() < 0.2, image_id  # measured 0.03-0.09; bilinear at q95: 1.5-3.3
        # Serving squashes an upload with Pillow's bilinear filter (no JPEG step): closer to these quality-75 files
        # than the preparation's own bicubic filter would be (the compression smooths like bilinear does).
        upload, _ = load_image_with_size(original, min_side_for_draft=256)
        served.append(np.abs(resize_rgb(upload, 256, prepared_size=256).astype(np.float32) - stated).mean())
        as_prepared = Image.fromarray(upload).resize((256, 256), Image.Resampling.BICUBIC)
        bicubic.append(np.abs(np.asarray(as_prepared, np.float32) - stated).mean())
        mask_name = f"{image_id}_segmentation.png"
        _write_mask((original.parent / mask_name).read_bytes(), tmp_path / mask_name, 256)
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / mask_name)),
            np.asarray(Image.open(isic_data_dir / "masks" / "val" / mask_name)),
        )
    assert np.mean(served) < np.mean(bicubic)  # measured 2.10 against 2.26 grey levels
