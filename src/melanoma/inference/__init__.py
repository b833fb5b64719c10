"""Inference on ONNX Runtime + numpy + Pillow (no torch): loader, Predictor, post-processing, overlays, export."""
