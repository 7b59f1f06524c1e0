"""A writer for Keras-layout .h5 files, so the importer is tested without the reference
folder: the layout is the one tf_keras ``save_weights`` produces (root layer_names,
one group per layer with weight_names, the RPN nested in ``rpn_model``)."""

import h5py
import numpy as np
import pytest
from torch import nn

RPN_LAYERS = ("rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred")


def keras_arrays(module):
    """(kind, array in Keras layout) for one torch module: the importer's inverse."""
    if isinstance(module, nn.BatchNorm2d):
        return [("gamma", module.weight), ("beta", module.bias),
                ("moving_mean", module.running_mean), ("moving_variance", module.running_var)]
    kernel = module.weight.detach().numpy()
    kernel = kernel.transpose(2, 3, 1, 0) if kernel.ndim == 4 else kernel.T
    return [("kernel", kernel), ("bias", module.bias)]


def write_keras_h5(model, path, skip=(), rename=None):
    """Write ``model``'s weights as a Matterport Keras file (layers in ``skip`` left out,
    ``rename`` maps layer names, e.g. to fake another backbone)."""
    rename = rename or {}
    groups = {}
    for layer, module in model.keras_layers().items():
        if layer in skip:
            continue
        name = rename.get(layer, layer)
        owner = "rpn_model" if layer in RPN_LAYERS else name
        for kind, value in keras_arrays(module):
            value = value.detach().numpy() if hasattr(value, "detach") else value
            groups.setdefault(owner, []).append((f"{name}/{kind}:0", np.asarray(value, np.float32)))
    layer_names = ["input_image", "zero_padding2d"] + list(groups) + ["activation_1"]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in layer_names]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.21.0"
        for layer in sorted(layer_names):
            group = f.create_group(layer)
            weights = groups.get(layer, [])
            group.attrs["weight_names"] = [w.encode() for w, _ in weights] if weights else np.zeros(0)
            for weight_name, value in weights:
                group.create_dataset(weight_name, data=value)
        f.create_group("top_level_model_weights").attrs["weight_names"] = np.zeros(0)
    return path


@pytest.fixture(scope="session")
def keras_h5_writer():
    return write_keras_h5
