"""Config: Matterport names and defaults, subclassing, derived values, errors."""

import dataclasses

import numpy as np
import pytest

from model.config import Config, ConfigError


class ShapesConfig(Config):
    NAME = "shapes"
    NUM_CLASSES = 4
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = [8, 16, 32, 64, 128]  # lists, as Matterport users write them
    MEAN_PIXEL = np.array([1.0, 2.0, 3.0])
    LOSS_WEIGHTS = {"mrcnn_mask_loss": 2.0}


def test_matterport_defaults():
    c = Config()
    assert (c.BACKBONE, c.IMAGE_MAX_DIM, c.PRE_NMS_LIMIT, c.DETECTION_MIN_CONFIDENCE) == ("resnet101", 1024, 6000, 0.7)
    assert c.MEAN_PIXEL == (123.7, 116.8, 103.9) and c.TRAIN_BN is False
    assert (c.BATCH_SIZE, c.IMAGE_SHAPE, c.IMAGE_META_SIZE) == (2, (1024, 1024, 3), 13)


def test_subclass_attributes_become_defaults():
    c = ShapesConfig()
    assert dataclasses.is_dataclass(c)
    assert (c.NAME, c.NUM_CLASSES, c.IMAGE_SHAPE, c.IMAGE_META_SIZE) == ("shapes", 4, (128, 128, 3), 16)
    assert c.RPN_ANCHOR_SCALES == (8, 16, 32, 64, 128) and c.MEAN_PIXEL == (1.0, 2.0, 3.0)
    assert ShapesConfig().LOSS_WEIGHTS is not c.LOSS_WEIGHTS  # no shared mutable default
    assert ShapesConfig(NUM_CLASSES=7).NUM_CLASSES == 7
    assert Config().NAME is None  # the base class is untouched


def test_round_trip_and_display(capsys):
    c = ShapesConfig(DETECTION_MIN_CONFIDENCE=0.5)
    assert Config.from_dict(c.to_dict()) == dataclasses.replace(Config(), **c.to_dict())
    c.display()
    out = capsys.readouterr().out
    assert "NUM_CLASSES                    4" in out and "IMAGE_SHAPE" in out


def test_invalid_values_are_all_reported():
    with pytest.raises(ConfigError) as info:
        ShapesConfig(IMAGE_MAX_DIM=100, BACKBONE="vgg16", RPN_NMS_THRESHOLD=1.5, NUM_CLASSES=0,
                     MASK_SHAPE=(56, 56), TRAIN_BN=False, BATCH_RENORM=True, OPTIMIZER="RMSprop")
    message = str(info.value)
    for part in ("IMAGE_MAX_DIM must be a multiple of 64", "BACKBONE must be one of",
                 "RPN_NMS_THRESHOLD must lie in [0, 1]", "NUM_CLASSES must be a positive integer",
                 "MASK_SHAPE must be twice MASK_POOL_SIZE", "BATCH_RENORM needs TRAIN_BN True or None",
                 "OPTIMIZER must be one of ('SGD', 'Adam'), got 'RMSprop'"):
        assert part in message


def test_from_dict_checks_keys_and_derived_values():
    with pytest.raises(ConfigError, match="unknown config keys: NOT_A_KEY"):
        Config.from_dict({"NOT_A_KEY": 1})
    with pytest.raises(ConfigError, match="IMAGE_SHAPE"):
        Config.from_dict({"IMAGE_MAX_DIM": 512, "IMAGE_SHAPE": [1024, 1024, 3]})
    assert Config.from_dict({"COMPUTE_BACKBONE_SHAPE": None, "BATCH_SIZE": 2}).BATCH_SIZE == 2


def test_validate_after_editing():
    c = ShapesConfig()
    c.IMAGE_MAX_DIM = 130
    with pytest.raises(ConfigError, match="multiple of 64"):
        c.validate()


def test_subclass_in_a_module_outside_sys_modules(tmp_path):
    """A config file run with exec (not imported) must still subclass cleanly."""
    import importlib.util

    path = tmp_path / "my_config.py"
    path.write_text("from model.config import Config\n\n"
                    "class MyConfig(Config):\n    NAME = 'mine'\n    NUM_CLASSES = 3\n")
    spec = importlib.util.spec_from_file_location("not_registered_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.MyConfig().NUM_CLASSES == 3
