"""Export a training run to the shipped format: ONNX (opset 17, dynamic batch) + a JSON model config.

The export also calibrates on the run's validation data through the exported ONNX graph itself
(the exact serving path): the segmentation threshold and post-processing, or the classifier's
Youden-J threshold, with the validation metrics they give. This module needs the [train] extra.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from melanoma.config import TrainConfig, load_run_config, use_data_dir
from melanoma.inference.predictor import onnx_digest
from melanoma.inference.preprocess import FLIP_MODES, FLIPS
from melanoma.models.factory import build_model, melanoma_only
from melanoma.models.pretrained import PRETRAINED_MEAN, PRETRAINED_STD
from melanoma.training.checkpoint import load_checkpoint

OPSET = 17
MODEL_FILES = {"segmentation": "segmentation.onnx", "classification": "classification.onnx"}


class SegmentationGraph(nn.Module):
    """U-Net logits -> lesion probability per pixel, [B, 1, H, W]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(image))


class ClassificationGraph(nn.Module):
    """EfficientNet -> (melanoma probability [B], class activation map [B, h, w]).

    The CAM is the head's linear layer applied at every position of the last feature map, so its spatial
    mean plus the bias equals the logit (global average pooling is linear): it shows where the evidence is.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.forward_features(image)
        logit = self.model.forward_head(features).view(-1)
        weight = self.model.classifier.weight.view(1, -1, 1, 1)
        cam = (features * weight).sum(1)
        return torch.sigmoid(logit), cam


class EnsembleClassificationGraph(nn.Module):
    """Several classifiers on the same input -> (mean melanoma probability [B], mean activation map [B, h, w]).

    One ONNX graph, so the Predictor serves an ensemble exactly as a single classifier (one session, one call).
    Each member's map averages to its own logit minus its bias; the mean map shows where the members' evidence is.
    """

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(ClassificationGraph(model) for model in models)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probabilities, cams = zip(*(member(image) for member in self.members), strict=True)
        return torch.stack(probabilities).mean(0), torch.stack(cams).mean(0)


def serving_graph(model: nn.Module | Sequence[nn.Module], task: str) -> nn.Module:
    """The graph that is exported and served: one model, or (classification) a list of models as an ensemble."""
    if task == "segmentation":
        return SegmentationGraph(model)
    if isinstance(model, nn.Module):
        return ClassificationGraph(model)
    return ClassificationGraph(model[0]) if len(model) == 1 else EnsembleClassificationGraph(model)


def load_run_model(run_dir: Path, checkpoint: str = "best.pt") -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """The trained model of a run (eval mode), its config and the checkpoint's extra fields."""
    state = load_checkpoint(
        Path(run_dir) / checkpoint, hint="give the folder of a training run (melanoma train ... --out RUN_DIR)"
    )
    config = load_run_config(state["config"])
    config.model.pretrained = False  # the checkpoint holds all weights
    model = build_model(config.task, config.model)
    model.load_state_dict(state["model"])
    if config.task == "classification":
        model = melanoma_only(model)  # a keratosis_aux run serves its melanoma logit alone
    return model.eval(), config, state


def export_onnx(model: nn.Module | Sequence[nn.Module], task: str, image_size: int, path: Path) -> None:
    """Write the serving graph of ``model`` (or of an ensemble of classifiers) to ``path`` (TF-SAME pads frozen,
    checked with ``onnx.checker``)."""

    graph = serving_graph(model, task)
    graph.eval()
    outputs = ["lesion_probability"] if task == "segmentation" else ["melanoma_probability", "activation_map"]
    dynamic = {"image": {0: "batch"}, **{name: {0: "batch"} for name in outputs}}
    with torch.no_grad():
        torch.onnx.export(
            graph,
            (torch.zeros(1, 3, image_size, image_size),),
            str(path),
            input_names=["image"],
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    freeze_dynamic_pads(path)


def freeze_dynamic_pads(source: Path, target: Path | None = None) -> int:
    """Replace the run-time computed pads of TF-'SAME' convolutions by constants; returns how many were frozen.

    timm's ``tf_efficientnet_lite*`` pads stride-2 convolutions asymmetrically and computes the pads from the
    input's shape at run time (Shape -> Gather -> Ceil -> ... -> Pad). The exported graph has a fixed height
    and width, so the pads are constants: computing them once and pruning the dead shape arithmetic gives a
    graph ONNX Runtime can fuse (Pad into Conv) and quantize (int8 with run-time pads misaligns feature maps:
    mask agreement with the float model fell to 0.70 Jaccard, 0.99 with frozen pads).
    """
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    target = Path(target or source)
    model = onnx.load(str(source))
    graph = model.graph
    constants = {i.name for i in graph.initializer} | {
        o for n in graph.node if n.op_type == "Constant" for o in n.output
    }
    pads = [n for n in graph.node if n.op_type == "Pad" and len(n.input) > 1 and n.input[1] not in constants]
    if pads:
        probe = onnx.load(str(source))
        for name in dict.fromkeys(n.input[1] for n in pads):
            probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.INT64, None))
        image = graph.input[0]
        shape = [d.dim_value or 1 for d in image.type.tensor_type.shape.dim]
        session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        values = dict(zip(names, session.run(None, {image.name: np.zeros(shape, np.float32)}), strict=True))
        for node in pads:
            frozen = f"{node.input[1]}_frozen"
            if frozen not in constants:
                graph.initializer.append(numpy_helper.from_array(values[node.input[1]].astype(np.int64), frozen))
                constants.add(frozen)
            node.input[1] = frozen
        _prune(graph)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return len(pads)


def _prune(graph) -> None:
    """Drop nodes and initializers that no graph output depends on."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    initializers = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


def _metric_history(run_dir: Path) -> list[dict[str, Any]]:
    import csv

    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    with path.open() as handle:
        return [{k: (float(v) if k != "epoch" else int(v)) for k, v in row.items()} for row in csv.DictReader(handle)]


def export_run(
    run_dir: Path,
    out_dir: Path | None = None,
    calibrate: bool = True,
    flips: str = "auto",
    segmenter_dir: Path | None = None,
    classifier_flips: Sequence[str] = (),
    ensemble: Sequence[Path] = (),
    data_dir: Path | None = None,
) -> Path:
    """Export ``run_dir/best.pt`` into ``out_dir`` (default ``run_dir/export``) and calibrate on validation data.

    ``data_dir``: where an ISIC-layout run's data are now, when they moved since training.

    ``flips``: the segmenter's test-time flip rule for calibration ("auto" or "off", see ``calibrate_segmentation``).
    ``classifier_flips``: test-time flips a classifier is served (and calibrated) with, e.g. ``["hflip"]``: its
    probability is the mean over the image and those flips, so it does not change when an image is mirrored that
    way. Fixed at export, not chosen on validation data.
    ``segmenter_dir``: for a lesion-crop classifier, the model folder whose segmenter places the crops during
    calibration when ``out_dir`` has none; that segmenter's files are then copied into ``out_dir``, so the folder
    serves as it was calibrated.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "export"
    model, config, state = load_run_model(run_dir)
    _check_export_arguments(config, classifier_flips, flips, segmenter_dir, [run_dir, *map(Path, ensemble)])
    if calibrate or data_dir:  # calibration reads the run's data; a --no-calibrate export needs none
        use_data_dir(config.data, data_dir)
    members = [(run_dir, model, config, state), *_ensemble_members(config, ensemble)]
    created = _new_folders(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        _write_export(run_dir, out_dir, members, calibrate, flips, segmenter_dir, classifier_flips, bool(ensemble))
    except BaseException:
        _remove_if_empty(created)  # a failed export into a new folder leaves no empty folder behind
        raise
    return out_dir


def add_to_export(run_dir: Path, models_dir: Path, out_dir: Path | None = None, data_dir: Path | None = None) -> Path:
    """Serve ``run_dir/best.pt`` together with the classifier exported in ``models_dir``, whose training runs may be
    gone: one ONNX graph whose probability and activation map are the mean over all members (the exported ensemble's
    n members weigh n / (n + 1), the new network 1 / (n + 1), exactly as ``export_run(first, ensemble=[...])`` of
    all the runs would), calibrated anew on the validation split. Written to ``out_dir`` (default
    ``run_dir/export``); ``out_dir`` may be ``models_dir`` itself.
    """
    run_dir, models_dir = Path(run_dir), Path(models_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "export"
    before = _exported_classifier(models_dir)
    model, config, state = load_run_model(run_dir)
    use_data_dir(config.data, data_dir)
    model_config = _added_member_config(before, models_dir, run_dir, config, state)
    members_before = len(model_config["ensemble"]["members"]) - 1
    created = _new_folders(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def write_network(staged: Path) -> None:
        member = staged.with_name(staged.name + ".member")
        try:
            export_onnx(model, "classification", config.data.image_size, member)
            add_member_graph(models_dir / before["onnx_file"], member, staged, members_before)
        finally:
            member.unlink(missing_ok=True)

    try:
        _put_in_place(out_dir, model_config, write_network, config, ("auto", None))
    except BaseException:
        _remove_if_empty(created)
        raise
    train_config = models_dir / "classification_train_config.yaml"  # the first member's, as export_run writes it
    if train_config.is_file() and train_config.resolve() != (out_dir / train_config.name).resolve():
        shutil.copy(train_config, out_dir / train_config.name)
    return out_dir


def _exported_classifier(models_dir: Path) -> dict[str, Any]:
    """The config of the float, unmodified classifier exported in ``models_dir`` (checked against its network)."""
    path = models_dir / "classification.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{models_dir} has no classification.json: give the folder of an exported classifier (e.g. models)"
        )
    config = json.loads(path.read_text())
    network = models_dir / config.get("onnx_file", "classification.onnx")
    if not network.is_file() or onnx_digest(network) != config.get("onnx_sha256"):
        raise ValueError(
            f"{network} is missing or is not the network {path} describes (onnx_sha256): restore the folder as it "
            "was exported"
        )
    if "quantization" in config:
        raise ValueError(
            f"{models_dir} holds an int8-quantized classifier: add the network to the float model folder it was "
            "quantized from, then quantize the result again"
        )
    if config.get("input_crop"):
        raise ValueError(
            f"{models_dir}'s classifier takes lesion crops: adding to it is not supported; export all the runs "
            "with melanoma export FIRST_RUN --ensemble RUN ... --segmenter DIR"
        )
    return config


def _run_path(path: Path | str) -> str:
    """How a config names a member's run: relative to the working directory when it lies under it (the shipped
    configs then read ``runs/NAME`` on any machine), else absolute."""
    resolved, here = Path(path).resolve(), Path.cwd().resolve()
    return str(resolved.relative_to(here)) if resolved.is_relative_to(here) else str(resolved)


def _added_member_config(
    before: dict[str, Any], models_dir: Path, run_dir: Path, config: TrainConfig, state: dict[str, Any]
) -> dict[str, Any]:
    """The config of ``before``'s ensemble with ``run_dir``'s network added (before calibration); refuses a
    network that does not take the same input, is already a member, or trained on other images."""
    if config.task != "classification":
        raise ValueError(f"{run_dir} is a {config.task} run: only a classifier can join the exported classifier")
    if config.data.lesion_crop:
        raise ValueError(f"{run_dir} trained on lesion crops: it cannot join a classifier that takes whole images")
    added = _model_config(
        run_dir,
        config,
        state,
        [(run_dir, None, config, state)],
        True,
        before["onnx_file"],
        before.get("test_time_flips", []),
    )
    same_input = ("input_size", "resize", "resize_filter", "prepared_size", "mean", "std", "label")
    different = [
        f"{key} {added.get(key)!r} vs {before.get(key)!r}" for key in same_input if added.get(key) != before.get(key)
    ]
    if different:
        raise ValueError(
            f"{run_dir} does not take the same input as the classifier in {models_dir} ({'; '.join(different)}): "
            "an ensemble is one ONNX graph with one input, so its members must share sizes and preprocessing"
        )
    members = before.get("ensemble", {}).get("members") or [
        {
            "run": _run_path(models_dir / before["onnx_file"]),
            "arch": before["arch"],
            "training": _without_fingerprints(before["training"]),
        }
    ]
    if any(Path(member.get("run", "")).resolve() == run_dir.resolve() for member in members):
        raise ValueError(
            f"{run_dir} is already a member of the classifier in {models_dir}: the same network twice only weighs it "
            "double"
        )
    for member in members:
        _check_same_images(member.get("training", {}).get("data", {}), state.get("provenance", {}), run_dir)
    added.update(arch=f"{before['arch']}+{config.model.arch}", training=_with_fingerprints(before["training"], state))
    added["ensemble"] = {
        "combine": added["ensemble"]["combine"],
        "members": [*members, *added["ensemble"]["members"]],
        "added_to": {
            "members": len(members),
            "exported": before.get("exported"),
            "onnx_sha256": before["onnx_sha256"],
            "threshold": before.get("threshold"),
        },
    }
    return added


def _with_fingerprints(record: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """An ensemble's training record, given the joining run's image fingerprints when it keeps none of its own (an
    export from before they were kept) and lists the very same images in the same order."""
    data, provenance = record.get("data", {}), state.get("provenance", {})
    prints = provenance.get("image_fingerprints")
    if not prints or data.get("image_fingerprints") or not data.get("image_ids"):
        return record
    if data["image_ids"] != provenance.get("image_ids"):
        return record
    return {**record, "data": {**data, "image_fingerprints": prints}}


def _check_same_images(member: dict[str, Any], provenance: dict[str, Any], run_dir: Path) -> None:
    """Refuse a run whose training and validation images differ from an ensemble member's: the ensemble's threshold
    is fitted on the validation split, which must hold none of any member's training images."""
    if member.get("image_ids") and provenance.get("image_ids"):
        same = _sorted_lists(member["image_ids"]) == _sorted_lists(provenance["image_ids"])
    else:  # a member exported before the image lists were recorded: the splits' names and sizes
        keys = ("dataset", "train_split", "validation_split", "n_train", "n_validation")
        same = all(member.get(key) == provenance.get(key) for key in keys)
    if not same:
        raise ValueError(
            f"{run_dir} trained or validated on other images than the classifier it would join "
            f"({provenance.get('n_train')} and {provenance.get('n_validation')} images against "
            f"{member.get('n_train')} and {member.get('n_validation')}): the ensemble's threshold is fitted on one "
            "validation split that no member trained on; train the run on the same data and split"
        )


def _sorted_lists(image_ids: dict[str, list[str]]) -> dict[str, list[str]]:
    return {part: sorted(ids) for part, ids in image_ids.items()}


def add_member_graph(ensemble: Path, member: Path, target: Path, members_before: int) -> None:
    """Write to ``target`` one classifier graph: ``(n * ensemble + member) / (n + 1)`` for the melanoma probability
    and the activation map alike, ``n = members_before`` (the mean over all members, as ``export_onnx`` builds it)."""
    import onnx
    from onnx import compose, helper, numpy_helper

    first, second = onnx.load(str(ensemble)), onnx.load(str(member))
    old, new = compose.add_prefix(first, "ensemble/"), compose.add_prefix(second, "added/")
    weights = {
        "ensemble/": numpy_helper.from_array(np.array(members_before / (members_before + 1), np.float32), "w_ensemble"),
        "added/": numpy_helper.from_array(np.array(1 / (members_before + 1), np.float32), "w_added"),
    }
    image = first.graph.input[0].name
    nodes = [helper.make_node("Identity", [image], [f"{prefix}{image}"]) for prefix in weights]
    nodes += [*old.graph.node, *new.graph.node]
    for output in first.graph.output:
        for prefix, weight in weights.items():
            nodes.append(helper.make_node("Mul", [f"{prefix}{output.name}", weight.name], [f"{prefix}{output.name}_w"]))
        nodes.append(helper.make_node("Add", [f"{prefix}{output.name}_w" for prefix in weights], [output.name]))
    graph = helper.make_graph(
        nodes,
        first.graph.name,
        list(first.graph.input),
        list(first.graph.output),
        [*old.graph.initializer, *new.graph.initializer, *weights.values()],
    )
    combined = helper.make_model(graph, opset_imports=list(first.opset_import), producer_name=first.producer_name)
    combined.ir_version = max(first.ir_version, second.ir_version)
    onnx.checker.check_model(combined)
    onnx.save(combined, str(target))


def _write_export(
    run_dir: Path,
    out_dir: Path,
    members: list[tuple[Path, nn.Module, TrainConfig, dict[str, Any]]],
    calibrate: bool,
    flips: str,
    segmenter_dir: Path | None,
    classifier_flips: Sequence[str],
    ensemble: bool,
) -> None:
    """Export, calibrate and put the network and its config in place in ``out_dir`` (see ``export_run``)."""
    _, model, config, state = members[0]
    task = config.task
    if calibrate and task == "classification" and config.data.lesion_crop:
        from melanoma.inference.calibrate import find_segmenter

        find_segmenter([out_dir, *([Path(segmenter_dir)] if segmenter_dir else [])])  # before anything is written
    model_config = _model_config(run_dir, config, state, members, ensemble, MODEL_FILES[task], classifier_flips)

    def write_network(staged: Path) -> None:
        export_onnx([m for _, m, _, _ in members] if ensemble else model, task, config.data.image_size, staged)

    model_config = _put_in_place(
        out_dir, model_config, write_network, config, (flips, segmenter_dir) if calibrate else None
    )
    if model_config.get("input_crop") and segmenter_dir and not (out_dir / "segmentation.json").is_file():
        _copy_segmenter(Path(segmenter_dir), out_dir)
    config_yaml = run_dir / "config.yaml"
    if config_yaml.is_file():
        shutil.copy(config_yaml, out_dir / f"{task}_train_config.yaml")


def _put_in_place(
    out_dir: Path,
    model_config: dict[str, Any],
    write_network: Callable[[Path], None],
    train_config: TrainConfig,
    calibration: tuple[str, Path | None] | None,
) -> dict[str, Any]:
    """Write the network (``write_network(path)``), calibrate it (``calibration``: the segmenter's flip rule and a
    lesion-crop classifier's segmenter folder; None: not calibrated), then put it and its config in place.

    Both are written beside the model folder's files and put in place only once calibrated: a failed or interrupted
    export leaves the folder's current network and config as they were (they must stay a matching pair).
    """
    task = model_config["task"]
    staged = out_dir / f".{model_config['onnx_file']}.partial"
    staged_config = out_dir / f".{task}.json.partial"
    try:
        write_network(staged)
        if calibration is not None:
            from melanoma.inference.calibrate import calibrate_model

            model_config.update(calibrate_model(staged, model_config, train_config, out_dir, *calibration))
        else:  # the Predictor says so wherever the model is served (threshold 0.5, nothing measured)
            model_config["calibrated"] = False
        model_config["onnx_sha256"] = onnx_digest(staged)  # the Predictor refuses a network its config does not fit
        staged_config.write_text(json.dumps(model_config, indent=2) + "\n")
        os.replace(staged, out_dir / model_config["onnx_file"])
        os.replace(staged_config, out_dir / f"{task}.json")
    finally:
        for leftover in (staged, staged_config):
            leftover.unlink(missing_ok=True)
    return model_config


def _check_export_arguments(
    config: TrainConfig,
    classifier_flips: Sequence[str],
    flips: str,
    segmenter_dir: Path | None,
    runs: Sequence[Path],
) -> None:
    """Refuse options that do not apply to this run, before anything is loaded or written: an option silently
    ignored would leave the user believing the exported model has it."""
    task = config.task
    unknown = [f for f in classifier_flips if f not in FLIPS]
    if unknown:
        raise ValueError(f"unknown classifier flip(s) {unknown}; valid: {', '.join(FLIPS)}")
    if classifier_flips and task != "classification":
        raise ValueError("classifier flips apply to classification runs; segmentation uses flips='auto'/'off'")
    if flips not in FLIP_MODES:
        raise ValueError(f"unknown test-time flips mode {flips!r}; valid: {', '.join(FLIP_MODES)}")
    if flips != "auto" and task != "segmentation":
        raise ValueError(
            f"--test-time-flips {flips} applies to segmentation runs; a classifier's are chosen by --classifier-flips"
        )
    if segmenter_dir and not (task == "classification" and config.data.lesion_crop):
        raise ValueError(
            "--segmenter applies to lesion-crop classifiers (data.lesion_crop=true), which need a segmenter to "
            "place their crops; this run takes the whole image: drop --segmenter"
        )
    seen: dict[Path, Path] = {}
    for run in runs:
        key = Path(run).resolve()
        if key in seen:
            raise ValueError(
                f"{run} is in the ensemble twice (as {seen[key]} too): the same network twice only weighs it "
                "double; list each run once"
            )
        seen[key] = Path(run)


def _new_folders(path: Path) -> list[Path]:
    """The folders ``path.mkdir(parents=True)`` would create, deepest first."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def _remove_if_empty(folders: Sequence[Path]) -> None:
    for folder in folders:  # deepest first: a parent is empty only once its child is gone
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone): keep it
            return


def _model_config(
    run_dir: Path,
    config: TrainConfig,
    state: dict[str, Any],
    members: list,
    ensemble: bool,
    onnx_file: str,
    classifier_flips: Sequence[str],
) -> dict[str, Any]:
    """The JSON config of an exported network before calibration (threshold 0.5, no post-processing)."""
    task = config.task
    model_config: dict[str, Any] = {
        "task": task,
        "format_version": 1,
        "onnx_file": onnx_file,
        "arch": "+".join(c.model.arch for _, _, c, _ in members),
        "input_size": config.data.image_size,
        "resize": "squash",
        # Training resizes with albumentations' Resize (OpenCV INTER_LINEAR) from the prepared images: serving
        # takes any image through the same steps (see melanoma.inference.preprocess.resize_rgb).
        "resize_filter": "linear",
        "prepared_size": _prepared_size(config),
        "mean": list(PRETRAINED_MEAN),
        "std": list(PRETRAINED_STD),
        "opset": OPSET,
        "training": _training_record(run_dir, config, state),
        "exported": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "intended_use": "Research on dermoscopic images; not a medical device and not a diagnosis.",
    }
    if ensemble:
        model_config["ensemble"] = {
            "combine": "mean of the members' melanoma probabilities; activation map: mean of their maps",
            "members": [
                {"run": _run_path(path), "arch": c.model.arch, "training": _member_record(path, c, st)}
                for path, _, c, st in members
            ],
        }
    if task == "segmentation":
        model_config.update(threshold=0.5, postprocess={"largest_component": False, "fill_holes": False})
    else:
        model_config.update(threshold=0.5, label="melanoma", activation_map_output="activation_map")
        if config.data.lesion_crop:
            model_config["input_crop"] = {"source": "lesion_mask", "margin": config.data.crop_margin}
    model_config["test_time_flips"] = list(dict.fromkeys(classifier_flips))
    return model_config


def _training_record(run_dir: Path, config: TrainConfig, state: dict[str, Any]) -> dict[str, Any]:
    """What the model config says about how a run was trained: command, data, best epoch, history, config."""
    return {
        "command": config.command,
        "data": state.get("provenance", {}),
        "best_epoch": int(state["epoch"]) + 1,
        "best_epoch_metrics": state.get("metrics"),
        "history": _metric_history(run_dir),
        "config": state["config"],
    }


def _member_record(run_dir: Path, config: TrainConfig, state: dict[str, Any]) -> dict[str, Any]:
    """An ensemble member's training record, without the image fingerprints: every member trained on the same images
    (``_check_same_images``), whose fingerprints the config's own record keeps once (about 92 KB for ISIC 2017)."""
    return _without_fingerprints(_training_record(run_dir, config, state))


def _without_fingerprints(record: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in record.get("data", {}).items() if k != "image_fingerprints"}
    return {**record, "data": data} if "data" in record else record


def _ensemble_members(
    config: TrainConfig, runs: Sequence[Path]
) -> list[tuple[Path, nn.Module, TrainConfig, dict[str, Any]]]:
    """Load the extra members of an ensemble; each must be a classifier that takes the same input as ``config``'s."""
    if runs and config.task != "classification":
        raise ValueError("--ensemble combines classifiers: the first run is a segmentation run")
    members = []
    for run in map(Path, runs):
        model, member, state = load_run_model(run)
        same_input = {
            "task": (member.task, config.task),
            "data.image_size": (member.data.image_size, config.data.image_size),
            "data.lesion_crop": (member.data.lesion_crop, config.data.lesion_crop),
            "data.crop_margin": (member.data.crop_margin, config.data.crop_margin),
            "prepared size": (_prepared_size(member), _prepared_size(config)),
        }
        different = [f"{key} {mine} vs {theirs}" for key, (mine, theirs) in same_input.items() if mine != theirs]
        if different:
            raise ValueError(
                f"ensemble member {run} does not take the same input as the first run ({'; '.join(different)}): "
                "an ensemble is one ONNX graph with one input, so its members must share task, sizes and crop"
            )
        members.append((run, model, member, state))
    return members


def _prepared_size(config: TrainConfig) -> int | None:
    """The side of the prepared (squashed, square) training images the run learned from; None when unknown.

    ``data.prepared_size`` when the run set it (every image squashed to it when loaded); a lesion-crop classifier
    crops from the images as stored before it resizes, so it has none. A run from before that option (its
    checkpoint's config has no ``prepared_size``: ``LEGACY_DEFAULTS``): the side of its ISIC images, none for a
    folder.
    """
    if config.data.lesion_crop:
        return None
    if config.data.prepared_size:
        return config.data.prepared_size
    if config.data.source != "isic2017":
        return None
    from PIL import Image

    from melanoma.training.datasets import load_splits

    try:
        with Image.open(load_splits(config.data)[0][0].image_path) as image:
            width, height = image.size
    except (OSError, ValueError, IndexError):  # the data is not on this machine: serve without the first step
        return None
    return width if width == height else None


def _copy_segmenter(source: Path, out_dir: Path) -> None:
    config = json.loads((source / "segmentation.json").read_text())
    for name in ("segmentation.json", config["onnx_file"], "segmentation_train_config.yaml"):
        if (source / name).is_file():
            shutil.copy(source / name, out_dir / name)


def pytorch_reference(model: nn.Module | Sequence[nn.Module], task: str, batch: np.ndarray) -> list[np.ndarray]:
    """The serving graph's outputs computed in PyTorch (for ONNX parity checks); a list of classifiers is an
    ensemble."""
    graph = serving_graph(model, task)
    with torch.no_grad():
        outputs = graph.eval()(torch.from_numpy(batch))
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    return [o.numpy() for o in outputs]
