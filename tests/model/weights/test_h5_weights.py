"""The .h5 importer on generated files with Matterport's layout, and its errors."""

import dataclasses

import h5py
import numpy as np
import pytest
import torch

from model.maskrcnn import MaskRCNN
from model.weights.h5_weights import HEAD_LAYERS, WeightsError, load_h5_weights, read_h5, summarize


def fresh(config, seed):
    torch.manual_seed(seed)
    return MaskRCNN(config).eval()


@pytest.fixture(scope="module")
def source_file(tiny_config, keras_h5_writer, tmp_path_factory):
    """A Keras file written from a model whose BN statistics are not the defaults."""
    model = fresh(tiny_config, 1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = keras_h5_writer(model, tmp_path_factory.mktemp("h5") / "tiny.h5")
    return model, path


def test_round_trip_reproduces_outputs(tiny_config, source_file):
    source, path = source_file
    target = fresh(tiny_config, 2)
    report = load_h5_weights(target, path)
    assert report.missing == [] and report.unused == []
    assert len(report.loaded) == len(target.keras_layers())
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_summary_infers_classes_and_backbone(tiny_config, source_file):
    summary = summarize(read_h5(source_file[1]))
    assert summary.num_classes == tiny_config.NUM_CLASSES
    assert summary.backbone == "resnet50"
    assert summary.fc_layers_size == tiny_config.FPN_CLASSIF_FC_LAYERS_SIZE
    assert summary.anchors_per_location == 3


def test_exclude_heads_for_fine_tuning(tiny_config, source_file):
    other = dataclasses.replace(tiny_config, NUM_CLASSES=5)
    target = fresh(other, 3)
    before = target.box_head.mrcnn_class_logits.weight.clone()
    with pytest.raises(WeightsError, match="mrcnn_class_logits.*NUM_CLASSES"):
        load_h5_weights(target, source_file[1])
    report = load_h5_weights(target, source_file[1], exclude=HEAD_LAYERS)
    assert "mrcnn_class_logits" not in report.loaded
    torch.testing.assert_close(target.box_head.mrcnn_class_logits.weight, before)
    torch.testing.assert_close(target.backbone.conv1.weight, source_file[0].backbone.conv1.weight)


def test_missing_layers_named_and_model_untouched(tiny_config, keras_h5_writer, tmp_path):
    path = keras_h5_writer(fresh(tiny_config, 4), tmp_path / "no_mask.h5", skip=("mrcnn_mask", "fpn_p2"))
    target = fresh(tiny_config, 5)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(WeightsError, match=r"no_mask.h5: missing 2 layers.*fpn_p2, mrcnn_mask"):
        load_h5_weights(target, path)
    for key, value in target.state_dict().items():
        torch.testing.assert_close(value, before[key], msg=key)  # all-or-nothing
    report = load_h5_weights(target, path, strict=False)  # e.g. an ImageNet backbone file
    assert sorted(report.missing) == ["fpn_p2", "mrcnn_mask"]


def test_backbone_mismatch_hint(tiny_config, keras_h5_writer, tmp_path):
    r101 = dataclasses.replace(tiny_config, BACKBONE="resnet101")
    path = keras_h5_writer(fresh(tiny_config, 6), tmp_path / "r50.h5")
    with pytest.raises(WeightsError, match="holds a resnet50 backbone, the config says resnet101"):
        load_h5_weights(fresh(r101, 7), path)


@pytest.mark.parametrize("content, message", [
    (b"this is not hdf5", "not a readable HDF5 file"),
    (None, "without a 'layer_names' attribute"),
])
def test_wrong_files(tiny_model, tmp_path, content, message):
    path = tmp_path / "weights.h5"
    if content is None:
        with h5py.File(path, "w") as f:
            f.create_dataset("x", data=np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=message):
        load_h5_weights(tiny_model, path)
    with pytest.raises(WeightsError, match="not found"):
        load_h5_weights(tiny_model, tmp_path / "absent.h5")


def test_truncated_file(source_file, tmp_path):
    data = source_file[1].read_bytes()
    path = tmp_path / "truncated.h5"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated.h5"):
        read_h5(path)


def test_reference_file_loads_every_layer(reference, reference_h5):
    """The real Matterport layout: 233 weight layers, RPN nested, no leftovers."""
    weights = read_h5(reference_h5)
    summary = summarize(weights)
    assert (summary.num_classes, summary.backbone) == (4, "resnet101")
    model = MaskRCNN(reference["config"])
    report = load_h5_weights(model, reference_h5)
    assert report.missing == [] and report.unused == []
    assert set(report.loaded) == set(model.keras_layers())
