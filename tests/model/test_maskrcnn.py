"""The MaskRCNN module: output contract, detect() behaviour and bad inputs."""

import numpy as np
import pytest
import torch

from model.maskrcnn import MaskRCNN
from runtime.image import ImageError
from runtime.results import Detections


def shapes_image(seed, height=96, width=128):
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), rng.integers(0, 255, 3), np.uint8)
    image[20:50, 30:70] = rng.integers(0, 255, 3)
    return image


def test_forward_output_contract(tiny_model, tiny_config):
    images = torch.randn(2, 3, 128, 128)
    windows = torch.tensor([[0, 0, 128, 128], [16, 0, 112, 128]], dtype=torch.float32)
    with torch.no_grad():
        out = tiny_model(images, windows)
    k = tiny_config.DETECTION_MAX_INSTANCES
    assert out.boxes.shape == (2, k, 4) and out.masks.shape == (2, k, 28, 28)
    assert out.class_ids.dtype == torch.int64 and out.num_detections.shape == (2,)
    for b in range(2):
        n = int(out.num_detections[b])
        assert (out.class_ids[b, :n] > 0).all() and not out.class_ids[b, n:].any()
        assert (out.scores[b, :n].diff() <= 0).all()  # sorted by score
        window = (windows[b] - torch.tensor([0, 0, 1, 1])) / 127
        assert (out.boxes[b, :n, 0] >= window[0] - 1e-6).all() and (out.boxes[b, :n, 2] <= window[2] + 1e-6).all()
    with pytest.raises(ValueError, match="multiples of 64"):
        tiny_model(torch.zeros(1, 3, 100, 128), windows[:1])


def test_batch_agrees_with_single_images(tiny_model):
    images = [shapes_image(1), shapes_image(2, 128, 64)]
    batched = tiny_model.detect(images, batch_size=2)
    single = [tiny_model.detect([image])[0] for image in images]
    for a, b in zip(batched, single):
        np.testing.assert_array_equal(a.rois, b.rois)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        np.testing.assert_array_equal(a.masks, b.masks)


def test_detect_results_are_matterport_shaped(tiny_model):
    results = tiny_model.detect([shapes_image(3), shapes_image(4, 200, 60)])
    assert len(results) == 2
    for result, shape in zip(results, [(96, 128), (200, 60)]):
        assert isinstance(result, Detections)
        n = len(result)
        assert result["rois"].shape == (n, 4) and result["masks"].shape == shape + (n,)
        assert result.masks.dtype == bool and result.rois.dtype == np.int32
        assert (result.rois[:, :2] >= 0).all() and (result.rois[:, 2] <= shape[0]).all()


def test_odd_images_are_converted(tiny_model):
    gray = shapes_image(5)[:, :, 0]
    rgba = np.dstack([shapes_image(5), np.full((96, 128), 255, np.uint8)])
    sixteen = shapes_image(5).astype(np.uint16) * 257
    base = tiny_model.detect([shapes_image(5)])[0]
    for odd in (rgba, sixteen):
        np.testing.assert_array_equal(tiny_model.detect([odd])[0].rois, base.rois)
    assert tiny_model.detect([gray])[0].masks.shape[:2] == (96, 128)


def test_bad_inputs(tiny_model):
    with pytest.raises(ValueError, match="at least one image"):
        tiny_model.detect([])
    with pytest.raises(TypeError, match=r"detect\(\[image\]\)"):
        tiny_model.detect(shapes_image(0))
    with pytest.raises(ImageError, match="image 1: image is 1x1"):
        tiny_model.detect([shapes_image(0), np.zeros((1, 1, 3), np.uint8)])
    with pytest.raises(ImageError, match="image 0: .*dtype float64"):
        tiny_model.detect([np.zeros((64, 64, 3))])


def test_detect_restores_training_mode(tiny_config):
    torch.manual_seed(0)
    model = MaskRCNN(tiny_config).train()
    model.detect([shapes_image(0)])
    assert model.training
