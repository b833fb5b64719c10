"""``model.keratosis_aux``: a seborrheic-keratosis logit trained beside the melanoma logit, cut off at export."""

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config

from melanoma.data import read_isic2017
from melanoma.data.samples import DataError, read_labels_csv, read_optional_labels
from melanoma.inference.export import export_onnx, load_run_model
from melanoma.models.factory import build_classifier, build_model, melanoma_only
from melanoma.training.checkpoint import load_checkpoint
from melanoma.training.engine import build_loss, fit
from melanoma.training.losses import MelanomaKeratosisBCE, WeightedBCE


def test_isic_reader_attaches_the_keratosis_label(shared_synthetic_isic_dir):
    train = read_isic2017(shared_synthetic_isic_dir, "train")
    assert [s.keratosis for s in train] == [0, 0, 0, 0, 0, 0, 0, 1]
    assert all(s.keratosis is None for s in read_isic2017(shared_synthetic_isic_dir, "test"))


def test_a_labels_csv_without_the_column_has_no_keratosis_labels(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("image_id,melanoma\nA,1\nB,0\n")
    assert read_optional_labels(path, "seborrheic_keratosis") is None
    assert read_optional_labels(None, "seborrheic_keratosis") is None
    path.write_text("image_id,melanoma,seborrheic_keratosis\nA,1,0\nB,0,1\n")
    assert read_optional_labels(path, "seborrheic_keratosis") == {"A": 0, "B": 1}
    path.write_text("image_id,melanoma,seborrheic_keratosis\nA,1,0\nB,0,maybe\n")
    with pytest.raises(DataError, match="seborrheic_keratosis label 'maybe' is not 0 or 1"):
        read_labels_csv(path, "seborrheic_keratosis")


def test_an_unused_keratosis_column_with_blank_cells_stops_nothing(tmp_path):
    """The column is read leniently: a blank, unknown or contradictory cell leaves that image without the label."""
    from melanoma.data.folder import read_image_folder

    images = tmp_path / "images"
    images.mkdir()
    for name in "ABCD":
        (images / f"{name}.jpg").write_bytes(b"")  # listing reads names only
    labels = tmp_path / "labels.csv"
    labels.write_text("image_id,melanoma,seborrheic_keratosis\nA,1,0\nB,0,\nC,0,maybe\nD,0,1\nD,0,0\n")
    samples = read_image_folder(images, labels_csv=labels)
    assert [(s.image_id, s.melanoma, s.keratosis) for s in samples] == [
        ("A", 1, 0),
        ("B", 0, None),
        ("C", 0, None),
        ("D", 0, None),
    ]


def test_the_loss_adds_the_keratosis_term_each_class_balanced_by_its_own_weight():
    logits = torch.tensor([[2.0, -1.0], [-0.5, 0.3], [0.1, 1.5]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    loss = MelanomaKeratosisBCE(3.0, 5.0)(logits, target)
    expected = WeightedBCE(3.0)(logits[:, 0], target[:, 0]) + WeightedBCE(5.0)(logits[:, 1], target[:, 1])
    assert torch.isclose(loss, expected)
    unweighted = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(0).sum()
    assert not torch.isclose(loss, unweighted)  # the pos_weights are applied


def test_the_config_picks_the_multi_task_loss(shared_synthetic_isic_dir):
    config = tiny_config("classification", shared_synthetic_isic_dir, **{"model.keratosis_aux": "true"})
    loss = build_loss(config, read_isic2017(shared_synthetic_isic_dir, "train"))
    assert isinstance(loss, MelanomaKeratosisBCE)
    assert loss.melanoma.pos_weight.item() == pytest.approx(5 / 3)
    assert loss.keratosis.pos_weight.item() == pytest.approx(7 / 1)


def test_melanoma_only_keeps_the_melanoma_logit_exactly():
    torch.manual_seed(0)
    model = build_classifier(pretrained=False, head_init="timm", outputs=2).eval()
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        both = model(image)
        single = melanoma_only(model)(image)
    assert both.shape == (2, 2) and single.shape == (2, 1)
    assert torch.allclose(single[:, 0], both[:, 0], atol=1e-6)
    assert not torch.allclose(both[:, 1], both[:, 0])


def test_a_keratosis_aux_run_trains_two_logits_and_exports_the_melanoma_one(shared_synthetic_isic_dir, tmp_path):
    config = tiny_config(
        "classification", shared_synthetic_isic_dir, **{"model.keratosis_aux": "true", "optim.lr": 0.05}
    )
    fit(config, tmp_path / "run")
    state = load_checkpoint(tmp_path / "run" / "best.pt")
    assert state["model"]["classifier.weight"].shape[0] == 2
    assert state["model"]["classifier.weight"][1].abs().sum() > 0  # the keratosis logit was trained
    model, loaded, _ = load_run_model(tmp_path / "run")
    assert loaded.model.keratosis_aux
    assert model.classifier.out_features == 1
    assert torch.equal(model.classifier.weight[0], state["model"]["classifier.weight"][0])
    # The served graph: one melanoma probability and its activation map, within 1e-4 of PyTorch's melanoma logit.
    export_onnx(model, "classification", loaded.data.image_size, tmp_path / "classification.onnx")
    session = ort.InferenceSession(str(tmp_path / "classification.onnx"), providers=["CPUExecutionProvider"])
    size = loaded.data.image_size
    inputs = np.random.default_rng(0).normal(0, 1, (2, 3, size, size)).astype(np.float32)
    probability, cam = session.run(None, {"image": inputs})
    full = build_model("classification", dataclasses.replace(loaded.model, pretrained=False))
    full.load_state_dict(state["model"])
    with torch.no_grad():
        logits = full.eval()(torch.from_numpy(inputs))
    assert logits.shape == (2, 2)
    np.testing.assert_allclose(probability, torch.sigmoid(logits[:, 0]).numpy(), atol=1e-4, rtol=0)
    assert cam.shape[0] == 2


def test_keratosis_aux_without_the_labels_says_what_to_do(tmp_path):
    from conftest import synthetic_lesion
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    rows = ["image_id,melanoma"]
    for i in range(8):
        Image.fromarray(synthetic_lesion(64, seed=i)[0]).save(images / f"img{i}.jpg")
        rows.append(f"img{i},{int(i < 4)}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    config = tiny_config(
        "classification",
        tmp_path,
        **{
            "data.source": "folder",
            "data.images_dir": images,
            "data.labels_csv": tmp_path / "labels.csv",
            "model.keratosis_aux": "true",
        },
    )
    with pytest.raises(ValueError, match="seborrheic_keratosis column"):
        fit(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
