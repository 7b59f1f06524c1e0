"""Dataset API (Matterport's names) and the synthetic ShapesDataset."""

import numpy as np
import pytest

from model.data.dataset import (
    MOSAIC_SHAPES,
    PERIODIC_SHAPES,
    VARIED_SHAPES,
    WIDE_SHAPES,
    Dataset,
    ShapesStyle,
    grating,
    mosaic,
    shape_mask,
    shapes_dataset,
    wave,
)


def test_classes_from_two_sources():
    d = Dataset()
    d.add_class("a", 1, "cat")
    d.add_class("a", 1, "cat")  # duplicates are ignored
    d.add_class("b", 7, "dog")
    d.add_image("a", image_id="x1", path="x1.png")
    d.add_image("b", image_id="y1", path="y1.png")
    d.prepare()
    assert d.class_names == ["BG", "cat", "dog"] and d.num_classes == 3 and d.num_images == 2
    assert d.map_source_class_id("b.7") == 2 and d.get_source_class_id(2, "b") == 7
    assert d.source_class_ids == {"": [0], "a": [0, 1], "b": [0, 2]}
    assert list(d.image_ids) == [0, 1] and d.image_reference(1) == "y1.png"
    with pytest.raises(ValueError, match="dot"):
        d.add_class("a.b", 1, "x")


def make(seed, count=6, height=96, width=160):
    return shapes_dataset(count, height, width, seed)


def test_shapes_are_deterministic_and_seedable():
    a, b, c = make(3), make(3), make(4)
    for i in a.image_ids:
        np.testing.assert_array_equal(a.load_image(i), b.load_image(i))
        np.testing.assert_array_equal(a.load_mask(i)[0], b.load_mask(i)[0])
    assert any(not np.array_equal(a.load_image(i), c.load_image(i)) for i in a.image_ids)
    assert a.class_names == ["BG", "square", "circle", "triangle"]


def test_shape_masks_match_the_drawn_pixels():
    d = make(5, count=20)
    for i in d.image_ids:
        image = d.load_image(i)
        masks, class_ids = d.load_mask(i)
        assert image.shape == (96, 160, 3) and masks.shape[:2] == (96, 160) and masks.dtype == bool
        assert len(class_ids) == masks.shape[-1] >= 1 and set(class_ids) <= {1, 2, 3}
        assert masks.sum(axis=2).max() <= 1  # occlusion: no pixel belongs to two instances
        colors = {tuple(s[1]) for s in d.image_info[i]["shapes"]}
        for mask in masks.transpose(2, 0, 1):
            shown = np.unique(image[mask], axis=0)
            assert len(shown) == 1 and tuple(shown[0]) in colors  # one shape's colour, all of it


def test_default_style_is_matterports_set():
    """The style option draws nothing differently by default (a fixed checksum of seed 1)."""
    d = shapes_dataset(3, 128, 128, seed=1, style=ShapesStyle())
    assert int(d.load_image(0).sum()) == 7120106 and list(d.load_mask(0)[1]) == [1, 2, 1, 1]
    assert all("noise" not in info and "gradient" not in info for info in d.image_info)
    assert all(len(dims) == 3 for info in d.image_info for *_, dims in info["shapes"])  # upright


def test_wide_style_draws_a_wider_variety():
    d = shapes_dataset(60, 128, 128, seed=2, style=WIDE_SHAPES)
    again = shapes_dataset(60, 128, 128, seed=2, style=WIDE_SHAPES)
    frames = {(info["height"], info["width"]) for info in d.image_info}
    assert len(frames) > 10 and any(h != w for h, w in frames)
    assert max(len(info["shapes"]) for info in d.image_info) > 4
    assert 10 < sum("gradient" in info for info in d.image_info) < 50
    sizes = [dims[2] for info in d.image_info for _, _, dims in info["shapes"]]
    assert min(sizes) < 128 // 16  # smaller than the standard set draws
    for i in range(10):
        image = d.load_image(i)
        masks, class_ids = d.load_mask(i)
        np.testing.assert_array_equal(image, again.load_image(i))  # the noise is seeded too
        assert image.shape[:2] == masks.shape[:2] == (d.image_info[i]["height"], d.image_info[i]["width"])
        assert masks.shape[-1] == len(class_ids) and masks.any(axis=(0, 1)).all()
        assert not (masks.sum(axis=-1) > 1).any()  # occlusion: a pixel belongs to one instance
        sigma = d.image_info[i]["noise"][0]
        for k in range(masks.shape[-1]):  # each mask lies on its shape's colour, up to the noise
            color = [c for (name, c, _) in d.image_info[i]["shapes"]
                     if d.class_names.index(name) == class_ids[k]]
            pixels = image[masks[:, :, k]].astype(float)
            assert min(np.abs(np.median(pixels, axis=0) - c).max() for c in color) <= 2 + sigma


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_turned_shapes_keep_their_area_and_symmetry():
    upright = {name: shape_mask(name, (48.0, 48.0, 20.0), 96, 96) for name in ("square", "circle", "triangle")}
    for name, mask in upright.items():
        turned = shape_mask(name, (48.0, 48.0, 20.0, 30.0), 96, 96)
        assert abs(int(turned.sum()) - int(mask.sum())) <= 0.03 * mask.sum()  # a turn keeps the area
        assert iou(turned, mask) < 0.9 or name == "circle"  # ... but moves the outline
    # symmetries: a square turned by 90 degrees and a triangle by 120 are themselves again
    assert iou(shape_mask("square", (48.0, 48.0, 20.0, 90.0), 96, 96), upright["square"]) > 0.97
    assert iou(shape_mask("triangle", (48.0, 48.0, 20.0, 120.0), 96, 96), upright["triangle"]) > 0.95
    # a square turned by 45 degrees is a diamond: its corners reach size * sqrt(2) along the axes
    diamond = shape_mask("square", (48.0, 48.0, 20.0, 45.0), 96, 96)
    rows = np.nonzero(diamond.any(axis=1))[0]
    assert abs((rows.max() - rows.min() + 1) - 2 * 20 * np.sqrt(2)) <= 2


def test_varied_style_turns_shapes_and_clutters_backgrounds():
    d = shapes_dataset(40, 128, 128, seed=3, style=VARIED_SHAPES)
    again = shapes_dataset(40, 128, 128, seed=3, style=VARIED_SHAPES)
    angles = [dims[3] for info in d.image_info for name, _, dims in info["shapes"] if name != "circle"]
    assert angles and max(np.abs(angles)) <= 30 and np.std(angles) > 10
    cluttered = [i for i, info in enumerate(d.image_info) if "clutter" in info]
    assert 10 < len(cluttered) < 38
    for i in cluttered[:6]:
        image = d.load_image(i)
        np.testing.assert_array_equal(image, again.load_image(i))  # the clutter is seeded
        masks, class_ids = d.load_mask(i)
        background = image[~masks.any(axis=-1)].astype(float)  # [P,3]
        assert background.std(axis=0).max() > d.image_info[i]["noise"][0] + 2  # more than plain + noise
        sigma = d.image_info[i]["noise"][0]
        for k in range(masks.shape[-1]):  # shapes are drawn over the clutter: their colour, up to the noise
            color = [c for (name, c, _) in d.image_info[i]["shapes"] if d.class_names.index(name) == class_ids[k]]
            pixels = image[masks[:, :, k]].astype(float)
            assert min(np.abs(np.median(pixels, axis=0) - c).max() for c in color) <= 2 + sigma


def test_mosaic_splits_the_background_into_hard_edged_cells():
    flat = np.full((96, 160, 3), 100, np.float32)
    tiled = mosaic(flat.copy(), np.random.default_rng(5))
    np.testing.assert_array_equal(tiled, mosaic(flat.copy(), np.random.default_rng(5)))  # seeded
    colours = np.unique(tiled.reshape(-1, 3), axis=0)  # [C,3]
    assert 3 <= len(colours) <= 48
    edges = (tiled[:, 1:] != tiled[:, :-1]).any(axis=-1)  # [h,w-1] colour changes between neighbours
    assert 0 < edges.mean() < 0.1  # piecewise constant: hard edges between cells, flat inside
    styled = shapes_dataset(40, 128, 128, seed=3, style=MOSAIC_SHAPES)
    assert 10 < sum("mosaic" in info for info in styled.image_info) < 30
    assert not any("mosaic" in info for info in shapes_dataset(40, 128, 128, seed=3, style=VARIED_SHAPES).image_info)


def test_wave_repeats_along_its_direction_and_is_constant_across_it():
    y, x = np.mgrid[0:64, 0:64].astype(np.float64) + 0.5
    angle, period = np.radians(30), 10.0
    step = np.array([np.sin(angle), np.cos(angle)])  # (y, x) one pixel along the direction
    for duty in (0.4, None):
        values = wave(y, x, angle, period, 0.25, duty)
        along = wave(y + period * step[0], x + period * step[1], angle, period, 0.25, duty)
        across = wave(y + 7 * step[1], x - 7 * step[0], angle, period, 0.25, duty)
        np.testing.assert_allclose(along, values, atol=1e-4)  # one period on: the same
        np.testing.assert_allclose(across, values, atol=1e-4)
        half = wave(y + period / 2 * step[0], x + period / 2 * step[1], angle, period, 0.25, duty)
        assert np.abs(half - values).mean() > 0.3  # half a period on: not the same
    hard = wave(y, x, angle, period, 0.25, 0.4)
    assert set(np.unique(hard)) == {0.0, 1.0} and abs(hard.mean() - 0.4) < 0.05  # duty cycle


def test_grating_blends_the_background_towards_one_colour():
    flat = np.full((96, 160, 3), 100, np.float32)
    for seed in range(6):
        patterned = grating(flat.copy(), np.random.default_rng(seed))
        np.testing.assert_array_equal(patterned, grating(flat.copy(), np.random.default_rng(seed)))  # seeded
        offsets = (patterned - 100).reshape(-1, 3)  # [P,3]: t * (other - 100), t in [0, 1]
        direction = offsets[np.abs(offsets).sum(axis=1).argmax()]
        t = offsets @ direction / (direction @ direction)  # [P]
        np.testing.assert_allclose(offsets, t[:, None] * direction, atol=1e-3)  # one colour
        assert t.min() >= -1e-6 and t.std() > 0.1  # a pattern, not a tint
    styled = shapes_dataset(40, 128, 128, seed=3, style=PERIODIC_SHAPES)
    assert 10 < sum("grating" in info for info in styled.image_info) < 30
    assert not any("grating" in info for info in shapes_dataset(40, 128, 128, seed=3, style=VARIED_SHAPES).image_info)
