"""Training: Matterport's ``model.train(train_set, val_set, learning_rate, epochs, layers)``.

Shapes: B = IMAGES_PER_GPU images per process and step, T = TRAIN_ROIS_PER_IMAGE.

An epoch is STEPS_PER_EPOCH steps. After each epoch a checkpoint (weights, config,
optimizer state, epoch, history) is written atomically to
``<log_dir>/<name><YYYYmmddTHHMM>/mask_rcnn_<name>_<epoch:04d>.pt``; resuming from it
(``--init last``) continues exactly as if the run had not been stopped: all randomness
is drawn from generators seeded by (seed, epoch, step, rank).
"""

from __future__ import annotations

import datetime
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, NamedTuple, Optional

import numpy as np
import torch
from torch import nn

from model.backbone import BatchNorm
from model.boxes import norm_boxes
from model.data.dataset import Dataset
from model.data.pipeline import TrainingData, TrainingSample
from model.ops.roi_align import pyramid_roi_align
from model.rpn import RPNOutput, propose
from model.training import distributed as dist_utils
from model.training.average import WeightAverage
from model.training.losses import (
    add_l2_gradient,
    l2_regularization,
    mrcnn_bbox_loss,
    mrcnn_class_loss,
    mrcnn_mask_loss,
    rpn_bbox_loss,
    rpn_class_loss,
)
from model.training.targets import detection_targets
from model.weights.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

# Matterport's layer selections, matched (fullmatch) against Keras layer names.
LAYER_REGEX = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}


PRECISIONS = ("fp32", "bf16")
CALIBRATION_EPOCH = 10 ** 6  # seeds the data used by calibrate_batchnorm, apart from real epochs


class LossTerms(NamedTuple):
    rpn_class_loss: torch.Tensor
    rpn_bbox_loss: torch.Tensor
    mrcnn_class_loss: torch.Tensor
    mrcnn_bbox_loss: torch.Tensor
    mrcnn_mask_loss: torch.Tensor


def set_trainable(model, layers: str) -> List[str]:
    """Freeze every Keras layer whose name does not fullmatch ``layers`` (a name from
    LAYER_REGEX or a regular expression). Returns the trainable layer names."""
    pattern = LAYER_REGEX.get(layers, layers)
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"layers {layers!r} is neither one of {list(LAYER_REGEX)} nor a valid regex: {exc}") from None
    trainable = []
    for name, module in model.keras_layers().items():
        on = regex.fullmatch(name) is not None
        for parameter in module.parameters(recurse=False):
            parameter.requires_grad_(on)
        if on:
            trainable.append(name)
    if not trainable:
        raise ValueError(f"layers {layers!r} selects no layer to train")
    return trainable


class TrainingModel(nn.Module):
    """Wraps MaskRCNN so that one ``forward`` computes the training losses (and DDP sees
    every trainable parameter through it).

    precision "bf16" runs the network under bfloat16 autocast (1.5x faster per step on
    this project's AMX CPU, benchmarks/train_step.py); proposals, targets and losses stay
    float32.
    """

    def __init__(self, model, precision: str = "fp32"):
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.model = model
        self.precision = precision

    def forward(self, batch: TrainingSample, generator: torch.Generator) -> LossTerms:
        m, c = self.model, self.model.config
        images = batch.images
        height, width = images.shape[-2:]
        with self._autocast(images):
            pyramid = m.fpn(m.backbone(images))
            rpn = m.rpn(pyramid)
        rpn = RPNOutput(*(t.float() for t in rpn))
        anchors = torch.from_numpy(m.anchors((height, width))).to(images.device)
        with torch.no_grad():  # proposals are inputs to the second stage, not learned through
            proposals = propose(RPNOutput(None, rpn.probs.detach(), rpn.deltas.detach()), anchors,
                                c.POST_NMS_ROIS_TRAINING, c.RPN_NMS_THRESHOLD, c.PRE_NMS_LIMIT, c.RPN_BBOX_STD_DEV)
            targets = detection_targets(proposals, batch.gt_class_ids, norm_boxes(batch.gt_boxes, height, width),
                                        batch.gt_masks, c, generator)
        levels = list(pyramid[:4])
        # Only positive RoIs have a mask loss, and they come first: run the (costly) mask
        # head on that slice only. Same loss as Matterport's all-RoI head when BN is frozen.
        positives = max(int((targets.class_ids > 0).sum(dim=1).max()), 1)
        mask_rois = targets.rois[:, :positives]
        with self._autocast(images):
            head = m.box_head(pyramid_roi_align(targets.rois, levels, [height, width], c.POOL_SIZE))
            mask_logits = m.mask_head.logits(pyramid_roi_align(mask_rois, levels, [height, width], c.MASK_POOL_SIZE))
        return LossTerms(
            rpn_class_loss(batch.rpn_match, rpn.class_logits),
            rpn_bbox_loss(batch.rpn_bbox, batch.rpn_match, rpn.deltas),
            mrcnn_class_loss(targets.class_ids, head.class_logits.float(), batch.active_class_ids),
            mrcnn_bbox_loss(targets.deltas, targets.class_ids, head.deltas.float()),
            mrcnn_mask_loss(targets.masks[:, :positives], targets.class_ids[:, :positives], mask_logits.float()),
        )

    def _autocast(self, images: torch.Tensor):
        return torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")


@dataclass
class TrainingRun:
    """Where a run writes and how far it got (restored from a checkpoint to resume)."""

    run_dir: str
    epoch: int = 0
    step: int = 0
    history: List[Dict[str, float]] = field(default_factory=list)
    optimizer_state: Optional[dict] = None
    layers: Optional[str] = None
    optimizer: str = "SGD"  # Config.OPTIMIZER of optimizer_state
    average: Optional[WeightAverage] = None  # the moving average of the weights, if the run keeps one


def new_run_dir(log_root: str, name: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    return os.path.join(log_root, f"{name.lower()}{stamp}")


def checkpoint_path(run_dir: str, name: str, epoch: int) -> str:
    return os.path.join(run_dir, f"mask_rcnn_{name.lower()}_{epoch:04d}.pt")


def epoch_checkpoints(run_dir: str, name: str) -> Dict[int, str]:
    """{epoch: path} of the epoch checkpoints of ``name`` in ``run_dir``, by epoch."""
    pattern = re.compile(rf"mask_rcnn_{re.escape(name.lower())}_(\d{{4}})\.pt")
    epochs = sorted(int(m.group(1)) for m in map(pattern.fullmatch, os.listdir(run_dir)) if m)
    return {epoch: checkpoint_path(run_dir, name, epoch) for epoch in epochs}


def prune_checkpoints(run_dir: str, name: str, keep: int) -> List[str]:
    """Delete all but the newest ``keep`` epoch checkpoints of ``name`` in ``run_dir``;
    returns the deleted paths."""
    stale = list(epoch_checkpoints(run_dir, name).values())[:-keep]
    for path in stale:
        os.remove(path)
    return stale


def find_last(log_root: str, name: str) -> str:
    """The newest checkpoint of the newest run of ``name`` under ``log_root``."""
    key = name.lower()
    runs = sorted(d for d in os.listdir(log_root) if d.startswith(key)
                  and os.path.isdir(os.path.join(log_root, d))) if os.path.isdir(log_root) else []
    for run in reversed(runs):
        files = sorted(f for f in os.listdir(os.path.join(log_root, run))
                       if f.startswith("mask_rcnn_") and f.endswith(".pt"))
        if files:
            return os.path.join(log_root, run, files[-1])
    raise FileNotFoundError(f"no checkpoint of a {name!r} run under {log_root}; start without --init last")


def resume(model, path: str) -> TrainingRun:
    """Load a training checkpoint into ``model``; returns the run to continue."""
    checkpoint = load_checkpoint(path)
    model.load_state_dict(checkpoint.state_dict)
    state = checkpoint.training
    if not state:
        raise ValueError(f"{path} holds weights only, no training state to resume; use it with --init PATH")
    average = state.get("average")
    return TrainingRun(run_dir=os.path.dirname(os.path.abspath(path)), epoch=int(state["epoch"]),
                       step=int(state["step"]), history=list(state.get("history", [])),
                       optimizer_state=state.get("optimizer"), layers=state.get("layers"),
                       optimizer=state.get("optimizer_name", "SGD"),
                       average=WeightAverage.from_state_dict(average, model) if average else None)


@torch.no_grad()
def calibrate_batchnorm(model, data: TrainingData, steps: int, context: dist_utils.Distributed) -> None:
    """Set every BatchNorm's moving statistics to its mean batch statistics over
    ``steps`` batches, then restore each layer's mode.

    For training from scratch with frozen BN (TRAIN_BN False): Matterport starts from
    ImageNet statistics; without them the frozen layers would not normalise at all.
    """
    layers = [m for m in model.modules() if isinstance(m, BatchNorm)]
    saved = [(bn.frozen, bn.momentum, bn.renorm_momentum) for bn in layers]
    for bn in layers:
        bn.reset_running_stats()
        # plain batch statistics; momentum None: cumulative average
        bn.frozen, bn.momentum, bn.renorm_momentum = False, None, None
    model.train(True)
    wrapped = TrainingModel(model)
    samples = steps * model.config.IMAGES_PER_GPU * context.world_size  # may exceed one epoch's
    data = TrainingData(data.dataset, model.config, data.seed, samples, data.flip, data.augmentation)
    data.set_epoch(CALIBRATION_EPOCH)
    for step, batch in enumerate(batch_loader(data, steps, model.config, context, 0)):
        seed = _step_seed(data.seed, CALIBRATION_EPOCH, step, context.rank)
        wrapped(sample_to_device(batch, context.device), torch.Generator().manual_seed(seed))
    for bn, (frozen, momentum, renorm_momentum) in zip(layers, saved):
        bn.frozen, bn.momentum, bn.renorm_momentum = frozen, momentum, renorm_momentum


def _step_seed(seed: int, epoch: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, step, rank]).generate_state(1)[0])


class _RankBatches(torch.utils.data.Sampler):
    """Positions of this rank's batches: step s, rank r -> [(s*W + r)*B, ... + B)."""

    def __init__(self, steps: int, batch: int, rank: int, world: int):
        self.steps, self.batch, self.rank, self.world = steps, batch, rank, world

    def __iter__(self):
        for step in range(self.steps):
            start = (step * self.world + self.rank) * self.batch
            yield list(range(start, start + self.batch))

    def __len__(self):
        return self.steps


def batch_loader(data: TrainingData, steps: int, config, context, workers: int):
    """A DataLoader of ``steps`` batches of IMAGES_PER_GPU samples for this rank."""
    sampler = _RankBatches(steps, config.IMAGES_PER_GPU, context.rank, context.world_size)
    return torch.utils.data.DataLoader(data, batch_sampler=sampler, num_workers=workers,
                                       persistent_workers=False)


def sample_to_device(batch, device) -> TrainingSample:
    """A collated batch as tensors on ``device``, images channels-last."""
    sample = TrainingSample(*(torch.as_tensor(t).to(device, non_blocking=True) for t in batch))
    return sample._replace(images=sample.images.contiguous(memory_format=torch.channels_last))


def total_loss(terms: LossTerms, config, trainable) -> torch.Tensor:
    total = sum(config.LOSS_WEIGHTS.get(name, 1.0) * value for name, value in terms._asdict().items())
    return total + l2_regularization(trainable, config.WEIGHT_DECAY).to(total.device)


def train_model(model, train_dataset: Dataset, val_dataset: Optional[Dataset], learning_rate: float,
                epochs: int, layers: str = "heads", augmentation=None,
                flip: bool = True, log_dir: str = "logs", run: Optional[TrainingRun] = None, seed: int = 0,
                workers: int = 0, class_names: Optional[List[str]] = None, progress: bool = True,
                on_step=None, calibrate_bn_steps: int = 0, clip_per_tensor: bool = False,
                precision: str = "fp32", keep_checkpoints: Optional[int] = None,
                stop_after: Optional[Callable[[TrainingRun], bool]] = None,
                average_decay: Optional[float] = None) -> TrainingRun:
    """Train ``model`` from ``run.epoch`` (0 for a new run) up to ``epochs``.

    layers: "heads", "3+", "4+", "5+", "all" or a regex of Keras layer names.
    augmentation: a policy name ("none", "flip", "default"; it then decides the flip too
    and ``flip`` is ignored), an Augmentation callable (image, masks, rng) -> (image,
    masks) or an imgaug augmenter (both applied after the ``flip``); see model.data.augment.
    on_step(epoch, step, losses) is called after every step (tests use it).
    calibrate_bn_steps > 0 sets the BatchNorm statistics from that many batches before
    the first step of a new run (see calibrate_batchnorm).
    clip_per_tensor clips each gradient tensor to GRADIENT_CLIP_NORM on its own instead
    of Matterport's (Keras 2.0-2.2) global norm: from scratch, conv1's gradient on raw
    pixels is ~1000x the others' and a global clip would starve every other layer.
    precision: "fp32", or "bf16" for bfloat16 autocast (see TrainingModel). Training
    runs channels-last (faster oneDNN convolutions); the model is returned in the
    default memory format.
    keep_checkpoints: keep only this run's newest N epoch checkpoints (None: all, as
    Matterport does); an older one is deleted only after the new one is written.
    run: continue this run (from resume(), or returned by an earlier call): the epoch count,
    history and, for the same layers and OPTIMIZER, the optimizer state (momentum, Adam's
    moments) carry over, in one process as from a checkpoint.
    stop_after(run) is asked after each epoch's checkpoint; True ends training there,
    before ``epochs`` (a time budget: benchmarks/train_shapes.py). Under torchrun the
    run stops when any process says so.
    average_decay: keep an exponential moving average of the weights (model.training.average)
    in ``run.average``, updated after every step and saved in each checkpoint; a run that
    already keeps one (a resume, a later stage) continues it. The model returned holds the
    live weights; ``run.average.copy_to(model)`` puts the average in.
    """
    if keep_checkpoints is not None and keep_checkpoints < 1:
        raise ValueError(f"keep_checkpoints must be at least 1 (the checkpoint to resume from), not {keep_checkpoints}")
    config = model.config
    if isinstance(augmentation, str):
        flip = False  # the named policy includes its own flip
    context = dist_utils.setup()
    name = config.NAME or "mrcnn"
    run = run or TrainingRun(run_dir=new_run_dir(log_dir, name))
    to_training_layout(model, context.device)
    names = set_trainable(model, layers)
    trainable = [p for p in model.parameters() if p.requires_grad]
    decayed = decayed_parameters(model)
    optimizer = make_optimizer(trainable, config, learning_rate)
    if run.optimizer_state is not None and (run.layers, run.optimizer) == (layers, config.OPTIMIZER):
        optimizer.load_state_dict(run.optimizer_state)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
    run.layers, run.optimizer = layers, config.OPTIMIZER
    if average_decay is not None and run.average is None:
        run.average = WeightAverage(model, average_decay)

    def after_step(epoch, step, losses):
        if run.average is not None:
            run.average.update(model)
        if on_step is not None:
            on_step(epoch, step, losses)

    wrapped = TrainingModel(model, precision)
    if context.enabled:
        wrapped = nn.parallel.DistributedDataParallel(wrapped)
    # Each process takes IMAGES_PER_GPU images per step (the torchrun world size plays
    # the role of Matterport's GPU_COUNT).
    per_step = config.IMAGES_PER_GPU * context.world_size
    train_data = TrainingData(train_dataset, config, seed, config.STEPS_PER_EPOCH * per_step, flip, augmentation)
    val_data = (TrainingData(val_dataset, config, seed + 1, config.VALIDATION_STEPS * per_step, flip=False)
                if val_dataset is not None else None)
    if calibrate_bn_steps and run.step == 0:
        calibrate_batchnorm(model, train_data, calibrate_bn_steps, context)
    writer = _summary_writer(run.run_dir) if context.is_main else None
    if context.is_main:
        log.info("training %d layer groups (%s) from epoch %d to %d, log dir %s",
                 len(names), layers, run.epoch, epochs, run.run_dir)
    try:
        for epoch in range(run.epoch, epochs):
            model.train(True)
            train_data.set_epoch(epoch)
            epoch_losses = _train_epoch(wrapped, optimizer, train_data, config, context, epoch, run, trainable,
                                        decayed, writer, workers, progress, after_step, clip_per_tensor)
            val_losses = _validate(wrapped, val_data, config, context, epoch, workers) if val_data else {}
            run.epoch = epoch + 1
            run.history.append({"epoch": run.epoch, **epoch_losses, **{f"val_{k}": v for k, v in val_losses.items()}})
            if context.is_main:
                if writer is not None:
                    for key, value in val_losses.items():
                        writer.add_scalar(f"val/{key}", value, run.epoch)
                    writer.flush()
                save_checkpoint(checkpoint_path(run.run_dir, name, run.epoch), model, class_names,
                                source=f"training epoch {run.epoch}",
                                training={"epoch": run.epoch, "step": run.step, "optimizer": optimizer.state_dict(),
                                          "optimizer_name": config.OPTIMIZER, "layers": layers,
                                          "learning_rate": learning_rate, "seed": seed,
                                          "history": run.history,
                                          "average": run.average.state_dict() if run.average else None})
                if keep_checkpoints is not None:
                    prune_checkpoints(run.run_dir, name, keep_checkpoints)
            if stop_after is not None and _any_process(stop_after(run), context):
                break
        # The next call with this run (another stage: a new rate or data) continues the
        # optimizer as a resume from the last checkpoint would (same layers and optimizer).
        run.optimizer_state = optimizer.state_dict()
    finally:
        if writer is not None:
            writer.close()
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    model.epoch = run.epoch
    return run


def make_optimizer(parameters, config, learning_rate: float) -> torch.optim.Optimizer:
    """Config.OPTIMIZER: Matterport's SGD (momentum LEARNING_MOMENTUM), or Adam with
    beta1 = LEARNING_MOMENTUM. Neither decays weights itself: Matterport's L2 term is
    added to the gradients (add_l2_gradient), as Keras adds kernel regularizers.
    On CPU and CUDA the update is torch's fused kernel (one pass over the weights: a
    shapes step with Adam takes ~15% less time than with the per-tensor loop)."""
    parameters = list(parameters)
    fused = all(p.device.type in ("cpu", "cuda") for p in parameters) or None
    if config.OPTIMIZER == "Adam":
        return torch.optim.Adam(parameters, lr=learning_rate, betas=(config.LEARNING_MOMENTUM, 0.999), fused=fused)
    return torch.optim.SGD(parameters, lr=learning_rate, momentum=config.LEARNING_MOMENTUM, fused=fused)


def to_training_layout(model, device) -> None:
    """Move ``model`` to ``device`` channels-last (faster oneDNN convolutions), except the
    box head's 7x7 "valid" conv, which runs as one GEMM on its flattened weight
    (model.heads.BoxHead): channels-last, that flatten and its gradient are strided
    copies of 12.8M floats every step (about 8% of a shapes step)."""
    model.to(device, memory_format=torch.channels_last)
    weight = model.box_head.mrcnn_class_conv1.weight
    weight.data = weight.data.contiguous()


def decayed_parameters(model) -> List[nn.Parameter]:
    """The trainable parameters in Matterport's L2 term: all but BatchNorm gamma/beta."""
    return [p for name, p in model.named_parameters()
            if p.requires_grad and not isinstance(model.get_submodule(name.rsplit(".", 1)[0]), nn.BatchNorm2d)]


def _summary_writer(run_dir: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        log.warning("tensorboard is not installed; no TensorBoard logs")
        return None
    return SummaryWriter(run_dir)


def clip_gradients(parameters, max_norm: float, per_tensor: bool) -> None:
    if per_tensor:
        for parameter in parameters:
            if parameter.grad is not None:
                nn.utils.clip_grad_norm_([parameter], max_norm)
    else:
        nn.utils.clip_grad_norm_(parameters, max_norm)


def _any_process(flag: bool, context) -> bool:
    """Whether ``flag`` is True in any process (the same answer in all of them)."""
    return bool(dist_utils.average(torch.tensor([float(flag)], device=context.device), context).item() > 0)


def training_step(wrapped, optimizer, batch: TrainingSample, generator: torch.Generator, config, trainable, decayed,
                  clip_per_tensor: bool = False):
    """One optimisation step on one batch: losses, backward, clipping, update.

    wrapped: a TrainingModel (or its DDP wrapper); decayed: the parameters of the L2 term.
    Returns (total loss, LossTerms); raises FloatingPointError before the update when
    the loss is not finite.
    """
    terms = wrapped(batch, generator)
    loss = total_loss(terms, config, decayed)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss became {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    add_l2_gradient(decayed, config.WEIGHT_DECAY)  # the L2 term of ``loss`` carries no autograd history
    if config.GRADIENT_CLIP_NORM:
        clip_gradients(trainable, config.GRADIENT_CLIP_NORM, clip_per_tensor)
    optimizer.step()
    return loss, terms


def _train_epoch(wrapped, optimizer, data, config, context, epoch, run, trainable, decayed, writer, workers,
                 progress, on_step, clip_per_tensor=False) -> Dict[str, float]:
    from tqdm import tqdm

    sums: Dict[str, float] = {}
    steps = config.STEPS_PER_EPOCH
    bar = tqdm(batch_loader(data, steps, config, context, workers), total=steps, desc=f"epoch {epoch + 1}",
               disable=not (progress and context.is_main), leave=False)
    for step, batch in enumerate(bar):
        generator = torch.Generator().manual_seed(_step_seed(data.seed, epoch, step, context.rank))
        try:
            loss, terms = training_step(wrapped, optimizer, sample_to_device(batch, context.device), generator,
                                        config, trainable, decayed, clip_per_tensor)
        except FloatingPointError as exc:
            raise FloatingPointError(f"{exc} at epoch {epoch + 1} step {step + 1}; lower the learning rate "
                                     f"(the last checkpoint is in {run.run_dir})") from None
        run.step += 1
        values = dist_utils.average(torch.stack([loss.detach(), *[t.detach() for t in terms]]), context)
        named = dict(zip(("loss",) + LossTerms._fields, values.tolist()))
        for key, value in named.items():
            sums[key] = sums.get(key, 0.0) + value
        if writer is not None:
            for key, value in named.items():
                writer.add_scalar(f"train/{key}", value, run.step)
            writer.add_scalar("train/learning_rate", optimizer.param_groups[0]["lr"], run.step)
        bar.set_postfix(loss=f"{named['loss']:.3f}")
        if on_step is not None:
            on_step(epoch, step, named)
    return {key: value / steps for key, value in sums.items()}


@torch.no_grad()
def _validate(wrapped, data, config, context, epoch, workers) -> Dict[str, float]:
    """Mean losses on the validation set, in eval mode (BN statistics untouched)."""
    wrapped.eval()
    data.set_epoch(epoch)
    sums: Dict[str, float] = {}
    for step, batch in enumerate(batch_loader(data, config.VALIDATION_STEPS, config, context, workers)):
        generator = torch.Generator().manual_seed(_step_seed(data.seed, epoch, step, context.rank))
        terms = wrapped(sample_to_device(batch, context.device), generator)
        values = dist_utils.average(torch.stack([sum(terms), *terms]), context)
        for key, value in zip(("loss",) + LossTerms._fields, values.tolist()):
            sums[key] = sums.get(key, 0.0) + value
    return {key: value / max(config.VALIDATION_STEPS, 1) for key, value in sums.items()}

