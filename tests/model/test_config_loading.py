"""model.config_loading: NAME=VALUE settings on top of a Config."""

import argparse

import pytest

from model.config import ConfigError
from model.config_loading import parse_setting, setting_argument, with_settings
from model.configs import ShapesConfig


@pytest.mark.parametrize("text, expected", [
    ("TRAIN_ROIS_PER_IMAGE=50", ("TRAIN_ROIS_PER_IMAGE", 50)),
    ("ROI_POSITIVE_RATIO=0.2", ("ROI_POSITIVE_RATIO", 0.2)),
    ("USE_MINI_MASK=false", ("USE_MINI_MASK", False)),
    ("RPN_ANCHOR_RATIOS=[0.5, 1, 2]", ("RPN_ANCHOR_RATIOS", [0.5, 1, 2])),
    (" BACKBONE =resnet101", ("BACKBONE", "resnet101")),  # not JSON: a string
])
def test_parse_setting_reads_json_values_and_strings(text, expected):
    assert parse_setting(text) == expected


@pytest.mark.parametrize("text", ["TRAIN_ROIS_PER_IMAGE", "=50", ""])
def test_parse_setting_wants_name_equals_value(text):
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_setting(text)
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=VALUE"):  # what --set reports
        setting_argument(text)


def test_with_settings_copies_validates_and_names_unknown_attributes():
    base = ShapesConfig()
    config = with_settings(base, [("TRAIN_ROIS_PER_IMAGE", 50), ("RPN_ANCHOR_RATIOS", [1, 2])])
    assert (config.TRAIN_ROIS_PER_IMAGE, config.RPN_ANCHOR_RATIOS, config.NAME) == (50, (1, 2), "shapes")
    assert base.TRAIN_ROIS_PER_IMAGE == 32 and with_settings(base, []) == base
    with pytest.raises(ConfigError, match="unknown config attributes: NOPE, ROIS"):
        with_settings(base, [("ROIS", 1), ("NOPE", 2)])
    with pytest.raises(ConfigError, match="TRAIN_ROIS_PER_IMAGE must be a positive integer, got -1"):
        with_settings(base, [("TRAIN_ROIS_PER_IMAGE", -1)])
