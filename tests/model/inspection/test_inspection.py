"""Step-by-step inspection: the stage data (shapes, and the detections are the ones
detect returns), every figure written, the weight table's flags, the CLI."""

import os

import numpy as np
import pytest

from model import inspect as inspect_cli
from model.data.dataset import shapes_dataset
from model.inspection.stages import DEFAULT_ACTIVATIONS, dataset_ground_truth, inspect_image
from model.inspection.weight_stats import format_table, tensor_stat, weight_stats
from model.weights.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def shapes():
    return shapes_dataset(2, 128, 128, seed=4)


@pytest.fixture(scope="module")
def inspection(synthetic_model, shapes):
    return inspect_image(synthetic_model, shapes.load_image(0), ground_truth=dataset_ground_truth(synthetic_model,
                                                                                                   shapes, 0))


def test_stages_have_their_shapes(inspection, synthetic_model):
    c = synthetic_model.config
    a = len(inspection.anchors)
    assert inspection.anchors.shape == inspection.anchor_refined.shape == (a, 4) and inspection.rpn_scores.shape == (a,)
    assert inspection.pre_nms_boxes.shape == (min(c.PRE_NMS_LIMIT, a), 4)
    assert np.all(np.diff(inspection.pre_nms_scores) <= 0)  # by score
    p = len(inspection.proposals)
    assert 0 < p <= c.POST_NMS_ROIS_INFERENCE and inspection.roi_refined.shape == (p, 4)
    assert inspection.pooled.shape == (p, c.TOP_DOWN_PYRAMID_SIZE, c.POOL_SIZE, c.POOL_SIZE)
    assert inspection.raw_masks.shape[1:] == (c.MASK_SHAPE[0], c.MASK_SHAPE[1])
    assert list(inspection.activations) == list(DEFAULT_ACTIVATIONS)
    assert inspection.activations["res2c_out"].shape == (256, 32, 32)  # stride 4 on 128x128
    assert inspection.molded_image.shape == (128, 128, 3) and inspection.molded_image.dtype == np.uint8
    gt = inspection.ground_truth
    assert gt.anchor_match.shape == (a,) and (gt.anchor_match == 1).sum() >= len(gt.boxes) > 0


def test_the_detections_are_the_ones_detect_returns(inspection, synthetic_model, shapes):
    expected = synthetic_model.detect([shapes.load_image(0)])[0]
    got = inspection.detections
    assert len(got) == len(expected) > 0
    np.testing.assert_array_equal(got.rois, expected.rois)
    np.testing.assert_array_equal(got.class_ids, expected.class_ids)
    np.testing.assert_allclose(got.scores, expected.scores, rtol=0, atol=0)
    np.testing.assert_array_equal(np.asarray(got.masks), np.asarray(expected.masks))
    assert len(inspection.raw_masks) == len(got)


def test_proposals_after_nms_are_refined_anchors(inspection):
    """Every proposal after NMS is one of the refined top-k anchors before it."""
    before = {tuple(np.round(b, 2)) for b in inspection.pre_nms_boxes}
    assert all(tuple(np.round(b, 2)) in before for b in inspection.proposals[:20])


def test_unknown_activation_layer(synthetic_model, shapes):
    with pytest.raises(ValueError, match="no layers named \\['res9z_out'\\]"):
        inspect_image(synthetic_model, shapes.load_image(0), activations=["res9z_out"])


def test_weight_table_flags_planted_anomalies(tiny_model, tmp_path):
    assert tensor_stat("ok", np.random.default_rng(0).normal(size=(8, 8))).flags == []
    assert tensor_stat("nan", np.array([1.0, np.nan, 2.0])).flags == ["NaN/Inf"]
    assert tensor_stat("zero", np.zeros((3, 3))).flags == ["all zero"]
    assert tensor_stat("flat", np.full(10, 0.25)).flags == ["near constant"]
    assert tensor_stat("big", np.array([0.1, -5e3])).flags == ["exploding"]
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    state["backbone.conv1.weight"][0, 0, 0, 0] = float("nan")
    state["fpn.fpn_c5p5.weight"].zero_()
    state["box_head.mrcnn_class_conv2.weight"] *= 1e6
    planted = type(tiny_model)(tiny_model.config)
    planted.load_state_dict(state)
    save_checkpoint(tmp_path / "planted.pt", planted, ["BG", "a", "b"])
    flags = {s.name: s.flags for s in weight_stats(str(tmp_path / "planted.pt"))}
    assert flags["backbone.conv1.weight"] == ["NaN/Inf"]
    assert flags["fpn.fpn_c5p5.weight"] == ["all zero"]
    assert flags["box_head.mrcnn_class_conv2.weight"] == ["exploding"]
    table = format_table(weight_stats(str(tmp_path / "planted.pt")), flagged_only=True)
    assert "backbone.conv1.weight" in table and "fpn.fpn_c5p5.weight" in table and "NaN/Inf" in table


def test_weight_table_of_an_onnx_and_an_h5(tiny_exports, tiny_model, keras_h5_writer, tmp_path):
    onnx_stats = weight_stats(tiny_exports["onnx"])
    assert onnx_stats and all(s.kind == "weight" for s in onnx_stats)
    h5 = keras_h5_writer(tiny_model, tmp_path / "tiny.h5")
    h5_stats = {s.name: s for s in weight_stats(str(h5))}
    assert h5_stats["conv1/kernel"].shape == (7, 7, 3, 64)
    with pytest.raises(ValueError, match="expected a .pt, .h5 or .onnx"):
        weight_stats(str(tmp_path / "x.txt"))


def test_cli_writes_every_figure(synthetic_model, tiny_exports, tmp_path, capsys):
    weights = tmp_path / "tiny.pt"
    save_checkpoint(weights, synthetic_model, ["BG", "a", "b"])
    out = tmp_path / "inspect"
    assert inspect_cli.main(["--weights", str(weights), "--out", str(out), "--compare", tiny_exports["onnx"]]) == 0
    names = ["data", "augmented", "detections", "anchors", "proposals", "refinement", "masks", "activations",
             "weights", "backends"]
    for name in names:
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, name
    index = (out / "index.html").read_text()
    assert all(f'src="{name}.png"' in index for name in names)
    assert "next: python -m model.inspect weights" in capsys.readouterr().out
    assert inspect_cli.main(["weights", str(weights)]) == 0
    assert "backbone.conv1.weight" in capsys.readouterr().out
    assert inspect_cli.main(["weights", str(tmp_path / "missing.pt")]) == 2
    assert "not found" in capsys.readouterr().err


def test_backend_comparison_of_an_identical_export(synthetic_model, tiny_exports, shapes):
    from model.inspect import compare_backend

    reference = synthetic_model.detect([shapes.load_image(1)])[0]
    comparison = compare_backend(reference, shapes.load_image(1), tiny_exports["onnx"])
    assert comparison.missing == comparison.extra == 0
    assert np.nanmin(comparison.mask_iou) > 0.98 and np.nanmax(comparison.box_shift) <= 1
    assert np.nanmax(np.abs(comparison.score_change)) < 1e-4
    assert os.path.basename(comparison.model_path) == os.path.basename(tiny_exports["onnx"])


def test_augmented_samples_are_drawn_with_their_boxes(synthetic_model, tmp_path):
    from model.data.pipeline import extract_bboxes
    from model.inspection import figures
    from model.inspection.stages import augmented_samples

    side = synthetic_model.config.IMAGE_MAX_DIM
    dataset = shapes_dataset(2, side, side, seed=3)
    samples = augmented_samples(dataset, synthetic_model.config, 1, "default", count=6)
    assert len(samples) == 6 and len({s.image.tobytes() for s in samples}) == 6  # six different draws
    for sample in samples:
        assert sample.masks.shape[:2] == sample.image.shape[:2]  # full-size masks, not mini masks
        assert np.array_equal(extract_bboxes(sample.masks), sample.boxes)
    path = figures.draw_augmented_batch(samples, str(tmp_path / "augmented.png"), dataset.class_names)
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
