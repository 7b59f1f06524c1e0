"""The out-of-distribution shapes set: written once, deterministic, loads as COCO."""

import json

import numpy as np

from benchmarks import shapes_ood
from model.data.coco import CocoDataset


def test_written_once_deterministic_and_loadable(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert shapes_ood.main(["--out", str(a), "--count", "6", "--seed", "3"]) == 0
    assert "next: python -m model.evaluate --dataset coco --data" in capsys.readouterr().out
    path = shapes_ood.write_set(str(b), 6, 3)
    assert (a / "instances.json").read_text() == open(path).read()
    assert (a / "0004.png").read_bytes() == (b / "0004.png").read_bytes()
    stamp = (a / "0004.png").stat().st_mtime_ns
    shapes_ood.write_set(str(a), 6, 3)  # the same set again: kept, not rewritten
    assert (a / "0004.png").stat().st_mtime_ns == stamp

    data = json.loads(open(path).read())
    assert data["info"]["count"] == 6 and [c["name"] for c in data["categories"]] == ["square", "circle", "triangle"]
    dataset = CocoDataset()
    dataset.load_coco(path, str(b))
    dataset.prepare()
    assert dataset.num_images == 6 and dataset.class_names == ["BG", "square", "circle", "triangle"]
    frames = [dataset.load_image(i).shape[:2] for i in dataset.image_ids]
    assert any(h != w for h, w in frames)
    for i in dataset.image_ids:
        masks, class_ids = dataset.load_mask(i)
        assert masks.shape[:2] == dataset.load_image(i).shape[:2] and len(class_ids) == masks.shape[-1] >= 1


def test_masks_cover_the_drawn_shapes():
    for seed in range(4):
        image, masks, class_ids, hidden = shapes_ood.render(np.random.default_rng(seed))
        assert image.dtype == np.uint8 and masks.shape[:2] == image.shape[:2] and len(class_ids) == len(hidden)
        assert set(class_ids) <= {1, 2, 3} and not (masks.sum(axis=-1) > 1).any()
        for k in np.nonzero(~hidden)[0]:
            inside = image[masks[:, :, k]].astype(float)
            ring = masks[:, :, k] ^ _dilate(masks[:, :, k], 3)  # just outside the shape
            if ring.any() and inside.size:  # the shape differs from what surrounds it
                assert np.abs(np.median(inside, axis=0) - np.median(image[ring].astype(float), axis=0)).max() > 15


def _dilate(mask, steps):
    out = mask.copy()
    for _ in range(steps):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out
