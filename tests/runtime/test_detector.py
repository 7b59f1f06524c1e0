"""runtime.open_model: both export targets against MaskRCNN.detect, call-time options,
provider choice, and clear errors for files and images it cannot use."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export.verify import verification_images
from runtime import ImageError, ModelFileError, open_model
from runtime.compare import match_detections
from runtime.detector import ORT_PROVIDERS, choose_providers
from runtime.integrity import DamagedFileError, check_onnx_file, save_onnx
from runtime.masks import InstanceMasks
from runtime.trt_build import TensorRTUnavailableError


@pytest.fixture(scope="module")
def images():
    return verification_images(128, count=3, seed=55)


@pytest.fixture(scope="module")
def expected(synthetic_model, images):
    return synthetic_model.detect(images)


@pytest.mark.parametrize("target", ["onnx", "trt"])
def test_open_model_reproduces_pytorch(tiny_exports, images, expected, target):
    detector = open_model(tiny_exports[target])
    assert detector.backend.startswith("onnxruntime ") and "CPUExecutionProvider" in detector.backend
    assert ("numpy references" in detector.backend) == (target == "trt")
    assert detector.info.class_names == ["BG", "a", "b"]
    for ours, theirs in zip(detector.detect(images), expected):
        assert len(ours) == len(theirs) > 0
        agreement = match_detections(ours, theirs, box_tol=1, score_tol=1e-4, tie_tol=1e-5)
        assert agreement.problems(mean_mask_iou=0.98, min_mask_iou=0.5) == []
        assert ours.masks.shape == theirs.masks.shape and ours.masks.dtype == bool


def test_call_time_options(tiny_exports, images, expected):
    detector = open_model(tiny_exports["onnx"])
    rgb = detector.detect(images[:1], paste="exact")[0]
    np.testing.assert_array_equal(rgb.masks, expected[0].masks)  # the exact paste is Matterport's, bit for bit
    bgr = detector.detect([images[0][:, :, ::-1].copy()], bgr=True)[0]
    np.testing.assert_array_equal(bgr.rois, rgb.rois)
    high = detector.detect(images[:1], score_threshold=float(np.median(rgb.scores)))[0]
    assert 0 < len(high) < len(rgb) and (high.scores >= np.median(rgb.scores)).all()
    lazy = detector.detect(images[:1], masks="lazy", mask_threshold=0.7)[0]
    assert isinstance(lazy.masks, InstanceMasks) and np.asarray(lazy.masks).sum() < rgb.masks.sum()


def test_provider_choice():
    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(None, available) == available
    assert choose_providers("cpu", available) == ["CPUExecutionProvider"]
    assert choose_providers("cuda", available) == available
    assert choose_providers(["CPUExecutionProvider"], available) == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match=r"does not offer \['TensorrtExecutionProvider'\].*onnxruntime-gpu"):
        choose_providers("tensorrt", available)
    with pytest.raises(ValueError, match="expected auto"):
        choose_providers("gpu", available)
    assert set(ORT_PROVIDERS) == {"cpu", "cuda", "tensorrt"}


def test_bad_images_are_named(tiny_exports):
    detector = open_model(tiny_exports["onnx"])
    gray, rgba = np.full((60, 80), 128, np.uint8), np.zeros((60, 80, 4), np.uint8)
    assert len(detector.detect([gray, rgba])) == 2
    with pytest.raises(ImageError, match="image 1: images must be uint8"):
        detector.detect([gray, np.zeros((60, 80, 3), np.float32)])
    with pytest.raises(ImageError, match="image 0: image is 4x80 pixels"):
        detector.detect([np.zeros((4, 80, 3), np.uint8)])
    with pytest.raises(TypeError, match=r"detect\(\[image\]\)"):
        detector.detect(gray)
    with pytest.raises(ValueError, match="empty list"):
        detector.detect([])


def test_files_that_are_not_models(tmp_path, tiny_exports):
    with pytest.raises(ModelFileError, match="model file not found"):
        open_model(tmp_path / "missing.onnx")
    with pytest.raises(ModelFileError, match="is a directory"):
        open_model(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelFileError, match=r"expected \.onnx, \.engine or \.plan"):
        open_model(tmp_path / "notes.txt")
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelFileError, match="junk.onnx: ONNX Runtime cannot load it"):
        open_model(tmp_path / "junk.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty.onnx: the file is empty"):
        open_model(tmp_path / "empty.onnx")
    graph = onnx.load(tiny_exports["onnx"])
    del graph.metadata_props[:]
    onnx.save(graph, str(tmp_path / "plain.onnx"))
    with pytest.raises(ModelFileError, match="plain.onnx: missing or invalid model metadata"):
        open_model(tmp_path / "plain.onnx")
    graph = onnx.load(tiny_exports["onnx"])
    graph.graph.input[1].name = "window"
    for node in graph.graph.node:
        node.input[:] = ["window" if name == "windows" else name for name in node.input]
    save_onnx(graph, str(tmp_path / "renamed.onnx"))  # re-stamped: an edit, not damage
    with pytest.raises(ModelFileError, match=r"renamed.onnx: inputs are \['images', 'window'\]"):
        open_model(tmp_path / "renamed.onnx")


def test_a_damaged_export_is_refused(tmp_path, tiny_exports):
    """Issue 11: exported files carry a content hash; 4 KB zeroed inside the weights used
    to load and quietly give other detections."""
    data = bytearray(open(tiny_exports["onnx"], "rb").read())
    middle = len(data) // 2
    data[middle:middle + 4096] = bytes(4096)
    (tmp_path / "damaged.onnx").write_bytes(data)
    ort.InferenceSession(str(tmp_path / "damaged.onnx"))  # ONNX Runtime alone loads it without complaint
    with pytest.raises(DamagedFileError, match="damaged.onnx is damaged: its content does not match"):
        open_model(tmp_path / "damaged.onnx")
    assert check_onnx_file(tiny_exports["onnx"]) is True


def test_engine_without_tensorrt_or_metadata(tmp_path, tiny_exports):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"engine")
    with pytest.raises(ModelFileError, match="model.engine.json: engine metadata missing"):
        open_model(engine)
    (tmp_path / "model.engine.json").write_text(json.dumps({"tensorrt_version": "10.3.0"}))
    with pytest.raises(ModelFileError, match="invalid engine metadata"):
        open_model(engine)
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here")
    except (ImportError, OSError):
        pass
    from runtime.trt_build import EngineMetadata, metadata_path, read_onnx_summary

    metadata = EngineMetadata("10.3.0", "Orin", "8.7", "fp16", False, "x",
                              read_onnx_summary(tiny_exports["onnx"]).metadata)
    (tmp_path / "model.engine.json").write_text(json.dumps(metadata.__dict__))
    assert metadata_path(str(engine)) == str(tmp_path / "model.engine.json")
    with pytest.raises(TensorRTUnavailableError, match="TensorRT is not available here.*open the ONNX file"):
        open_model(engine)
