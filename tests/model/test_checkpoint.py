"""Checkpoints (.pt) and the convert_h5 / detect command lines."""

import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from model import convert_h5, detect
from model.checkpoint import load_checkpoint, load_model, save_checkpoint
from model.h5_weights import WeightsError


def test_save_load_round_trip(tiny_model, tmp_path):
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, tiny_model, ["BG", "a", "b"], source="test")
    raw = torch.load(path, weights_only=True)  # safe loading works
    assert raw["class_names"] == ["BG", "a", "b"]
    model, checkpoint = load_model(path)
    assert checkpoint.config.to_dict() == tiny_model.config.to_dict() and not model.training
    for a, b in zip(tiny_model.state_dict().values(), model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


def test_bad_checkpoints(tmp_path):
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(WeightsError, match="text.pt: not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(WeightsError, match="not a checkpoint of this project"):
        load_checkpoint(tmp_path / "foreign.pt")
    with zipfile.ZipFile(tmp_path / "zip.pt", "w") as z:
        z.writestr("archive/data.pkl", b"garbage")
    with pytest.raises(WeightsError, match="zip.pt"):
        load_checkpoint(tmp_path / "zip.pt")
    with pytest.raises(WeightsError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")


def test_unsafe_pickle_is_refused(tmp_path):
    torch.save({"format": "mrcnn-edge/checkpoint-v1", "evil": zipfile.ZipInfo("x")}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="refusing"):
        load_checkpoint(tmp_path / "evil.pt")


def test_convert_and_detect_cli(tiny_model, keras_h5_writer, tmp_path, capsys):
    h5 = keras_h5_writer(tiny_model, tmp_path / "tiny.h5")
    config_json = tmp_path / "config.json"
    config_json.write_text(json.dumps(tiny_model.config.to_dict()))
    out = tmp_path / "tiny.pt"
    assert convert_h5.main([str(h5), str(out), "--config", str(config_json), "--class-names", "BG,a,b"]) == 0
    printed = capsys.readouterr().out
    assert "NUM_CLASSES=3" in printed and "next: python -m model.detect" in printed
    model, checkpoint = load_model(out)
    torch.testing.assert_close(model.backbone.conv1.weight, tiny_model.backbone.conv1.weight)
    assert checkpoint.class_names == ["BG", "a", "b"] and "sha256" in checkpoint.source

    image = tmp_path / "gray.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 70), dtype=np.uint8)).save(image)
    report = tmp_path / "out.json"
    assert detect.main(["--weights", str(out), str(image), "--json", str(report)]) == 0
    assert json.loads(report.read_text())[0]["image"] == str(image)


def test_convert_cli_errors(tiny_model, keras_h5_writer, tmp_path, capsys):
    h5 = keras_h5_writer(tiny_model, tmp_path / "tiny.h5")
    assert convert_h5.main([str(h5), str(tmp_path / "x.pt"), "--class-names", "BG,a"]) == 2
    assert "2 names" in capsys.readouterr().err
    conflicting = tmp_path / "c.json"
    conflicting.write_text(json.dumps({"NUM_CLASSES": 9, "BACKBONE": "resnet50"}))
    assert convert_h5.main([str(h5), str(tmp_path / "x.pt"), "--config", str(conflicting)]) == 2
    assert "NUM_CLASSES: config 9, file 3" in capsys.readouterr().err
    assert convert_h5.main([str(tmp_path / "c.json"), str(tmp_path / "x.pt")]) == 2
    assert "not a readable HDF5 file" in capsys.readouterr().err
