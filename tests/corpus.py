"""A corpus of hostile and unusual image files, shared by the image loader, CLI and app tests.

``build_corpus(folder)`` writes every file and returns ``{file name: expected to load}`` (also available
without writing anything as ``CORPUS``). Files expected to load must come back as HxWx3 uint8 RGB; the others
must raise ``ImageLoadError``, never another exception. Usage from a test module::

    from corpus import CORPUS, build_corpus
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

#: Size of the valid corpus pictures (width, height); small, so the corpus builds in about half a second.
PICTURE_SIZE = (48, 32)
#: Side of the decompression-bomb PNG: 40000x40000 = 1.6 Gpx declared in a ~200 kB file.
BOMB_SIDE = 40_000
#: EXIF orientation "rotate 90° clockwise to display".
EXIF_ROTATE_CLOCKWISE = 6
#: Range of the 16-bit grayscale ramp (12-bit-like data stored in 16 bits).
GRAY16_RANGE = (1000, 5000)


def corpus_picture() -> np.ndarray:
    """The corpus's HxWx3 uint8 picture: a red block in the top-left third on a blue-green gradient."""
    width, height = PICTURE_SIZE
    picture = np.empty((height, width, 3), np.uint8)
    picture[..., 0] = 40
    picture[..., 1] = np.linspace(80, 180, height).astype(np.uint8)[:, None]
    picture[..., 2] = np.linspace(120, 220, width).astype(np.uint8)[None, :]
    picture[: height // 3, : width // 3] = (230, 20, 20)
    return picture


def gray16_picture() -> np.ndarray:
    """A 16-bit grayscale left-to-right ramp over ``GRAY16_RANGE``, so scaling by range is visible."""
    width, height = PICTURE_SIZE
    return np.linspace(*GRAY16_RANGE, width).astype(np.uint16)[None, :].repeat(height, axis=0)


def write_bomb_png(path: Path, width: int = BOMB_SIDE, height: int = BOMB_SIDE, bit_depth: int = 1) -> None:
    """Write a valid all-black grayscale PNG of any size without allocating its pixels (zeros compress ~1000x).

    Args:
        path: output file.
        width: declared and encoded width.
        height: declared and encoded height.
        bit_depth: 1 (a 40000x40000 image is ~200 kB) or 8.
    """
    row = bytes(1 + math.ceil(width * bit_depth / 8))  # filter byte + packed samples
    compressor = zlib.compressobj(9)
    rows_per_block = 1000
    compressed = []
    for first_row in range(0, height, rows_per_block):
        compressed.append(compressor.compress(row * min(rows_per_block, height - first_row)))
    compressed.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)  # grayscale, no interlace
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
    png += _png_chunk(b"IDAT", b"".join(compressed)) + _png_chunk(b"IEND", b"")
    path.write_bytes(png)


def _save_picture(**save_options: object) -> Callable[[Path], None]:
    return lambda path: Image.fromarray(corpus_picture()).save(path, **save_options)


def _save_converted(mode: str, **save_options: object) -> Callable[[Path], None]:
    return lambda path: Image.fromarray(corpus_picture()).convert(mode).save(path, **save_options)


def _write_truncated_jpeg(path: Path) -> None:
    """A noisy JPEG cut at 60 %: the header is intact, the entropy-coded scan stops half-way."""
    noise = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    path.write_bytes(data[: int(len(data) * 0.6)])


def _write_corrupt_png(path: Path) -> None:
    """A PNG whose compressed pixel data is scrambled (the header is fine, decoding fails)."""
    buffer = io.BytesIO()
    Image.fromarray(corpus_picture()).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    idat = data.index(b"IDAT")
    for offset in range(idat + 20, min(idat + 60, len(data) - 20)):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


def _write_rgba_png(path: Path) -> None:
    _rgba_image().save(path)


def _write_gray_alpha_png(path: Path) -> None:
    _rgba_image().convert("LA").save(path)


def _rgba_image() -> Image.Image:
    """The corpus picture with its right half fully transparent (which must load as white)."""
    picture = corpus_picture()
    height, width = picture.shape[:2]
    alpha = np.full((height, width), 255, np.uint8)
    alpha[:, width // 2 :] = 0
    return Image.fromarray(np.dstack([picture, alpha]))


def _write_palette_png(path: Path) -> None:
    Image.fromarray(corpus_picture()).quantize(64).save(path)


def _write_gray16(path: Path) -> None:
    Image.fromarray(gray16_picture()).save(path)


def _write_animated_gif(path: Path) -> None:
    """Three frames, red then green then blue; the first frame (red) must load."""
    frames = [Image.new("RGB", PICTURE_SIZE, colour) for colour in ((200, 30, 30), (30, 200, 30), (30, 30, 200))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _write_exif_rotated_jpeg(path: Path) -> None:
    """Stored pixels are ``corpus_picture()``, with an EXIF tag saying 'rotate 90° clockwise to display'."""
    exif = Image.Exif()
    exif[0x0112] = EXIF_ROTATE_CLOCKWISE
    Image.fromarray(corpus_picture()).save(path, quality=95, exif=exif.tobytes())


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


_WRITERS: dict[str, tuple[bool, Callable[[Path], None]]] = {
    # must raise ImageLoadError
    "empty.jpg": (False, lambda path: path.write_bytes(b"")),
    "text_named.jpg": (False, lambda path: path.write_text("This is not an image, just a text file.\n" * 20)),
    "truncated.jpg": (False, _write_truncated_jpeg),
    "corrupt_data.png": (False, _write_corrupt_png),
    "bomb_40000x40000.png": (False, write_bomb_png),
    "tiny_1x1.png": (False, lambda path: Image.new("RGB", (1, 1), (200, 100, 50)).save(path)),
    # must load as HxWx3 uint8 RGB
    "rgb.jpg": (True, _save_picture(quality=95)),
    "rgb.png": (True, _save_picture()),
    "rgba.png": (True, _write_rgba_png),
    "gray.png": (True, _save_converted("L")),
    "gray_alpha.png": (True, _write_gray_alpha_png),
    "palette.png": (True, _write_palette_png),
    "gray16.png": (True, _write_gray16),
    "gray16.tif": (True, _write_gray16),
    "cmyk.jpg": (True, _save_converted("CMYK", quality=95)),
    "animated.gif": (True, _write_animated_gif),
    "exif_rotated.jpg": (True, _write_exif_rotated_jpeg),
    "rgb.bmp": (True, _save_picture()),
    "rgb.tif": (True, _save_picture(compression="tiff_lzw")),
    "rgb.webp": (True, _save_picture(quality=90)),
}

#: File name → whether ``load_image`` is expected to load it (for parametrizing tests at collection time).
CORPUS: dict[str, bool] = {file_name: loads for file_name, (loads, _) in _WRITERS.items()}


def build_corpus(folder: Path) -> dict[str, bool]:
    """Write the corpus into ``folder`` (created if needed).

    Args:
        folder: where to write the files.

    Returns:
        Mapping of file name to whether ``load_image`` is expected to load it (a copy of ``CORPUS``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, (_, write) in _WRITERS.items():
        write(folder / file_name)
    return dict(CORPUS)
