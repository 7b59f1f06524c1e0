"""Checkpoints (.pt) and the convert_h5 / detect command lines."""

import json
import os
import stat
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from model import convert_h5, detect
from model.weights.checkpoint import HASH_KEY, load_checkpoint, load_model, save_checkpoint
from model.weights.h5_weights import WeightsError
from runtime.files import write_text_atomic


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


# ---------------------------------------------------------------- issue 11: integrity
def test_a_damaged_checkpoint_is_refused(tiny_model, tmp_path):
    """4 KB zeroed in the middle of a .pt used to load and give other detections."""
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, tiny_model, ["BG", "a", "b"])
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4096] = bytes(4096)
    (tmp_path / "damaged.pt").write_bytes(data)
    torch.load(tmp_path / "damaged.pt", weights_only=True)  # torch alone loads it without complaint
    with pytest.raises(WeightsError, match="damaged.pt is damaged: its weights do not match the SHA-256"):
        load_checkpoint(tmp_path / "damaged.pt")


def test_a_checkpoint_without_a_hash_loads_with_a_warning(tiny_model, tmp_path, caplog):
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, tiny_model, ["BG", "a", "b"])
    payload = torch.load(path, weights_only=True)
    del payload[HASH_KEY]
    torch.save(payload, tmp_path / "old.pt")
    load_checkpoint(tmp_path / "old.pt")
    assert "carries no content hash" in caplog.text


def test_written_files_follow_the_umask(tiny_model, tmp_path):
    """Issue 11, case 14: files were written 0600 (the temporary file's mode)."""
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "tiny.pt", tiny_model, ["BG", "a", "b"])
        write_text_atomic(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    for name in ("tiny.pt", "a.json"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name


def test_detect_goes_on_past_a_bad_image(tiny_model, tmp_path, capsys):
    """Issue 11, case 9: a bad image in the middle stopped the run and no JSON was written."""
    save_checkpoint(tmp_path / "tiny.pt", tiny_model, ["BG", "a", "b"])
    pixels = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    for name in ("a.png", "c.png"):
        Image.fromarray(pixels).save(tmp_path / name)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG not really")
    images = [str(tmp_path / n) for n in ("a.png", "corrupt.png", "c.png")]
    report = tmp_path / "out.json"
    assert detect.main(["--weights", str(tmp_path / "tiny.pt"), *images, "--json", str(report)]) == 1
    captured = capsys.readouterr()
    assert "corrupt.png: cannot read image" in captured.err and "1 of 3 images could not be read" in captured.err
    assert [row["image"] for row in json.loads(report.read_text())] == [images[0], images[2]]
    assert detect.main(["--weights", str(tmp_path / "tiny.pt"), images[0], "--json", str(tmp_path)]) == 2
    assert "the --json path is a directory" in capsys.readouterr().err


def test_convert_hint_names_what_the_command_can_do(tiny_model, keras_h5_writer, tmp_path, capsys):
    """Issue 11, case 15: the hint for a file of another model named Python arguments."""
    import h5py

    h5 = keras_h5_writer(tiny_model, tmp_path / "tiny.h5")
    with h5py.File(h5, "a") as f:  # a file without the heads: a backbone-only file
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
        kept = [n for n in names if not n.startswith("mrcnn_")]
        f.attrs["layer_names"] = [n.encode() for n in kept]
    assert convert_h5.main([str(h5), str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "exclude=" not in err and "strict=" not in err
    assert "python -m model.train --init imagenet --imagenet-weights" in err
