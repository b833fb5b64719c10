"""Melanoma detection and lesion segmentation (research software, not a medical device)."""

import os

# ONNX Runtime's Python package records a device id and usage events (model names, OS, CPU) under ~/.cache and
# $TMPDIR for Microsoft's telemetry unless this is set before it is imported. A clinic's images and models are
# nobody else's business: the package and the app opt out, and the user can still override it.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"

#: Said on every surface that shows or saves an output: the app, the CLI, CSV/JSON files, overlay images.
DISCLAIMER = "Research software, not a medical device: outputs are model estimates, not diagnoses."
