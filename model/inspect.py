"""Look at the model step by step, and at what deployment changed.

    python -m model.inspect --weights shapes.pt --out inspect/               # a generated shapes image
    python -m model.inspect --weights coco.pt --image street.jpg --out inspect/
    python -m model.inspect --weights shapes.pt --compare shapes.onnx,shapes.int8-cpu.onnx --out inspect/
    python -m model.inspect weights shapes.pt            # weight statistics (.pt, .h5, .onnx)
    python -m model.inspect weights model.int8.onnx --flagged

The figure set (PNGs and an index.html linking them): detections, anchors (with their
training labels where the image has ground truth), proposals before and after NMS, the
second stage's box refinement, the raw and pasted masks, layer activations and weight
histograms, and (for the generated image) a batch of its training samples under
--augment; with --compare, each exported model beside PyTorch on the same image, with
per-instance mask IoU, box shift and score change.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from model.config import ConfigError
from model.weights.h5_weights import WeightsError
from runtime.image import ImageError, load_image
from runtime.model_info import ModelFileError


@dataclass
class BackendComparison:
    """One exported model against PyTorch on one image: per PyTorch detection, the paired
    detection's mask IoU, box shift (largest coordinate change, pixels) and score change
    (NaN where the backend has no detection of that class nearby)."""

    model_path: str
    backend: str
    detections: object  # runtime.Detections
    mask_iou: np.ndarray  # float [N]
    box_shift: np.ndarray  # float [N]
    score_change: np.ndarray  # float [N]
    missing: int  # PyTorch detections without a partner
    extra: int  # backend detections without a partner


def compare_backend(reference, image: np.ndarray, model_path: str) -> BackendComparison:
    """Run the exported ``model_path`` on ``image`` and pair its detections with the
    PyTorch ``reference`` Detections (same class, boxes within a tenth of the image)."""
    from runtime import open_model
    from runtime.compare import mask_iou, match_detections

    detector = open_model(model_path, providers="cpu")
    ours = detector.detect([image])[0]
    agreement = match_detections(reference, ours, box_tol=0.1 * max(image.shape[:2]), score_tol=1.0, tie_tol=1.0)
    count = len(reference)
    iou, shift, change = (np.full(count, np.nan) for _ in range(3))
    ref_masks, our_masks = np.asarray(reference.masks), np.asarray(ours.masks)
    for a, b in agreement.pairs:
        iou[a] = mask_iou(ref_masks[:, :, a], our_masks[:, :, b])
        shift[a] = float(np.abs(reference.rois[a].astype(float) - ours.rois[b]).max())
        change[a] = float(ours.scores[b] - reference.scores[a])
    return BackendComparison(model_path, detector.backend, ours, iou, shift, change,
                             len(agreement.unmatched_a), len(agreement.unmatched_b))


def draw_comparison(inspection, comparisons: Sequence[BackendComparison], path: str,
                    class_names: Sequence[str]) -> str:
    """PyTorch and each backend side by side, each detection labelled with its mask IoU,
    box shift and score change against PyTorch."""
    from model.inspection import figures

    plt = figures._pyplot()
    panels = [("PyTorch", inspection.detections, None)] + [
        (os.path.basename(c.model_path), c.detections, c) for c in comparisons]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 6), squeeze=False)
    palette = figures.colours(len(class_names))
    for ax, (title, d, comparison) in zip(axes[0], panels):
        ax.imshow(inspection.image)
        ax.set_axis_off()
        for i in range(len(d)):
            figures._boxes(ax, d.rois[i], palette[int(d.class_ids[i]) % len(palette)], width=1.2)
        if comparison is not None:
            for i in range(min(len(inspection.detections), 20)):  # the 20 best: labels stay readable
                y1, x1 = inspection.detections.rois[i][:2]
                label = (f"IoU {comparison.mask_iou[i]:.2f} d{comparison.box_shift[i]:.0f}px "
                         f"{comparison.score_change[i]:+.2f}" if np.isfinite(comparison.mask_iou[i]) else "missing")
                ax.text(x1, y1, label, color="white", fontsize=6, backgroundcolor=(0, 0, 0, 0.5))
            title += (f": mean mask IoU {np.nanmean(comparison.mask_iou):.3f}, {comparison.missing} missing, "
                      f"{comparison.extra} extra" if len(comparison.mask_iou) else "")
        ax.set_title(title, fontsize=9)
    return figures._save(fig, path)


def write_figures(model, class_names: List[str], image: np.ndarray, out: str, ground_truth=None,
                  weights_path: Optional[str] = None, compare: Sequence[str] = (),
                  augmented: Sequence = ()) -> List[str]:
    """Write the figure set for ``image`` into ``out``; returns the PNG paths (index.html beside them).
    ``augmented``: training samples of the image under an augmentation policy (drawn as a batch)."""
    from model.inspection import figures
    from model.inspection.stages import inspect_image
    from model.inspection.weight_stats import tensor_stat

    os.makedirs(out, exist_ok=True)
    inspection = inspect_image(model, image, ground_truth=ground_truth)
    written = [("training sample", figures.draw_training_sample(ground_truth.sample, os.path.join(out, "data.png"),
                                                                class_names))] \
        if ground_truth is not None and ground_truth.sample is not None else []
    if augmented:
        written.append(("augmentation", figures.draw_augmented_batch(augmented, os.path.join(out, "augmented.png"),
                                                                    class_names)))
    written += [
        ("detections", figures.draw_detections(inspection, os.path.join(out, "detections.png"), class_names)),
        ("anchors", figures.draw_anchors(inspection, os.path.join(out, "anchors.png"))),
        ("proposals", figures.draw_proposals(inspection, os.path.join(out, "proposals.png"))),
        ("refinement", figures.draw_refinement(inspection, os.path.join(out, "refinement.png"), class_names)),
        ("masks", figures.draw_masks(inspection, os.path.join(out, "masks.png"), class_names)),
        ("activations", figures.draw_activations(inspection, os.path.join(out, "activations.png"))),
    ]
    stats = [tensor_stat(name, tensor.float().numpy()) for name, tensor in model.state_dict().items()
             if tensor.is_floating_point()]
    written.append(("weights", figures.draw_weight_histograms(stats, os.path.join(out, "weights.png"))))
    if compare:
        comparisons = [compare_backend(inspection.detections, inspection.image, path) for path in compare]
        written.append(("backends", draw_comparison(inspection, comparisons, os.path.join(out, "backends.png"),
                                                    class_names)))
    write_index(out, written, weights_path)
    return [path for _, path in written]


def write_index(out: str, figures: Sequence, weights_path: Optional[str]) -> str:
    from runtime.files import write_text_atomic

    items = "\n".join(f'<h2>{html.escape(name)}</h2>\n<img src="{html.escape(os.path.basename(path))}" '
                      f'style="max-width:100%">' for name, path in figures)
    title = f"Inspection of {html.escape(weights_path or 'the model')}"
    path = os.path.join(out, "index.html")
    write_text_atomic(path, f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>"
                            f"<body><h1>{title}</h1>\n{items}\n</body></html>\n")
    return path


def weights_main(argv: Sequence[str]) -> int:
    from model.inspection.weight_stats import format_table, weight_stats

    parser = argparse.ArgumentParser(prog="python -m model.inspect weights",
                                     description="Weight statistics of a .pt, .h5 or .onnx file, with flags.")
    parser.add_argument("weights", help=".pt checkpoint, Keras .h5 or exported .onnx (INT8 scales included)")
    parser.add_argument("--flagged", action="store_true", help="list only the flagged tensors")
    args = parser.parse_args(argv)
    try:
        stats = weight_stats(args.weights)
    except (WeightsError, ModelFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(stats, args.flagged))
    print(f"next: python -m model.inspect --weights {args.weights} --out inspect/   (the figures)"
          if not args.weights.endswith(".onnx") else "")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["weights"]:
        return weights_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m model.inspect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="checkpoint .pt or Keras .h5")
    parser.add_argument("--config", help="module:ConfigClass or JSON (for .h5 files)")
    parser.add_argument("--image", help="image file (default: a generated shapes image, with its ground truth)")
    parser.add_argument("--compare", default="", help="comma-separated exported models (.onnx) to draw beside PyTorch")
    parser.add_argument("--out", default="inspect", help="folder for the PNGs and index.html")
    parser.add_argument("--seed", type=int, default=3, help="seed of the generated shapes image")
    parser.add_argument("--augment", default="default", choices=("none", "flip", "default"),
                        help="policy drawn on the generated image's training samples (augmented.png)")
    args = parser.parse_args(argv)
    try:
        from model.detect import load_any
        from model.inspection.stages import augmented_samples, dataset_ground_truth

        model, class_names = load_any(args.weights, args.config)
        ground_truth, augmented = None, []
        if args.image:
            image = load_image(args.image)
        else:
            from model.data.dataset import shapes_dataset

            side = model.config.IMAGE_MAX_DIM
            dataset = shapes_dataset(1, side, side, args.seed)
            image = dataset.load_image(0)
            ground_truth = dataset_ground_truth(model, dataset, 0)
            augmented = augmented_samples(dataset, model.config, 0, args.augment)
        compare = [p for p in args.compare.split(",") if p]
        paths = write_figures(model, class_names, image, args.out, ground_truth, args.weights, compare, augmented)
    except (WeightsError, ConfigError, ImageError, ModelFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(paths) + f" and {os.path.join(args.out, 'index.html')}")
    print(f"next: python -m model.inspect weights {args.weights}   (weight statistics)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
