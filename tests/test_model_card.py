"""The committed model card is what scripts/write_model_card.py renders from the committed configs and eval JSONs."""

from conftest import REPO_ROOT as REPO
from conftest import load_script


def _writer():
    return load_script("write_model_card", "scripts")


def test_committed_model_card_is_up_to_date():
    rendered = _writer().render(REPO / "models")
    committed = (REPO / "models" / "MODEL_CARD.md").read_text()
    assert rendered == committed, "models/MODEL_CARD.md is stale: run `python scripts/write_model_card.py models`"


def test_card_states_the_shipped_validation_numbers():
    import json

    card = (REPO / "models" / "MODEL_CARD.md").read_text()
    segmentation = json.loads((REPO / "models" / "segmentation.json").read_text())["validation"]
    classification = json.loads((REPO / "models" / "classification.json").read_text())["validation"]
    assert f"{segmentation['jaccard']:.4f}" in card
    assert f"{classification['auc']:.3f}" in card
    assert "not a medical device" in card.lower()


def test_card_states_how_uncertain_the_youden_cut_point_is():
    stability = _writer()._youden_stability
    text = stability({"n_positive": 30, "ci95": {"youden_threshold": [0.18, 0.75]}})
    assert "on 30 melanomas" in text and "0.18-0.75" in text
    assert stability({"n_positive": 30, "ci95": {"auc": [0.7, 0.9]}}) == "" == stability(None)


def test_contents_link_every_section_with_githubs_anchors():
    writer = _writer()
    lines = ["## Lesion segmentation (`segmentation.onnx`)", "text", "### Settings compared", "#### Too deep",
             "### Settings compared", "## bf16 autocast: 2.1x, CPU's"]  # fmt: skip
    assert writer.contents(lines) == [
        "Contents:",
        "",
        "- [Lesion segmentation (`segmentation.onnx`)](#lesion-segmentation-segmentationonnx)",
        "  - [Settings compared](#settings-compared)",
        "  - [Settings compared](#settings-compared-1)",  # GitHub numbers a repeated heading
        "- [bf16 autocast: 2.1x, CPU's](#bf16-autocast-21x-cpus)",
        "",
    ]
    assert writer.contents(["no headings"]) == []
    card = (REPO / "models" / "MODEL_CARD.md").read_text().splitlines()
    headings = [line.split(" ", 1)[1] for line in card if line.startswith(("## ", "### "))]
    listed = [line for line in card if line.lstrip().startswith("- [") and "](#" in line]
    assert len(listed) == len(headings)
    assert all(f"[{title}]" in entry for title, entry in zip(headings, listed, strict=True))


def test_card_says_how_a_network_added_to_an_exported_ensemble_was_exported():
    writer = _writer()
    members = [{"arch": "tf_efficientnet_lite0", "run": f"runs/r{i}", "training": {}} for i in range(3)]
    config = {"task": "classification", "exported": "2026-12-08T10:00:00+00:00", "ensemble": {"members": members}}
    assert writer._exported_line(config, " --ensemble RUN_DIR RUN_DIR").startswith(
        "- Exported: 2026-12-08T10:00:00+00:00 by `melanoma export RUN_DIR --ensemble RUN_DIR RUN_DIR --out models`"
    )
    config["ensemble"]["added_to"] = {"members": 2, "exported": "2026-11-29", "threshold": 0.24545, "onnx_sha256": ""}
    line = writer._exported_line(config, " --ensemble RUN_DIR RUN_DIR")
    assert "`melanoma export RUN_DIR --add-to models --out models`" in line
    assert "to the 2-network classifier exported 2026-11-29 (threshold 0.2455)" in line
    assert "--ensemble RUN_DIR RUN_DIR --out models` of all 3 runs" in line
