"""Melanoma detection and lesion segmentation (research software, not a medical device)."""

__version__ = "0.1.0"
