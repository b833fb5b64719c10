"""``melanoma predict``: many files and folders through one Predictor, a CSV row per file, optional overlays."""

from __future__ import annotations

import csv
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from melanoma import DISCLAIMER
from melanoma.data.samples import IMAGE_SUFFIXES, is_companion, is_hidden
from melanoma.inference.image_io import ImageLoadError
from melanoma.inference.predictor import Prediction, Predictor

PREDICT_SUFFIXES = IMAGE_SUFFIXES  # the same files as training, evaluate and calibrate read
CSV_COLUMNS = (
    "image",
    "melanoma_probability",
    "decision",
    "model_output",
    "threshold",
    "lesion_area_fraction",
    "area_px",
    "asymmetry",
    "border_irregularity",
    "colour_variegation",
    "colours_present",
    "equivalent_diameter_px",
    "width",
    "height",
    "milliseconds",
    "quality_checks",
    "overlay",
    "error",
    "disclaimer",
)


def expand_paths(paths: Iterable[str | Path], warn: Callable[[str], None] | None = None) -> list[Path]:
    """Files as given, plus image files found recursively in folders (sorted); missing paths are kept (they fail).

    In folders, hidden files (``is_hidden``: dotfiles, macOS ``._`` files, ``__MACOSX``), the masks and superpixel
    maps kept beside ISIC images (``is_companion``) and earlier ``--overlays`` output are left out; a file named on
    the command line is always kept. Symlinked folders are followed (each real folder once, so a link loop ends);
    a folder that cannot be read, or a link to nothing, is passed to ``warn`` rather than skipped in silence.
    """
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found += sorted(_walk_images(item, warn or (lambda message: None)))
        else:
            found.append(item)
    return found


def _walk_images(folder: Path, warn: Callable[[str], None]) -> Iterator[Path]:
    seen: set[tuple[int, int]] = set()

    def unreadable(error: OSError) -> None:
        warn(f"{error.filename} cannot be read ({error.strerror}); its images are left out")

    for root, dirs, files in os.walk(folder, onerror=unreadable, followlinks=True):
        status = os.stat(root)
        if (status.st_dev, status.st_ino) in seen:  # reached again through a symlink: a loop or a second link
            dirs[:] = []
            continue
        seen.add((status.st_dev, status.st_ino))
        for name in files:
            path = Path(root) / name
            if path.is_symlink() and not path.exists():
                warn(f"{path} is a link to nothing; left out")
            elif _is_lesion_image(path, folder):
                yield path


def _is_lesion_image(path: Path, folder: Path) -> bool:
    return (
        path.is_file()
        and path.suffix.lower() in PREDICT_SUFFIXES
        and not is_hidden(path, folder)
        and not is_companion(path)
        and not path.name.lower().endswith(OVERLAY_SUFFIX)  # a previous run's --overlays in the same folder
    )


#: A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """``text`` as a spreadsheet shows it, never runs it: a leading ``'`` before a formula-like start.

    A file named ``=HYPERLINK(...).jpg`` would otherwise become a live formula in the CSV opened by a colleague.
    """
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def prediction_row(path: Path | str, result: Prediction | Exception | str) -> dict[str, Any]:
    """One CSV row (``CSV_COLUMNS``, the same for ``melanoma predict`` and the app's download): the prediction's
    numbers, or the error message (an exception or its text). Sizes are the original image's; ``model_output`` is
    the decision as the app phrases it (with its caveat when no lesion was found); ``decision`` is ``not_assessed``
    for an image that is no photo of a lesion (``checks.NOT_ASSESSED``), whose probability is left empty; the lesion
    area and measurements are empty when no lesion was outlined or the image was not assessed; every row carries
    the disclaimer, so that a file passed on still says it. Text that comes from a user (the image's name, an error
    quoting it) is ``spreadsheet_safe``."""
    row: dict[str, Any] = dict.fromkeys(CSV_COLUMNS, "")
    row["image"] = spreadsheet_safe(str(path))
    row["disclaimer"] = DISCLAIMER
    if not isinstance(result, Prediction):
        row["error"] = spreadsheet_safe(str(result))
        return row
    if result.melanoma_probability is not None:
        if result.assessable:  # a mask's or a black frame's probability is noise: not shown, so not sortable either
            row["melanoma_probability"] = f"{result.melanoma_probability:.6f}"
        row["decision"] = _decision_code(result)
        row["model_output"] = result.decision_text
        row["threshold"] = f"{result.threshold:.6f}"
    if result.lesion_area_fraction is not None and result.assessable:  # a mask's "lesion" is no finding
        row["lesion_area_fraction"] = f"{result.lesion_area_fraction:.6f}"
    m = result.measurements if result.assessable else None
    if m is not None and m.area_pixels > 0:  # no outline: nothing measured (asymmetry 0 would read "symmetric")
        row.update(
            area_px=m.area_pixels,
            asymmetry=f"{m.asymmetry:.4f}",
            border_irregularity=f"{m.border_irregularity:.4f}",
            colour_variegation="" if m.colour_variegation is None else m.colour_variegation,  # None: no colour
            colours_present=";".join(m.colours_present),
            equivalent_diameter_px=f"{m.equivalent_diameter_px:.1f}",
        )
    row["width"], row["height"] = result.original_size
    row["milliseconds"] = f"{result.timings_ms.get('total', 0):.1f}"
    row["quality_checks"] = ";".join(check.code for check in result.quality_checks)
    return row


def _decision_code(prediction: Prediction) -> str:
    if not prediction.assessable:
        return "not_assessed"
    return "above_threshold" if prediction.decision else "below_threshold"


OVERLAY_SUFFIX = "_overlay.png"


def overlay_footer(prediction: Prediction) -> str:
    """The text under a saved overlay: which image, the model's output against its threshold, the disclaimer; so a
    PNG passed on alone still says what it shows."""
    if prediction.melanoma_probability is None:
        output = "no classifier installed"
    elif not prediction.assessable:
        output = f"not assessed (the image is {prediction.not_assessed_reason})"
    else:
        side = "above" if prediction.decision else "below"
        output = (
            f"melanoma probability {prediction.melanoma_probability:.1%}, {side} the model's threshold "
            f"{prediction.threshold:.1%}"
        )
    return f"{prediction.name}: {output}. {DISCLAIMER}"


def write_overlay(prediction: Prediction, folder: Path, stem: str) -> Path:
    """Save the overlay PNG as ``<folder>/<stem>_overlay.png``: the lesion's outline (no tint, so the structures
    inside stay visible), the heatmap when there is no mask, the image alone when it was not assessed."""
    from melanoma.inference.overlay import render_overlay, to_png_bytes, with_footer

    overlay = prediction.image
    if prediction.assessable:
        overlay = render_overlay(
            prediction.image,
            prediction.work_mask,
            prediction.heatmap,
            show_fill=False,
            show_heatmap=prediction.work_mask is None and prediction.heatmap is not None,
        )
    path = folder / f"{stem}{OVERLAY_SUFFIX}"
    data = to_png_bytes(with_footer(overlay, overlay_footer(prediction)))
    # Never through a link planted at that name in a shared folder (it would overwrite the link's target).
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags, 0o644), "wb") as handle:
        handle.write(data)
    return path


def default_workers() -> int:
    """Worker threads for ``melanoma predict``: one per CPU this process may use (at most 8)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def threads_per_worker(workers: int) -> int | None:
    """ONNX Runtime intra-op threads per model call when ``workers`` batches run at once (None: ORT's default).

    With several workers each call gets its share of the cores; one thread per call lets every worker
    run its own batch on its own core, which beats splitting each convolution over all cores for these
    small networks (``benchmarks/bench_inference.py`` measures both).
    """
    if workers <= 1:
        return None
    return max(1, default_workers() // workers)


def predict_paths(
    predictor: Predictor,
    paths: Sequence[Path],
    out: TextIO,
    overlays_dir: Path | None = None,
    batch_size: int = 4,
    progress: bool = True,
    workers: int = 1,
) -> tuple[int, int]:
    """Predict every path in batches, writing CSV rows to ``out`` in input order; returns (succeeded, failed).

    ``workers`` batches are predicted at once in threads (the Predictor is thread-safe; build it with
    ``threads=threads_per_worker(workers)``); at most ``2 * workers`` batches are in flight, so memory does
    not grow with the number of files.
    """
    if batch_size < 1 or workers < 1:
        raise ValueError(f"batch_size and workers must be at least 1, got {batch_size} and {workers}")
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    if overlays_dir is not None:
        overlays_dir.mkdir(parents=True, exist_ok=True)
    succeeded = failed = 0
    bar = tqdm(total=len(paths), unit="img", disable=not progress, file=sys.stderr)
    starts = iter(range(0, len(paths), batch_size))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="predict")
    try:
        pending: deque[tuple[int, Future]] = deque()

        def submit_next() -> None:
            start = next(starts, None)
            if start is not None:
                chunk = paths[start : start + batch_size]
                pending.append((start, pool.submit(_predict_chunk, predictor, chunk, start, overlays_dir)))

        for _ in range(2 * workers):
            submit_next()
        while pending:
            start, future = pending.popleft()
            results = future.result()
            submit_next()
            chunk = paths[start : start + batch_size]
            for path, (result, overlay) in zip(chunk, results, strict=True):
                row = prediction_row(path, result)
                if isinstance(overlay, OSError):  # the prediction stands; only its overlay is missing
                    row["error"] = f"overlay not written: {overlay}"
                elif overlay is not None:
                    row["overlay"] = spreadsheet_safe(str(overlay))
                writer.writerow(row)
                succeeded += isinstance(result, Prediction)
                failed += not isinstance(result, Prediction)
            out.flush()
            bar.update(len(chunk))
    except BaseException:  # Ctrl-C or a write error: drop the queued batches instead of finishing them first
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    bar.close()
    return succeeded, failed


#: Overlay file names keep at most this much of the image's name (file systems allow 255 bytes per name).
OVERLAY_STEM_CHARS = 100


def _predict_chunk(
    predictor: Predictor, chunk: Sequence[Path], start: int, overlays_dir: Path | None
) -> list[tuple[Prediction | Exception, Path | OSError | None]]:
    """One batch's (result, overlay) pairs (in a worker thread), overlays written: the overlay's path, the error
    that kept it from being written, or None (no ``overlays_dir``, or no prediction to draw); a failure to predict
    becomes that file's result."""
    try:
        results: list[Prediction | Exception] = list(predictor.predict_batch(chunk))
    except Exception:  # a batch-level failure: retry one by one so one bad file cannot sink the others
        results = [_predict_one(predictor, path) for path in chunk]
    overlays: list[Path | OSError | None] = [None] * len(results)
    if overlays_dir is not None:
        for index, (path, result) in enumerate(zip(chunk, results, strict=True)):
            if isinstance(result, Prediction):
                try:
                    overlays[index] = write_overlay(
                        result, overlays_dir, f"{start + index:05d}_{path.stem[:OVERLAY_STEM_CHARS]}"
                    )
                except OSError as error:
                    overlays[index] = error
    return list(zip(results, overlays, strict=True))


def _predict_one(predictor: Predictor, path: Path) -> Prediction | Exception:
    try:
        return predictor.predict(path)
    except (ImageLoadError, OSError, ValueError, RuntimeError) as error:
        return error
