"""How export chooses the segmenter's threshold, test-time flips and post-processing (``calibrate_segmentation``).

The choices are made from tables of validation scores; here the tables are made up, so each rule is seen to decide:
the threshold with the best mean Jaccard (ties go to the one nearest 0.5), a step kept only when it adds at least
``MIN_GAIN``, flips only in ``auto`` mode and only when they add at least ``MIN_GAIN``. The committed
``models/segmentation.json`` is then checked to follow the same rules from the scores it records.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from melanoma.inference import calibrate
from melanoma.inference.calibrate import MIN_GAIN, POSTPROCESS_VARIANTS, THRESHOLDS, TTA_FLIPS

REPO_ROOT = Path(__file__).resolve().parents[1]


def _table(best: float, at: dict[float, float] | None = None, steps: dict[str, float] | None = None) -> dict:
    """Scores per (threshold, variant): ``best`` - 0.05 everywhere, ``at`` overriding some thresholds' "none",
    ``steps`` adding a gain to a variant at every threshold."""
    table = {}
    for t in THRESHOLDS:
        none = (at or {}).get(t, best - 0.05)
        for variant in POSTPROCESS_VARIANTS:
            gain = sum((steps or {}).get(step, 0.0) for step in variant.split("+") if step != "none")
            jaccard = none + gain
            table[(t, variant)] = {"n": 3, "jaccard": jaccard, "thresholded_jaccard": jaccard, "dice": jaccard}
    return table


def _calibrate(monkeypatch, plain: dict, flipped: dict, flips: str = "auto") -> dict:
    tables = iter([plain, flipped])  # calibrate_segmentation scores one view first, then the flipped views
    monkeypatch.setattr(calibrate, "_threshold_scores", lambda model, samples, targets: next(tables))
    monkeypatch.setattr(calibrate, "read_mask", lambda path: np.zeros((4, 4), bool))
    samples = [SimpleNamespace(mask_path=Path(f"m{i}.png")) for i in range(3)]
    return calibrate.calibrate_segmentation(None, samples, {"input_size": 64}, flips)


def test_the_threshold_is_the_best_and_a_tie_goes_to_the_one_nearest_one_half(monkeypatch):
    chosen = _calibrate(monkeypatch, _table(0.8, at={0.35: 0.80, 0.6: 0.81}), _table(0.8))
    assert chosen["threshold"] == 0.6
    tie = _calibrate(monkeypatch, _table(0.8, at={0.35: 0.81, 0.45: 0.81, 0.7: 0.81}), _table(0.8))
    assert tie["threshold"] == 0.45
    assert [row["threshold"] for row in tie["validation"]["threshold_search"]] == list(THRESHOLDS)


def test_a_step_is_kept_only_when_it_adds_at_least_the_minimum_gain(monkeypatch):
    plain = _table(0.8, at={0.5: 0.8}, steps={"largest_component": 0.5 * MIN_GAIN, "fill_holes": 2 * MIN_GAIN})
    chosen = _calibrate(monkeypatch, plain, _table(0.7))
    assert chosen["postprocess"] == {"largest_component": False, "fill_holes": True}
    assert chosen["validation"]["jaccard"] == round(0.8 + 2 * MIN_GAIN, 4)  # scored as served: with fill_holes only
    both = _calibrate(
        monkeypatch, _table(0.8, at={0.5: 0.8}, steps={"largest_component": 0.01, "fill_holes": 0.01}), _table(0.7)
    )
    assert both["postprocess"] == {"largest_component": True, "fill_holes": True}
    assert both["validation"]["jaccard"] == round(0.82, 4)


def test_flips_are_used_only_in_auto_mode_and_only_when_they_gain_enough(monkeypatch):
    plain, better = _table(0.8, at={0.5: 0.8}), _table(0.8, at={0.5: 0.8 + 2 * MIN_GAIN})
    assert _calibrate(monkeypatch, plain, better)["test_time_flips"] == TTA_FLIPS
    off = _calibrate(monkeypatch, plain, better, flips="off")
    assert off["test_time_flips"] == [] and off["test_time_flips_mode"] == "off"
    assert off["validation"]["test_time_flips_best_jaccard"] == {
        "none": 0.8,
        "hflip+vflip": round(0.8 + 2 * MIN_GAIN, 4),
    }
    barely = _table(0.8, at={0.5: 0.8 + 0.5 * MIN_GAIN})
    assert _calibrate(monkeypatch, plain, barely)["test_time_flips"] == []


def test_the_shipped_segmenter_config_follows_these_rules():
    config = json.loads((REPO_ROOT / "models" / "segmentation.json").read_text())
    validation = config["validation"]
    search = {row["threshold"]: row["jaccard"] for row in validation["threshold_search"]}
    best = max(search.values())
    assert config["threshold"] == min((t for t, j in search.items() if j == best), key=lambda t: abs(t - 0.5))
    ablation = validation["postprocess_ablation_jaccard"]
    for step, kept in config["postprocess"].items():  # recorded to 4 decimals: decide only where that is clear
        gain = ablation[step] - ablation["none"]
        if abs(gain - MIN_GAIN) > 1e-4:
            assert kept == (gain >= MIN_GAIN), step
    flips = validation["test_time_flips_best_jaccard"]
    gain = flips["hflip+vflip"] - flips["none"]
    uses_flips = config["test_time_flips_mode"] == "auto" and gain >= MIN_GAIN
    assert config["test_time_flips"] == (TTA_FLIPS if uses_flips else [])
    chosen = "+".join(step for step, kept in config["postprocess"].items() if kept) or "none"
    assert validation["jaccard"] == ablation[chosen]  # the headline score is the served variant's
    assert ablation["none"] == search[config["threshold"]]


def test_choices_made_on_few_validation_images_carry_a_warning(monkeypatch):
    few = _calibrate(monkeypatch, _table(0.8), _table(0.8))  # the made-up tables score 3 images
    assert "chosen on 3 validation images: with fewer than 30" in few["validation"]["warning"]
    enough = _table(0.8)
    for scores in enough.values():
        scores["n"] = calibrate.MIN_SEGMENTATION_IMAGES
    assert "warning" not in _calibrate(monkeypatch, enough, _table(0.8))["validation"]
    shipped = json.loads((REPO_ROOT / "models" / "segmentation.json").read_text())["validation"]
    assert shipped["n"] >= calibrate.MIN_SEGMENTATION_IMAGES and "warning" not in shipped
