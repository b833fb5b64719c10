"""The image loader against the hostile-file corpus, plus draft mode, limits and fuzzed files."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from corpus import CORPUS, GRAY16_RANGE, PICTURE_SIZE, build_corpus, corpus_picture, write_bomb_png
from PIL import Image

from melanoma.inference.image_io import ImageLoadError, load_image, load_image_with_size

LOADABLE = [name for name, loads in CORPUS.items() if loads]
REJECTED = [name for name, loads in CORPUS.items() if not loads]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    build_corpus(folder)
    return folder


def _assert_rgb(array: np.ndarray) -> None:
    assert isinstance(array, np.ndarray)
    assert array.dtype == np.uint8
    assert array.ndim == 3 and array.shape[2] == 3
    assert array.flags.writeable


def _sources(path: Path) -> dict[str, object]:
    return {"str": str(path), "path": path, "bytes": path.read_bytes(), "file object": io.BytesIO(path.read_bytes())}


def test_corpus_lists_what_it_builds(corpus_dir: Path) -> None:
    assert sorted(p.name for p in corpus_dir.iterdir()) == sorted(CORPUS)
    assert LOADABLE and REJECTED


@pytest.mark.parametrize("file_name", LOADABLE)
@pytest.mark.parametrize("kind", ["str", "path", "bytes", "file object"])
def test_valid_corpus_files_load_as_uint8_rgb(corpus_dir: Path, file_name: str, kind: str) -> None:
    array = load_image(_sources(corpus_dir / file_name)[kind])
    _assert_rgb(array)
    assert min(array.shape[:2]) >= 8


@pytest.mark.parametrize("file_name", REJECTED)
@pytest.mark.parametrize("kind", ["str", "path", "bytes", "file object"])
def test_invalid_corpus_files_raise_image_load_error(corpus_dir: Path, file_name: str, kind: str) -> None:
    with pytest.raises(ImageLoadError):
        load_image(_sources(corpus_dir / file_name)[kind])


@pytest.mark.parametrize(
    ("file_name", "expected_words"),
    [
        ("empty.jpg", ["empty.jpg", "empty", "0 bytes"]),
        ("text_named.jpg", ["text_named.jpg", "not a recognised image", "JPEG, PNG"]),
        ("truncated.jpg", ["truncated.jpg", "truncated or corrupt", "re-export"]),
        ("corrupt_data.png", ["corrupt_data.png", "truncated or corrupt"]),
        ("bomb_40000x40000.png", ["1600 Mpx", "above the 80 Mpx limit", "downscale"]),
        ("tiny_1x1.png", ["1x1", "at least 16 pixels", "no better than chance"]),
    ],
)
def test_error_messages_name_the_problem(corpus_dir: Path, file_name: str, expected_words: list[str]) -> None:
    with pytest.raises(ImageLoadError) as error:
        load_image(corpus_dir / file_name)
    for word in expected_words:
        assert word in str(error.value)
    assert isinstance(error.value, ValueError)  # callers may catch ValueError


def test_name_argument_is_used_in_messages() -> None:
    with pytest.raises(ImageLoadError, match="'upload #3'"):
        load_image(b"", name="upload #3")


def test_rgb_files_keep_their_pixels(corpus_dir: Path) -> None:
    picture = corpus_picture().astype(int)
    for file_name in ["rgb.png", "rgb.bmp", "rgb.tif"]:
        np.testing.assert_array_equal(load_image(corpus_dir / file_name), picture)
    for file_name in ["rgb.jpg", "rgb.webp", "cmyk.jpg", "palette.png"]:
        difference = np.abs(load_image(corpus_dir / file_name).astype(int) - picture)
        assert difference.mean() < 8, file_name


def test_gray_files_become_three_equal_channels(corpus_dir: Path) -> None:
    for file_name in ["gray.png", "gray16.png", "gray16.tif"]:
        array = load_image(corpus_dir / file_name)
        assert (array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all()


@pytest.mark.parametrize("file_name", ["gray16.png", "gray16.tif"])
def test_16_bit_images_are_scaled_by_their_range_not_clipped(corpus_dir: Path, file_name: str) -> None:
    with Image.open(corpus_dir / file_name) as image:
        assert image.mode.startswith("I")  # really high bit depth on disk
    array = load_image(corpus_dir / file_name)[0, :, 0].astype(int)
    low, high = GRAY16_RANGE
    assert array[0] == 0 and array[-1] == 255  # the 1000..5000 ramp fills 0..255
    assert (np.diff(array) >= 0).all()
    assert len(np.unique(array)) == PICTURE_SIZE[0]  # no clipping: every ramp step stays distinct
    assert high > 255 and low > 0


@pytest.mark.parametrize("file_name", ["rgba.png", "gray_alpha.png"])
def test_transparent_pixels_are_composited_on_white(corpus_dir: Path, file_name: str) -> None:
    array = load_image(corpus_dir / file_name)
    width = array.shape[1]
    assert (array[:, width // 2 :] == 255).all()
    assert (array[:, : width // 2] < 250).any()


def test_animated_gif_loads_its_first_frame(corpus_dir: Path) -> None:
    array = load_image(corpus_dir / "animated.gif")
    assert array.shape == (PICTURE_SIZE[1], PICTURE_SIZE[0], 3)
    red, green, blue = array.reshape(-1, 3).mean(axis=0)
    assert red > 150 and green < 80 and blue < 80


def test_exif_orientation_is_applied(corpus_dir: Path) -> None:
    width, height = PICTURE_SIZE
    array, original_size = load_image_with_size(corpus_dir / "exif_rotated.jpg")
    assert array.shape == (width, height, 3)  # 90° rotation swaps the dimensions
    assert original_size == (height, width)
    # The red block stored top-left ends up top-right after a clockwise rotation.
    corner = width // 3 - 4
    top_right = array[:corner, -corner:].reshape(-1, 3).mean(axis=0)
    top_left = array[:corner, :corner].reshape(-1, 3).mean(axis=0)
    assert top_right[0] > 180 and top_right[1] < 60
    assert top_left[0] < 100


def _jpeg_file(path: Path, size: tuple[int, int], orientation: int | None = None) -> Path:
    width, height = size
    gradient = np.empty((height, width, 3), np.uint8)
    gradient[..., 0] = np.linspace(0, 255, width).astype(np.uint8)[None, :]
    gradient[..., 1] = np.linspace(0, 255, height).astype(np.uint8)[:, None]
    gradient[..., 2] = 128
    options = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif.tobytes()
    Image.fromarray(gradient).save(path, quality=90, **options)
    return path


def _best_time(function, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def test_draft_mode_decodes_big_jpegs_smaller_and_faster(tmp_path: Path) -> None:
    path = _jpeg_file(tmp_path / "big.jpg", (4000, 3000))
    data = path.read_bytes()
    array, original_size = load_image_with_size(data, min_side_for_draft=256)
    assert original_size == (4000, 3000)
    assert array.shape == (375, 500, 3)  # 1/8 scale keeps 375 >= 256 pixels on the shorter side
    _assert_rgb(array)
    draft_time = _best_time(lambda: load_image(data, min_side_for_draft=256))
    full_time = _best_time(lambda: load_image(data))
    assert draft_time < 0.5 * full_time, (draft_time, full_time)


@pytest.mark.parametrize(
    ("size", "min_side", "expected_shape"),
    [
        ((1000, 700), 256, (350, 500)),  # 1/2: 1/4 would leave 175 < 256
        ((1000, 700), 100, (175, 250)),  # 1/4: 1/8 would leave 88 < 100
        ((300, 200), 256, (200, 300)),  # already small: full size
        ((1000, 700), 1, (88, 125)),  # JPEG cannot go below 1/8 (size rounded up)
    ],
)
def test_draft_mode_keeps_the_requested_shorter_side(
    tmp_path: Path, size: tuple[int, int], min_side: int, expected_shape: tuple[int, int]
) -> None:
    path = _jpeg_file(tmp_path / "photo.jpg", size)
    array, original_size = load_image_with_size(path, min_side_for_draft=min_side)
    assert original_size == size
    assert array.shape[:2] == expected_shape
    assert min(array.shape[:2]) >= min(min_side, *size)


def test_draft_mode_reports_the_rotated_original_size(tmp_path: Path) -> None:
    path = _jpeg_file(tmp_path / "rotated.jpg", (4000, 3000), orientation=6)
    array, original_size = load_image_with_size(path, min_side_for_draft=256)
    assert original_size == (3000, 4000)
    assert array.shape == (500, 375, 3)


def test_draft_mode_leaves_other_formats_at_full_size(corpus_dir: Path) -> None:
    array, original_size = load_image_with_size(corpus_dir / "rgb.png", min_side_for_draft=8)
    assert array.shape[:2] == (PICTURE_SIZE[1], PICTURE_SIZE[0])
    assert original_size == PICTURE_SIZE


def test_pixel_limit_is_checked_from_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    path = tmp_path / "wide.png"
    write_bomb_png(path, width=9000, height=9000, bit_depth=1)  # 81 Mpx: under Pillow's own limit

    def no_decoding(self):
        raise AssertionError("the pixels were decoded before the size was checked")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageLoadError, match=r"9000x9000 = 81 Mpx, above the 80 Mpx limit; downscale it"):
        load_image(path)
    monkeypatch.undo()
    with pytest.raises(ImageLoadError, match="above the 1 Mpx limit"):
        load_image(path, max_pixels=1_000_000)


_MEASURE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from melanoma.inference.image_io import ImageLoadError, load_image
    start = time.perf_counter()
    try:
        load_image(sys.argv[1])
        print("LOADED")
    except ImageLoadError as error:
        print("REJECTED", error)
    print(time.perf_counter() - start)
    # Peak resident memory of this process image; unlike ru_maxrss, VmHWM does not inherit the parent's peak.
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    print(int(status["VmHWM"].split()[0]) // 1024)
    """
)


@pytest.mark.parametrize(
    ("writer_options", "max_seconds", "max_mebibytes"),
    [
        ({"width": 40_000, "height": 40_000, "bit_depth": 1}, 2.0, 500),  # above Pillow's own bomb limit
        ({"width": 9000, "height": 9000, "bit_depth": 8}, 2.0, 200),  # only above ours: decoding would need 300 MB
    ],
)
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc (Linux)")
def test_decompression_bombs_are_rejected_quickly_without_decoding(
    tmp_path: Path, writer_options: dict[str, int], max_seconds: float, max_mebibytes: int
) -> None:
    path = tmp_path / "bomb.png"
    write_bomb_png(path, **writer_options)
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=True,
    )
    verdict, seconds, mebibytes = result.stdout.strip().splitlines()
    report = f"{result.stdout}\n{result.stderr}"
    assert verdict.startswith("REJECTED") and "Mpx" in verdict, report
    assert float(seconds) < max_seconds, report
    assert int(mebibytes) < max_mebibytes, report


@pytest.mark.parametrize("kind", ["path", "bytes", "file object"])
def test_file_size_limit(corpus_dir: Path, kind: str) -> None:
    source = _sources(corpus_dir / "rgb.bmp")[kind]
    with pytest.raises(ImageLoadError, match="limit; downscale or recompress"):
        load_image(source, max_bytes=1000)


def test_file_size_limit_reads_no_more_than_needed() -> None:
    class EndlessStream(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:
            buffer[:] = b"\xff" * len(buffer)
            return len(buffer)

    with pytest.raises(ImageLoadError, match="larger than the 1.0 MiB limit"):
        load_image(io.BufferedReader(EndlessStream()), max_bytes=1024 * 1024)


def test_missing_file_and_folder_and_wrong_types(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageLoadError, match="is a folder"):
        load_image(tmp_path)
    with pytest.raises(ImageLoadError, match="pass a path, bytes or a binary file object"):
        load_image(12345)  # type: ignore[arg-type]
    with pytest.raises(ImageLoadError, match="binary mode"):
        load_image(io.StringIO("not bytes"))  # type: ignore[arg-type]


def test_file_objects_are_read_from_their_position_and_left_open(corpus_dir: Path) -> None:
    data = (corpus_dir / "rgb.png").read_bytes()
    stream = io.BytesIO(b"HEADER" + data)
    stream.seek(6)
    _assert_rgb(load_image(stream))
    assert not stream.closed


def _open_file_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_no_file_stays_open(corpus_dir: Path) -> None:
    before = _open_file_descriptors()
    for file_name in CORPUS:
        with contextlib.suppress(ImageLoadError):
            load_image(corpus_dir / file_name, min_side_for_draft=16)
    assert _open_file_descriptors() == before


def _mutations(data: bytes, rng: np.random.Generator, count: int) -> list[bytes]:
    variants = []
    for index in range(count):
        mutated = bytearray(data)
        if index % 3 == 0:  # truncate anywhere
            mutated = mutated[: int(rng.integers(1, len(mutated)))]
        elif index % 3 == 1:  # flip a few random bytes
            for position in rng.integers(0, len(mutated), int(rng.integers(1, 8))):
                mutated[position] = int(rng.integers(0, 256))
        else:  # overwrite a random stretch, often inside the header
            start = int(rng.integers(0, min(len(mutated), 64)))
            mutated[start : start + 8] = bytes(rng.integers(0, 256, 8, dtype=np.uint8))
        variants.append(bytes(mutated))
    return variants


@pytest.mark.filterwarnings("ignore:.*(Corrupt EXIF|Tag data|Metadata|Possibly corrupt).*")
@pytest.mark.parametrize("file_name", LOADABLE)
def test_fuzzed_files_only_ever_raise_image_load_error(corpus_dir: Path, file_name: str) -> None:
    rng = np.random.default_rng(sum(file_name.encode()))
    outcomes = {"loaded": 0, "rejected": 0}
    for variant in _mutations((corpus_dir / file_name).read_bytes(), rng, count=30):
        try:
            _assert_rgb(load_image(variant, min_side_for_draft=16))
            outcomes["loaded"] += 1
        except ImageLoadError:
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 0


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32])
def test_high_bit_depth_is_stretched_by_its_range_in_one_float32_copy(dtype):
    from melanoma.inference.image_io import _stretch_to_uint8

    rng = np.random.default_rng(0)
    values = (rng.random((64, 80)) * 4000 + 96).astype(dtype)
    if dtype == np.float32:  # NaN and -inf take the lowest level, +inf the highest
        values[0, :3], values[1, :3], values[2, :3] = np.nan, -np.inf, np.inf
    original = values.copy()
    got = _stretch_to_uint8(values)
    finite = values[np.isfinite(values)].astype(np.float64)
    low, high = finite.min(), finite.max()
    reference = np.nan_to_num(values.astype(np.float64), nan=low, posinf=high, neginf=low)
    reference = np.rint((reference - low) * 255.0 / (high - low)).astype(np.uint8)  # float64, as before
    assert got.dtype == np.uint8 and got.shape == values.shape
    assert np.abs(got.astype(int) - reference).max() <= 1  # float32 rounding, at most one grey level
    assert got.min() == 0 and got.max() == 255
    np.testing.assert_array_equal(values, original)  # the caller's array is not touched
    if dtype == np.float32:
        assert list(got[0, :3]) == list(got[1, :3]) == [0, 0, 0] and list(got[2, :3]) == [255, 255, 255]


def _matrix_profile(primaries: list[tuple[float, float, float]], gamma: float) -> bytes:
    """A minimal ICC v2 RGB display profile (matrix and gamma curves), as a wide-gamut camera space embeds one."""
    import struct

    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    text = b"wide gamut test\0"
    description = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)
    tags = [(b"desc", description), (b"wtpt", xyz(0.9642, 1.0, 0.8249))]
    tags += [(name, xyz(*xyz_)) for name, xyz_ in zip((b"rXYZ", b"gXYZ", b"bXYZ"), primaries, strict=True)]
    tags += [(name, curve) for name in (b"rTRC", b"gTRC", b"bTRC")]
    offset, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for name, payload in tags:
        table += name + struct.pack(">II", offset + len(data), len(payload))
        data += payload + bytes(-len(payload) % 4)
    body = struct.pack(">I", len(tags)) + table + data
    header = (
        struct.pack(">I", 128 + len(body)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ " + bytes(12)
        + b"acspAPPL" + bytes(24) + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(48)
    )  # fmt: skip
    assert len(header) == 128
    return header + body


def test_an_embedded_colour_profile_is_converted_to_srgb() -> None:
    from PIL import ImageCms

    wide = _matrix_profile([(0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446)], 2.2)
    ramp = np.linspace(40, 230, 64 * 64, dtype=np.float32).reshape(64, 64)
    srgb = np.stack([ramp, ramp[::-1], np.full_like(ramp, 120)], axis=2).astype(np.uint8)
    to_wide = ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"), ImageCms.ImageCmsProfile(io.BytesIO(wide)), "RGB", "RGB"
    )
    stored = ImageCms.applyTransform(Image.fromarray(srgb), to_wide)
    buffer = io.BytesIO()
    stored.save(buffer, "PNG", icc_profile=wide)
    raw = np.asarray(stored, dtype=np.float32)
    assert np.abs(raw - srgb).mean() > 4  # the stored numbers are not the colours
    loaded = load_image(buffer.getvalue()).astype(np.float32)
    assert np.abs(loaded - srgb).mean() < 1.5  # what a colour-managed viewer shows


def test_a_damaged_or_srgb_profile_leaves_the_pixels_as_stored() -> None:
    from PIL import ImageCms

    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for icc in (b"not a profile at all", srgb):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG", icc_profile=icc)
        np.testing.assert_array_equal(load_image(buffer.getvalue()), pixels)
