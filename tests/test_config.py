"""Typed configs: YAML + overrides, unknown keys and wrong types are errors, round trip through config.yaml."""

from pathlib import Path

import pytest

from melanoma.config import ConfigError, TrainConfig, load_config, parse_overrides, save_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_every_shipped_config_loads(name):
    config = load_config(REPO / "configs" / name)
    assert isinstance(config, TrainConfig)


@pytest.mark.parametrize(
    ("overrides", "check"),
    [
        (["optim.lr=3e-4"], lambda c: c.optim.lr == 3e-4),
        (["--data.image_size=192"], lambda c: c.data.image_size == 192),
        (["optim.epochs=3", "model.arch=tf_efficientnet_lite2"], lambda c: c.model.arch.endswith("lite2")),
        (["model.decoder_channels=[64,32,16,8,4]"], lambda c: c.model.decoder_channels == [64, 32, 16, 8, 4]),
        (["model.decoder_attention=scse"], lambda c: c.model.decoder_attention == "scse"),
        (["optim.lr=1"], lambda c: isinstance(c.optim.lr, float)),
        (["data.limit_train=null"], lambda c: c.data.limit_train is None),
    ],
)
def test_overrides_apply(overrides, check):
    assert check(load_config(REPO / "configs" / "tiny.yaml", overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lrr=1e-3"], "unknown key"),
        (["bogus=1"], "unknown key"),
        (["data.image_size=big"], "expected int"),
        (["data.image_size=1.5"], "expected int"),
        (["amp=fp64"], "not one of"),
        (["model.decoder_interpolation=bicubic"], "not one of"),
        (["task=detection"], "not one of"),
        (["model.pretrained=maybe"], "expected bool"),
        (["optim=3"], "expected a mapping"),
        (["optim.lr"], "must look like"),
    ],
)
def test_bad_overrides_are_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(REPO / "configs" / "tiny.yaml", overrides)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist") as error:
        load_config(tmp_path / "nope.yaml")
    assert "classification, segmentation, segmentation-128, tiny" in str(error.value)  # the recipes to name instead


def test_a_recipe_is_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here, as after `pip install`
    for name in ("classification", "classification.yaml"):
        assert load_config(name) == load_config(REPO / "configs" / "classification.yaml")
    (tmp_path / "classification.yaml").write_text("task: segmentation\n")  # a file of that name comes first
    assert load_config("classification.yaml").task == "segmentation"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("configs/classification.yaml")  # a path is taken as a path


def test_saved_config_round_trips(tmp_path):
    config = load_config(REPO / "configs" / "tiny.yaml", ["optim.lr=0.002", "seed=7"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


def test_parse_overrides_nests():
    assert parse_overrides(["a.b.c=1", "a.d=x"]) == {"a": {"b": {"c": 1}, "d": "x"}}


@pytest.mark.parametrize("folder", ["2024", "#1/images", "my data: v2/images", "true"])
def test_data_paths_in_overrides_are_taken_as_typed(folder):
    config = load_config(None, ["data.source=folder", f"data.images_dir={folder}"])
    assert config.data.images_dir == folder
    assert load_config(None, ["data.data_dir=null"]).data.data_dir is None


@pytest.mark.parametrize(("key", "name"), [("group_column", "ON"), ("group_column", "Lesion #"),
                                           ("label_column", "1"), ("mask_suffix", "_mask: v2.png")])  # fmt: skip
def test_column_names_and_mask_endings_in_overrides_are_taken_as_typed(key, name):
    config = load_config(None, ["data.source=folder", "data.images_dir=x", f"data.{key}={name}"])
    assert getattr(config.data, key) == name
