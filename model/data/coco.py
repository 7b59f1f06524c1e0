"""COCO-format datasets through pycocotools: reading (with checks), and writing any
Dataset as COCO JSON (for evaluation with the real pycocotools path).

Shapes: h, w image size, N instances. COCO boxes are [x, y, width, height] pixels.
Reading follows Matterport's CocoDataset: polygons and RLE, crowd regions get a
negative class id (excluded from training, and proposals overlapping them are not
used as negatives), instances whose mask is empty are skipped, class subsets allowed.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
from typing import Iterable, List, Optional, Tuple

import numpy as np

from model.data.dataset import Dataset
from runtime.files import write_text_atomic
from runtime.image import MAX_IMAGE_PIXELS

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """Unusable dataset input; the message names the file and the entry."""


def read_coco_json(path: str) -> dict:
    """Load and check a COCO instances file. Raises DatasetError naming the file and,
    for bad entries, the entry."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: annotation file not found")
    try:
        with open(path, encoding="utf8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: malformed or truncated JSON ({exc})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    check_coco(data, path)
    return data


def check_coco(data, path: str) -> None:
    """DatasetError naming the file and the entry for anything the loader cannot use:
    missing fields, ids that are not integers, sizes that are not positive integers (or
    larger than runtime.image.MAX_IMAGE_PIXELS), references to unknown ids. Malformed
    geometry (polygons, RLE, boxes) is left to load_mask, which skips it with a warning."""
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: missing or invalid '{key}' list")
    image_ids = set()
    for image in data["images"]:
        _require(image, ("id", "file_name", "height", "width"), path, "image")
        _check_types(image, {"id": _is_int, "file_name": _is_str, "height": _is_size, "width": _is_size}, path, "image")
        if image["height"] * image["width"] > MAX_IMAGE_PIXELS:
            raise DatasetError(f"{path}: image {image['id']} is {image['height']}x{image['width']} pixels, more than "
                               f"{MAX_IMAGE_PIXELS}")
        image_ids.add(image["id"])
    category_ids = set()
    for category in data["categories"]:
        _require(category, ("id", "name"), path, "category")
        _check_types(category, {"id": _is_int, "name": _is_str}, path, "category")
        category_ids.add(category["id"])
    for ann in data["annotations"]:
        _require(ann, ("id", "image_id", "category_id"), path, "annotation")
        _check_types(ann, {"id": lambda v: _is_int(v) or _is_str(v), "image_id": _is_int, "category_id": _is_int,
                           "iscrowd": lambda v: v in (0, 1)}, path, "annotation")
        if ann["image_id"] not in image_ids:
            raise DatasetError(f"{path}: annotation {ann['id']} refers to unknown image_id {ann['image_id']}")
        if ann["category_id"] not in category_ids:
            raise DatasetError(f"{path}: annotation {ann['id']} refers to unknown category_id "
                               f"{ann['category_id']}")
        if "segmentation" not in ann and "bbox" not in ann:
            raise DatasetError(f"{path}: annotation {ann['id']} has neither segmentation nor bbox")


def _require(entry, keys, path, kind) -> None:
    if not isinstance(entry, dict) or any(k not in entry for k in keys):
        shown = _shown(entry.get("id", "?")) if isinstance(entry, dict) else _shown(entry)
        raise DatasetError(f"{path}: {kind} {shown} lacks one of the fields {list(keys)}")


def _check_types(entry: dict, checks, path: str, kind: str) -> None:
    for key, ok in checks.items():
        if key in entry and not ok(entry[key]):
            raise DatasetError(f"{path}: {kind} {_shown(entry.get('id', '?'))}: invalid '{key}' "
                               f"{_shown(entry[key])} ({_EXPECTED.get(ok, 'see the COCO format')})")


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value) -> bool:
    return isinstance(value, str)


def _is_size(value) -> bool:
    return _is_int(value) and value > 0


_EXPECTED = {_is_int: "an integer", _is_str: "a string", _is_size: "a positive integer"}


def coco_api(data: dict):
    """A pycocotools COCO object over an in-memory dict (no printing)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def annotation_to_mask(ann: dict, height: int, width: int) -> Optional[np.ndarray]:
    """bool [h,w] mask of a polygon / RLE / bbox-only annotation; None when malformed
    (non-numeric or non-finite coordinates, odd-length polygons, an RLE of another size).
    A box is clipped to the image: the part outside is not part of the mask."""
    from pycocotools import mask as mask_utils

    seg = ann.get("segmentation")
    if not seg:  # bbox only: the box is the mask
        box = ann.get("bbox")
        if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(_is_number(v) for v in box)):
            return None
        x, y, w, h = (float(v) for v in box)
        m = np.zeros((height, width), bool)
        y1, y2 = (min(max(int(round(v)), 0), height) for v in (y, y + h))  # clip: no negative indices
        x1, x2 = (min(max(int(round(v)), 0), width) for v in (x, x + w))
        m[y1:y2, x1:x2] = True
        return m
    try:
        if isinstance(seg, list):
            polygons = [p for p in seg if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0
                        and all(_is_number(v) for v in p)]
            if not polygons:
                return None
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
            if list(seg["size"]) != [height, width]:
                return None
            rle = mask_utils.frPyObjects(seg, height, width) if isinstance(seg["counts"], list) else seg
        else:
            return None
        mask = mask_utils.decode(rle).astype(bool)
    except (TypeError, ValueError, OverflowError):  # counts that are not an RLE
        return None
    return mask if mask.shape == (height, width) else None


def _is_number(value) -> bool:
    """A finite JSON number (bool is not one, nor an int too large for a float)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


class CocoDataset(Dataset):
    """A COCO-format dataset (COCO itself or any instances JSON with an image folder)."""

    def load_coco(self, annotation_file: str, image_dir: str, class_ids: Optional[Iterable[int]] = None,
                  limit: Optional[int] = None, check_files: bool = True):
        """Add the images of ``annotation_file`` whose files exist in ``image_dir``.

        class_ids: COCO category ids to keep (default all). Missing image files are
        skipped with a warning naming them. Returns the pycocotools COCO object.
        """
        data = read_coco_json(annotation_file)
        self.coco = coco = coco_api(data)
        self.annotation_file = annotation_file
        class_ids = sorted(class_ids) if class_ids else sorted(coco.getCatIds())
        if class_ids and set(class_ids) != set(coco.getCatIds()):
            image_ids = sorted({i for c in class_ids for i in coco.getImgIds(catIds=[c])})
        else:
            image_ids = sorted(coco.imgs)
        if limit:
            image_ids = image_ids[:limit]
        for class_id in class_ids:
            self.add_class("coco", class_id, coco.loadCats(class_id)[0]["name"])
        missing = []
        for image_id in image_ids:
            info = coco.imgs[image_id]
            path = os.path.join(image_dir, info["file_name"])
            if check_files and not os.path.isfile(path):
                missing.append(path)
                continue
            annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], catIds=class_ids, iscrowd=None))
            self.add_image("coco", image_id=image_id, path=path, width=info["width"],
                           height=info["height"], annotations=annotations)
        if missing:
            log.warning("%s: skipped %d images whose files are missing, e.g. %s",
                        annotation_file, len(missing), ", ".join(missing[:3]))
        return coco

    def load_mask(self, image_id: int) -> Tuple[np.ndarray, np.ndarray]:
        info = self.image_info[image_id]
        if info["source"] != "coco":
            return super().load_mask(image_id)
        masks, class_ids = [], []
        height, width = info["height"], info["width"]
        for ann in info["annotations"]:
            class_id = self.map_source_class_id(f"coco.{ann['category_id']}")
            m = annotation_to_mask(ann, height, width)
            if m is None:
                log.warning("%s: annotation %s has a malformed segmentation; skipped",
                            info["path"], ann.get("id"))
                continue
            if not m.any():  # too small to survive rasterisation
                continue
            if ann.get("iscrowd"):
                class_id = -class_id
                if m.shape != (height, width):
                    m = np.ones((height, width), bool)
            masks.append(m)
            class_ids.append(class_id)
        if not masks:
            return super().load_mask(image_id)
        return np.stack(masks, axis=2), np.array(class_ids, np.int32)

    def image_reference(self, image_id: int) -> str:
        return self.image_info[image_id]["path"]


# ---------------------------------------------------------------------------- writing
def rle_encode(mask: np.ndarray) -> dict:
    """bool [h,w] -> COCO compressed RLE with a str ``counts`` (JSON-serialisable)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def mask_to_bbox(mask: np.ndarray) -> List[float]:
    """COCO [x, y, w, h] of a bool mask (x2/y2 exclusive, as extract_bboxes)."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if not len(rows):
        return [0.0, 0.0, 0.0, 0.0]
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1 - cols[0]), float(rows[-1] + 1 - rows[0])]


def dataset_to_coco(dataset: Dataset, image_ids: Optional[Iterable[int]] = None) -> dict:
    """Any prepared Dataset as a COCO instances dict. Image ids are the dataset's
    internal ids, category ids its internal class ids (BG left out)."""
    images, annotations = [], []
    for image_id in (dataset.image_ids if image_ids is None else image_ids):
        image_id = int(image_id)
        info = dataset.image_info[image_id]
        masks, class_ids = dataset.load_mask(image_id)
        if "height" in info and "width" in info:
            height, width = info["height"], info["width"]
        else:
            height, width = dataset.load_image(image_id).shape[:2]
        path = info.get("path")
        images.append({"id": image_id, "file_name": os.path.basename(path) if path else f"{image_id}.png",
                       "height": height, "width": width})
        for i in range(masks.shape[-1] if masks.ndim == 3 else 0):
            mask = masks[:, :, i]
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": abs(int(class_ids[i])),
                "segmentation": rle_encode(mask), "area": float(mask.sum()), "bbox": mask_to_bbox(mask),
                "iscrowd": int(class_ids[i] < 0),
            })
    categories = [{"id": i, "name": name} for i, name in enumerate(dataset.class_names) if i > 0]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco_json(dataset: Dataset, path: str, image_ids: Optional[Iterable[int]] = None) -> dict:
    """Write :func:`dataset_to_coco` to ``path`` atomically and return the dict."""
    data = dataset_to_coco(dataset, image_ids)
    write_text_atomic(path, json.dumps(data))
    return data
