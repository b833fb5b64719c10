"""The committed model card is what scripts/write_model_card.py renders from the committed configs and eval JSONs."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _writer():
    spec = importlib.util.spec_from_file_location("write_model_card", REPO / "scripts" / "write_model_card.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
