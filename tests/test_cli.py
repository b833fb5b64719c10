"""The `melanoma` command end to end on tiny models: predict (files, folders, bad files, overlays), evaluate."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import synthetic_lesion
from corpus import build_corpus
from PIL import Image

from melanoma.cli import main
from melanoma.inference.batch import CSV_COLUMNS


def _refused(capsys, argv, match):
    """``main(argv)`` refuses the command line: exit code 2 (argparse's code for usage errors) and ``error: ...``
    on stderr matching ``match``."""
    capsys.readouterr()
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and re.search(match, error), error


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_predict_folder_with_bad_files_writes_a_row_each_and_overlays(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path
):
    folder = tmp_path / "inputs"
    expected = build_corpus(folder / "corpus")
    for path in (shared_synthetic_isic_dir / "images" / "test").iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "predictions.csv"
    code = main(
        [
            "predict",
            str(folder),
            "--models",
            str(tiny_models_dir),
            "--out",
            str(out),
            "--overlays",
            str(tmp_path / "ov"),
        ]
    )
    assert code == 0
    rows = _rows(out)
    assert tuple(rows[0]) == CSV_COLUMNS
    good = [r for r in rows if not r["error"]]
    bad = [r for r in rows if r["error"]]
    assert len(good) == 2 + sum(expected.values())
    assert len(bad) == sum(not ok for ok in expected.values())
    for row in good:
        assert row["decision"] in {"above_threshold", "below_threshold", "not_assessed"}  # a blank image: not assessed
        if row["decision"] == "not_assessed":  # no outline to measure, and its probability is noise
            assert row["lesion_area_fraction"] == row["area_px"] == row["melanoma_probability"] == ""
        else:
            assert 0.0 <= float(row["melanoma_probability"]) <= 1.0
            assert 0.0 <= float(row["lesion_area_fraction"]) <= 1.0
    overlays = list((tmp_path / "ov").glob("*.png"))
    assert len(overlays) == len(good)
    with Image.open(overlays[0]) as overlay:
        assert overlay.mode == "RGB"
    # Each row names its own overlay: the row number and the image's name, in the folder given.
    for number, row in enumerate(rows):
        expected_name = f"{number:05d}_{Path(row['image']).stem}_overlay.png" if not row["error"] else ""
        assert Path(row["overlay"]).name == expected_name
        assert not row["overlay"] or Path(row["overlay"]).parent == tmp_path / "ov"
    assert sorted(Path(row["overlay"]) for row in good) == sorted(overlays)


def test_predict_folders_skip_os_metadata_masks_and_superpixel_maps(tmp_path):
    from conftest import synthetic_lesion

    from melanoma.inference.batch import expand_paths

    folder = tmp_path / "unzipped"
    (folder / "__MACOSX").mkdir(parents=True)
    (folder / ".thumbnails").mkdir()
    (folder / "clinic b").mkdir()
    image, mask = synthetic_lesion(32, seed=0)
    for name in ("a.jpg", "clinic b/b.png"):
        Image.fromarray(image).save(folder / name)
    Image.fromarray(mask).save(folder / "a_segmentation.png")
    Image.fromarray(mask).save(folder / "a_superpixels.png")
    for junk in ("._a.jpg", "__MACOSX/._a.jpg", ".thumbnails/a.jpg"):
        (folder / junk).write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    assert expand_paths([folder]) == [folder / "a.jpg", folder / "clinic b" / "b.png"]
    named = folder / "a_segmentation.png"
    assert expand_paths([named]) == [named]  # a file named on the command line is kept


def test_predict_folders_follow_links_once_skip_old_overlays_and_warn_about_dead_links(tmp_path):
    from conftest import synthetic_lesion

    from melanoma.inference.batch import expand_paths

    folder, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    image, _ = synthetic_lesion(32, seed=0)
    Image.fromarray(image).save(folder / "a.jpg")
    Image.fromarray(image).save(elsewhere / "b.jpg")
    Image.fromarray(image).save(folder / "00000_a_overlay.png")  # a previous run's --overlays output
    (folder / "linked").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "loop").symlink_to(folder, target_is_directory=True)  # a link back up: must end
    (folder / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    warnings: list[str] = []
    assert expand_paths([folder], warn=warnings.append) == [folder / "a.jpg", folder / "linked" / "b.jpg"]
    assert warnings == [f"{folder / 'gone.jpg'} is a link to nothing; left out"]


def test_an_overlay_that_cannot_be_written_keeps_its_prediction(tiny_models_dir, tmp_path, monkeypatch):
    import io

    from conftest import synthetic_lesion

    from melanoma.inference import batch
    from melanoma.inference.predictor import Predictor

    image = tmp_path / "lesion.png"
    Image.fromarray(synthetic_lesion(128)[0]).save(image)

    def full_disk(prediction, folder, stem):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(batch, "write_overlay", full_disk)
    out = io.StringIO()
    counts = batch.predict_paths(Predictor.from_dir(tiny_models_dir), [image], out, tmp_path / "ov", progress=False)
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert counts == (1, 0) and row["melanoma_probability"] != ""
    assert row["error"] == "overlay not written: [Errno 28] No space left on device"
    assert row["overlay"] == ""


def test_parallel_workers_write_the_same_rows_in_input_order(tiny_models_dir, shared_synthetic_isic_dir, tmp_path):
    import io
    import threading

    from melanoma.inference.batch import expand_paths, predict_paths
    from melanoma.inference.predictor import Predictor

    folder = tmp_path / "inputs"
    build_corpus(folder / "corpus")  # good and bad files mixed, so errors must land on their own rows
    for path in (shared_synthetic_isic_dir / "images" / "test").iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    paths = expand_paths([folder])
    predictor = Predictor.from_dir(tiny_models_dir, threads=1)
    calling_threads = set()
    predict_batch = predictor.predict_batch

    def recording_predict_batch(sources):
        calling_threads.add(threading.get_ident())
        return predict_batch(sources)

    predictor.predict_batch = recording_predict_batch
    outputs = {}
    for workers in (1, 3):
        out = io.StringIO()
        ok, failed = predict_paths(
            predictor, paths, out, tmp_path / f"ov{workers}", batch_size=2, progress=False, workers=workers
        )
        outputs[workers] = (list(csv.DictReader(io.StringIO(out.getvalue()))), ok, failed)
    assert len(calling_threads) > 1  # the batches really ran in several threads
    one, parallel = outputs[1][0], outputs[3][0]
    assert [r["image"] for r in parallel] == [str(p) for p in paths]
    assert outputs[1][1:] == outputs[3][1:] and outputs[3][2] > 0
    for a, b in zip(one, parallel, strict=True):
        differ = ("milliseconds", "overlay")  # timings vary; the two runs write overlays to two folders
        assert {k: v for k, v in a.items() if k not in differ} == {k: v for k, v in b.items() if k not in differ}
        assert Path(a["overlay"]).name == Path(b["overlay"]).name
    names = sorted(p.name for p in (tmp_path / "ov1").iterdir())
    assert names and names == sorted(p.name for p in (tmp_path / "ov3").iterdir())
    with pytest.raises(ValueError, match="at least 1"):
        predict_paths(predictor, paths, io.StringIO(), workers=0)


def test_predict_exits_non_zero_only_when_nothing_worked(tiny_models_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    assert main(["predict", str(bad), "--models", str(tiny_models_dir)]) == 1
    assert "bad.jpg" in capsys.readouterr().out


def test_evaluate_segmentation_reads_masks_named_otherwise_through_mask_suffix(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path, capsys
):
    import shutil

    root, masks = shared_synthetic_isic_dir, tmp_path / "masks"
    masks.mkdir()
    for mask in (root / "masks/val").iterdir():  # masks named as their images, in a folder of their own
        shutil.copy(mask, masks / mask.name.replace("_segmentation", ""))
    common = ["evaluate", "segmentation", "--images", str(root / "images/val"), "--models", str(tiny_models_dir)]
    assert main([*common, "--masks", str(masks)]) == 2
    assert "--mask-suffix" in capsys.readouterr().err
    assert main([*common, "--masks", str(masks), "--mask-suffix", ".png"]) == 0
    renamed = json.loads(capsys.readouterr().out)
    assert main([*common, "--masks", str(root / "masks/val")]) == 0
    original = json.loads(capsys.readouterr().out)
    assert renamed["mask_suffix"] == ".png" and renamed["jaccard"] == original["jaccard"] and renamed["n"] > 0


def test_evaluate_segmentation_against_a_baseline_pairs_the_images(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path
):
    import shutil

    root, baseline = shared_synthetic_isic_dir, tmp_path / "baseline"
    shutil.copytree(tiny_models_dir, baseline)
    config = json.loads((baseline / "segmentation.json").read_text())
    config["threshold"] = 0.02  # another segmenter: the same network, almost every pixel called lesion
    (baseline / "segmentation.json").write_text(json.dumps(config))
    common = ["evaluate", "segmentation", "--images", str(root / "images/val"), "--masks", str(root / "masks/val")]
    common += ["--models", str(tiny_models_dir)]

    def run(reference, name):
        assert main([*common, "--baseline", str(reference), "--json", str(tmp_path / name)]) == 0
        return json.loads((tmp_path / name).read_text())

    same = run(tiny_models_dir, "same.json")["vs_baseline"]
    assert (same["difference"], same["ci95"], same["decision"]) == (0, [0, 0], "within noise")
    scores = run(baseline, "other.json")
    gain = scores["vs_baseline"]
    assert gain["models_dir"] == str(baseline) and gain["other_mean"] == pytest.approx(scores["jaccard"], abs=1e-4)
    assert (
        scores["networks"]["segmentation"]["onnx_sha256"]
        == config["onnx_sha256"]
        == gain["networks"]["segmentation"]["onnx_sha256"]
    )
    assert main([*common[:6], "--models", str(baseline), "--json", str(tmp_path / "b.json")]) == 0
    assert gain["baseline_mean"] == pytest.approx(json.loads((tmp_path / "b.json").read_text())["jaccard"], abs=1e-4)
    assert gain["difference"] == pytest.approx(gain["other_mean"] - gain["baseline_mean"], abs=2e-4)
    assert gain["ci95"][0] <= gain["difference"] <= gain["ci95"][1]
    # the segmenter that calls almost every pixel lesion fails by spilling over the annotations
    failures = json.loads((tmp_path / "b.json").read_text())["failures"]
    assert failures["over_segmented"] and not failures["under_segmented"] and "Jaccard < 0.65" in failures["rule"]


def test_evaluate_classification_against_a_baseline_pairs_the_images(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path
):
    import shutil

    root, baseline = shared_synthetic_isic_dir, tmp_path / "baseline"
    shutil.copytree(tiny_models_dir, baseline)
    config = json.loads((baseline / "classification.json").read_text())
    config["test_time_flips"] = ["hflip", "vflip"]  # another classifier: the mean over three views
    (baseline / "classification.json").write_text(json.dumps(config))
    labels = root / "labels/ISIC-2017_Validation_Part3_GroundTruth.csv"
    common = ["evaluate", "classification", "--images", str(root / "images/val"), "--labels", str(labels)]

    def run(models, name, *extra):
        assert main([*common, "--models", str(models), "--json", str(tmp_path / name), *extra]) == 0
        return json.loads((tmp_path / name).read_text())

    same = run(tiny_models_dir, "same.json", "--baseline", str(tiny_models_dir))
    assert (same["vs_baseline"]["difference"], same["vs_baseline"]["ci95"]) == (0, [0, 0])
    assert "per_image" not in same
    scores = run(tiny_models_dir, "other.json", "--baseline", str(baseline), "--per-image")
    reference = run(baseline, "baseline.json", "--per-image")
    gain = scores["vs_baseline"]
    assert gain["models_dir"] == str(baseline)
    # each report names the networks it measured (the baseline's config is another, its network the same file)
    shipped = json.loads((tiny_models_dir / "classification.json").read_text())
    named = {key: shipped[key] for key in ("arch", "exported", "onnx_sha256")}
    assert scores["networks"] == gain["networks"] == {"classification": named}
    assert gain["other_auc"] == pytest.approx(scores["auc"], abs=1e-4)
    assert gain["baseline_auc"] == pytest.approx(reference["auc"], abs=1e-4)
    assert gain["difference"] == pytest.approx(gain["other_auc"] - gain["baseline_auc"], abs=2e-4)
    assert gain["ci95"][0] <= gain["difference"] <= gain["ci95"][1]
    per_image = scores["per_image"]
    assert len(per_image) == scores["n"] and sum(v["melanoma"] for v in per_image.values()) == scores["n_positive"]
    assert any(
        abs(per_image[i]["probability"] - reference["per_image"][i]["probability"]) > 1e-6 for i in per_image
    )  # the baseline really is another classifier


def test_evaluate_classification_checks_its_inputs_before_scoring(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path, monkeypatch, capsys
):
    import importlib.util
    import shutil

    from melanoma.inference.predictor import Predictor

    root = shared_synthetic_isic_dir
    labels = root / "labels/ISIC-2017_Validation_Part3_GroundTruth.csv"  # 4 images, 2 melanomas
    subset = tmp_path / "subset"
    subset.mkdir()
    rows = [line.split(",") for line in labels.read_text().splitlines()[1:]]
    kept = [image_id for image_id, melanoma, _ in rows][:3]  # a subset scored with the full labels file
    for image_id in kept:
        shutil.copy(root / "images/val" / f"{image_id}.jpg", subset)
    command = ["evaluate", "classification", "--images", str(subset), "--labels", str(labels)]
    assert main([*command, "--models", str(tiny_models_dir), "--json", str(tmp_path / "e.json")]) == 0
    report = json.loads((tmp_path / "e.json").read_text())
    assert (report["n"], report["labels_without_image"]) == (3, 1)
    missing = [image_id for image_id, _, _ in rows][3]
    assert f"note: 1 row(s) of {labels} have no image in {subset} and are not scored (first: {missing})" in (
        capsys.readouterr().err
    )
    # One class only, or plots without matplotlib: refused before any image is scored.
    monkeypatch.setattr(Predictor, "predict_arrays", lambda *a, **k: pytest.fail("scored before the check"))
    (subset / f"{kept[2]}.jpg").unlink()  # the two left are melanomas
    assert main([*command, "--models", str(tiny_models_dir)]) == 2
    assert "only one class is present" in capsys.readouterr().err
    shutil.copy(root / "images/val" / f"{kept[2]}.jpg", subset)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "matplotlib" else real_find_spec(n))
    assert main([*command, "--models", str(tiny_models_dir), "--plots", str(tmp_path / "plots")]) == 2
    assert "--plots needs matplotlib" in capsys.readouterr().err


def test_evaluate_segmentation_and_classification(tiny_models_dir, shared_synthetic_isic_dir, tmp_path, capsys):
    seg_json, cls_json = tmp_path / "seg.json", tmp_path / "cls.json"
    root = shared_synthetic_isic_dir
    assert (
        main(
            [
                "evaluate",
                "segmentation",
                "--images",
                str(root / "images/val"),
                "--masks",
                str(root / "masks/val"),
                "--models",
                str(tiny_models_dir),
                "--json",
                str(seg_json),
            ]
        )
        == 0
    )
    seg = json.loads(seg_json.read_text())
    assert seg["n"] == 4 and {"jaccard", "thresholded_jaccard", "dice"} <= set(seg)
    low, high = seg["ci95"]["jaccard"]  # the headline numbers for people, on stderr, from the same report
    summary = f"summary: 4 images: mean Jaccard {seg['jaccard']:.4f} (95% CI {low:.4f}-{high:.4f}), thresholded"
    assert summary in capsys.readouterr().err
    for name in ("jaccard", "thresholded_jaccard", "dice"):  # image-bootstrap 95% intervals around each score
        low, high = seg["ci95"][name]
        assert low <= seg[name] <= high
    # The calibrated threshold and post-processing came from the same 4 validation images, so the CLI
    # must reproduce the export-time validation scores exactly.
    config = json.loads((tiny_models_dir / "segmentation.json").read_text())
    assert seg["jaccard"] == pytest.approx(config["validation"]["jaccard"], abs=2e-4)
    failures = sum(len(ids) for kind, ids in seg["failures"].items() if kind != "rule")
    for summary in seg["quality_checks"].values():  # each check: its images against the others
        assert 0 <= summary["failures_flagged"] <= summary["flagged"] <= seg["n"]
        assert summary["failures"] == failures
    shown = {"blank_image", "mask_image", "greyscale_image", "dark_frame", "small_image", "elongated_image",
             "training_image", "no_lesion", "outline_uncertain"}  # fmt: skip
    assert set(seg["quality_checks"]) == shown
    assert (
        main(
            [
                "evaluate",
                "classification",
                "--images",
                str(root / "images/val"),
                "--labels",
                str(root / "labels/ISIC-2017_Validation_Part3_GroundTruth.csv"),
                "--models",
                str(tiny_models_dir),
                "--json",
                str(cls_json),
                "--plots",
                str(tmp_path / "plots"),
            ]
        )
        == 0
    )
    scores = json.loads(cls_json.read_text())
    assert scores["n"] == 4
    summary = f"summary: 4 images (2 melanoma): AUC {scores['auc']:.4f} (95% CI {scores['ci95']['auc'][0]:.4f}-"
    error = capsys.readouterr().err
    assert summary in error and f"at the model's threshold {scores['threshold']:.4f}: sensitivity" in error
    expected_keys = {"auc", "average_precision", "threshold", "sensitivity", "specificity", "balanced_accuracy", "ci95"}
    assert expected_keys <= set(scores)
    # 4 images cannot be split into 5 folds of each class: the cross-fitted operating point says so, run goes on
    assert "needs at least 5 images of each class" in scores["cross_fitted"]["skipped"]
    assert (tmp_path / "plots" / "roc.png").is_file()


def test_evaluate_resizes_predictions_to_original_size_masks(tiny_models_dir, tmp_path):
    from conftest import synthetic_lesion

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    image, mask = synthetic_lesion(256, seed=5)
    Image.fromarray(np.asarray(Image.fromarray(image).resize((1024, 768)))).save(images / "big.jpg")
    Image.fromarray(np.asarray(Image.fromarray(mask).resize((1024, 768)))).save(masks / "big_segmentation.png")
    out = tmp_path / "s.json"
    assert (
        main(
            [
                "evaluate",
                "segmentation",
                "--images",
                str(images),
                "--masks",
                str(masks),
                "--models",
                str(tiny_models_dir),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["mask_sizes_predicted"] == ["1024x768"]


def test_evaluate_reads_label_map_and_palette_masks_as_the_official_ones(tiny_models_dir, tmp_path):
    from conftest import synthetic_lesion

    images = tmp_path / "images"
    images.mkdir()
    official, label_map, palette = (tmp_path / name for name in ("official", "label_map", "palette"))
    for folder in (official, label_map, palette):
        folder.mkdir()
    for seed in range(3):
        image, mask = synthetic_lesion(64, seed=seed)
        Image.fromarray(image).save(images / f"x{seed}.png")
        lesion = mask > 127
        Image.fromarray(lesion.astype(np.uint8) * 255).save(official / f"x{seed}_segmentation.png")
        Image.fromarray(lesion.astype(np.uint8)).save(label_map / f"x{seed}_segmentation.png")
        coloured = Image.fromarray(lesion.astype(np.uint8)).convert("P")
        coloured.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
        coloured.save(palette / f"x{seed}_segmentation.png")
    scores = {}
    for folder in (official, label_map, palette):
        out = tmp_path / f"{folder.name}.json"
        args = ["evaluate", "segmentation", "--images", str(images), "--masks", str(folder), "--per-image"]
        assert main([*args, "--models", str(tiny_models_dir), "--json", str(out)]) == 0
        scores[folder.name] = json.loads(out.read_text())["per_image"]
    assert scores["label_map"] == scores["official"] == scores["palette"]


def test_version_is_the_package_version(capsys):
    from melanoma import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == f"melanoma {__version__}\n"


def test_console_script_help_lists_the_commands():
    output = subprocess.run(
        [sys.executable, "-m", "melanoma.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("train", "export", "evaluate", "predict", "app", "data"):
        assert command in output.stdout


def test_train_and_export_through_the_cli(shared_synthetic_isic_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "classification",
                "--config",
                "configs/tiny.yaml",
                "--data-dir",
                str(shared_synthetic_isic_dir),
                "--out",
                str(run),
                "task=classification",
            ]
        )
        == 0
    )
    assert "melanoma train classification" in (run / "config.yaml").read_text()
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(tmp_path / "models")]) == 0
    assert (tmp_path / "models" / "classification.onnx").is_file()
    # 4 validation images (2 melanoma): the threshold is fitted, with a warning in the config and on the terminal.
    warning = json.loads((tmp_path / "models" / "classification.json").read_text())["validation"]["warning"]
    assert warning.startswith("threshold fitted on 2 melanoma and 2 other validation images")
    err = capsys.readouterr().err
    assert f"warning: {tmp_path / 'models' / 'classification.json'}: {warning}" in err
    assert "replaced" not in err  # a new folder: nothing replaced
    exported = json.loads((tmp_path / "models" / "classification.json").read_text())["exported"]
    assert main(["export", str(run), "--out", str(tmp_path / "models")]) == 0  # the same folder again: said
    assert f"note: this replaced the classification model exported {exported} (threshold " in capsys.readouterr().err
    # ...and wherever that folder serves: predict says it before its results.
    image = tmp_path / "lesion.png"
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(image)
    assert main(["predict", str(image), "--models", str(tmp_path / "models"), "--out", str(tmp_path / "p.csv")]) == 0
    assert f"warning: classification.json in {tmp_path / 'models'}: {warning}" in capsys.readouterr().err
    # The same --out again without --resume would delete the run's metrics.csv: refused, saying what to do (the run
    # finished its epochs, so not --resume).
    history = (run / "metrics.csv").read_text()
    again = ["train", "classification", "--config", "configs/tiny.yaml", "--out", str(run), "task=classification"]
    _refused(capsys, again, "already holds a run .*it finished its epochs .*so choose another --out")
    assert (run / "metrics.csv").read_text() == history


def test_train_rejects_a_config_of_the_other_task(shared_synthetic_isic_dir, tmp_path, capsys):
    _refused(
        capsys,
        ["train", "classification", "--config", "configs/tiny.yaml", "--out", str(tmp_path / "r")],
        "segmentation config.*or add the override task=classification",
    )


def test_json_report_is_written_even_when_stdout_is_closed(tmp_path, monkeypatch):
    # `melanoma evaluate ... --json FILE | head` closes stdout early: the file must not be lost with it.
    from melanoma.reporting import emit_json

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    with pytest.raises(BrokenPipeError):
        emit_json({"jaccard": 0.8}, tmp_path / "scores.json")
    assert json.loads((tmp_path / "scores.json").read_text()) == {"jaccard": 0.8}


def test_a_report_that_cannot_be_written_is_still_printed(tmp_path, capsys):
    from melanoma.reporting import emit_json

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="cannot write .*the results are printed above"):
        emit_json({"jaccard": 0.8}, blocker / "scores.json")
    assert json.loads(capsys.readouterr().out) == {"jaccard": 0.8}


def test_unwritable_outputs_end_in_an_error_line_not_a_traceback(tiny_models_dir, tmp_path, capsys):
    from conftest import synthetic_lesion
    from PIL import Image

    image = tmp_path / "lesion.png"
    Image.fromarray(synthetic_lesion(128)[0]).save(image)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["predict", str(image), "--models", str(tiny_models_dir), "--out", str(blocker / "p.csv")]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot use {blocker / 'p.csv'}: Not a directory")


def test_a_json_path_that_cannot_be_written_is_refused_before_the_work(tiny_models_dir, tmp_path, capsys, monkeypatch):
    from melanoma.inference import recalibrate

    monkeypatch.setattr(recalibrate, "recalibrate_threshold", lambda *a, **k: pytest.fail("ran before the check"))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    command = ["calibrate", "--models", str(tiny_models_dir), "--images", str(tmp_path), "--labels", "x.csv"]
    command += ["--out", str(tmp_path / "site")]
    _refused(capsys, [*command, "--json", str(tmp_path)], r"--json .* is a folder; give the report a file name")
    _refused(capsys, [*command, "--json", str(blocker / "r.json")], r"is a file, not a folder; choose another path")
    assert not (tmp_path / "site").exists()


def test_evaluate_names_a_file_given_as_the_folder_an_empty_csv_and_where_the_models_folder_came_from(
    tiny_models_dir, tmp_path, capsys, monkeypatch
):
    import shutil

    from conftest import synthetic_lesion

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(synthetic_lesion(64)[0]).save(images / "a.jpg")
    labels = tmp_path / "labels.csv"
    labels.write_text("image_id,melanoma\n")
    command = ["evaluate", "classification", "--labels", str(labels), "--models", str(tiny_models_dir)]
    _refused(capsys, [*command, "--images", str(images)], "labels.csv has a header but no rows")
    _refused(capsys, [*command, "--images", str(images / "a.jpg")], r"a.jpg is a file, not a folder; pass the folder")
    segmenter_only = tmp_path / "segmenter"
    segmenter_only.mkdir()
    for name in ("segmentation.json", "segmentation.onnx"):
        shutil.copy(tiny_models_dir / name, segmenter_only)
    monkeypatch.setenv("MELANOMA_MODELS", str(segmenter_only))
    command = ["evaluate", "classification", "--labels", str(labels), "--images", str(images)]
    _refused(capsys, command, r"no classification model in .*segmenter \(from \$MELANOMA_MODELS: fix or unset it")


def test_train_refuses_a_run_folder_that_kept_only_best_pt_or_is_a_file(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"a finished run whose last.pt was deleted to save space")
    command = ["train", "segmentation", "--config", "configs/tiny.yaml"]
    _refused(capsys, [*command, "--out", str(run)], r"already holds a run \(best.pt\): choose another --out")
    _refused(capsys, [*command, "--out", str(run / "best.pt")], "is a file; pass a folder")


def test_a_model_exported_without_calibration_is_flagged_where_it_is_served(tiny_models_dir, tmp_path, capsys):
    import shutil

    from conftest import synthetic_lesion
    from PIL import Image

    from melanoma.inference.predictor import Predictor

    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir, models)
    config = json.loads((models / "classification.json").read_text())
    (models / "classification.json").write_text(json.dumps({**config, "calibrated": False}))
    (warning,) = Predictor.from_dir(models).warnings
    assert "classification.json" in warning and "--no-calibrate" in warning
    assert Predictor.from_dir(tiny_models_dir).warnings == []
    image = tmp_path / "lesion.png"
    Image.fromarray(synthetic_lesion(128)[0]).save(image)
    assert main(["predict", str(image), "--models", str(models)]) == 0
    assert f"warning: {warning}" in capsys.readouterr().err


def test_evaluate_refuses_a_mask_of_another_size_and_names_exif_rotation(tiny_models_dir, tmp_path, capsys):
    from conftest import synthetic_lesion

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    image, mask = synthetic_lesion(64, seed=5)
    command = ["evaluate", "segmentation", "--images", str(images), "--masks", str(masks)]
    command += ["--models", str(tiny_models_dir)]
    # Stored 96x64 with "rotate 90" in its EXIF, so shown and predicted as 64x96; its mask has the stored pixels' size.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(image).resize((96, 64)).save(images / "rotated.jpg", exif=exif)
    Image.fromarray(mask).resize((96, 64), Image.Resampling.NEAREST).save(masks / "rotated_segmentation.png")
    assert main(command) == 2
    error = capsys.readouterr().err
    assert "rotated_segmentation.png is 96x64 but its image" in error and "is 64x96" in error
    assert "EXIF orientation" in error
    # A mask of another shape is not stretched onto the prediction either.
    (images / "rotated.jpg").unlink()
    (masks / "rotated_segmentation.png").unlink()
    Image.fromarray(image).resize((120, 80)).save(images / "wide.png")
    Image.fromarray(mask).save(masks / "wide_segmentation.png")
    assert main(command) == 2
    error = capsys.readouterr().err
    assert "wide_segmentation.png is 64x64 but its image" in error and "at its image's size" in error
    # Every mask is measured before any image is scored: all wrong ones counted, the first three named.
    for name in ("wide2", "wide3", "wide4"):
        Image.fromarray(image).resize((120, 80)).save(images / f"{name}.png")
        Image.fromarray(mask).save(masks / f"{name}_segmentation.png")
    assert main(command) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: 4 mask(s) do not have their image's size (3 more: wide2_segmentation.png 64x64")
    assert "evaluating" not in error  # refused before the scoring pass started


def test_evaluate_names_photos_whose_exif_turn_a_mask_size_cannot_confirm(tiny_models_dir, tmp_path, capsys):
    from conftest import synthetic_lesion

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    image, mask = synthetic_lesion(64, seed=5)
    for name, orientation, size in (("square", 6, (64, 64)), ("upside", 3, (96, 64)), ("plain", 1, (96, 64))):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(image).resize(size).save(images / f"{name}.jpg", exif=exif)
        Image.fromarray(mask).resize(size, Image.Resampling.NEAREST).save(masks / f"{name}_segmentation.png")
    json_path = tmp_path / "report.json"
    command = ["evaluate", "segmentation", "--images", str(images), "--masks", str(masks), "--json", str(json_path)]
    assert main([*command, "--models", str(tiny_models_dir)]) == 0
    assert json.loads(json_path.read_text())["orientation_unclear"] == ["square", "upside"]
    error = capsys.readouterr().err
    assert "warning: 2 image(s) carry an EXIF orientation tag that flips or turns them" in error
    assert "square, upside (listed under 'orientation_unclear')" in error


def test_predict_keeps_going_past_a_file_name_that_is_not_utf8(tiny_models_dir, tmp_path):
    import os

    from conftest import synthetic_lesion

    folder = tmp_path / "photos"
    folder.mkdir()
    image, _ = synthetic_lesion(64, seed=1)
    Image.fromarray(image).save(folder / "ok.png")
    latin1 = os.fsencode(folder) + b"/les\xe9on.png"  # a Latin-1 name from an old archive
    Image.fromarray(image).save(latin1, format="PNG")
    out = tmp_path / "rows.csv"
    assert main(["predict", str(folder), "--models", str(tiny_models_dir), "--out", str(out)]) == 0
    names = [os.fsencode(Path(row["image"]).name) for row in _rows_bytes(out)]
    assert sorted(names) == [b"les\xe9on.png", b"ok.png"]  # the name written back byte for byte


def _rows_bytes(path):
    with open(path, newline="", errors="surrogateescape") as handle:
        return [row for row in csv.DictReader(handle) if not row["error"]]


def test_usage_errors_are_caught_before_any_work(tiny_models_dir, tmp_path, capsys):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    for option in ("--workers", "--batch-size"):
        with pytest.raises(SystemExit) as exit_info:
            main(["predict", str(image), option, "0"])
        assert exit_info.value.code == 2 and f"argument {option}: must be at least 1, got 0" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    _refused(
        capsys,
        ["predict", str(image), "--models", str(tiny_models_dir), "--overlays", str(tmp_path / "file")],
        "--overlays .* is a file; give a folder",
    )
    # A wrong --baseline is named at once, before the evaluation runs.
    command = ["evaluate", "classification", "--images", str(tmp_path), "--labels", str(tmp_path / "none.csv")]
    assert main([*command, "--models", str(tiny_models_dir), "--baseline", str(tmp_path / "nope")]) == 2
    error = capsys.readouterr().err
    assert f"--baseline {tmp_path / 'nope'}: no exported models there" in error and "labels" not in error
    # export of a folder that is no training run says what it needs.
    assert main(["export", str(tmp_path)]) == 2
    assert "give the folder of a training run" in capsys.readouterr().err
    # --add-to takes the exported classifier as it is: options that would change it are refused, not ignored.
    add = ["export", str(tmp_path / "run"), "--add-to", str(tiny_models_dir)]
    for extra, named in [
        (["--ensemble", str(tmp_path / "other")], "--ensemble"),
        (["--no-calibrate", "--classifier-flips", "hflip"], "--no-calibrate, --classifier-flips"),
        (["--test-time-flips", "off"], "--test-time-flips"),
    ]:
        _refused(capsys, [*add, *extra], f"--add-to cannot be combined with {named}:")


def test_reports_create_their_folder_and_labels_headers_may_have_spaces(tmp_path):
    from melanoma.data.samples import read_labels_csv
    from melanoma.reporting import emit_json

    emit_json({"n": 1}, tmp_path / "new" / "folder" / "scores.json")
    assert json.loads((tmp_path / "new" / "folder" / "scores.json").read_text()) == {"n": 1}
    labels = tmp_path / "labels.csv"
    labels.write_text("image_id, melanoma\nISIC_0000001, 1\nISIC_0000002,0\n")
    assert read_labels_csv(labels) == {"ISIC_0000001": 1, "ISIC_0000002": 0}


def test_the_app_serves_this_machine_only_unless_asked(monkeypatch):
    from melanoma import cli
    from melanoma.app import server

    calls = []
    monkeypatch.setattr(server, "run_app", lambda **kwargs: calls.append(kwargs) or 0)
    assert main(["app"]) == 0 and main(["app", "--address", "0.0.0.0", "--port", "8600"]) == 0
    assert [(c["address"], c["port"]) for c in calls] == [("127.0.0.1", 8501), ("0.0.0.0", 8600)]
    assert "--server.address=127.0.0.1" in server.streamlit_command(8501, calls[0]["address"])
    assert cli.build_parser().parse_args(["app"]).address == "127.0.0.1"


def test_export_finds_moved_data_with_data_dir_from_any_directory(shared_synthetic_isic_dir, tmp_path, monkeypatch):
    import shutil

    from melanoma.config import load_config

    shutil.copytree(shared_synthetic_isic_dir, tmp_path / "data")
    config = str(Path("configs/tiny.yaml").resolve())
    monkeypatch.chdir(tmp_path)
    train = ["train", "classification", "--config", config, "--data-dir", "data", "--out", "run", "task=classification"]
    assert main(train) == 0
    assert load_config(tmp_path / "run" / "config.yaml").data.data_dir == str(tmp_path / "data")  # not "data"
    (tmp_path / "data").rename(tmp_path / "moved")
    monkeypatch.chdir(tmp_path / "moved")  # export runs from elsewhere
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "a")]) == 2
    assert (
        main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "a"), "--data-dir", str(tmp_path / "moved")])
        == 0
    )
    assert (tmp_path / "a" / "classification.json").is_file()


def test_data_dir_cannot_move_a_folder_run():
    from melanoma.config import DataConfig, use_data_dir

    with pytest.raises(ValueError, match="this run read a folder of its own"):
        use_data_dir(DataConfig(source="folder", images_dir="/x/images"), "/y")


def test_ctrl_c_ends_with_a_hint_not_a_traceback(monkeypatch, capsys, tmp_path):
    import torch

    from melanoma.training import checkpoint, engine

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "fit", interrupted)
    command = ["train", "segmentation", "--config", "configs/tiny.yaml", "--out", str(tmp_path / "run")]
    assert main(command) == 130
    # In the first epoch there is no last.pt yet: --resume would fail, so the hint says to start again.
    assert "before the first epoch finished, so there is nothing to resume" in capsys.readouterr().err
    (tmp_path / "run").mkdir(exist_ok=True)
    checkpoint.save_checkpoint(tmp_path / "run" / "last.pt", epoch=0)
    assert main([*command, "--resume"]) == 130
    hint = f"interrupted (continue the run from its last finished epoch: the same command with --out {tmp_path / 'run'}"
    assert hint in capsys.readouterr().err
    # Interrupted while writing a checkpoint: the previous file stays whole and no partial file is left.
    checkpoint.save_checkpoint(tmp_path / "last.pt", epoch=1)
    monkeypatch.setattr(torch, "save", lambda state, path: (Path(path).write_bytes(b"partial"), interrupted()))
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(tmp_path / "last.pt", epoch=2)
    assert checkpoint.load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert not (tmp_path / "last.pt.tmp").exists()


def test_an_interrupted_data_preparation_says_to_run_it_again(tmp_path, monkeypatch, capsys):
    from melanoma.data import prepare

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare, "prepare_isic2017", interrupted)
    assert main(["data", "prepare", "isic2017", "--archives", str(tmp_path), "--out", str(tmp_path / "o")]) == 130
    assert "splits prepared so far are complete" in capsys.readouterr().err


def test_predict_refuses_an_out_that_would_overwrite_an_image(tiny_models_dir, tmp_path, capsys):
    from conftest import synthetic_lesion

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray(synthetic_lesion(64)[0]).save(folder / name)
    before = (folder / "a.jpg").read_bytes()
    # `--out a.jpg b.jpg`: two images meant, the first taken as the CSV to write
    models = ["--models", str(tiny_models_dir)]
    _refused(
        capsys,
        ["predict", *models, "--out", str(folder / "a.jpg"), str(folder / "b.jpg")],
        "names an image, but --out is the CSV file to write",
    )
    # a CSV path that is one of the files found in the folder (a file with another suffix named on the command line)
    table = tmp_path / "photo.csv"
    table.write_bytes(before)
    _refused(
        capsys,
        ["predict", str(table), str(folder), *models, "--out", str(table)],
        "is one of the files to predict; give the CSV a new name",
    )
    assert (folder / "a.jpg").read_bytes() == before and table.read_bytes() == before


def test_a_stopped_run_is_named_as_such_by_export_and_a_finished_one_by_train(shared_synthetic_isic_dir, tmp_path,
                                                                                capsys):  # fmt: skip
    from conftest import tiny_config

    from melanoma.training.engine import fit

    run = tmp_path / "run"
    fit(tiny_config("classification", shared_synthetic_isic_dir, **{"optim.epochs": 2}), run, stop_after=1)
    assert f"run: {run} (config.yaml, split.csv, metrics.csv per epoch" in capsys.readouterr().err  # said at start
    assert main(["export", str(run), "--out", str(tmp_path / "models")]) == 0
    assert f"note: {run} stopped after 1 of its 2 epochs; its best epoch so far was exported" in capsys.readouterr().err
    again = ["train", "classification", "--config", "configs/tiny.yaml", "--out", str(run), "task=classification"]
    _refused(capsys, [*again, "optim.epochs=2"], "pass --resume to continue it")
    fit(tiny_config("classification", shared_synthetic_isic_dir, **{"optim.epochs": 2}), run, resume=True)
    assert main(["export", str(run), "--out", str(tmp_path / "models2")]) == 0
    assert "stopped after" not in capsys.readouterr().err
    _refused(
        capsys, [*again, "optim.epochs=2"], re.escape(f"it finished its epochs (export it with melanoma export {run})")
    )


def test_os_errors_name_the_path_and_a_moved_data_root_names_data_dir(tiny_models_dir, tmp_path, capsys):
    from conftest import synthetic_lesion

    from melanoma.config import DataConfig, use_data_dir

    image = tmp_path / "lesion.png"
    Image.fromarray(synthetic_lesion(128)[0]).save(image)
    missing = tmp_path / "nodir" / "x.csv"
    assert main(["predict", str(image), "--models", str(tiny_models_dir), "--out", str(missing)]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot use {missing}: No such file or directory")
    moved = DataConfig(data_dir=str(tmp_path / "isic2017-moved-away"))
    with pytest.raises(ValueError, match="read its ISIC 2017 data from .* which no longer exists: pass --data-dir"):
        use_data_dir(moved, None)
    use_data_dir(moved, tmp_path)  # pointed at the new place
    assert moved.data_dir == str(tmp_path)
    # A folder run's paths cannot be re-pointed by an option: the error says what to do instead.
    folder = DataConfig(source="folder", images_dir=str(tmp_path / "gone"), labels_csv=str(image))
    with pytest.raises(ValueError, match=r"no longer exist \(data.images_dir=.*gone\): put the data back .*ln -s"):
        use_data_dir(folder, None)
    use_data_dir(DataConfig(source="folder", images_dir=str(tmp_path), labels_csv=str(image)), None)  # in place


def test_an_overlay_is_never_written_through_a_link_planted_at_its_name(tiny_models_dir, tmp_path):
    from melanoma.inference.batch import OVERLAY_SUFFIX, write_overlay
    from melanoma.inference.predictor import Predictor

    prediction = Predictor.from_dir(tiny_models_dir).predict_arrays(
        [synthetic_lesion(96)[0]], [(96, 96)], ["lesion.png"]
    )[0]
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / f"00001_lesion{OVERLAY_SUFFIX}").symlink_to(target)
    with pytest.raises(OSError):
        write_overlay(prediction, shared, "00001_lesion")
    assert target.read_text() == "keep me"
    written = write_overlay(prediction, shared, "00002_lesion")  # a plain name is written as before
    assert Image.open(written).size[0] == 96


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_evaluate_leaves_an_unreadable_image_out_lists_it_and_warns(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path, capsys, task
):
    import shutil

    data = shared_synthetic_isic_dir
    images, masks = tmp_path / "images", tmp_path / "masks"
    shutil.copytree(data / "images" / "val", images)
    shutil.copytree(data / "masks" / "val", masks)
    good = sorted(images.iterdir())[0].read_bytes()
    (images / "cut.jpg").write_bytes(good[: len(good) // 3])  # a copy that stopped a third of the way
    Image.new("L", (64, 64)).save(masks / "cut_segmentation.png")
    labels = tmp_path / "labels.csv"
    labels.write_text((data / "labels" / "ISIC-2017_Validation_Part3_GroundTruth.csv").read_text() + "cut,0,0\n")
    inputs = ["--masks", str(masks)] if task == "segmentation" else ["--labels", str(labels)]
    report = tmp_path / "report.json"
    args = ["evaluate", task, "--images", str(images), *inputs, "--models", str(tiny_models_dir)]
    assert main([*args, "--json", str(report), "--per-image"]) == 0
    scores = json.loads(report.read_text())
    assert list(scores["unreadable"]) == ["cut"] and "cut" not in scores["per_image"]
    assert scores["n"] == len(scores["per_image"]) == 4
    assert "warning: 1 image(s) could not be read and are left out of the scores: cut:" in capsys.readouterr().err
    for path in images.iterdir():  # nothing readable left: an error that says why
        if path.name != "cut.jpg":
            path.write_bytes(b"not an image")
    assert main(args) != 0
    assert re.search(r"error: no image in .* could be assessed: 5 could not be read \(first: ", capsys.readouterr().err)


def test_evaluate_segmentation_leaves_an_almost_uniform_image_out_and_lists_it(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path
):
    import shutil

    from melanoma.inference.evaluate import evaluate_segmentation
    from melanoma.inference.predictor import Predictor

    images, masks = tmp_path / "images", tmp_path / "masks"
    shutil.copytree(shared_synthetic_isic_dir / "images" / "val", images)
    shutil.copytree(shared_synthetic_isic_dir / "masks" / "val", masks)
    Image.new("RGB", (64, 64)).save(images / "blank.png")
    Image.new("L", (64, 64)).save(masks / "blank_segmentation.png")
    scores = evaluate_segmentation(Predictor.from_dir(tiny_models_dir), images, masks, bootstrap=10)
    assert scores["not_assessed"] == ["blank"] and "blank" not in scores["per_image"]
    assert scores["n"] == len(scores["per_image"]) == 4


def test_a_missing_training_package_says_what_to_install(monkeypatch, capsys):
    import melanoma.cli as cli

    def without_torch(args):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(cli, "_export", without_torch)
    assert main(["export", "runs/x", "--out", "y"]) == 2
    err = capsys.readouterr().err
    assert "No module named 'torch'" in err and "pip install -e '.[train]'" in err and "`melanoma export`" in err

    def without_other(args):
        raise ModuleNotFoundError("No module named 'cv3'", name="cv3")

    monkeypatch.setattr(cli, "_export", without_other)
    assert main(["export", "runs/x", "--out", "y"]) == 2
    assert "[train]" not in capsys.readouterr().err  # only the extra's own packages get the hint


def test_evaluate_says_when_it_scores_the_models_own_training_or_validation_images(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path, capsys
):
    data = shared_synthetic_isic_dir
    labels = data / "labels" / "ISIC-2017_Validation_Part3_GroundTruth.csv"
    args = ["--models", str(tiny_models_dir), "--json", str(tmp_path / "report.json")]
    assert main(["evaluate", "classification", "--images", str(data / "images" / "val"), "--labels", str(labels),
                 *args]) == 0  # fmt: skip
    scores = json.loads((tmp_path / "report.json").read_text())
    assert scores["seen_in_training"] == {
        "train": 0,
        "validation": 4,
        "by_content": True,
        "copies": [],
        "name_only": [],
    }
    err = capsys.readouterr().err
    assert "warning: of these 4 images, 4 are its validation images, which chose its best epoch and threshold" in err
    assert "(the classification model's config lists them, by file name, and by content for copies under other " in err
    assert "not held-out" in err
    # 2 + 2 images: their bootstrap intervals are said to be too narrow to read
    assert "warning: only 2 melanoma image(s) and 2 other image(s) scored: the 95% intervals (ci95)" in err
    masks = data / "masks" / "train"
    assert main(["evaluate", "segmentation", "--images", str(data / "images" / "train"), "--masks", str(masks),
                 *args]) == 0  # fmt: skip
    seen = json.loads((tmp_path / "report.json").read_text())["seen_in_training"]
    assert seen == {"train": 8, "validation": 0, "by_content": True, "copies": [], "name_only": []}
    err = capsys.readouterr().err
    assert "of these 8 images, 8 trained it (the segmentation model's config lists them, by file name, and by" in err
    assert "warning: only 8 image(s) scored: the 95% intervals (ci95) resample just these" in err


def test_evaluate_finds_the_models_own_images_renamed_resized_and_re_encoded(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path, capsys
):
    """Copies under other names (as public collections re-publish ISIC images) are found by content."""
    from PIL import Image

    data = shared_synthetic_isic_dir
    folder = tmp_path / "site"
    folder.mkdir()
    rows = ["image,melanoma"]
    val_labels = (data / "labels" / "ISIC-2017_Validation_Part3_GroundTruth.csv").read_text().splitlines()[1:]
    for i, row in enumerate(val_labels):
        image_id, melanoma = row.split(",")[:2]
        image = Image.open(data / "images" / "val" / f"{image_id}.jpg")
        image.resize((200, 150)).save(folder / f"site_{i}.jpg", quality=60)  # enlarged, another shape, re-encoded
        rows.append(f"site_{i},{melanoma}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    report = tmp_path / "report.json"
    assert main(["evaluate", "classification", "--images", str(folder), "--labels", str(folder / "labels.csv"),
                 "--models", str(tiny_models_dir), "--json", str(report)]) == 0  # fmt: skip
    seen = json.loads(report.read_text())["seen_in_training"]
    assert (seen["train"], seen["validation"], seen["by_content"]) == (0, 4, True)
    ids = [row.split(",")[0] for row in val_labels]
    assert [(c["image"], c["copy_of"], c["part"]) for c in seen["copies"]] == [
        (f"site_{i}", image_id, "validation") for i, image_id in enumerate(ids)
    ]
    assert all(c["distance"] <= 56 for c in seen["copies"])
    err = capsys.readouterr().err
    assert "of these 4 images, 4 are copies of its validation images, which chose its best epoch" in err
    assert "by file name, and by content for copies under other names: site_0 = ISIC_" in err
    assert re.search(r"site_0 = ISIC_\d+ \(\d+ bits apart\)", err)


def test_by_content_a_copy_counts_under_another_name_and_a_shared_name_alone_is_named():
    from conftest import synthetic_lesion

    from melanoma.inference.evaluate import seen_in_training, seen_warning
    from melanoma.inference.fingerprint import FINGERPRINT_METHOD, encode_fingerprints, fingerprint

    def photo(seed):
        image, _ = synthetic_lesion(96, seed=seed)
        noise = np.random.default_rng(seed).normal(0, 12, image.shape)
        return np.clip(image + noise, 0, 255).astype(np.uint8)

    prints = {name: fingerprint(photo(seed)) for seed, name in enumerate(["t1", "t2", "v1"])}
    data = {
        "image_ids": {"train": ["t1", "t2"], "validation": ["v1"]},
        "image_fingerprints": {
            "method": FINGERPRINT_METHOD,
            "train": encode_fingerprints([prints["t1"], prints["t2"]]),
            "validation": encode_fingerprints([prints["v1"]]),
        },
    }
    config = {"training": {"data": data}}
    new = fingerprint(photo(7))
    # t1 as itself; "site_a" a copy of t2; "t2" another image that only shares t2's name; "site_b" a new image
    ids = ["t1", "site_a", "t2", "site_b"]
    seen = seen_in_training(config, ids, [prints["t1"], prints["t2"], new, new])
    assert (seen["train"], seen["validation"], seen["by_content"]) == (3, 0, True)
    assert [(c["image"], c["copy_of"], c["part"]) for c in seen["copies"]] == [("site_a", "t2", "train")]
    assert [(c["image"], c["part"]) for c in seen["name_only"]] == [("t2", "train")]
    warning = seen_warning("classification", seen, 4)
    assert "of these 4 images, 3 trained it (1 of them as copies under other names)" in warning
    assert "but 1 of them, t2, only share a file name with one of those images, not its content" in warning
    # without the images' fingerprints: by name only, as before
    assert seen_in_training(config, ids) == {"train": 2, "validation": 0, "by_content": False, "copies": [],
                                             "name_only": []}  # fmt: skip


def test_images_seen_in_training_are_counted_over_every_ensemble_member():
    from melanoma.inference.evaluate import seen_in_training, seen_warning

    def member(train, validation):
        return {"training": {"data": {"image_ids": {"train": train, "validation": validation}}}}

    config = {"training": {}, "ensemble": {"members": [member(["a", "b"], ["c"]), member(["c", "d"], ["a"])]}}
    by_name = {"by_content": False, "copies": [], "name_only": []}  # no fingerprints given or kept: by file name only
    assert seen_in_training(config, ["a", "c", "x"]) == {"train": 2, "validation": 2, **by_name}
    assert seen_in_training(config, ["x", "y"]) == {"train": 0, "validation": 0, **by_name}
    assert seen_in_training({"training": {"data": {}}}, ["a"]) is None  # an export from before the lists were kept
    assert seen_warning("classification", {"train": 0, "validation": 0}, 2) is None
    assert "is unknown" in seen_warning("classification", None, 2)  # it cannot tell: said, not taken as "none"


def test_predict_shows_no_progress_bar_between_csv_rows_on_a_terminal(monkeypatch):
    import melanoma.cli as cli

    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.setattr(sys, "stderr", Stream(True))
    assert not cli._bar_beside(Stream(True))  # rows on the terminal: no bar
    assert cli._bar_beside(Stream(False))  # rows into a pipe or file: the bar on the terminal
    monkeypatch.setattr(sys, "stderr", Stream(False))
    assert cli._bar_beside(Stream(True))


@pytest.mark.parametrize(
    ("task", "options", "message"),
    [
        ("segmentation", ["--labels", "labels.csv"], "--labels is for `melanoma evaluate classification`"),
        ("segmentation", ["--label-column", "target", "--plots", "p"], "--label-column and --plots are for"),
        ("segmentation", ["--id-column", "filename"], "--id-column is for `melanoma evaluate classification`"),
        ("classification", ["--masks", "masks"], "--masks is for `melanoma evaluate segmentation`"),
    ],
)
def test_evaluate_refuses_the_other_tasks_options_rather_than_ignoring_them(tmp_path, capsys, task, options, message):
    required = ["--masks", "m"] if task == "segmentation" else ["--labels", "l.csv"]
    command = ["evaluate", task, "--images", str(tmp_path), *required, *options, "--models", str(tmp_path / "none")]
    assert main(command) == 2
    assert message in capsys.readouterr().err


def _val_subset(root: Path, folder: Path, ids: list[str] | None = None) -> Path:
    """Copies of the synthetic validation images (all of them, or ``ids``) in ``folder``."""
    import shutil

    folder.mkdir()
    for path in sorted((root / "images/val").iterdir()):
        if ids is None or path.stem in ids:
            shutil.copy(path, folder)
    return folder


@pytest.mark.parametrize("plots", ["a-file", "roc.png"])
def test_evaluate_refuses_a_plots_path_that_is_no_folder_before_scoring(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path, monkeypatch, capsys, plots
):
    from melanoma.inference.predictor import Predictor

    root = shared_synthetic_isic_dir
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setattr(Predictor, "predict_arrays", lambda *a, **k: pytest.fail("scored before the check"))
    labels = root / "labels/ISIC-2017_Validation_Part3_GroundTruth.csv"
    command = ["evaluate", "classification", "--images", str(root / "images/val"), "--labels", str(labels)]
    assert main([*command, "--models", str(tiny_models_dir), "--plots", str(tmp_path / plots)]) == 2
    error = capsys.readouterr().err
    assert ("is a file" if plots == "a-file" else "looks like a file name") in error and "give a folder" in error
    assert not (tmp_path / "roc.png").exists()


@pytest.mark.parametrize("task", ["segmentation", "classification"])
def test_a_baseline_without_the_tasks_model_fails_before_scoring(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path, monkeypatch, capsys, task
):
    import shutil

    from melanoma.inference.predictor import Predictor

    other = "classification" if task == "segmentation" else "segmentation"
    baseline = tmp_path / "other-only"
    baseline.mkdir()
    for path in tiny_models_dir.iterdir():
        if path.name.startswith(other):
            shutil.copy(path, baseline)
    monkeypatch.setattr(Predictor, "predict_arrays", lambda *a, **k: pytest.fail("scored before the check"))
    root = shared_synthetic_isic_dir
    truth = ["--masks", str(root / "masks/val")] if task == "segmentation" else [
        "--labels", str(root / "labels/ISIC-2017_Validation_Part3_GroundTruth.csv")]  # fmt: skip
    command = ["evaluate", task, "--images", str(root / "images/val"), *truth, "--models", str(tiny_models_dir)]
    assert main([*command, "--baseline", str(baseline)]) == 2
    assert f"--baseline {baseline}: no {task} model there" in capsys.readouterr().err


def test_evaluate_names_the_files_left_out_when_they_leave_one_class(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path, capsys
):
    root = shared_synthetic_isic_dir
    labels = root / "labels/ISIC-2017_Validation_Part3_GroundTruth.csv"
    melanomas = [r.split(",")[0] for r in labels.read_text().splitlines()[1:] if float(r.split(",")[1]) == 1]
    images = _val_subset(root, tmp_path / "images")
    for image_id in melanomas:
        next(images.glob(f"{image_id}.*")).write_bytes(b"junk")
    command = ["evaluate", "classification", "--images", str(images), "--labels", str(labels)]
    assert main([*command, "--models", str(tiny_models_dir)]) == 2
    error = capsys.readouterr().err
    assert f"after leaving out {len(melanomas)} unreadable file(s)" in error and "only one class" in error


@pytest.mark.parametrize(("task", "needed"), [("segmentation", "--masks DIR"), ("classification", "--labels CSV")])
def test_evaluate_without_its_ground_truth_is_a_usage_error(tmp_path, capsys, task, needed):
    assert main(["evaluate", task, "--images", str(tmp_path), "--models", str(tmp_path / "none")]) == 2
    assert f"evaluate {task} needs {needed}" in capsys.readouterr().err


def test_a_stale_models_variable_is_named_as_the_source(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MELANOMA_MODELS", str(tmp_path / "gone"))
    assert main(["predict", str(tmp_path)]) == 2
    assert "(from $MELANOMA_MODELS) does not exist; fix or unset MELANOMA_MODELS" in capsys.readouterr().err
    monkeypatch.setenv("MELANOMA_MODELS", str(tmp_path))  # exists, holds no model
    assert main(["predict", str(tmp_path)]) == 2
    assert "came from $MELANOMA_MODELS: fix or unset it" in capsys.readouterr().err
    assert (
        "$MELANOMA_MODELS when set"
        in subprocess.run(
            [sys.executable, "-m", "melanoma.cli", "predict", "--help"], capture_output=True, text=True, check=True
        ).stdout
    )


def test_evaluate_segmentation_names_annotations_without_a_lesion(
    tiny_models_dir, shared_synthetic_isic_dir, tmp_path, capsys
):
    import shutil

    images, masks = tmp_path / "images", tmp_path / "masks"
    shutil.copytree(shared_synthetic_isic_dir / "images" / "val", images)
    shutil.copytree(shared_synthetic_isic_dir / "masks" / "val", masks)
    first = sorted(masks.glob("*_segmentation.png"))[0]
    with Image.open(first) as mask:
        Image.new("L", mask.size).save(first)  # all background, as a mask format read wrong would come out
    out = tmp_path / "scores.json"
    args = ["evaluate", "segmentation", "--images", str(images), "--masks", str(masks)]
    assert main([*args, "--models", str(tiny_models_dir), "--json", str(out)]) == 0
    name = first.name.removesuffix("_segmentation.png")
    assert json.loads(out.read_text())["empty_annotations"] == [name]
    err = capsys.readouterr().err
    assert f"hold no lesion pixel and are scored as lesion-free: {name}" in err
