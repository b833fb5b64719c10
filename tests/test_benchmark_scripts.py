"""The experiment scripts under ``benchmarks/`` on tiny exported models and synthetic ISIC data (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO_ROOT, load_script


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
    report = json.loads(out.read_text())
    rows = {row["name"]: row for row in report["rows"]}
    assert rows["plain image (shipped)"]["decision"] == "baseline"
    digest = json.loads((tiny_models_dir / "classification.json").read_text())["onnx_sha256"]
    assert report["networks"]["classification"]["onnx_sha256"] == digest  # the --models classifier
    assert {"test-time augmentation: hflip", "test-time augmentation: hflip + vflip"} <= set(rows)
    base_auc = rows["plain image (shipped)"]["result"].removeprefix("val AUC ")
    # The same model alone and averaged with itself: the same probabilities, so exactly no gain.
    for name in ("same", "pair=ensemble"):
        expected = f"val AUC {base_auc}; gain vs the --models classifier (one view each), 95% CI [+0.0000, +0.0000]"
        assert rows[name]["result"] == expected
        assert rows[name]["decision"] == "within noise"


def test_bench_consistency_reports_each_path_to_the_same_lesion(tiny_models_dir, shared_synthetic_isic_dir, tmp_path):
    import shutil

    import numpy as np
    from PIL import Image

    data = tmp_path / "data"
    shutil.copytree(shared_synthetic_isic_dir, data)
    first = sorted((data / "images" / "val").glob("*.jpg"))[0]
    (data / "fullres" / "val").mkdir(parents=True)
    with Image.open(first) as image:  # an "original-size" photo: the prepared image enlarged, not square
        image.resize((image.width * 4, image.height * 3)).save(data / "fullres" / "val" / first.name)
    out = tmp_path / "consistency.json"
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_consistency.py")]
    command += ["--models", str(tiny_models_dir), "--data-dir", str(data), "--json", str(out)]
    command += ["--baseline", str(tiny_models_dir)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    report = json.loads(out.read_text())
    assert report["n_validation"] == 4 and report["resize_filter"]["served"] == "linear"
    shifts = report["acquisition"]
    assert list(shifts) == ["clean", "warm_cast", "cool_cast", "darker", "brighter", "jpeg_q40"]
    assert shifts["clean"]["auc"] == report["resize_filter"]["auc_served"]  # the served path, unchanged images
    for name, row in shifts.items():
        assert 0 <= row["jaccard"] <= 1 and row["thresholded_jaccard"] <= row["jaccard"]
        assert row["auc_vs_baseline"]["difference"] == 0  # the same models as their own baseline
        assert row["jaccard_vs_baseline"]["difference"] == 0 and row["jaccard_vs_baseline"]["ci95"] == [0, 0]
        if name != "clean":
            assert row["auc_vs_clean"]["difference"] == round(row["auc"] - shifts["clean"]["auc"], 4)
            assert row["jaccard_vs_clean"]["ci95"][0] <= row["jaccard_vs_clean"]["ci95"][1]
    for part in ("resize_filter", "hflip", "vflip", "upload_size"):
        spread = report[part]
        assert 0 <= spread["median_abs_delta"] <= spread["p95_abs_delta"] <= spread["max_abs_delta"] <= 1
    (row,) = report["upload_size"]["images"]
    assert row["image_id"] == first.stem
    assert spread["max_abs_delta"] == round(abs(row["original"] - row["prepared_256"]), 4)
    card = "\n".join(_load_card_writer().consistency_section(report))
    assert "| the image mirrored left-right | 4 |" in card and "original-size photo" in card
    assert "| re-compressed as JPEG at quality 40 |" in card and "AUC gain over the baseline" in card
    assert "Jaccard gain over the baseline (95% CI) |" in card
    assert np.isfinite(report["resize_filter"]["auc_served"])


def _load_card_writer():
    return load_script("write_model_card", "scripts")


def test_bench_training_speed_measures_fp32_and_bf16_side_by_side(tmp_path):
    out = tmp_path / "speed.json"
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_training_speed.py")]
    command += ["--task", "classification", "--size", "32", "--batch", "2", "--steps", "1", "--json", str(out)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    report = json.loads(out.read_text())
    (network,) = report["networks"]
    assert network["task"] == "classification" and network["arch"] == "tf_efficientnet_lite0"
    assert network["none_images_per_s"] > 0 and network["bf16_images_per_s"] > 0
    assert network["bf16_speedup"] == round(network["bf16_images_per_s"] / network["none_images_per_s"], 3)
    for amp in ("none", "bf16"):  # each precision also in the channels-last layout, with its ratio
        ratio = network[f"{amp}_channels_last_images_per_s"] / network[f"{amp}_images_per_s"]
        assert network[f"channels_last_speedup_{amp}"] == round(ratio, 3)
    assert set(report["cpu_bf16_flags"]) <= {"avx512_bf16", "amx_bf16"} and report["cpu"]


def test_bench_inference_reports_side_by_side_ratios(tiny_models_dir, shared_synthetic_isic_dir, tmp_path):
    out = tmp_path / "inference.json"
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_inference.py"), "--n", "3"]
    command += ["--models", str(tiny_models_dir), "--data-dir", str(shared_synthetic_isic_dir), "--json", str(out)]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    result = json.loads(out.read_text())
    assert result["images"] == 3
    assert result["speedup"] == round(result["eager_ms_per_image"] / result["predictor_ms_per_image"], 2)
    n_test = len(list((shared_synthetic_isic_dir / "images" / "test").iterdir()))
    assert (result["predict_images"], result["predict_failed"]) == (n_test, 0)
    assert result["predict_workers"] >= 1 and result["predict_batch_size"] == 4
    ratio = result["predict_images_per_s"] / result["predict_one_worker_images_per_s"]
    assert abs(result["predict_workers_speedup"] - ratio) <= 0.01 + 0.01 * ratio  # from the unrounded rates
    assert {"segmentation", "classification", "decode", "total"} <= set(result["predictor_stage_ms"])
    assert result["peak_rss_mb_both_models"] > 0


def test_bench_inference_runs_an_ensembles_networks_only_when_asked():
    bench = load_script("bench_inference")
    shipped = json.loads((REPO_ROOT / "models" / "classification.json").read_text())
    members = [m["training"]["config"]["model"]["arch"] for m in shipped["ensemble"]["members"]]
    assert len(members) == 3  # the shipped classifier is a Lite0 + Lite2 + Lite0 ensemble
    assert [c["arch"] for c in bench.network_configs(shipped)] == members[:1]  # the original design: one
    assert [c["arch"] for c in bench.network_configs(shipped, all_members=True)] == members
    single = json.loads((REPO_ROOT / "models" / "segmentation.json").read_text())
    assert bench.network_configs(single, all_members=True) == [single["training"]["config"]["model"]]


def test_acquisition_shifts_apply_gains_with_clipping_and_recompress():
    import numpy as np

    bench = load_script("bench_consistency")
    image = np.full((16, 16, 3), 200, np.uint8)
    assert bench.shifted(image, (1.0, 0.5, 1.3), None)[0, 0].tolist() == [200, 100, 255]  # clipped at white
    noisy = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    compressed = bench.shifted(noisy, None, 40)
    assert compressed.shape == noisy.shape and compressed.dtype == np.uint8 and not np.array_equal(compressed, noisy)


def test_metadata_likelihood_ratio_follows_the_fit_and_is_zero_at_the_base_rate():
    import numpy as np

    study = load_script("classification_metadata")
    # Melanomas in the old only: the older the patient, the larger the ratio; unknown ages take the median age.
    fit = [(20.0, "female"), (25.0, "male"), (30.0, "female"), (70.0, "male"), (75.0, "female"), (80.0, "male")]
    labels = np.array([0, 0, 0, 1, 1, 1])
    llr = study.metadata_log_likelihood_ratio(fit, labels, [(20.0, "female"), (80.0, "female"), (None, "unknown")])
    assert llr[0] < 0 < llr[1]
    rows = study.features([(None, "unknown"), (40.0, "male")], median_age=50.0)
    np.testing.assert_allclose(rows, [[0.5, 1, 0, 1], [0.4, 0, 1, 0]])
    # Metadata that says nothing (the same for every image) leaves the image's log-odds where they were.
    flat = study.metadata_log_likelihood_ratio([(50.0, "male")] * 6, labels, [(50.0, "male")])
    np.testing.assert_allclose(flat, [0.0], atol=1e-6)


def test_classification_metadata_scores_a_fold_and_validation(tiny_models_dir, synthetic_isic_dir, tmp_path):
    from melanoma.data import read_isic2017

    meta = synthetic_isic_dir / "metadata"
    meta.mkdir()
    for split, name in (("train", "Training"), ("val", "Validation")):
        samples = read_isic2017(synthetic_isic_dir, split)
        rows = ["image_id,age_approximate,sex"]
        rows += [f"{s.image_id},{80 if s.melanoma else 10 + i},female"
                 for i, s in enumerate(samples)]  # fmt: skip
        (meta / f"ISIC-2017_{name}_Data_metadata.csv").write_text("\n".join(rows) + "\n")
    train = read_isic2017(synthetic_isic_dir, "train")
    held_out = train[:2] + train[-2:]  # 2 melanomas, 2 others
    oof = tmp_path / "oof.csv"
    oof.write_text("image_id,label,probability\n" + "".join(
        f"{s.image_id},{int(s.melanoma)},{p}\n" for s, p in zip(held_out, (0.31, 0.30, 0.32, 0.2), strict=True)
    ))  # fmt: skip
    out = tmp_path / "metadata.json"
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "classification_metadata.py"), "--oof", str(oof)]
    command += ["--models", str(tiny_models_dir), "--data-dir", str(synthetic_isic_dir), "--json", str(out)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    report = json.loads(out.read_text())
    assert report["fold"]["images"] == 4 and report["fold"]["melanomas"] == 2
    assert report["fold"]["image_auc"] == 0.5  # 0.31 and 0.30 against 0.32 and 0.2
    assert report["fold"]["combined_auc"] == 1.0  # the melanomas are the old patients here
    assert report["validation"]["images"] == 4 and report["validation"]["melanomas"] == 2
    assert report["validation"]["gain"] == round(
        report["validation"]["combined_auc"] - report["validation"]["image_auc"], 4
    )


def test_bench_masks_times_each_helper_on_each_mask():
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_masks.py"), "--repeats", "1"],
        check=True,
        capture_output=True,
        text=True,
    )
    rows = json.loads(out.stdout)["rows"]
    assert {(row["function"], row["input"]) for row in rows} == {
        *(
            (f, m)
            for f in ("largest_component", "fill_holes", "clean_mask")
            for m in ("lesion 256x256", "random half-filled 256x256")
        ),
        ("measure_lesion", "lesion 1024x768"),
    }
    assert all(row["median_ms"] > 0 for row in rows)


def test_duplicates_lists_copies_across_splits_and_scores_validation_without_them(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path
):
    import shutil

    from PIL import Image

    data = tmp_path / "data"
    shutil.copytree(shared_synthetic_isic_dir, data)
    val = sorted((data / "images" / "val").glob("*.jpg"))
    train = sorted((data / "images" / "train").glob("*.jpg"))
    with Image.open(val[0]) as image:  # a validation image re-published in the test split, renamed and re-encoded
        image.save(data / "images" / "test" / "ISIC_0099999.jpg", quality=95)  # (the synthetic skin is flat:
        # re-encoded harder, its equalised JPEG noise moves the fingerprint, where real skin's texture does not)
    with Image.open(train[0]) as image:  # ... and a training image re-published among the validation images
        image.save(val[1], quality=95)  # (its size kept: the validation mask must fit it)
    (data / "fullres" / "val").mkdir(parents=True)
    with Image.open(val[2]) as image:  # an original at full size
        image.resize((image.width * 4, image.height * 3)).save(data / "fullres" / "val" / val[2].name, quality=90)
    out = tmp_path / "duplicates.json"
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "duplicates.py")]
    command += ["--models", str(tiny_models_dir), "--data-dir", str(data), "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["images"] == {"train": 8, "val": 4, "test": 3}
    pairs = {(p["a"], p["b"]) for p in report["pairs"]}
    assert pairs == {(train[0].stem, val[1].stem), (val[0].stem, "ISIC_0099999")}
    assert report["copies"] == {
        "val_in_train": 1,
        "test_in_train": 0,
        "test_in_val": 1,
        "test_in_train_or_val": 1,
        "train_in_train": 0,
    }
    assert report["fullres"] == [{"image": val[2].stem, "distance": report["fullres"][0]["distance"], "found": True}]
    changes = report["transforms"]
    assert changes["greyscale"] == {"found": 1.0, "median_distance": 0.0, "max_distance": 0}  # grey already
    assert changes["mirrored"]["found"] < 1.0 and len(changes) == 13
    validation = report["validation"]
    assert validation["left_out"] == [val[1].stem]
    assert (validation["all"]["images"], validation["without_training_copies"]["images"]) == (4, 3)
