"""Concurrent users of the web app: seconds from upload to the melanoma probability on the page.

Usage:
    python benchmarks/bench_app.py --sessions 20 --json FILE [--port N] [--models DIR] [--image PATH]
    python benchmarks/bench_app.py --url http://127.0.0.1:8501 --sessions 5   # an app that is already running

Starts the app on loopback (unless ``--url``), opens ONE headless Debian chromium (``/usr/bin/chromium``, see
``scripts/install_browser.sh``; never ``playwright install``) and runs the sessions concurrently, each in its
own browser context (a separate Streamlit session): open the page, upload the image, wait for the
``Melanoma probability: ..%`` text. Playwright's async API drives them from one thread (its sync API cannot
share one browser between threads). Prints JSON: sessions, errors, p50/p95/max seconds to result, wall time.
Everything is bounded by ``--timeout``. Never asserted in tests; ``tests/test_app_browser.py`` reuses the
helpers below.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from melanoma.app import PROBABILITY_PATTERN, parse_probability_marker
from melanoma.reporting import script_parser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: The hidden <input type=file> behind Streamlit's file uploader.
FILE_INPUT = "[data-testid='stFileUploader'] input[type='file']"
#: The page's message when no model is installed (see the app's ``_render_missing_models``).
NO_MODEL_TEXT = "No model is installed yet"
#: An error box naming a file that could not be analysed (see ``render_result`` in the app).
FILE_ERROR_TEXT = "Could not analyse"
#: The app's root element once Streamlit has finished running the script.
IDLE_APP = "[data-testid='stApp'][data-test-script-state='notRunning']"
VIEWPORT = {"width": 1400, "height": 1000}


@dataclass(frozen=True)
class UploadResult:
    """One upload: seconds from handing the files to the page until the awaited text showed, and that text."""

    seconds: float
    text: str

    @property
    def percent(self) -> float | None:
        """The probability on the page, 0..100 (None if the text holds no marker)."""
        return parse_probability_marker(self.text)


def chromium_launch_options() -> dict[str, Any]:
    """Keyword arguments for Playwright's ``chromium.launch`` / ``launch_persistent_context`` (system chromium)."""
    return {"executable_path": str(CHROMIUM), "headless": True, "args": list(CHROMIUM_ARGS)}


async def open_app(page, url: str, timeout_s: float) -> None:
    """Load the app and wait until its file uploader is ready.

    Raises:
        RuntimeError: the page says that no model is installed, or shows no uploader within ``timeout_s``.
    """
    await page.goto(url, wait_until="domcontentloaded", timeout=timeout_s * 1000)
    no_model = page.get_by_text(NO_MODEL_TEXT)
    try:
        await page.locator(FILE_INPUT).or_(no_model).first.wait_for(state="attached", timeout=timeout_s * 1000)
    except Exception as error:
        raise RuntimeError(f"the app at {url} shows no file uploader after {timeout_s:.0f} s") from error
    if await no_model.count():
        raise RuntimeError(f"the app at {url} says no model is installed; pass --models DIR")


async def upload_and_wait(page, paths: list[Path], timeout_s: float, expect_result: bool = True) -> UploadResult:
    """Upload files through the page's uploader and wait for the result (or, without one expected, an error).

    Waits for the first such element, so call it on a page that does not show one yet.

    Args:
        page: a Playwright async page showing the app (see ``open_app``).
        paths: files to upload together.
        timeout_s: how long to wait for the result.
        expect_result: wait for a probability marker (True) or for a file error box (False).

    Returns:
        The time from upload to result and the text of the first matching element.
    """
    target = page.get_by_text(PROBABILITY_PATTERN) if expect_result else page.get_by_text(FILE_ERROR_TEXT)
    start = time.perf_counter()
    await page.locator(FILE_INPUT).set_input_files([str(path) for path in paths])
    await target.first.wait_for(state="visible", timeout=timeout_s * 1000)
    seconds = time.perf_counter() - start
    return UploadResult(seconds=seconds, text=await target.first.inner_text())


async def wait_until_idle(page, timeout_s: float) -> None:
    """Wait until the app's script run has finished (every element of the run is drawn)."""
    await page.locator(IDLE_APP).wait_for(state="attached", timeout=timeout_s * 1000)


def dermoscopy_like_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A synthetic dermoscopic-looking RGB image: skin, an irregular two-tone brown lesion, hairs, a dark rim.

    Args:
        width: image width in pixels.
        height: image height in pixels.
        seed: random seed (texture, lesion shape and hairs).

    Returns:
        HxWx3 uint8 RGB array.
    """
    rng = np.random.default_rng(seed)
    side = min(width, height)
    # float32 throughout: a 12-megapixel image stays at a few hundred MB of temporaries.
    dy = ((np.arange(height, dtype=np.float32) - height / 2) / side)[:, None]
    dx = ((np.arange(width, dtype=np.float32) - width / 2) / side)[None, :]
    radius, angle = np.hypot(dx, dy), np.arctan2(dy, dx)
    # An irregular border: the lesion radius wobbles with the angle.
    phases = rng.uniform(0, 6, 2).astype(np.float32)
    border = 0.22 * (1 + 0.12 * np.sin(5 * angle + phases[0]) + 0.06 * np.sin(11 * angle + phases[1]))
    lesion = np.clip((border - radius) / np.float32(0.01), 0, 1)
    texture = _smooth_noise(rng, width, height)
    shade = 0.15 + 0.85 * np.clip((np.float32(0.62) - radius) / np.float32(0.05), 0, 1)  # the dermatoscope's rim
    grain = rng.normal(0, 3, (height, width)).astype(np.float32)  # sensor noise, so the JPEG has a realistic size
    pixels = np.empty((height, width, 3), np.uint8)
    for channel, (skin, pigment) in enumerate(zip((224, 178, 152), (128, 82, 56), strict=True)):
        skin_level = skin + 12 * texture
        pigment_level = pigment * (1 - 0.45 * np.clip(texture, 0, 1)) + 8 * texture
        level = (skin_level * (1 - lesion) + pigment_level * lesion) * shade + grain
        pixels[..., channel] = np.clip(level, 0, 255)
    canvas = Image.fromarray(pixels)
    _draw_hairs(ImageDraw.Draw(canvas), rng, width, height)
    return np.asarray(canvas)


def write_dermoscopy_jpeg(path: Path, width: int = 1024, height: int = 768, seed: int = 0) -> Path:
    """Save ``dermoscopy_like_image`` as a JPEG (quality 92) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(dermoscopy_like_image(width, height, seed)).save(path, format="JPEG", quality=92)
    return path


def _smooth_noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a coarse random grid upsampled bilinearly."""
    coarse = rng.uniform(-1, 1, (12, 16)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR))


def _draw_hairs(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int) -> None:
    thickness = max(1, round(min(width, height) / 400))
    for _ in range(6):
        points = [(rng.uniform(0, width), rng.uniform(0, height))]
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(12):
            heading += rng.normal(0, 0.15)
            step = min(width, height) / 20
            x, y = points[-1]
            points.append((x + step * np.cos(heading), y + step * np.sin(heading)))
        draw.line(points, fill=(60, 40, 30), width=thickness)


# --- the benchmark ------------------------------------------------------------------------------------------


async def _one_session(browser, url: str, image: Path, timeout_s: float) -> UploadResult:
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        page = await context.new_page()
        await open_app(page, url, timeout_s)
        return await upload_and_wait(page, [image], timeout_s)
    finally:
        await context.close()


async def run_sessions(url: str, image: Path, sessions: int, timeout_s: float) -> dict[str, Any]:
    """Run ``sessions`` concurrent upload sessions against ``url`` in one chromium; returns the JSON report."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(**chromium_launch_options())
        try:
            start = time.perf_counter()
            # Each session gives up a little before the global limit, so its own error is what gets reported.
            session_timeout_s = max(1.0, timeout_s * 0.9)
            tasks = [asyncio.create_task(_one_session(browser, url, image, session_timeout_s)) for _ in range(sessions)]
            done, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            wall = time.perf_counter() - start
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            await browser.close()
    return _report(url, image, sessions, [t for t in tasks if t in done], len(pending), wall, timeout_s)


def _report(
    url: str, image: Path, sessions: int, done: list[asyncio.Task], timed_out: int, wall: float, timeout_s: float
) -> dict[str, Any]:
    results = [t.result() for t in done if t.exception() is None]
    errors = [f"{type(t.exception()).__name__}: {str(t.exception())[:300]}" for t in done if t.exception()]
    errors += [f"not finished within the {timeout_s:.0f} s timeout"] * timed_out
    seconds = np.array([r.seconds for r in results])
    with Image.open(image) as handle:
        image_size = list(handle.size)
    return {
        "url": url,
        "sessions": sessions,
        "completed": len(results),
        "errors": len(errors),
        "error_messages": sorted(set(errors)),
        "seconds_to_result": {
            "p50": _round(np.percentile(seconds, 50)) if len(seconds) else None,
            "p95": _round(np.percentile(seconds, 95)) if len(seconds) else None,
            "max": _round(seconds.max()) if len(seconds) else None,
            "min": _round(seconds.min()) if len(seconds) else None,
        },
        "wall_seconds": _round(wall),
        "probabilities_percent": sorted({r.percent for r in results if r.percent is not None}),
        "image": {"path": str(image), "bytes": image.stat().st_size, "size": image_size},
        "cpu_count": os.cpu_count(),
    }


def _round(value: float) -> float:
    return round(float(value), 3)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = script_parser(__doc__)
    parser.add_argument("--sessions", type=int, default=20, help="concurrent browser sessions (default 20)")
    parser.add_argument("--json", help="also write the report to this file")
    parser.add_argument("--url", help="benchmark an app that is already running (no server is started)")
    parser.add_argument("--port", type=int, help="port for the started server (default: a free one)")
    parser.add_argument("--models", help="model folder for the started server (default: the shipped models)")
    parser.add_argument("--image", help="image to upload (default: a synthetic 1024x768 dermoscopy-like JPEG)")
    parser.add_argument("--timeout", type=float, default=300.0, help="global limit in seconds (default 300)")
    args = parser.parse_args(argv)
    if args.sessions < 1:
        parser.error("--sessions must be at least 1")
    if not CHROMIUM.exists():
        parser.error(f"{CHROMIUM} is missing; install it with scripts/install_browser.sh (never `playwright install`)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-app-") as scratch:
        image = Path(args.image) if args.image else write_dermoscopy_jpeg(Path(scratch) / "lesion.jpg")
        if args.url:
            report = asyncio.run(run_sessions(args.url, image, args.sessions, args.timeout))
        else:
            from melanoma.app.server import AppServer

            with AppServer(port=args.port, models_dir=args.models, log_path=Path(scratch) / "server.log") as server:
                report = asyncio.run(run_sessions(server.url, image, args.sessions, args.timeout))
    report["models"] = args.models or ("as served" if args.url else "the default (shipped) models")
    if not args.url:  # the server this run started serves these networks
        from melanoma.inference.predictor import Predictor

        report["networks"] = Predictor.from_dir(args.models).networks()
    if not args.image:
        report["image"]["path"] = "synthetic dermoscopy-like JPEG (deleted after the run)"
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0 if report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
