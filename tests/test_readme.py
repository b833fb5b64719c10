"""README's "Measured" table states what the committed measurement JSONs (models/eval/*.json) say."""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load(name: str) -> dict:
    return json.loads((REPO / "models" / "eval" / name).read_text())


def _measured_table() -> str:
    readme = (REPO / "README.md").read_text()
    start = readme.index("### Measured")
    return readme[start : readme.index("\n## ", start)]


def _expected() -> list[str]:
    seg, full = _load("segmentation_val.json"), _load("segmentation_fullres_val.json")
    cls, speed, app = _load("classification_val.json"), _load("bench_inference.json"), _load("bench_app.json")
    low, high = cls["ci95"]["auc"]
    return [
        f"Jaccard {seg['jaccard']:.4f}, thresholded Jaccard {seg['thresholded_jaccard']:.4f}, Dice {seg['dice']:.4f}",
        f"Jaccard {full['jaccard']:.4f}, Dice {full['dice']:.4f}",
        f"AUC {cls['auc']:.3f} (95% CI {low:.3f}-{high:.3f}), AP {cls['average_precision']:.3f}",
        f"threshold {cls['threshold']:.4f}: sensitivity {cls['sensitivity']:.2f}, specificity {cls['specificity']:.3f}",
        f"{speed['predictor_ms_per_image']} ms/image median",
        f"eager PyTorch pipeline {speed['eager_ms_per_image']} ms",
        f"12 MP JPEG {speed['big_jpeg_ms']} ms",
        f"peak RSS {speed['peak_rss_mb_both_models']} MB",
        f"{speed['predict_images_per_s']} images/s",
        f"{app['errors']} errors, p50 {app['seconds_to_result']['p50']:.1f} s, "
        f"p95 {app['seconds_to_result']['p95']:.1f} s",
    ]


@pytest.mark.parametrize("text", _expected())
def test_readme_number_comes_from_the_measurement_json(text):
    assert text in _measured_table(), f"README's Measured table should say {text!r} (models/eval/*.json)"


def test_readme_states_the_measured_spread_of_the_youden_cut_point():
    low, high = _load("classification_val.json")["ci95"]["youden_threshold"]
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"Youden's threshold ranges {low:.2f}-{high:.2f}" in readme


def test_readme_states_the_measured_mirror_sensitivity():
    report = _load("bench_consistency.json")
    readme = " ".join((REPO / "README.md").read_text().split())
    assert report["test_time_flips"] == ["hflip"] and report["hflip"]["max_abs_delta"] == 0  # invariant by construction
    median, worst = report["vflip"]["median_abs_delta"], report["vflip"]["max_abs_delta"]
    assert f"upside down still moves the probability by {median:.3f} (median), up to {worst:.3f}" in readme


def test_readme_states_the_held_out_fold_study_of_training_options():
    readme = " ".join((REPO / "README.md").read_text().split())
    rows = {row["name"]: row for row in _load("segmentation_cv128.json")["settings"]}
    ema = rows["ema"]
    assert f"fold 0 scores {ema['per_fold']['fold0']:.3f}" in readme
    assert f"({ema['per_fold']['fold0']:.4f} vs {ema['per_fold_raw_weights']['fold0']:.4f} raw" in readme
    for name in ("lovasz", "strong"):
        gain = rows[name]["pooled_vs_baseline"]
        low, high = gain["ci95"]
        assert f"{gain['difference']:+.3f}, 95% CI {low:+.3f} to {high:+.3f}" in readme or (
            f"{gain['difference']:+.3f}, {low:+.3f} to {high:+.3f}" in readme
        )


def test_readme_states_the_weight_averaged_run_against_the_shipped_segmenter():
    readme = " ".join((REPO / "README.md").read_text().split())
    result = _load("segmentation_val_ema_vs_shipped.json")
    gain = result["vs_baseline"]
    assert (
        f"scored validation Jaccard {result['jaccard']:.4f} against the shipped {gain['baseline_mean']:.4f}" in readme
    )
    assert f"(paired gain {gain['difference']:+.4f}, 95% CI {gain['ci95'][0]:+.4f} to {gain['ci95'][1]:+.4f}:" in readme
    assert gain["baseline_mean"] == _load("segmentation_val.json")["jaccard"]  # the baseline is the shipped model
