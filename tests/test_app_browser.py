"""The app in a real headless browser: Debian chromium driven by Playwright against a live Streamlit server.

Needs ``/usr/bin/chromium`` (``scripts/install_browser.sh``; never ``playwright install``): skipped without it,
a failure under ``CI=true``. Screenshots go to ``tmp_path`` and, when set, ``$MELANOMA_SCREENSHOT_DIR``. The
upload→result time of a 12-megapixel JPEG is recorded in ``app_timing.json`` (and printed), not asserted.
The page-driving helpers and the synthetic image are shared with ``benchmarks/bench_app.py``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import in_ci, load_script

from melanoma.app.server import AppServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO_ROOT = Path(__file__).resolve().parents[1]
BIG_IMAGE_SIZE = (4000, 3000)  # 12 megapixels, a typical dermatoscope camera
RESULT_TIMEOUT_S = 120.0


bench_app = load_script("bench_app")


@pytest.fixture(scope="module")
def browser_ready() -> None:
    """Skip without chromium or Playwright, except under CI=true, where the browser test must run."""
    problems = []
    if not bench_app.CHROMIUM.exists():
        problems.append(f"{bench_app.CHROMIUM} is missing (run scripts/install_browser.sh)")
    if importlib.util.find_spec("playwright") is None:
        problems.append("the playwright package is missing (pip install -e '.[dev]')")
    if problems:
        if in_ci():
            pytest.fail("; ".join(problems) + "; CI=true requires the browser test")
        pytest.skip("; ".join(problems))


def _save_screenshot(source: Path) -> None:
    """Copy a screenshot to $MELANOMA_SCREENSHOT_DIR when it is set."""
    folder = os.environ.get("MELANOMA_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(source, Path(folder) / source.name)


async def _screenshot(page, path: Path) -> None:
    """The whole page once the app is idle; Streamlit scrolls inside its own panes, so grow the viewport."""
    await bench_app.wait_until_idle(page, RESULT_TIMEOUT_S)
    height = await page.evaluate(_CONTENT_HEIGHT_JS)
    await page.set_viewport_size({"width": bench_app.VIEWPORT["width"], "height": min(max(height, 600), 8000)})
    await page.wait_for_timeout(300)  # let the layout settle at the new size
    await page.screenshot(path=str(path), full_page=True)
    await page.set_viewport_size(bench_app.VIEWPORT)
    _save_screenshot(path)


_CONTENT_HEIGHT_JS = """() => Math.max(...['stMain', 'stSidebarContent', 'stMainBlockContainer']
    .map(id => document.querySelector(`[data-testid="${id}"]`))
    .filter(Boolean).map(element => element.scrollHeight))"""


async def _drive_app(url: str, tmp_path: Path) -> dict[str, float]:
    from playwright.async_api import async_playwright

    lesion = bench_app.write_dermoscopy_jpeg(tmp_path / "lesion.jpg", 1024, 768)
    bad_file = tmp_path / "notes_named_as_image.jpg"
    bad_file.write_text("This is not an image, just a text file.\n" * 20)
    big = bench_app.write_dermoscopy_jpeg(tmp_path / "photo_12mp.jpg", *BIG_IMAGE_SIZE, seed=1)
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), viewport=bench_app.VIEWPORT, **bench_app.chromium_launch_options()
        )
        try:
            page = await context.new_page()
            await bench_app.open_app(page, url, RESULT_TIMEOUT_S)
            result = await bench_app.upload_and_wait(page, [lesion], RESULT_TIMEOUT_S)
            assert result.percent is not None and 0.0 <= result.percent <= 100.0, result.text
            await page.get_by_text("Lesion measurements").first.wait_for()
            await _screenshot(page, tmp_path / "app_valid_image.png")

            error = await bench_app.upload_and_wait(page, [bad_file], RESULT_TIMEOUT_S, expect_result=False)
            assert bad_file.name in error.text
            assert await page.get_by_text(bench_app.PROBABILITY_PATTERN).count() >= 1, "the valid result must stay"
            await _screenshot(page, tmp_path / "app_bad_file.png")

            fresh = await context.new_page()  # a new Streamlit session, so the timing covers one image only
            await bench_app.open_app(fresh, url, RESULT_TIMEOUT_S)
            big_result = await bench_app.upload_and_wait(fresh, [big], RESULT_TIMEOUT_S)
            assert big_result.percent is not None
            await _screenshot(fresh, tmp_path / "app_12mp.png")
        finally:
            await context.close()
    return {
        "upload_to_result_seconds_1024x768": round(result.seconds, 3),
        "upload_to_result_seconds_12mp": round(big_result.seconds, 3),
        "big_image_bytes": big.stat().st_size,
    }


def test_app_in_headless_chromium(browser_ready, tiny_models_dir: Path, tmp_path: Path) -> None:
    server = AppServer(models_dir=tiny_models_dir, log_path=tmp_path / "server.log")
    server.start(timeout_s=90)
    try:
        timings = asyncio.run(_drive_app(server.url, tmp_path))
    finally:
        server.stop()
    timings["image_size_12mp"] = list(BIG_IMAGE_SIZE)
    timings["models"] = "tiny test models (tests/conftest.py: tiny_models_dir)"
    (tmp_path / "app_timing.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"\napp timing: {json.dumps(timings)}\nscreenshots: {tmp_path}")
