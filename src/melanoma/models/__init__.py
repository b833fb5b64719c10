"""Model factories (training side: imports torch)."""

from melanoma.models.factory import ARCHS, build_classifier, build_model, build_segmenter

__all__ = ["ARCHS", "build_classifier", "build_model", "build_segmenter"]
