"""The experiment scripts under ``benchmarks/`` on tiny exported models and synthetic ISIC data (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT


def test_classification_experiments_compares_candidates_and_ensembles(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path
):
    out = tmp_path / "experiments.json"
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "classification_experiments.py")]
    command += ["--models", str(tiny_models_dir), "--data-dir", str(shared_synthetic_isic_dir), "--json", str(out)]
    command += [
        "--candidate",
        f"same={tiny_models_dir}",
        "--candidate",
        f"pair=ensemble={tiny_models_dir},{tiny_models_dir}",
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    rows = {row["name"]: row for row in json.loads(out.read_text())["rows"]}
    assert rows["plain image (shipped)"]["decision"] == "baseline"
    assert {"test-time augmentation: hflip", "test-time augmentation: hflip + vflip"} <= set(rows)
    base_auc = rows["plain image (shipped)"]["result"].removeprefix("val AUC ")
    # The same model alone and averaged with itself: the same probabilities, so exactly no gain.
    for name in ("same", "pair=ensemble"):
        assert rows[name]["result"] == f"val AUC {base_auc}; gain vs the --models classifier, 95% CI [+0.0000, +0.0000]"
        assert rows[name]["decision"] == "within noise"
