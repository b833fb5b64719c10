"""The web app: a Streamlit UI over the Predictor (``streamlit_app.py``) and its launcher (``server.py``).

Importing this package imports neither Streamlit nor ONNX Runtime. It holds what the app, its tests and
``benchmarks/bench_app.py`` share: the upload limit and the page's machine-readable probability marker.
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_UPLOAD_MB",
    "PROBABILITY_LABEL",
    "PROBABILITY_PATTERN",
    "parse_probability_marker",
    "probability_marker",
]

#: Largest upload in MiB (Streamlit's ``server.maxUploadSize`` unit); the image loader refuses the same size.
MAX_UPLOAD_MB = 50

PROBABILITY_LABEL = "Melanoma probability"
#: Matches the page text written by ``probability_marker``; group 1 is the percentage.
PROBABILITY_PATTERN = re.compile(rf"{PROBABILITY_LABEL}: (\d{{1,3}}(?:\.\d+)?)%")


def probability_marker(probability: float, decimals: int = 1) -> str:
    """The stable page text for a melanoma probability, e.g. ``Melanoma probability: 12.3%``.

    Args:
        probability: the classifier's melanoma probability in [0, 1].
        decimals: decimals of the percentage (more only where one would hide a difference from the threshold).

    Returns:
        The marker text.
    """
    return f"{PROBABILITY_LABEL}: {probability:.{decimals}%}"


def parse_probability_marker(text: str) -> float | None:
    """The first percentage written by ``probability_marker`` in ``text``, or None when there is none.

    Args:
        text: page text (e.g. a browser's ``inner_text``).

    Returns:
        The percentage, 0..100.
    """
    match = PROBABILITY_PATTERN.search(text)
    return float(match.group(1)) if match else None
