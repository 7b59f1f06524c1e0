"""benchmarks.train_curve: a run's epoch checkpoints scored on both held-out sets."""

import json

import pytest
import torch

from benchmarks import shapes_ood, train_curve
from model.configs import ShapesConfig
from model.maskrcnn import MaskRCNN
from model.training.loop import checkpoint_path
from model.weights.checkpoint import save_checkpoint


@pytest.fixture
def run_dir(tmp_path):
    """A run folder with the checkpoints of epochs 1 and 3 (small random models)."""
    config = ShapesConfig(TOP_DOWN_PYRAMID_SIZE=64, FPN_CLASSIF_FC_LAYERS_SIZE=64, POST_NMS_ROIS_INFERENCE=100)
    folder = tmp_path / "shapes20261204T000000"
    folder.mkdir()
    for epoch, lr in ((1, 3e-4), (3, 3e-5)):
        torch.manual_seed(epoch)
        save_checkpoint(checkpoint_path(str(folder), "shapes", epoch), MaskRCNN(config),
                        training={"epoch": epoch, "learning_rate": lr})
    (folder / "mask_rcnn_other_0002.pt").write_bytes(b"")  # another run's name: not this run's
    return folder


def test_every_kept_checkpoint_is_scored(run_dir, tmp_path, capsys, monkeypatch):
    write_set = shapes_ood.write_set
    monkeypatch.setattr(shapes_ood, "write_set", lambda folder: write_set(folder, 2, 0))  # 2 images, not 200
    assert train_curve.main(["--run", str(run_dir), "--count", "2", "--ood-dir", str(tmp_path / "ood"),
                             "--output", str(tmp_path / "curve")]) == 0
    report = json.loads((tmp_path / "curve.json").read_text())
    assert [(row["epoch"], row["learning_rate"]) for row in report["rows"]] == [(1, 3e-4), (3, 3e-5)]
    for row in report["rows"]:
        assert 0 <= row["same"]["AP50"] <= 1 and 0 <= row["ood"]["AP50"] <= 1
        assert sum(b["images"] for b in row["ood_by_background"].values()) == 2
    out = capsys.readouterr().out
    assert "| 3 | 3e-05 |" in out and "next: python -m benchmarks.ood_factors --weights" in out
    assert "AP at IMAGE_MAX_DIM 192;" in out


def test_scoring_molds_at_the_eval_size_and_a_bad_size_is_refused(run_dir, tmp_path, capsys, monkeypatch):
    write_set, score_held_out, sizes = shapes_ood.write_set, train_curve.score_held_out, []

    def scored_at(model, sets, count, max_dim):
        sizes.append(max_dim)
        return score_held_out(model, sets, count, max_dim)

    monkeypatch.setattr(shapes_ood, "write_set", lambda folder: write_set(folder, 2, 0))
    monkeypatch.setattr(train_curve, "score_held_out", scored_at)
    common = ["--run", str(run_dir), "--epochs", "3", "--count", "2", "--ood-dir", str(tmp_path / "ood"),
              "--output", str(tmp_path / "curve")]
    assert train_curve.main(common + ["--eval-max-dim", "256"]) == 0
    assert sizes == [256] and "AP at IMAGE_MAX_DIM 256;" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        train_curve.main(common + ["--eval-max-dim", "100"])
    err = capsys.readouterr().err
    assert "argument --eval-max-dim" in err and "IMAGE_MAX_DIM must be a multiple of 64" in err


def test_a_missing_epoch_names_what_the_run_kept(run_dir, capsys):
    with pytest.raises(SystemExit):
        train_curve.main(["--run", str(run_dir), "--epochs", "2", "3"])
    assert "no epoch checkpoint of 'shapes' for epochs [2] (kept: [1, 3]" in capsys.readouterr().err
