"""Dataset API (Matterport's names) and the synthetic ShapesDataset."""

import numpy as np
import pytest

from model.data.dataset import Dataset, shapes_dataset


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
