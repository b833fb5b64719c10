"""Speed of the hand-written mask helpers (numpy only, no SciPy at serving time) on worst-case and typical masks.

Usage:
    python benchmarks/bench_masks.py [--repeats 15] [--json FILE]

Post-processing (``largest_component``, ``fill_holes``, ``clean_mask``) runs on the segmenter's map at its input
size (256 px): a lesion-like mask and a random half-filled one, thousands of one-pixel components, its worst case.
``measure_lesion`` runs on the outlined lesion at the work size (1024x768 here). Medians of ``--repeats`` calls
after one warm-up, in milliseconds, all in one process. Speed is measured here, never asserted in tests. Prints JSON
(and writes it to --json FILE).
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from melanoma.inference.measurements import measure_lesion
from melanoma.inference.postprocess import clean_mask, fill_holes, largest_component
from melanoma.reporting import emit_json, script_parser


def median_ms(function: Callable[[], Any], repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1e3, 3)


def masks() -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[:256, :256]
    lesion = ((yy - 120) / 80) ** 2 + ((xx - 130) / 95) ** 2 <= 1.0
    lesion[100:110, 120:140] = False  # a hole to fill
    lesion[10:14, 10:14] = True  # a speck to drop
    return {"lesion 256x256": lesion, "random half-filled 256x256": np.random.default_rng(0).random((256, 256)) < 0.5}


def work_lesion() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:768, :1024]
    lesion = ((yy - 380) / 300) ** 2 + ((xx - 500) / 420) ** 2 <= 1.0
    lesion &= np.hypot(yy - 380, xx - 500) <= 330 * (1 + 0.05 * np.sin(17 * np.arctan2(yy - 380, xx - 500)))
    image = np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    return lesion, image


def run(repeats: int) -> dict[str, Any]:
    rows = []
    for name, mask in masks().items():
        for function in (largest_component, fill_holes, clean_mask):
            rows.append(
                {"function": function.__name__, "input": name, "median_ms": median_ms(partial(function, mask), repeats)}
            )
    lesion, image = work_lesion()
    rows.append(
        {
            "function": "measure_lesion",
            "input": "lesion 1024x768",
            "median_ms": median_ms(partial(measure_lesion, lesion, image), repeats),
        }
    )
    return {"command": shlex.join(["python", *sys.argv]), "repeats": repeats, "rows": rows}


def main() -> None:
    parser = script_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per row (median reported)")
    parser.add_argument("--json", help="also write the JSON report here")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    emit_json(run(args.repeats), args.json)


if __name__ == "__main__":
    main()
