"""k-fold cross-validation: folds of the train split in ``load_splits``, and ``benchmarks/cross_validate.py``."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import load_script, tiny_config

from melanoma.config import save_config
from melanoma.data import Sample, read_isic2017
from melanoma.training.datasets import cross_validation_split, load_splits

cross_validate = load_script("cross_validate")


def _ids(samples: list[Sample]) -> list[str]:
    return [s.image_id for s in samples]


def _fold(data_dir: Path, folds: int, fold: int, **overrides):
    config = tiny_config("classification", data_dir, **{"data.cv_folds": folds, "data.cv_fold": fold}, **overrides)
    return load_splits(config.data)


# --- the folds ----------------------------------------------------------------------------------------------------


def test_folds_partition_the_train_split(shared_synthetic_isic_dir):
    train_ids = _ids(read_isic2017(shared_synthetic_isic_dir, "train"))
    official_val_ids = set(_ids(read_isic2017(shared_synthetic_isic_dir, "val")))
    val_folds = []
    for fold in range(2):
        train, val, provenance = _fold(shared_synthetic_isic_dir, 2, fold)
        assert set(_ids(train)).isdisjoint(_ids(val))
        assert sorted(_ids(train) + _ids(val)) == sorted(train_ids)  # train = the other fold
        assert not official_val_ids & set(_ids(train) + _ids(val))
        assert {s.melanoma for s in val} == {0, 1}  # stratified: both classes in every validation fold
        assert _ids(train) == [i for i in train_ids if i in set(_ids(train))]  # input order kept
        assert provenance["validation_split"] == f"fold {fold} of 2 of the train split (stratified, seed 0)"
        assert (provenance["cv_folds"], provenance["cv_fold"]) == (2, fold)
        assert provenance["n_validation"] == len(val)
        val_folds.append(_ids(val))
    assert set(val_folds[0]).isdisjoint(val_folds[1])
    assert sorted(val_folds[0] + val_folds[1]) == sorted(train_ids)
    assert len(val_folds[0]) == len(val_folds[1]) == 4


def test_folds_are_deterministic_and_independent_of_other_settings(shared_synthetic_isic_dir):
    first = _fold(shared_synthetic_isic_dir, 2, 1)
    again = _fold(shared_synthetic_isic_dir, 2, 1, **{"data.image_size": 32, "seed": 7, "optim.lr": 0.5})
    assert (_ids(first[0]), _ids(first[1])) == (_ids(again[0]), _ids(again[1]))


def test_limits_apply_after_the_fold_split(shared_synthetic_isic_dir):
    train, val, _ = _fold(shared_synthetic_isic_dir, 2, 0)
    limited_train, limited_val, _ = _fold(
        shared_synthetic_isic_dir, 2, 0, **{"data.limit_train": 3, "data.limit_val": 2}
    )
    assert _ids(limited_train) == _ids(train)[:3]
    assert _ids(limited_val) == _ids(val)[:2]


def test_without_cross_validation_the_official_validation_split_is_used(shared_synthetic_isic_dir):
    train, val, provenance = load_splits(tiny_config("classification", shared_synthetic_isic_dir).data)
    assert _ids(val) == _ids(read_isic2017(shared_synthetic_isic_dir, "val"))
    assert provenance["validation_split"] == "val" and "cv_folds" not in provenance


def test_folder_source_folds_the_train_part_of_its_split(shared_synthetic_isic_dir):
    from melanoma.data.folder import read_image_folder, stratified_split

    images_dir = shared_synthetic_isic_dir / "images" / "train"
    labels_csv = shared_synthetic_isic_dir / "labels" / "ISIC-2017_Training_Part3_GroundTruth.csv"
    overrides = {"data.source": "folder", "data.images_dir": images_dir, "data.labels_csv": labels_csv}
    overrides["data.val_fraction"] = 0.25
    folder_train, folder_val = stratified_split(read_image_folder(images_dir, labels_csv), 0.25, seed=0)
    val_folds = []
    for fold in range(2):
        train, val, _ = _fold(shared_synthetic_isic_dir, 2, fold, **overrides)
        assert sorted(_ids(train) + _ids(val)) == sorted(_ids(folder_train))
        assert not set(_ids(folder_val)) & set(_ids(train) + _ids(val))
        val_folds += _ids(val)
    assert sorted(val_folds) == sorted(_ids(folder_train))


def test_unlabelled_samples_use_plain_k_fold():
    samples = [Sample(f"ISIC_{i:07d}", Path(f"{i}.jpg")) for i in range(6)]
    val_folds = [_ids(cross_validation_split(samples, 3, fold)[1]) for fold in range(3)]
    assert sorted(sum(val_folds, [])) == _ids(samples)
    assert [len(fold) for fold in val_folds] == [2, 2, 2]


def test_folds_are_stratified():
    # 5 melanomas in 20 images: a plain shuffled 5-fold split (seed 0) would give folds of 0 and 2 melanomas.
    samples = [Sample(f"ISIC_{i:07d}", Path(f"{i}.jpg"), melanoma=int(i < 5)) for i in range(20)]
    for fold in range(5):
        train, val = cross_validation_split(samples, 5, fold)
        assert sorted(s.melanoma for s in val) == [0, 0, 0, 1]
        assert sum(s.melanoma for s in train) == 4


@pytest.mark.parametrize(
    ("folds", "fold", "message"),
    [
        (2, 2, r"data.cv_fold=2 is not a fold of data.cv_folds=2: choose 0 .. 1"),
        (5, -1, r"choose 0 .. 4"),
        (1, 0, r"data.cv_folds=1: set 0 .* or a number of folds >= 2"),
        (-3, 0, r"data.cv_folds=-3: set 0 .* >= 2"),
        (0, 1, r"data.cv_fold=1 needs cross-validation: also set data.cv_folds"),
        (9, 0, r"cannot split 8 training images into 9 folds: .*use fewer data.cv_folds"),
    ],
)
def test_bad_fold_settings_are_clear_errors(shared_synthetic_isic_dir, folds, fold, message):
    with pytest.raises(ValueError, match=message):
        _fold(shared_synthetic_isic_dir, folds, fold)


# --- the study script ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("differences", "decision"),
    [
        ([0.01, 0.02, 0.015, 0.012, 0.018], "adopt"),
        ([-0.01, -0.02, -0.015, -0.012, -0.018], "reject"),
        ([0.05, -0.04, 0.01, 0.02, -0.03], "no evidence"),
        ([0.05], "no evidence"),  # one fold: no interval
    ],
)
def test_paired_comparison_decision(differences, decision):
    baseline = {k: 0.8 for k in range(len(differences))}
    other = {k: 0.8 + d for k, d in enumerate(differences)}
    result = cross_validate.paired_comparison(baseline, other)
    assert result["decision"] == decision
    assert result["differences"] == pytest.approx(differences)


def test_paired_comparison_interval_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, n 3 -> 2 +- t(0.975, 2) / sqrt(3) = 2 +- 4.302653 * 0.577350 = 2 +- 2.484138
    result = cross_validate.paired_comparison({0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0}, {0: 1.0, 1: 2.0, 2: 3.0})
    assert result["folds"] == [0, 1, 2]  # fold 3 is missing for the other setting: not paired
    assert result["mean"] == pytest.approx(2.0)
    assert result["ci95"] == pytest.approx([2 - 2.484138, 2 + 2.484138], abs=1e-5)
    assert result["decision"] == "no evidence"


def _predictions(scores: dict[int, list[float]], labels: list[int]) -> dict[int, dict[str, tuple[int, float]]]:
    return {fold: {f"f{fold}i{i}": (labels[i], p) for i, p in enumerate(values)} for fold, values in scores.items()}


def test_pooled_comparison_pairs_the_same_images_of_the_shared_folds():
    labels = [0, 1, 0, 1, 0, 0, 1, 0]
    right = [0.1 + 0.8 * label for label in labels]
    wrong = [0.9 - 0.8 * label for label in labels]
    baseline = _predictions({0: wrong, 1: wrong}, labels)
    other = _predictions({0: right, 1: right, 2: right}, labels)  # fold 2 has no baseline: not pooled
    result = cross_validate.pooled_comparison(baseline, other, n_resamples=50)
    assert (result["folds"], result["images"], result["melanomas"]) == ([0, 1], 16, 6)
    assert (result["difference"], result["ci95"], result["decision"]) == (1, [1, 1], "adopt")
    assert cross_validate.pooled_comparison(other, baseline, n_resamples=50)["decision"] == "reject"
    same = cross_validate.pooled_comparison(baseline, baseline, n_resamples=50)
    assert (same["difference"], same["decision"]) == (0, "no evidence")
    assert cross_validate.pooled_comparison(baseline, {}, n_resamples=50) == {
        "folds": [],
        "images": 0,
        "decision": "no evidence",
    }


@pytest.mark.parametrize("text", ["", ": optim.lr=0.1", "a/b: optim.lr=0.1", "lr: optim.lr"])
def test_bad_settings_are_errors(text):
    with pytest.raises(SystemExit):
        cross_validate.parse_setting(text)


def test_parse_setting():
    assert cross_validate.parse_setting("base") == ("base", [])
    assert cross_validate.parse_setting("size: data.image_size=256  optim.lr=3e-4") == (
        "size",
        ["data.image_size=256", "optim.lr=3e-4"],
    )


def test_fold_status(tmp_path):
    assert cross_validate.fold_status(tmp_path, 2) == "new"
    (tmp_path / "last.pt").write_bytes(b"")
    (tmp_path / "metrics.csv").write_text("epoch,val_auc\n1,0.5\n")
    assert cross_validate.fold_status(tmp_path, 2) == "resume"
    (tmp_path / "metrics.csv").write_text("epoch,val_auc\n1,0.5\n2,0.6\n")
    assert cross_validate.fold_status(tmp_path, 2) == "done"


def test_study_runs_end_to_end_and_resumes(shared_synthetic_isic_dir, tmp_path, capsys):
    config_path = tmp_path / "classification.yaml"
    save_config(tiny_config("classification", tmp_path / "elsewhere"), config_path)
    out, report_path = tmp_path / "cv", tmp_path / "cv.json"
    argv = ["--config", str(config_path), "--folds", "2", "--out", str(out)]
    argv += ["--setting", "base", "--setting", "lr: optim.lr=0.01", "--data-dir", str(shared_synthetic_isic_dir)]
    argv += ["--json", str(report_path)]
    cross_validate.main(argv)
    report = json.loads(capsys.readouterr().out)
    assert report == json.loads(report_path.read_text())
    assert (report["task"], report["metric"], report["folds"], report["baseline"]) == (
        "classification",
        "val_auc",
        2,
        "base",
    )
    base, lr = report["settings"]
    assert lr["overrides"] == ["optim.lr=0.01"]
    for row in (base, lr):
        assert set(row["per_fold"]) == {"fold0", "fold1"} and row["missing_folds"] == []
        assert row["mean"] == pytest.approx(sum(row["per_fold"].values()) / 2)
        assert math.isfinite(row["sd"])
    assert "vs_baseline" not in base
    comparison = lr["vs_baseline"]
    assert comparison["folds"] == [0, 1]
    expected = [lr["per_fold"][f"fold{k}"] - base["per_fold"][f"fold{k}"] for k in (0, 1)]
    assert comparison["differences"] == pytest.approx(expected)
    low, high = comparison["ci95"]
    assert low <= comparison["mean"] <= high
    assert comparison["decision"] == ("adopt" if low > 0 else "reject" if high < 0 else "no evidence")

    # Pooled out-of-fold predictions: every train image once (2 folds), from each fold's best.pt, cached per fold.
    train_ids = {s.image_id for s in read_isic2017(shared_synthetic_isic_dir, "train")}
    for name in ("base", "lr"):
        rows = [
            line.split(",")
            for fold in (0, 1)
            for line in (out / name / f"fold{fold}" / "oof.csv").read_text().split()[1:]
        ]
        assert {row[0] for row in rows} == train_ids and len(rows) == len(train_ids)
    pooled = lr["pooled_vs_baseline"]
    assert pooled["folds"] == [0, 1] and pooled["images"] == len(train_ids)
    assert pooled["difference"] == pytest.approx(lr["pooled_out_of_fold_auc"] - base["pooled_out_of_fold_auc"])
    assert pooled["decision"] == {"better": "adopt", "worse": "reject"}.get(
        "better" if pooled["ci95"][0] > 0 else "worse" if pooled["ci95"][1] < 0 else "", "no evidence"
    )
    assert lr["decision"] in {"adopt", "reject", "no evidence"}
    card = "\n".join(load_script("write_model_card", "scripts").cross_validation_section(report))
    assert "completed folds: 2 of 2 (fold0, fold1)" in card and report["command"] in card
    assert f"| lr | optim.lr=0.01 | fold0: {lr['per_fold']['fold0']:.3f}, fold1: " in card
    assert "| base | - | fold0: " in card and card.count("| baseline | baseline | baseline |") == 1
    assert f"| {lr['decision']} |" in card

    run_dir = out / "lr" / "fold1"
    saved = (run_dir / "config.yaml").read_text()
    assert "cv_folds: 2" in saved and "cv_fold: 1" in saved and "lr: 0.01" in saved
    assert f"data_dir: {shared_synthetic_isic_dir}" in saved
    assert "benchmarks/cross_validate.py --config" in saved  # config.command is the study's command line

    metrics = sorted(out.glob("*/fold*/metrics.csv"))
    assert len(metrics) == 4
    mtimes = [path.stat().st_mtime_ns for path in metrics]
    cross_validate.main(argv)
    rerun = capsys.readouterr()
    assert [path.stat().st_mtime_ns for path in metrics] == mtimes  # finished folds are not retrained
    assert rerun.err.count(": done") == 4
    assert json.loads(rerun.out)["settings"] == report["settings"]

    # A study copied back without its checkpoints (trained on another machine) is reported from its cached
    # predictions, training nothing, with a note on where it ran.
    copied = tmp_path / "copied"
    shutil.copytree(out, copied, ignore=shutil.ignore_patterns("*.pt"))
    cross_validate.main([*argv[:5], str(copied), *argv[6:-2], "--no-train", "--note", "trained elsewhere"])
    elsewhere = json.loads(capsys.readouterr().out)
    assert elsewhere["settings"] == report["settings"] and elsewhere["note"] == "trained elsewhere"
    cross_validate.main([*argv[:5], str(copied), *argv[6:-2], "--no-train", "--ensemble", "both=base+lr"])
    both = json.loads(capsys.readouterr().out)["settings"][-1]
    assert both["members"] == ["base", "lr"] and both["pooled_vs_baseline"]["images"] == len(train_ids)
    assert both["decision"] in {"adopt", "reject", "no evidence"}
    # --reference: the ensembles after it are also compared with it (here the same pair: no difference)
    ensembles = ["--ensemble", "both=base+lr", "--ensemble", "again=lr+base", "--reference", "both"]
    cross_validate.main([*argv[:5], str(copied), *argv[6:-2], "--no-train", *ensembles])
    again = json.loads(capsys.readouterr().out)["settings"][-1]
    assert again["vs_reference"]["name"] == "both" and again["vs_reference"]["pooled_vs"]["difference"] == 0
    with pytest.raises(SystemExit):
        cross_validate.main([*argv[:5], str(copied), *argv[6:-2], "--no-train", "--reference", "nothing"])
    assert "--reference nothing: not one of the --ensemble names" in capsys.readouterr().err
    assert not list(copied.glob("*/*/*.pt"))
    card = "\n".join(load_script("write_model_card", "scripts").cross_validation_section(elsewhere, "### Elsewhere"))
    assert card.startswith("### Elsewhere") and "trained elsewhere" in card

    # --served: the same pooled analysis through each fold's ONNX export; it needs the exports, then matches best.pt.
    with pytest.raises(SystemExit, match="--served needs each fold's export"):
        cross_validate.main([*argv, "--served"])
    from melanoma.inference.export import export_run

    for run in sorted(out.glob("*/fold*")):
        export_run(run, None, calibrate=False)
        assert json.loads((run / "export" / "classification.json").read_text())["calibrated"] is False
    capsys.readouterr()
    cross_validate.main([*argv, "--served"])
    served = json.loads(capsys.readouterr().out)
    assert served["out_of_fold"].startswith("served") and report["out_of_fold"] == "best.pt"
    for name in ("base", "lr"):
        for fold in (0, 1):
            run = out / name / f"fold{fold}"
            onnx = cross_validate._read_predictions(run / "oof_served.csv")
            torch_ = cross_validate._read_predictions(run / "oof.csv")
            assert onnx.keys() == torch_.keys()
            assert all(onnx[k][0] == torch_[k][0] and abs(onnx[k][1] - torch_[k][1]) < 1e-4 for k in onnx)
    assert served["settings"][1]["pooled_vs_baseline"]["difference"] == pytest.approx(pooled["difference"], abs=1e-3)
    served_card = "\n".join(load_script("write_model_card", "scripts").cross_validation_section(served))
    assert "through the served path (secondary)" in served_card and "--served" in served_card

    # The same folder with another setting under an existing name is refused, not silently mixed.
    changed = ["--config", str(config_path), "--folds", "2", "--out", str(out), "--setting", "base"]
    changed += ["--setting", "lr: optim.lr=0.02", "--data-dir", str(shared_synthetic_isic_dir)]
    with pytest.raises(SystemExit, match="lr/fold0 was trained with another config"):
        cross_validate.main(changed)
    # How a fold is computed (memory layout, threads, loader workers) is not part of the setting: a study may train
    # its folds on machines that differ in these, e.g. a GPU with loader workers, and still report them together.
    how = "channels_last=true threads=1 data.num_workers=1"
    relaid = ["--config", str(config_path), "--folds", "2", "--out", str(out), "--setting", f"base: {how}"]
    relaid += ["--setting", f"lr: optim.lr=0.01 {how}", "--data-dir", str(shared_synthetic_isic_dir), "--no-train"]
    capsys.readouterr()
    cross_validate.main(relaid)
    assert json.loads(capsys.readouterr().out)["settings"][1]["per_fold"] == lr["per_fold"]


def test_study_resumes_an_interrupted_fold(shared_synthetic_isic_dir, tmp_path, capsys):
    from melanoma.config import load_config
    from melanoma.training.engine import fit

    config_path = tmp_path / "classification.yaml"
    save_config(tiny_config("classification", shared_synthetic_isic_dir, **{"optim.epochs": 2}), config_path)
    run_dir = tmp_path / "cv" / "base" / "fold0"
    fit(load_config(config_path, ["data.cv_folds=2", "data.cv_fold=0"]), run_dir, stop_after=1)  # interrupted
    first_row = (run_dir / "metrics.csv").read_text().splitlines()[:2]
    argv = ["--config", str(config_path), "--folds", "2", "--out", str(tmp_path / "cv"), "--setting", "base"]
    cross_validate.main([*argv, "--only-folds", "0"])
    captured = capsys.readouterr()
    assert "base fold 0: resume" in captured.err
    assert (run_dir / "metrics.csv").read_text().splitlines()[:2] == first_row  # continued, not restarted
    assert len(cross_validate.read_metrics(run_dir)) == 2
    row = json.loads(captured.out)["settings"][0]
    assert list(row["per_fold"]) == ["fold0"] and row["missing_folds"] == [1]  # fold 1 not trained: not reported
    assert row["sd"] is None


def test_pooled_jaccard_comparison_pairs_the_same_images_of_the_shared_folds():
    baseline = {0: {"a": 0.5, "b": 0.7}, 1: {"c": 0.6}}
    other = {0: {"a": 0.6, "b": 0.8}, 1: {"c": 0.7}, 2: {"d": 0.1}}  # fold 2 has no baseline: not pooled
    result = cross_validate.pooled_jaccard_comparison(baseline, other, n_resamples=50)
    assert (result["folds"], result["images"], result["decision"]) == ([0, 1], 3, "adopt")
    assert result["difference"] == pytest.approx(0.1) and result["ci95"] == pytest.approx([0.1, 0.1])
    assert cross_validate.pooled_jaccard_comparison(other, baseline, n_resamples=50)["decision"] == "reject"
    assert cross_validate.pooled_jaccard_comparison(baseline, baseline, n_resamples=50)["decision"] == "no evidence"
    assert cross_validate.pooled_jaccard_comparison(baseline, {}, n_resamples=50) == {
        "folds": [],
        "images": 0,
        "decision": "no evidence",
    }


def test_segmentation_study_pools_per_image_jaccards_and_reports_raw_weights(
    shared_synthetic_isic_dir, tmp_path, capsys
):
    config_path = tmp_path / "segmentation.yaml"
    save_config(tiny_config("segmentation", shared_synthetic_isic_dir), config_path)
    out = tmp_path / "cv"
    argv = ["--config", str(config_path), "--folds", "2", "--out", str(out)]
    cross_validate.main([*argv, "--setting", "base", "--setting", "ema: optim.ema_decay=0.9"])
    report = json.loads(capsys.readouterr().out)
    base, ema = report["settings"]
    train_ids = {s.image_id for s in read_isic2017(shared_synthetic_isic_dir, "train")}
    for row, name in ((base, "base"), (ema, "ema")):
        for fold in (0, 1):
            lines = (out / name / f"fold{fold}" / "oof_jaccard.csv").read_text().split()[1:]
            values = [float(line.split(",")[1]) for line in lines]
            # best.pt scored image by image reproduces the fold's best val_jaccard (the same path, the same mean)
            assert sum(values) / len(values) == pytest.approx(row["per_fold"][f"fold{fold}"], abs=1e-6)
        pooled_ids = {
            line.split(",")[0]
            for fold in (0, 1)
            for line in (out / name / f"fold{fold}" / "oof_jaccard.csv").read_text().split()[1:]
        }
        assert pooled_ids == train_ids
    assert "per_fold_raw_weights" not in base and set(ema["per_fold_raw_weights"]) == {"fold0", "fold1"}
    pooled = ema["pooled_vs_baseline"]
    assert pooled["images"] == len(train_ids)
    assert pooled["difference"] == pytest.approx(ema["pooled_mean_jaccard"] - base["pooled_mean_jaccard"])
    card = "\n".join(load_script("write_model_card", "scripts").cross_validation_section(report, "### Seg"))
    assert "pooled mean Jaccard" in card and "(raw weights " in card
    assert f"({len(train_ids)} images) | {ema['decision']} |" in card

    # --ensemble: the Jaccard of the two settings' mean probability map, image by image, training nothing.
    argv += ["--setting", "base", "--setting", "ema: optim.ema_decay=0.9", "--no-train", "--ensemble", "both=base+ema"]
    cross_validate.main(argv)
    both = json.loads(capsys.readouterr().out)["settings"][-1]
    assert both["members"] == ["base", "ema"] and both["pooled_vs_baseline"]["images"] == len(train_ids)
    from melanoma.config import load_config
    from melanoma.metrics import jaccard

    for fold in (0, 1):
        config = load_config(config_path, ["data.cv_folds=2", f"data.cv_fold={fold}"])
        maps = [dict((i, (p, m)) for i, p, m in cross_validate.probability_maps(config, out / n / f"fold{fold}"))
                for n in ("base", "ema")]  # fmt: skip
        expected = {i: jaccard((maps[0][i][0] + maps[1][i][0]) / 2 >= 0.5, maps[0][i][1]) for i in maps[0]}
        cached = (out / "both" / f"fold{fold}" / "oof_jaccard.csv").read_text().split()[1:]
        got = {line.split(",")[0]: float(line.split(",")[1]) for line in cached}
        assert got.keys() == expected.keys() and all(abs(got[i] - expected[i]) < 1e-6 for i in got)
        assert both["per_fold"][f"fold{fold}"] == pytest.approx(sum(got.values()) / len(got))


def test_model_card_renders_a_segmentation_study_with_one_fold_and_an_unfinished_setting():
    report = {
        "command": "python benchmarks/cross_validate.py --config configs/segmentation.yaml --no-train",
        "note": "one fold only",
        "task": "segmentation",
        "folds": 5,
        "decision_rule": "adopt if ...",
        "settings": [
            {"name": "base", "overrides": [], "per_fold": {"fold0": 0.84}},
            {
                "name": "wide",
                "overrides": ["model.decoder_channels=[256,128,64,32,16]"],
                "per_fold": {"fold0": 0.845},
                "vs_baseline": cross_validate.paired_comparison({0: 0.84}, {0: 0.845}),
            },
            {
                "name": "slow",
                "overrides": ["optim.epochs=16"],
                "per_fold": {},
                "vs_baseline": cross_validate.paired_comparison({0: 0.84}, {}),
            },
        ],
    }
    card = "\n".join(load_script("write_model_card", "scripts").cross_validation_section(report, "### Seg"))
    assert "best validation mean Jaccard over its epochs" in card and "one fold only" in card
    assert "pooled" not in card.lower()
    assert "| base | - | fold0: 0.840 | baseline | baseline |" in card
    assert "| wide | model.decoder_channels=[256,128,64,32,16] | fold0: 0.845 | +0.005 (one fold: no interval)" in card
    assert "| slow | optim.epochs=16 | - | no paired fold | no evidence |" in card


def test_ensemble_row_averages_the_members_out_of_fold_probabilities():
    labels = [0, 1, 0, 1, 0, 0, 1, 0]
    # Each member ranks one melanoma below a non-melanoma; their mean ranks every image right.
    first = [0.1, 0.9, 0.2, 0.3, 0.4, 0.1, 0.8, 0.1]
    second = [0.1, 0.8, 0.2, 0.9, 0.1, 0.1, 0.3, 0.35]
    predictions = {
        "base": _predictions({0: first, 1: first}, labels),
        "other": _predictions({0: second, 1: second, 2: second}, labels),  # fold 2: base has none, not combined
    }
    row = cross_validate.ensemble_row("both", ["base", "other"], "base", predictions)
    assert row["members"] == ["base", "other"] and row["overrides"] == []
    assert row["per_fold"] == {"fold0": 1.0, "fold1": 1.0} and row["pooled_out_of_fold_auc"] == 1.0
    assert row["vs_baseline"]["folds"] == [0, 1]
    assert row["vs_baseline"]["differences"] == pytest.approx([1 - 14 / 15] * 2)  # base alone: 14 of 15 pairs right
    assert row["pooled_vs_baseline"]["images"] == 16 and row["pooled_vs_baseline"]["difference"] > 0
    card = "\n".join(
        load_script("write_model_card", "scripts").cross_validation_section(
            {"command": "cv", "task": "classification", "folds": 3, "decision_rule": "rule", "settings": [row]}
        )
    )
    assert "| both | ensemble: mean probability of base + other (no training) | fold0: 1.000, fold1: 1.000 |" in card
    mismatched = {**predictions, "other": _predictions({0: second[:-1]}, labels)}
    with pytest.raises(SystemExit, match="different images on fold 0"):
        cross_validate.ensemble_row("both", ["base", "other"], "base", mismatched)


def test_a_reference_ensemble_is_compared_with_each_ensemble_after_it():
    labels = [0, 1, 0, 1, 0, 0, 1, 0]
    first = [0.1, 0.9, 0.2, 0.3, 0.4, 0.1, 0.8, 0.1]
    second = [0.1, 0.8, 0.2, 0.9, 0.1, 0.1, 0.3, 0.35]
    third = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]  # ranks nothing: it can only dilute the pair
    predictions = {
        name: _predictions({0: values, 1: values}, labels)
        for name, values in (("base", first), ("other", second), ("flat", third))
    }
    ensembles = {"pair": ["base", "other"], "triple": ["base", "other", "flat"], "same": ["base", "other"]}
    same = cross_validate.reference_comparison("pair", ensembles, "same", predictions)
    assert same["name"] == "pair" and same["pooled_vs"]["difference"] == 0 and same["decision"] == "no evidence"
    triple = cross_validate.reference_comparison("pair", ensembles, "triple", predictions)
    assert triple["pooled_vs"]["images"] == 16 and triple["vs"]["folds"] == [0, 1]
    # a constant member keeps the pair's ranking (the mean is the pair's scaled and shifted): no gain, no loss
    assert triple["pooled_vs"]["difference"] == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("both=base", "two or more"),
        ("base=base+lr", "new NAME"),
        ("=base+lr", "new NAME"),
        ("both=base+base", "two or more different"),
        ("both=base+typo", "no --setting named typo"),
    ],
)
def test_bad_ensembles_are_errors(text, message):
    assert cross_validate.parse_ensemble("both=base+lr", ["base", "lr"]) == ("both", ["base", "lr"])
    with pytest.raises(SystemExit, match=message):
        cross_validate.parse_ensemble(text, ["base", "lr"])


# --- post-processing on a held-out fold (benchmarks/segmentation_postprocess.py) ------------------------------------

segmentation_postprocess = load_script("segmentation_postprocess")


def _disk(size: int = 64, radius: int = 20):
    import numpy as np

    rows, cols = np.mgrid[:size, :size]
    return (rows - size // 2) ** 2 + (cols - size // 2) ** 2 <= radius**2


def test_convex_hulls_fill_concavities_and_keep_convex_masks():
    import numpy as np

    disk = _disk()
    crescent = disk & ~np.roll(disk, 12, axis=1)  # concave: the disk with a bite taken out of its right side
    hull = segmentation_postprocess.convex_hull_each(crescent)
    assert crescent.sum() < hull.sum() <= disk.sum() and (hull | crescent).sum() == hull.sum()
    square = np.zeros((64, 64), bool)
    square[10:20, 10:20] = True
    assert (segmentation_postprocess.convex_hull_each(square) == square).all()  # already convex: unchanged
    two = square | np.roll(square, 30, axis=1)  # two squares in a row: each kept, the hull of all bridges them
    assert (segmentation_postprocess.convex_hull_each(two) == two).all()
    assert segmentation_postprocess.convex_hull_all(two)[15, 25] and not two[15, 25]
    assert not segmentation_postprocess.convex_hull_all(np.zeros((8, 8), bool)).any()


def test_extend_to_edge_fills_a_faded_border_and_leaves_inner_masks_alone():
    import numpy as np

    lesion = np.zeros((32, 32), bool)
    lesion[:, :12] = True  # the annotated lesion reaches the left edge
    faded = lesion.copy()
    faded[:, :2] = False  # the map fades in the last two columns
    assert (segmentation_postprocess.extend_to_edge(faded) == lesion).all()
    inner = _disk(32, 10)
    assert (segmentation_postprocess.extend_to_edge(inner) == inner).all()
    tiny = np.ones((5, 5), bool)
    assert segmentation_postprocess.extend_to_edge(tiny) is tiny  # no inner mask to copy from


def test_morphological_variants_move_the_outline_by_the_stated_pixels():
    import numpy as np

    square = np.zeros((32, 32), bool)
    square[10:20, 10:20] = True
    grown = np.zeros_like(square)
    grown[9:21, 9:21] = True
    assert (segmentation_postprocess.dilate_1px(square) == grown).all()
    assert (segmentation_postprocess.erode_1px(grown) == square).all()
    disk = _disk(32, 6)
    two = segmentation_postprocess.dilate_2px(disk)
    assert (two >= disk).all() and (two == _disk(32, 8)).mean() > 0.98  # about a disk of radius 8
    notched = square.copy()
    notched[14:16, 10:14] = False  # a 2 px notch cut into the square's edge
    assert (segmentation_postprocess.close_7px(notched) == square).all()
    assert (segmentation_postprocess.close_7px(square) == square).all()


def test_score_variants_pairs_each_variant_with_none_and_bounds_it_with_the_oracle():
    import numpy as np

    disk = _disk()
    crescent = disk & ~np.roll(disk, 12, axis=1)
    # The model is sure of the crescent and half sure of the bite: 0.5 misses the bite, a per-image 0.3 finds it.
    probability = np.where(crescent, 0.9, np.where(disk, 0.4, 0.0)).astype(np.float32)
    report = segmentation_postprocess.score_variants([(probability, disk), (disk.astype(np.float32), disk)])
    variants = report["variants"]
    assert report["images"] == 2 and "vs_none" not in variants["none"]
    none = (crescent.sum() / disk.sum() + 1.0) / 2
    assert variants["none"]["jaccard"] == pytest.approx(none)
    assert variants["convex_hull_each"]["vs_none"]["difference"] > 0  # the hull recovers part of the bite
    assert variants["fill_holes"]["vs_none"]["difference"] == 0  # no holes to fill
    assert report["oracle_threshold"]["jaccard"] == pytest.approx(1.0)
    assert all(
        report["oracle_threshold"]["jaccard"] >= row["jaccard"] for row in variants.values() if "hull" not in row
    )
    with pytest.raises(ValueError, match="differ in shape"):
        segmentation_postprocess.score_variants([(probability, disk[:10])])
    with pytest.raises(ValueError, match="no images"):
        segmentation_postprocess.score_variants([])


def test_postprocess_study_scores_a_fold_as_its_pooled_jaccard_does(
    tiny_segmentation_fold, shared_synthetic_isic_dir, tmp_path, capsys
):
    fold = tiny_segmentation_fold
    report_path = tmp_path / "postprocess.json"
    segmentation_postprocess.main([str(fold), "--json", str(report_path)])
    report = json.loads(report_path.read_text())
    assert json.loads(capsys.readouterr().out) == report
    pooled = [float(line.split(",")[1]) for line in (fold / "oof_jaccard.csv").read_text().split()[1:]]
    assert report["images"] == len(pooled)
    assert report["variants"]["none"]["jaccard"] == pytest.approx(sum(pooled) / len(pooled), abs=1e-6)
    assert report["command"].startswith("python benchmarks/segmentation_postprocess.py ")

    with pytest.raises(SystemExit, match="has no config.yaml or best.pt: pass a trained fold run folder"):
        segmentation_postprocess.main([str(tmp_path)])
    plain = tmp_path / "plain"
    plain.mkdir()
    save_config(tiny_config("segmentation", shared_synthetic_isic_dir), plain / "config.yaml")
    shutil.copy(fold / "best.pt", plain / "best.pt")
    with pytest.raises(SystemExit, match="not a fold of a segmentation cross-validation study"):
        segmentation_postprocess.main([str(plain)])


def test_learned_threshold_finds_a_rim_the_map_itself_announces():
    import numpy as np

    disk, core = _disk(radius=20), _disk(radius=12)
    rng = np.random.default_rng(0)
    pairs = []
    for index in range(40):
        # Half the images: the annotation is the whole disk, and the map marks its rim at 0.3 (a lower threshold
        # finds it, and the map's area above 0.3 says so); the other half: only the core, no rim in the map.
        noise = rng.uniform(0, 0.02, disk.shape)
        if index % 2:
            pairs.append((np.where(core, 0.9, np.where(disk, 0.3, 0.0)) + noise, disk))
        else:
            pairs.append((np.where(core, 0.9, 0.0) + noise, core))
    report = segmentation_postprocess.score_variants(pairs)
    learned = report["variants"]["learned_threshold"]
    assert learned["vs_none"]["decision"] == "better" and learned["jaccard"] == pytest.approx(1.0)
    assert "learned_threshold" not in segmentation_postprocess.score_variants(pairs[:10])["variants"]


def test_annotation_smoothness_tells_a_few_click_polygon_from_a_traced_outline():
    import numpy as np

    polygon = np.zeros((64, 64), bool)
    polygon[8:56, 8:56] = True  # four corners
    traced = polygon.copy()
    rng = np.random.default_rng(0)
    for column in range(8, 56):  # a ragged top edge, as an outline that follows the pigment pixel by pixel
        traced[8 : 8 + rng.integers(0, 4), column] = False
    smooth, ragged = (segmentation_postprocess.annotation_smoothness(m) for m in (polygon, traced))
    assert smooth < 0.05 < ragged
    assert np.isnan(segmentation_postprocess.annotation_smoothness(np.zeros((8, 8), bool)))
    # Six images in three size strata of two; in each, the smoother annotation is the one that failed.
    split = segmentation_postprocess.by_annotation_smoothness(
        smoothness=[0.3, 0.01, 0.2, 0.02, 0.1, 0.03],
        areas=[0.01, 0.02, 0.1, 0.11, 0.5, 0.6],
        jaccards=[0.9, 0.5, 0.9, 0.6, 0.8, 0.7],
        kinds=[None, "under", None, "under", None, None],
    )
    assert [stratum["area"] for stratum in split["strata"]] == [[0.01, 0.02], [0.1, 0.11], [0.5, 0.6]]
    assert [stratum["smoother"]["jaccard"] for stratum in split["strata"]] == [0.5, 0.6, 0.7]
    assert split["smoother"] == {"images": 3, "jaccard": pytest.approx(0.6), "failures": 2, "under_segmented": 2}
    assert split["more_detailed"]["jaccard"] == pytest.approx(0.8667, abs=1e-4)
    low, high = split["difference"]["ci95"]
    assert split["difference"]["jaccard"] == pytest.approx(0.6 - 0.8667, abs=1e-4) and low <= high < 0


def test_leave_out_copies_finds_the_training_images_with_a_copy_among_the_others(shared_synthetic_isic_dir, tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    shutil.copytree(shared_synthetic_isic_dir, data)
    train = sorted((data / "images" / "train").glob("*.jpg"))
    with Image.open(train[0]) as image:  # one photograph under two training ids (its mask and label stay)
        image.save(train[5], quality=95)
    config = tiny_config("classification", data, **{"data.cv_folds": 2, "data.cv_fold": 0})
    assert cross_validate.copied_training_images(config) == {train[0].stem, train[5].stem}
    clean = tiny_config("classification", shared_synthetic_isic_dir, **{"data.cv_folds": 2, "data.cv_fold": 1})
    assert cross_validate.copied_training_images(clean) == set()


def test_group_copies_keeps_the_copies_of_one_photograph_in_one_fold(shared_synthetic_isic_dir, tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    shutil.copytree(shared_synthetic_isic_dir, data)
    train = sorted((data / "images" / "train").glob("*.jpg"))
    for copy in (train[1], train[5]):  # three ids, one photograph (labels and masks as they were)
        with Image.open(train[0]) as image:
            image.save(copy, quality=95)
    same = {train[0].stem, train[1].stem, train[5].stem}
    # image by image (the default, unchanged): these three fall into both folds
    assert {len(same & set(_ids(_fold(data, 2, fold)[1]))) for fold in range(2)} == {1, 2}
    for fold in range(2):
        _, val, provenance = _fold(data, 2, fold, **{"data.group_copies": True})
        assert len(same & set(_ids(val))) in (0, 3)  # all three on one side
        assert "grouped by copies of one photograph (content fingerprints)" in provenance["validation_split"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data.group_copies": True}, "groups the cross-validation folds of the ISIC 2017 train split"),
        (
            {"data.group_copies": True, "data.cv_folds": 2, "data.group_column": "patient"},
            "data.group_copies and data.group_column both group the split",
        ),
    ],
)
def test_group_copies_says_where_it_does_not_apply(shared_synthetic_isic_dir, overrides, message):
    config = tiny_config("classification", shared_synthetic_isic_dir, **overrides)
    with pytest.raises(ValueError, match=message):
        load_splits(config.data)


def test_group_copies_keeps_a_folders_copies_on_one_side_of_its_split(shared_synthetic_isic_dir, tmp_path):
    from PIL import Image

    folder = tmp_path / "site"
    shutil.copytree(shared_synthetic_isic_dir / "images" / "train", folder)
    labels = shared_synthetic_isic_dir / "labels" / "ISIC-2017_Training_Part3_GroundTruth.csv"
    images = sorted(folder.glob("*.jpg"))
    folder_data = {"data.source": "folder", "data.images_dir": str(folder), "data.labels_csv": str(labels)}
    apart = None
    for copy in images[1:]:  # a copy of the first image that the image-by-image split puts on the other side
        train, val, _ = load_splits(tiny_config("classification", shared_synthetic_isic_dir, **folder_data).data)
        if (images[0].stem in _ids(val)) != (copy.stem in _ids(val)):
            apart = copy
            break
    assert apart is not None
    with Image.open(images[0]) as image:
        image.save(apart, quality=95)
    config = tiny_config("classification", shared_synthetic_isic_dir, **folder_data, **{"data.group_copies": True})
    train, val, provenance = load_splits(config.data)
    assert (images[0].stem in _ids(val)) == (apart.stem in _ids(val))
    assert provenance["split"].endswith("grouped by copies of one photograph (content fingerprints), seed 0")
