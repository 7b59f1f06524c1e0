"""Fuzz the loaders of user files: the only outcomes allowed are a result or the
project's documented error for that loader.

    python -m benchmarks.fuzz                          # 10,000 inputs per loader (a few minutes)
    python -m benchmarks.fuzz --examples 500 --loaders image,coco

Loaders and what they get (hypothesis generates, and shrinks any failure to a minimal case):

===========  ===================================  ==========================================
loader       input                                allowed outcomes
===========  ===================================  ==========================================
image        PNG/JPEG/BMP/GIF/TIFF/WebP files,    uint8 [H,W,3] array, or runtime.ImageError
             8/16-bit, grey/RGB/RGBA/palette,
             with truncations, bit flips, zeroed
             blocks, inserted and overwritten
             bytes (headers included)
array        numpy arrays of any dtype and shape  uint8 [H,W,3] array, or ImageError
coco         a valid instances JSON with odd      a loaded dataset (masks for every image),
             values put in or keys taken out,     or model.data.coco.DatasetError
             or its text mutated as bytes
checkpoint   a .pt checkpoint mutated as bytes,   a Checkpoint loaded into the model, or
             or saved with tensors of other       model.weights.h5_weights.WeightsError
             dtypes and shapes
h5           a Keras-layout .h5 mutated as        weights loaded into the model, or
             bytes, or written with datasets of   WeightsError
             other dtypes and shapes
onnx         an export (project metadata, content a runtime detector, or
             hash) mutated as bytes               runtime.ModelFileError
===========  ===================================  ==========================================

The report (Markdown + JSON, benchmarks/results/fuzz.*) gives per loader the inputs tried,
the results, the errors by message kind, and any other outcome with its minimal input.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

LOADERS = ("image", "array", "coco", "checkpoint", "h5", "onnx")


@dataclass
class Tally:
    """What one loader did with the inputs it was given."""

    loader: str
    tried: int = 0
    results: int = 0
    errors: Counter = field(default_factory=Counter)  # {first words of the message: count}
    failures: List[str] = field(default_factory=list)  # anything else, with the (minimal) input
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


# ---------------------------------------------------------------- byte mutations
def byte_mutations():
    """A strategy of 1-4 edits, each (kind, where, argument); ``where`` is a fraction of
    the length or a small absolute offset (headers are where parsers go wrong)."""
    from hypothesis import strategies as st

    where = st.one_of(st.floats(0, 1, allow_nan=False), st.integers(0, 96))
    edit = st.one_of(
        st.tuples(st.just("truncate"), where, st.just(0)),
        st.tuples(st.just("flip"), where, st.integers(0, 7)),
        st.tuples(st.just("zero"), where, st.integers(1, 4096)),
        st.tuples(st.just("insert"), where, st.binary(min_size=1, max_size=32)),
        st.tuples(st.just("overwrite"), where, st.binary(min_size=1, max_size=16)),
    )
    return st.lists(edit, min_size=1, max_size=4)


def mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, where, arg in edits:
        at = min(int(where * len(out)) if isinstance(where, float) else where, max(len(out) - 1, 0))
        if kind == "truncate":
            del out[at:]
        elif kind == "flip" and out:
            out[at] ^= 1 << arg
        elif kind == "zero":
            out[at:at + arg] = bytes(len(out[at:at + arg]))
        elif kind == "insert":
            out[at:at] = arg
        elif kind == "overwrite":
            out[at:at + len(arg)] = arg
    return bytes(out)


def json_values():
    """Any JSON value, small."""
    from hypothesis import strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=6),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                        max_leaves=12)


# ---------------------------------------------------------------- the loaders
class Harness:
    """Seed files (made once, small), a scratch folder, and one ``strategy`` and ``call``
    per loader. ``call`` returns normally for a result and raises for an error."""

    def __init__(self, folder: str):
        self.folder = folder
        self.seeds: Dict[str, Dict[str, bytes]] = {}
        self._model = None

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def write(self, name: str, data: bytes) -> str:
        with open(self.path(name), "wb") as f:
            f.write(data)
        return self.path(name)

    # -- images
    def image_seeds(self) -> Dict[str, bytes]:
        from PIL import Image

        rng = np.random.default_rng(0)
        rgb = rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)
        seeds = {}
        for name, image, fmt in [
            ("rgb.png", Image.fromarray(rgb), "PNG"), ("grey.png", Image.fromarray(rgb[:, :, 0]), "PNG"),
            ("rgba.png", Image.fromarray(np.dstack([rgb, rgb[:, :, :1]])), "PNG"),
            ("palette.png", Image.fromarray(rgb).convert("P"), "PNG"),
            ("grey16.png", Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257), "PNG"),
            ("rgb.jpg", Image.fromarray(rgb), "JPEG"), ("rgb.bmp", Image.fromarray(rgb), "BMP"),
            ("rgb.gif", Image.fromarray(rgb).convert("P"), "GIF"), ("rgb.tif", Image.fromarray(rgb), "TIFF"),
            ("rgb.webp", Image.fromarray(rgb), "WEBP"),
        ]:
            buffer = io.BytesIO()
            image.save(buffer, fmt)
            seeds[name] = buffer.getvalue()
        try:
            import cv2

            ok, png16 = cv2.imencode(".png", rgb.astype(np.uint16) * 257)
            if ok:
                seeds["rgb16.png"] = png16.tobytes()
        except ImportError:
            pass
        return seeds

    def image(self):
        from hypothesis import strategies as st

        seeds = self.seeds.setdefault("image", self.image_seeds())
        return st.tuples(st.sampled_from(sorted(seeds)), byte_mutations())

    def call_image(self, case) -> None:
        from runtime.image import load_image

        name, edits = case
        array = load_image(self.write("fuzz_" + name, mutate(self.seeds["image"][name], edits)))
        _expect_image(array)

    # -- arrays
    def array(self):
        from hypothesis import strategies as st
        from hypothesis.extra import numpy as hnp

        dtypes = st.one_of(hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(),
                           hnp.boolean_dtypes(), hnp.complex_number_dtypes())
        image_like = st.tuples(st.integers(0, 40), st.integers(0, 40)).flatmap(
            lambda hw: st.one_of(st.just(hw), st.tuples(st.just(hw[0]), st.just(hw[1]), st.integers(0, 5))))
        shapes = st.one_of(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12), image_like)
        return hnp.arrays(dtypes, shapes, elements=None)

    def call_array(self, array) -> None:
        from runtime.image import to_rgb_uint8

        _expect_image(to_rgb_uint8(array, name="fuzz array"))

    # -- COCO JSON
    def coco_seed(self) -> dict:
        from model.data.coco import rle_encode

        mask = np.zeros((20, 30), bool)
        mask[4:12, 6:20] = True
        return {
            "images": [{"id": 1, "file_name": "a.png", "height": 20, "width": 30},
                       {"id": 2, "file_name": "b.png", "height": 16, "width": 16}],
            "categories": [{"id": 5, "name": "thing"}, {"id": 9, "name": "other"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 5, "segmentation": [[5, 5, 15, 5, 15, 10, 5, 10]],
                 "iscrowd": 0, "bbox": [5, 5, 10, 5]},
                {"id": 2, "image_id": 1, "category_id": 9, "segmentation": rle_encode(mask), "iscrowd": 0},
                {"id": 3, "image_id": 2, "category_id": 5, "bbox": [-4, 2, 10, 8], "iscrowd": 0},
                {"id": 4, "image_id": 2, "category_id": 9, "segmentation": {"size": [16, 16], "counts": [0, 256]},
                 "iscrowd": 1},
            ],
        }

    def coco(self):
        from hypothesis import strategies as st

        sections = ("images", "annotations", "categories")
        keys = st.sampled_from(["id", "file_name", "height", "width", "name", "image_id", "category_id",
                                "segmentation", "bbox", "iscrowd", "counts", "size", "extra"])
        edit = st.one_of(
            st.tuples(st.just("set"), st.sampled_from(sections), st.integers(0, 3), keys, json_values()),
            st.tuples(st.just("delete"), st.sampled_from(sections), st.integers(0, 3), keys, st.none()),
            st.tuples(st.just("section"), st.sampled_from(sections + ("root",)), st.just(0), st.just(""),
                      json_values()),
            st.tuples(st.just("geometry"), st.just("annotations"), st.integers(0, 3),
                      st.sampled_from(["segmentation", "bbox"]), st.one_of(
                          st.lists(st.lists(json_values(), max_size=10), max_size=3),
                          st.fixed_dictionaries({"size": json_values(), "counts": json_values()}))),
        )
        structural = st.tuples(st.just("json"), st.lists(edit, min_size=1, max_size=4))
        textual = st.tuples(st.just("text"), byte_mutations())
        return st.one_of(structural, textual)

    def call_coco(self, case) -> None:
        from model.data.coco import CocoDataset

        kind, edits = case
        data = self.coco_seed()
        if kind == "json":
            data = _edit_json(data, edits)
            text = json.dumps(data).encode()
        else:
            text = mutate(json.dumps(data).encode(), edits)
        path = self.write("fuzz_coco.json", text)
        dataset = CocoDataset()
        dataset.load_coco(path, self.folder, check_files=False)
        dataset.prepare()
        for image_id in dataset.image_ids:
            masks, class_ids = dataset.load_mask(image_id)
            info = dataset.image_info[image_id]
            assert masks.shape[2] == len(class_ids), (masks.shape, class_ids)
            if len(class_ids):  # (Matterport's empty answer is masks [0,0,0])
                assert masks.dtype == bool and masks.shape[:2] == (info["height"], info["width"]), masks.shape

    # -- checkpoints
    def model(self):
        if self._model is None:
            from model.maskrcnn import MaskRCNN

            self._model = MaskRCNN(small_config()).eval()
        return self._model

    def checkpoint_seed(self) -> bytes:
        from model.weights.checkpoint import save_checkpoint

        path = self.path("seed.pt")
        save_checkpoint(path, _Weights(small_config(), small_state(self.model())), ["BG", "a", "b"])
        with open(path, "rb") as f:
            return f.read()

    def checkpoint(self):
        from hypothesis import strategies as st

        self.seeds.setdefault("checkpoint", {"seed.pt": self.checkpoint_seed()})
        return st.one_of(st.tuples(st.just("bytes"), byte_mutations()),
                         st.tuples(st.just("tensors"), tensor_edits()))

    def call_checkpoint(self, case) -> None:
        import torch

        from model.weights.checkpoint import apply_state_dict, load_checkpoint, save_checkpoint

        kind, edits = case
        path = self.path("fuzz.pt")
        if kind == "bytes":
            self.write("fuzz.pt", mutate(self.seeds["checkpoint"]["seed.pt"], edits))
        else:
            state = _edit_tensors(small_state(self.model()), edits, torch)
            save_checkpoint(path, _Weights(small_config(), state), ["BG", "a", "b"])
        checkpoint = load_checkpoint(path)
        apply_state_dict(_Partial(self.model(), checkpoint.state_dict), checkpoint.state_dict, path)

    # -- Keras .h5
    def h5_seed(self) -> bytes:
        write_small_h5(self.path("seed.h5"), self.model(), {})
        with open(self.path("seed.h5"), "rb") as f:
            return f.read()

    def h5(self):
        from hypothesis import strategies as st

        self.seeds.setdefault("h5", {"seed.h5": self.h5_seed()})
        return st.one_of(st.tuples(st.just("bytes"), byte_mutations()),
                         st.tuples(st.just("tensors"), tensor_edits()))

    def call_h5(self, case) -> None:
        from model.weights.h5_weights import convert_weights, read_h5

        kind, edits = case
        path = self.path("fuzz.h5")
        if kind == "bytes":
            self.write("fuzz.h5", mutate(self.seeds["h5"]["seed.h5"], edits))
        else:
            write_small_h5(path, self.model(), edits)
        convert_weights(self.model(), read_h5(path), path, strict=False)

    # -- exported ONNX
    def onnx_seed(self) -> bytes:
        from runtime.integrity import save_onnx

        save_onnx(small_onnx(), self.path("seed.onnx"))
        with open(self.path("seed.onnx"), "rb") as f:
            return f.read()

    def onnx(self):
        self.seeds.setdefault("onnx", {"seed.onnx": self.onnx_seed()})
        return byte_mutations()

    def call_onnx(self, edits) -> None:
        from runtime.detector import open_model

        open_model(self.write("fuzz.onnx", mutate(self.seeds["onnx"]["seed.onnx"], edits)), providers="cpu")


def documented_errors() -> Dict[str, Tuple[type, ...]]:
    from model.data.coco import DatasetError
    from model.weights.h5_weights import WeightsError
    from runtime.image import ImageError
    from runtime.model_info import ModelFileError

    return {"image": (ImageError,), "array": (ImageError,), "coco": (DatasetError,), "checkpoint": (WeightsError,),
            "h5": (WeightsError,), "onnx": (ModelFileError,)}


def _expect_image(array) -> None:
    assert isinstance(array, np.ndarray) and array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3, (
        f"not an RGB uint8 image: {getattr(array, 'dtype', type(array))} {getattr(array, 'shape', '')}")


def _edit_json(data: dict, edits) -> object:
    for kind, section, index, key, value in edits:
        if kind == "section":
            if section == "root":
                return value
            data[section] = value
            continue
        entries = data.get(section) if isinstance(data, dict) else None
        if not isinstance(entries, list) or not entries:
            continue
        entry = entries[index % len(entries)]
        if not isinstance(entry, dict):
            continue
        if kind == "delete":
            entry.pop(key, None)
        else:
            entry[key] = value
    return data


# ---------------------------------------------------------------- weights to mutate
def small_config():
    from model.config import Config

    return Config(NAME="fuzz", BACKBONE="resnet50", NUM_CLASSES=3, IMAGES_PER_GPU=1, IMAGE_MIN_DIM=64,
                  IMAGE_MAX_DIM=64, TOP_DOWN_PYRAMID_SIZE=32, FPN_CLASSIF_FC_LAYERS_SIZE=32)


FUZZ_LAYERS = ("conv1", "bn_conv1", "mrcnn_class_logits", "mrcnn_bbox_fc")


def small_state(model) -> Dict[str, object]:
    """The weights of a few layers of ``model`` (a small file to mutate: the whole model is
    100 MB); loaded with _Partial, which checks them against exactly those layers."""
    layers = model.keras_layers()
    names = {module: name for name, module in model.named_modules()}
    return {f"{names[layers[layer]]}.{key}": value.clone() for layer in FUZZ_LAYERS
            for key, value in layers[layer].state_dict().items()}


class _Weights:
    """What save_checkpoint needs of a model: a config and a state_dict."""

    def __init__(self, config, state):
        self.config, self._state = config, state

    def state_dict(self):
        return self._state


class _Partial:
    """``model`` restricted to the layers in the fuzzed state dict, so that a small file
    goes through the same load_state_dict checks (names, shapes, dtypes) as a full one."""

    def __init__(self, model, state):
        self.model, self.names = model, set(small_state(model))

    def load_state_dict(self, state):
        expected = self.model.state_dict()
        missing = sorted(self.names - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise RuntimeError(f"missing keys {missing[:3]}, unexpected keys {unexpected[:3]}")
        for name, tensor in state.items():
            if tuple(tensor.shape) != tuple(expected[name].shape):
                raise RuntimeError(f"size mismatch for {name}: {tuple(tensor.shape)} vs {tuple(expected[name].shape)}")
            expected[name].clone().copy_(tensor)  # what load_state_dict does with the values (dtype casts)


def tensor_edits():
    """Edits of a state dict: (key index, new dtype, new shape or None, drop the key)."""
    from hypothesis import strategies as st

    dtypes = st.sampled_from(["float32", "float16", "bfloat16", "float64", "int8", "int64", "bool", "complex64",
                              "uint8"])
    shapes = st.one_of(st.none(), st.lists(st.integers(0, 5), min_size=0, max_size=4))
    return st.lists(st.tuples(st.integers(0, 63), dtypes, shapes, st.booleans()), min_size=1, max_size=3)


def _edit_tensors(state: Dict[str, object], edits, torch) -> Dict[str, object]:
    keys = sorted(state)
    for index, dtype, shape, drop in edits:
        key = keys[index % len(keys)]
        if drop:
            state.pop(key, None)
            continue
        tensor = state.get(key, torch.zeros(1))
        tensor = torch.zeros(shape) if shape is not None else tensor
        state[key] = tensor.to(getattr(torch, dtype))
    return state


def write_small_h5(path: str, model, edits) -> None:
    """A Keras-layout .h5 of FUZZ_LAYERS of ``model`` (see tests/conftest.py for the
    layout), with ``edits`` (tensor_edits) applied to its datasets."""
    import h5py
    from torch import nn

    layers = model.keras_layers()
    arrays = []
    for layer in FUZZ_LAYERS:
        module = layers[layer]
        if isinstance(module, nn.BatchNorm2d):
            kinds = [("gamma", module.weight), ("beta", module.bias), ("moving_mean", module.running_mean),
                     ("moving_variance", module.running_var)]
        else:
            kernel = module.weight.detach().numpy()
            kinds = [("kernel", kernel.transpose(2, 3, 1, 0) if kernel.ndim == 4 else kernel.T), ("bias", module.bias)]
        arrays += [(layer, kind, np.asarray(value.detach().numpy() if hasattr(value, "detach") else value))
                   for kind, value in kinds]
    dropped = set()
    for index, dtype, shape, drop in edits:
        slot = index % len(arrays)
        if drop:
            dropped.add(slot)
            continue
        layer, kind, value = arrays[slot]
        value = np.zeros(shape) if shape is not None else value
        arrays[slot] = (layer, kind, value.astype("float32" if dtype == "bfloat16" else dtype))
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.encode() for layer in FUZZ_LAYERS]
        for layer in FUZZ_LAYERS:
            group = f.create_group(layer)
            names = [f"{layer}/{kind}:0" for i, (owner, kind, _) in enumerate(arrays)
                     if owner == layer and i not in dropped]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for i, (owner, kind, value) in enumerate(arrays):
                if owner == layer and i not in dropped:
                    group.create_dataset(f"{layer}/{kind}:0", data=value)


def small_onnx():
    """A tiny graph with the export contract's names and metadata (the loader under test
    reads files, not networks)."""
    from onnx import TensorProto, helper

    from runtime.model_info import ModelInfo
    from runtime.molding import MoldingSpec

    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64]),
              helper.make_tensor_value_info("windows", TensorProto.FLOAT, [1, 4])]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
               for name in ("num_detections", "boxes", "scores", "class_ids", "masks")]
    nodes = [helper.make_node("Identity", ["windows"], [name]) for name in
             ("num_detections", "boxes", "scores", "class_ids", "masks")]
    graph = helper.make_model(helper.make_graph(nodes, "fuzz", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 17)])
    info = ModelInfo(class_names=["BG", "a"], molding=MoldingSpec(64, 64, 0, "square", (123.7, 116.8, 103.9)),
                     input_size=(64, 64), batch_size=1, target="onnx", version="fuzz")
    for key, value in info.to_metadata().items():
        graph.metadata_props.add(key=key, value=value)
    return graph


# ---------------------------------------------------------------- running
def fuzz(loader: str, examples: int, harness: Harness, seed: int = 0,
         call: Optional[Callable[[object], None]] = None) -> Tally:
    """Run ``examples`` generated inputs through ``loader``; every outcome other than a
    result or the loader's documented error is a failure (hypothesis shrinks the first one)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    tally = Tally(loader)
    allowed = documented_errors()[loader]
    call = call or getattr(harness, "call_" + loader)

    @hypothesis_seed(seed)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              phases=(Phase.generate, Phase.shrink),
              suppress_health_check=list(HealthCheck))
    @given(getattr(harness, loader)())
    def run(case):
        tally.tried += 1
        try:
            call(case)
        except allowed as exc:
            tally.errors[_kind(exc)] += 1
            return
        tally.results += 1

    start = time.perf_counter()
    try:
        run()
    except Exception as exc:  # the shrunk failing case: anything not allowed
        tally.failures.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-4)}")
    tally.seconds = time.perf_counter() - start
    return tally


def _kind(exc: BaseException) -> str:
    """The message with the file name and numbers taken out: what kind of error it was."""
    text = str(exc).split(": ", 1)[-1] if ": " in str(exc) else str(exc)
    words = [w for w in text.split()[:6] if not any(c.isdigit() for c in w) and "/" not in w]
    return f"{type(exc).__name__}: {' '.join(words)}"


def report(tallies: List[Tally], examples: int) -> Tuple[str, Dict[str, object]]:
    from benchmarks.common import markdown_table

    rows = [[t.loader, t.tried, t.results, sum(t.errors.values()), len(t.failures), f"{t.seconds:.0f}",
             "ok" if t.ok else "FAILED"] for t in tallies]
    body = [f"{examples} generated inputs asked for per loader (hypothesis; tried counts every input run, "
            f"shrinking included).", "",
            markdown_table(["loader", "tried", "results", "documented errors", "other outcomes", "seconds", "status"],
                           rows)]
    for t in tallies:
        body += ["", f"### {t.loader}: errors by kind", ""]
        body += [f"- {count} x {kind}" for kind, count in t.errors.most_common(12)]
        body += [f"- ... {len(t.errors) - 12} more kinds" for _ in [0] if len(t.errors) > 12]
        body += [f"- FAILURE: {failure}" for failure in t.failures]
    data = {"examples": examples, "loaders": [{"loader": t.loader, "tried": t.tried, "results": t.results,
                                               "errors": dict(t.errors), "failures": t.failures,
                                               "seconds": t.seconds} for t in tallies]}
    return "\n".join(body), data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=10000, help="generated inputs per loader")
    parser.add_argument("--loaders", default=",".join(LOADERS), help=f"comma-separated, of {', '.join(LOADERS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/results/fuzz", help="report stem (.md and .json)")
    args = parser.parse_args(argv)
    loaders = [name.strip() for name in args.loaders.split(",") if name.strip()]
    unknown = sorted(set(loaders) - set(LOADERS))
    if unknown:
        parser.error(f"unknown loaders {unknown}; choose from {', '.join(LOADERS)}")
    logging.disable(logging.WARNING)  # the loaders warn about what they skip, thousands of times
    warnings.simplefilter("ignore")  # and so does Pillow about damaged files
    tallies = []
    with tempfile.TemporaryDirectory(prefix="fuzz.") as folder:
        harness = Harness(folder)
        for loader in loaders:
            print(f"fuzzing {loader} with {args.examples} inputs ...", flush=True)
            tallies.append(fuzz(loader, args.examples, harness, args.seed))
            t = tallies[-1]
            print(f"  {t.tried} tried: {t.results} results, {sum(t.errors.values())} documented errors, "
                  f"{len(t.failures)} other outcomes ({t.seconds:.0f} s)", flush=True)
    from benchmarks.common import publish

    body, data = report(tallies, args.examples)
    publish(args.output, "Fuzzing the loaders of user files", body, data,
            "python -m pytest tests/benchmarks/test_fuzz.py   (the short run the test suite does)")
    return 0 if all(t.ok for t in tallies) else 1


if __name__ == "__main__":
    sys.exit(main())
