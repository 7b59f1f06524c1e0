"""One drawing per inspection stage (matplotlib, as Matterport's visualize module), each
written to a PNG: anchors, proposals before/after NMS, the second stage's refinement,
the masks, activations, detections, and weight histograms.

Every function takes what model.inspection.stages / model.inspection.weight_stats return and a path,
draws with the non-interactive Agg backend, and returns the path. Boxes are
(y1, x1, y2, x2) pixels of the image drawn.
"""

from __future__ import annotations

import colorsys
from typing import List, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colours(count: int) -> List[tuple]:
    """``count`` distinct RGB colours (golden-angle hues, as runtime.draw)."""
    return [colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.85, 1.0) for i in range(max(count, 1))]


def _boxes(ax, boxes: np.ndarray, colour, style: str = "solid", width: float = 1.0, alpha: float = 1.0) -> None:
    from matplotlib.patches import Rectangle

    for y1, x1, y2, x2 in np.asarray(boxes, np.float64).reshape(-1, 4):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linestyle=style,
                               linewidth=width, alpha=alpha))


def _save(fig, path: str) -> str:
    from runtime.files import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _image_axes(image: np.ndarray, title: str, columns: int = 1):
    plt = _pyplot()
    fig, axes = plt.subplots(1, columns, figsize=(6 * columns, 6), squeeze=False)
    for ax in axes[0]:
        ax.imshow(image)
        ax.set_axis_off()
    axes[0][0].set_title(title)
    return fig, axes[0]


def draw_training_sample(targets, path: str, class_names: Sequence[str], limit: int = 8) -> str:
    """What training gets of one image (model.data.pipeline.ImageTargets): the molded image
    with the boxes computed from the masks, and each instance's (mini) mask."""
    plt = _pyplot()
    count = min(limit, len(targets.class_ids))
    fig, axes = plt.subplots(1, 1 + max(count, 1), figsize=(4 + 1.8 * max(count, 1), 4),
                             gridspec_kw={"width_ratios": [2.2] + [1] * max(count, 1)}, squeeze=False)
    palette = colours(len(class_names))
    axes[0, 0].imshow(targets.image)
    for i in range(len(targets.class_ids)):
        name = class_names[abs(int(targets.class_ids[i]))] + (" (crowd)" if targets.class_ids[i] < 0 else "")
        _boxes(axes[0, 0], targets.boxes[i], palette[abs(int(targets.class_ids[i])) % len(palette)], width=1.5)
        axes[0, 0].text(targets.boxes[i][1], targets.boxes[i][0], name, color="white", fontsize=7,
                        backgroundcolor=(0, 0, 0, 0.4))
    axes[0, 0].set_title(f"molded {targets.image.shape[1]}x{targets.image.shape[0]}, window {tuple(targets.window)}",
                         fontsize=8)
    for i in range(count):
        axes[0, i + 1].imshow(targets.masks[:, :, i], cmap="gray")
        axes[0, i + 1].set_title(f"{class_names[abs(int(targets.class_ids[i]))]} "
                                 f"{targets.masks.shape[0]}x{targets.masks.shape[1]}", fontsize=7)
    for ax in axes.ravel():
        ax.set_axis_off()
    return _save(fig, path)


def draw_augmented_batch(samples, path: str, class_names: Sequence[str], columns: int = 4) -> str:
    """A batch of model.data.pipeline.ImageTargets with full-size masks (stages.augmented_samples):
    each augmented image with its masks tinted and the boxes computed from them."""
    plt = _pyplot()
    rows = -(-len(samples) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False)
    palette = colours(len(class_names))
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, t in zip(axes.ravel(), samples):
        tinted = t.image.astype(np.float32)  # [H,W,3]
        for i, class_id in enumerate(t.class_ids):
            colour = np.asarray(palette[abs(int(class_id)) % len(palette)], np.float32) * 255
            tinted[t.masks[:, :, i]] = 0.5 * tinted[t.masks[:, :, i]] + 0.5 * colour
            _boxes(ax, t.boxes[i], palette[abs(int(class_id)) % len(palette)], width=1.2)
        ax.imshow(np.clip(tinted, 0, 255).astype(np.uint8))
        ax.set_title(f"{len(t.class_ids)} instances", fontsize=8)
    return _save(fig, path)


def draw_anchors(inspection, path: str, negatives: int = 30) -> str:
    """Positive anchors (green, dotted) with their RPN refinement (solid), a sample of
    negative anchors (red) and the ground truth (white); without ground truth, the 30
    anchors the RPN scores highest."""
    gt = inspection.ground_truth
    fig, (ax,) = _image_axes(inspection.molded_image, "anchors: positive (dotted) -> refined, negative, ground truth")
    if gt is not None:
        positive = np.flatnonzero(gt.anchor_match == 1)
        negative = np.flatnonzero(gt.anchor_match == -1)
        pick = np.random.default_rng(0).choice(negative, min(negatives, len(negative)), replace=False)
        _boxes(ax, inspection.anchors[pick], "red", width=0.6, alpha=0.6)
        _boxes(ax, gt.boxes, "white", width=2)
        ax.set_title(f"anchors: {len(positive)} positive (dotted) -> refined (solid), {len(negative)} negative "
                     f"({len(pick)} shown), ground truth white")
    else:
        positive = np.argsort(-inspection.rpn_scores, kind="stable")[:30]
        ax.set_title("the 30 anchors the RPN scores highest (dotted) -> refined (solid)")
    _boxes(ax, inspection.anchors[positive], "lime", style="dotted")
    _boxes(ax, inspection.anchor_refined[positive], "lime")
    return _save(fig, path)


def draw_proposals(inspection, path: str, limit: int = 50) -> str:
    """The ``limit`` best proposals before NMS (refined anchors) and after NMS."""
    fig, axes = _image_axes(inspection.molded_image, "", columns=2)
    for ax, boxes, name in ((axes[0], inspection.pre_nms_boxes, "before NMS"),
                            (axes[1], inspection.proposals, "after NMS")):
        _boxes(ax, boxes[:limit], "yellow", width=0.8)
        ax.set_title(f"proposals {name}: best {min(limit, len(boxes))} of {len(boxes)}")
    return _save(fig, path)


def draw_refinement(inspection, path: str, class_names: Sequence[str], limit: int = 20) -> str:
    """Second stage: the best non-background proposals (dotted) and where the box head's
    class-specific deltas move them (solid), coloured by class."""
    fig, (ax,) = _image_axes(inspection.molded_image, "")
    keep = np.flatnonzero(inspection.roi_class_ids > 0)
    keep = keep[np.argsort(-inspection.roi_scores[keep], kind="stable")][:limit]
    palette = colours(len(class_names))
    for i in keep:
        colour = palette[int(inspection.roi_class_ids[i]) % len(palette)]
        _boxes(ax, inspection.proposals[i], colour, style="dotted")
        _boxes(ax, inspection.roi_refined[i], colour, width=1.5)
        y1, x1 = inspection.roi_refined[i][:2]
        ax.text(x1, y1, f"{class_names[int(inspection.roi_class_ids[i])]} {inspection.roi_scores[i]:.2f}",
                color="white", fontsize=7, backgroundcolor=(0, 0, 0, 0.4))
    ax.set_title(f"refinement: {len(keep)} best proposals (dotted) -> refined (solid)")
    return _save(fig, path)


def draw_detections(inspection, path: str, class_names: Sequence[str]) -> str:
    """The detections MaskRCNN.detect returns, on the input image: boxes, masks, labels."""
    d = inspection.detections
    image = inspection.image.astype(np.float32)
    palette = colours(len(class_names))
    masks = np.asarray(d.masks)
    for i in range(len(d)):
        colour = np.array(palette[int(d.class_ids[i]) % len(palette)]) * 255
        image[masks[:, :, i]] = 0.55 * image[masks[:, :, i]] + 0.45 * colour
    fig, (ax,) = _image_axes(np.clip(image, 0, 255).astype(np.uint8), f"{len(d)} detections")
    for i in range(len(d)):
        colour = palette[int(d.class_ids[i]) % len(palette)]
        _boxes(ax, d.rois[i], colour, width=1.5)
        ax.text(d.rois[i][1], d.rois[i][0], f"{class_names[int(d.class_ids[i])]} {d.scores[i]:.2f}",
                color="white", fontsize=7, backgroundcolor=(0, 0, 0, 0.4))
    return _save(fig, path)


def draw_masks(inspection, path: str, class_names: Sequence[str], limit: int = 16) -> str:
    """The raw M x M masks of the first ``limit`` detections (probabilities) above the
    same masks pasted into the image (thresholded at 0.5)."""
    plt = _pyplot()
    count = max(1, min(limit, len(inspection.raw_masks)))
    fig, axes = plt.subplots(2, count, figsize=(1.6 * count, 3.6), squeeze=False)
    d = inspection.detections
    masks = np.asarray(d.masks)
    for i in range(count):
        for ax in axes[:, i]:
            ax.set_axis_off()
        if i >= len(inspection.raw_masks):
            continue
        axes[0, i].imshow(inspection.raw_masks[i], vmin=0, vmax=1, cmap="viridis")
        axes[0, i].set_title(f"{class_names[int(d.class_ids[i])]}\n{d.scores[i]:.2f}", fontsize=7)
        y1, x1, y2, x2 = d.rois[i]
        axes[1, i].imshow(masks[y1:y2, x1:x2, i], vmin=0, vmax=1, cmap="gray")
    fig.suptitle("masks: raw (top), pasted into the box (bottom)")
    return _save(fig, path)


def draw_activations(inspection, path: str, channels: int = 16) -> str:
    """The first ``channels`` channels of each kept layer, one row per layer, with the
    layer's value range (a dead layer is a row of flat tiles)."""
    plt = _pyplot()
    names = list(inspection.activations)
    fig, axes = plt.subplots(max(1, len(names)), channels, figsize=(channels * 0.9, 1.1 * max(1, len(names))),
                             squeeze=False)
    for row, name in enumerate(names):
        value = inspection.activations[name]  # [C,h,w]
        for col in range(channels):
            ax = axes[row, col]
            ax.set_axis_off()
            if col < len(value):
                ax.imshow(value[col], cmap="magma")
        axes[row, 0].set_title(f"{name} [{value.shape[0]}x{value.shape[1]}x{value.shape[2]}] "
                               f"{value.min():.2g}..{value.max():.2g}", fontsize=7, loc="left")
    return _save(fig, path)


def draw_weight_histograms(stats, path: str, limit: int = 24) -> str:
    """Histograms of the ``limit`` largest weight tensors (flagged ones first), titled
    with their flags."""
    plt = _pyplot()
    chosen = sorted(stats, key=lambda s: (not s.flags, -s.size))[:limit]
    columns = 4
    rows = max(1, -(-len(chosen) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, stat in zip(axes.ravel(), chosen):
        ax.set_axis_on()
        finite = stat.sample[np.isfinite(stat.sample)]
        ax.hist(finite, bins=50, color="tab:red" if stat.flags else "tab:blue")
        ax.set_title(f"{stat.name} {list(stat.shape)}" + (f"\n{', '.join(stat.flags)}" if stat.flags else ""),
                     fontsize=7)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    return _save(fig, path)
