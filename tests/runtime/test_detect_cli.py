"""python -m runtime.detect: folders, overlays, COCO results, and bad files reported without stopping."""

import json

import numpy as np
from PIL import Image

from export.verify import verification_images
from runtime import detect


def test_folder_with_a_bad_file(tmp_path, tiny_exports, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(verification_images(128, count=2)):
        Image.fromarray(image).save(folder / f"img{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "notes.txt").write_text("not an image")
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((70, 90), 90, np.uint8)).save(gray)
    out, results = tmp_path / "overlays", tmp_path / "results.json"
    rc = detect.main(["--model", tiny_exports["onnx"], str(folder), str(gray), "--out", str(out),
                      "--json", str(results)])
    captured = capsys.readouterr()
    assert rc == 1 and "broken.png: cannot read image" in captured.err
    assert "1 of 4 images could not be read" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["gray.png", "img0.png", "img1.png"]
    assert np.asarray(Image.open(out / "img0.png")).shape == (128, 128, 3)
    entries = json.loads(results.read_text())
    assert {e["file_name"] for e in entries} == {"img0.png", "img1.png", "gray.png"}
    assert {"image_id", "category_id", "bbox", "score", "segmentation"} <= set(entries[0])
    assert "img0.png:" in captured.out


def test_missing_inputs_and_models(tmp_path, tiny_exports, capsys):
    assert detect.main(["--model", tiny_exports["onnx"], str(tmp_path / "none.png")]) == 2
    assert "none.png: no such file or folder" in capsys.readouterr().err
    assert detect.main(["--model", str(tmp_path / "m.onnx"), str(tmp_path)]) == 2
    assert "m.onnx: model file not found" in capsys.readouterr().err
