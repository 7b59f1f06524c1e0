"""Training: loss goes down, layer selection, exact resume, DDP with 2 gloo processes, CLI."""

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from model import train as train_cli
from model.config import Config
from model.configs import ShapesConfig
from model.data.dataset import WIDE_SHAPES, shapes_dataset
from model.data.pipeline import TrainingData
from model.maskrcnn import MaskRCNN
from model.training import distributed as dist_utils
from model.training.loop import (
    TrainingModel,
    TrainingRun,
    batch_loader,
    find_last,
    make_optimizer,
    prune_checkpoints,
    resume,
    sample_to_device,
    set_trainable,
    to_training_layout,
    train_model,
)
from model.weights.checkpoint import load_checkpoint


def training_config(tiny_config, **overrides):
    values = dict(IMAGES_PER_GPU=2, STEPS_PER_EPOCH=3, VALIDATION_STEPS=1, TRAIN_ROIS_PER_IMAGE=16,
                  POST_NMS_ROIS_TRAINING=100, PRE_NMS_LIMIT=500, LEARNING_RATE=0.01)
    values.update(overrides)
    return tiny_config.__class__(**values)


def shapes(count=8, seed=1):
    return shapes_dataset(count, 128, 128, seed)


def new_model(config, seed=0):
    torch.manual_seed(seed)
    return MaskRCNN(config)


def test_loss_decreases_on_a_tiny_shapes_run(tiny_config, tmp_path):
    """Overfitting one image: the loss must fall within a few steps."""
    config = training_config(tiny_config, NUM_CLASSES=4, IMAGES_PER_GPU=1, STEPS_PER_EPOCH=10)
    losses = []
    train_model(new_model(config), shapes(1), None, 0.01, 1, layers="all", flip=False, log_dir=str(tmp_path),
                progress=False, calibrate_bn_steps=1, on_step=lambda epoch, step, values: losses.append(values["loss"]))
    assert len(losses) == 10 and all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < 0.7 * np.mean(losses[:2]), losses


def test_bf16_losses_follow_fp32(tiny_config, tmp_path):
    """bfloat16 autocast: on one batch the RPN losses (independent of RoI sampling) are
    within 5% of float32's; training in bf16 lowers the loss as fast; the model comes
    back float32 in the default memory format."""
    config = training_config(tiny_config, NUM_CLASSES=4, IMAGES_PER_GPU=2, STEPS_PER_EPOCH=8)
    model = new_model(config).train(True)
    data = TrainingData(shapes(2), config, seed=0, samples_per_epoch=2, flip=False)
    data.set_epoch(0)
    batch = sample_to_device(next(iter(batch_loader(data, 1, config, dist_utils.setup(), 0))), "cpu")
    with torch.no_grad():
        fp32, bf16 = (TrainingModel(model, p)(batch, torch.Generator().manual_seed(0)) for p in ("fp32", "bf16"))
    for name in ("rpn_class_loss", "rpn_bbox_loss"):
        ours, reference = float(getattr(bf16, name)), float(getattr(fp32, name))
        assert abs(ours - reference) < 0.05 * reference, (name, ours, reference)

    config = training_config(tiny_config, NUM_CLASSES=4, IMAGES_PER_GPU=1, STEPS_PER_EPOCH=10)
    model, losses = new_model(config), []
    train_model(model, shapes(1), None, 0.01, 1, layers="all", flip=False, log_dir=str(tmp_path), progress=False,
                calibrate_bn_steps=1, precision="bf16",
                on_step=lambda epoch, step, values: losses.append(values["loss"]))
    assert np.mean(losses[-2:]) < 0.7 * np.mean(losses[:2]), losses
    assert all(p.dtype == torch.float32 and p.is_contiguous() for p in model.parameters())
    with pytest.raises(ValueError, match="precision"):
        TrainingModel(model, "fp16")


def test_training_layout_is_channels_last_but_the_box_head_gemm(tiny_model):
    """Convolutions go channels-last; the box head's dense 7x7 weight stays contiguous, so
    its flatten is a view (no copy of the largest weight per step), and the head computes the same."""
    config = tiny_model.config
    model = new_model(config).eval()
    pooled = torch.randn(1, 3, config.TOP_DOWN_PYRAMID_SIZE, config.POOL_SIZE, config.POOL_SIZE)
    expected = model.box_head(pooled).class_logits
    to_training_layout(model, "cpu")
    assert model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not model.backbone.conv1.weight.is_contiguous()
    weight = model.box_head.mrcnn_class_conv1.weight
    assert weight.is_contiguous() and weight.flatten(1).data_ptr() == weight.data_ptr()
    torch.testing.assert_close(model.box_head(pooled).class_logits, expected, rtol=1e-5, atol=1e-5)


def test_adam_first_step_moves_every_weight_by_the_learning_rate(tiny_config, tmp_path):
    """OPTIMIZER "Adam": Adam's first (bias-corrected) step is lr * g / (|g| + eps), so every
    weight with a gradient moves by the learning rate (SGD would move it by lr * |g|, with
    momentum); the checkpoint records the optimizer and resume restores its state."""
    config = training_config(tiny_config, NUM_CLASSES=4, IMAGES_PER_GPU=1, STEPS_PER_EPOCH=1, OPTIMIZER="Adam",
                             WEIGHT_DECAY=0.0)
    model = new_model(config)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    lr = 1e-3
    run = train_model(model, shapes(1), None, lr, 1, layers="all", flip=False, log_dir=str(tmp_path), progress=False)
    moved = torch.cat([(p.detach() - before[name]).abs().flatten() for name, p in model.named_parameters()
                       if not torch.equal(p.detach(), before[name])])
    assert moved.numel() > 0.5 * sum(p.numel() for p in model.parameters())
    assert moved.median().item() == pytest.approx(lr, rel=0.01)
    assert moved.max().item() <= lr * 1.001
    saved = load_checkpoint(find_last(str(tmp_path), config.NAME))
    assert saved.training["optimizer_name"] == "Adam"
    resumed = resume(new_model(config), find_last(str(tmp_path), config.NAME))
    assert resumed.optimizer == "Adam" and resumed.epoch == run.epoch
    optimizer = make_optimizer(list(model.parameters()), config, lr)
    optimizer.load_state_dict(resumed.optimizer_state)  # Adam's moments, not SGD's momentum
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.param_groups[0]["betas"][0] == 0.9
    sgd = make_optimizer(list(model.parameters()), training_config(tiny_config), lr)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    assert optimizer.defaults["fused"] and sgd.defaults["fused"]  # one pass over the weights on the CPU


def test_layer_selection(tiny_model):
    model = new_model(tiny_model.config)
    heads = set_trainable(model, "heads")
    assert "rpn_conv_shared" in heads and "fpn_p2" in heads and "res2a_branch2a" not in heads
    assert not model.backbone.conv1.weight.requires_grad and model.rpn.rpn_class_raw.weight.requires_grad
    assert "res4a_branch2a" in set_trainable(model, "4+") and "res3a_branch2a" not in set_trainable(model, "4+")
    assert set_trainable(model, r"mrcnn_mask.*") == [n for n in model.keras_layers() if n.startswith("mrcnn_mask")]
    with pytest.raises(ValueError, match="valid regex"):
        set_trainable(model, "(")
    with pytest.raises(ValueError, match="selects no layer"):
        set_trainable(model, "nothing")


class Interrupt(Exception):
    pass


def test_resume_after_an_interrupted_epoch_reproduces_the_run(tiny_config, tmp_path):
    """With every augmentation on (the default policy) and the wide shapes variety."""
    config = training_config(tiny_config, NUM_CLASSES=4)
    data, val = shapes_dataset(6, 128, 128, 1, WIDE_SHAPES), shapes(2, seed=9)
    common = dict(layers="all", progress=False, augmentation="default")
    straight = new_model(config)
    straight_run = train_model(straight, data, val, 0.01, 2, log_dir=str(tmp_path / "a"), keep_checkpoints=1,
                               **common)
    assert sorted(f for f in os.listdir(straight_run.run_dir) if f.endswith(".pt")) == ["mask_rcnn_tiny_0002.pt"]

    killed = new_model(config)

    def stop(epoch, step, values):
        if epoch == 1 and step == 1:
            raise Interrupt  # killed in the middle of the second epoch

    with pytest.raises(Interrupt):
        train_model(killed, data, val, 0.01, 2, log_dir=str(tmp_path / "b"), on_step=stop, **common)
    last = find_last(str(tmp_path / "b"), config.NAME)
    assert last.endswith("_0001.pt") and not [f for f in os.listdir(os.path.dirname(last)) if f.endswith(".tmp")]
    resumed = new_model(config, seed=123)  # different init: everything must come from the checkpoint
    run = resume(resumed, last)
    assert isinstance(run, TrainingRun) and run.epoch == 1
    train_model(resumed, data, val, 0.01, 2, run=run, **common)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert len(run.history) == 2 and "val_loss" in run.history[-1]
    assert os.path.isfile(os.path.join(run.run_dir, "mask_rcnn_tiny_0002.pt"))


def test_a_second_stage_continues_the_optimizer_as_a_resume_does(tiny_config, tmp_path):
    """Two calls on one run (a rate drop, as benchmarks.train_shapes does) end where a run
    killed between them and resumed from its checkpoint ends: Adam's moments carry over."""
    config = training_config(tiny_config, NUM_CLASSES=4, IMAGES_PER_GPU=1, STEPS_PER_EPOCH=2, OPTIMIZER="Adam")
    data, common = shapes(4), dict(layers="all", progress=False, flip=False)
    straight = new_model(config)
    run = train_model(straight, data, None, 1e-3, 1, log_dir=str(tmp_path / "a"), **common)
    assert run.optimizer_state is not None
    train_model(straight, data, None, 1e-4, 2, run=run, **common)

    first = new_model(config)
    train_model(first, data, None, 1e-3, 1, log_dir=str(tmp_path / "b"), **common)
    resumed = new_model(config, seed=123)
    train_model(resumed, data, None, 1e-4, 2, run=resume(resumed, find_last(str(tmp_path / "b"), config.NAME)),
                **common)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_prune_checkpoints_keeps_the_newest_of_the_run(tmp_path):
    names = ["mask_rcnn_shapes_0001.pt", "mask_rcnn_shapes_0002.pt", "mask_rcnn_shapes_0010.pt",
             "mask_rcnn_shapes_0003.pt.tmp", "mask_rcnn_coco_0001.pt", "events.out"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    deleted = prune_checkpoints(str(tmp_path), "Shapes", 2)
    assert [os.path.basename(p) for p in deleted] == ["mask_rcnn_shapes_0001.pt"]
    assert sorted(os.listdir(tmp_path)) == sorted(names[1:])  # other runs' names and partial writes stay
    assert prune_checkpoints(str(tmp_path), "shapes", 5) == []
    with pytest.raises(ValueError, match="keep_checkpoints must be at least 1"):
        train_model(None, None, None, 0.01, 1, keep_checkpoints=0)


def _ddp_worker(rank, world, port, config_dict, out_dir):
    config = Config.from_dict(config_dict)  # plain values: spawn cannot pickle a class defined in conftest
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    model = new_model(config)
    # 2 epochs planned; only rank 1 asks to stop after the first, and both must stop there
    run = train_model(model, shapes(4), None, 0.01, 2, layers="heads", log_dir=out_dir, progress=False,
                      stop_after=lambda run: rank == 1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({**state, "epochs_run": torch.tensor(run.epoch)}, os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_ddp_two_gloo_processes_agree(tiny_config, tmp_path):
    config = training_config(tiny_config, NUM_CLASSES=4, IMAGES_PER_GPU=1, STEPS_PER_EPOCH=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, config.to_dict(), str(tmp_path)), nprocs=2, join=True)
    first, second = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert first.pop("epochs_run") == second.pop("epochs_run") == 1  # stop_after: any process stops all
    initial = new_model(config).state_dict()
    changed = [k for k in first if not torch.equal(first[k], initial[k])]
    assert any(k.startswith("rpn.") for k in changed)  # a step was taken...
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0, msg=key)  # ...identically


def test_cli_errors(tmp_path, capsys):
    assert train_cli.main(["--dataset", "coco", "--data", str(tmp_path / "nope"), "--epochs", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert train_cli.main(["--init", "imagenet", "--epochs", "1", "--imagenet-weights", str(tmp_path / "r50.h5"),
                           "--shapes-count", "2"]) == 2
    err = capsys.readouterr().err
    assert "r50.h5" in err and "deep-learning-models/releases" in err
    assert train_cli.main(["--init", "last", "--epochs", "1", "--log-dir", str(tmp_path), "--shapes-count", "2"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert train_cli.main(["--epochs", "1", "--set", "ROIS=64", "--shapes-count", "2"]) == 2
    assert "unknown config attributes: ROIS" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_cli.main(["--epochs", "1", "--set", "TRAIN_ROIS_PER_IMAGE"])
    assert "give a config value as NAME=VALUE" in capsys.readouterr().err


def test_cli_trains_and_resumes(tmp_path, capsys):
    config = ShapesConfig(IMAGES_PER_GPU=1, VALIDATION_STEPS=1, TOP_DOWN_PYRAMID_SIZE=64, FPN_CLASSIF_FC_LAYERS_SIZE=64,
                          POST_NMS_ROIS_TRAINING=100, PRE_NMS_LIMIT=500)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    args = ["--dataset", "shapes", "--shapes-count", "4", "--steps-per-epoch", "1", "--log-dir", str(tmp_path),
            "--workers", "0", "--layers", "heads", "--config", str(tmp_path / "config.json"),
            "--batch-renorm", "--precision", "bf16", "--augment", "default", "--shapes-style", "wide",
            "--optimizer", "Adam", "--lr", "3e-4", "--set", "TRAIN_ROIS_PER_IMAGE=16"]
    assert train_cli.main(args + ["--epochs", "1"]) == 0
    assert "next: python -m model.evaluate" in capsys.readouterr().out
    assert train_cli.main(args + ["--epochs", "2", "--init", "last", "--keep-checkpoints", "1"]) == 0
    assert "trained to epoch 2" in capsys.readouterr().out
    last = find_last(str(tmp_path), config.NAME)
    assert [f for f in os.listdir(os.path.dirname(last)) if f.endswith(".pt")] == [os.path.basename(last)]
    saved = load_checkpoint(last)
    assert saved.config.BATCH_RENORM and saved.config.TRAIN_BN is None and saved.training["epoch"] == 2
    assert saved.config.TRAIN_ROIS_PER_IMAGE == 16
    assert saved.config.OPTIMIZER == "Adam" and "exp_avg" in saved.training["optimizer"]["state"][0]


def tiny_cli_args(tmp_path, log_dir):
    config = ShapesConfig(IMAGES_PER_GPU=1, VALIDATION_STEPS=1, TOP_DOWN_PYRAMID_SIZE=64, FPN_CLASSIF_FC_LAYERS_SIZE=64,
                          POST_NMS_ROIS_TRAINING=100, PRE_NMS_LIMIT=500, BACKBONE="resnet50")
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    return config, ["--dataset", "shapes", "--shapes-count", "2", "--steps-per-epoch", "1", "--log-dir", str(log_dir),
                    "--workers", "0", "--layers", "heads", "--config", str(tmp_path / "config.json"), "--epochs", "1"]


def test_cli_seed_fixes_the_initial_weights(tmp_path):
    """Issue 11, case 3: `--seed 0 --init none` twice gave different weights."""
    runs = []
    for name in ("a", "b"):
        config, args = tiny_cli_args(tmp_path, tmp_path / name)
        torch.manual_seed(len(runs))  # whatever the process drew before must not matter
        assert train_cli.main(args + ["--seed", "0", "--init", "none"]) == 0
        runs.append(load_checkpoint(find_last(str(tmp_path / name), config.NAME)).state_dict)
    for key in runs[0]:
        torch.testing.assert_close(runs[0][key], runs[1][key], rtol=0, atol=0, msg=key)


def test_ctrl_c_says_what_was_saved_and_how_to_resume(tmp_path, capsys, monkeypatch):
    """Issue 11, case 7: Ctrl-C ended in a KeyboardInterrupt traceback with no word on resuming."""
    import model.training.loop

    config, args = tiny_cli_args(tmp_path, tmp_path / "logs")
    real_train = model.training.loop.train_model

    def interrupted(*a, **k):
        if k.get("run") is None and not (tmp_path / "logs").exists():
            real_train(*a, **k)  # one epoch saved ...
        raise KeyboardInterrupt  # ... then Ctrl-C in the next

    monkeypatch.setattr(model.training.loop, "train_model", interrupted)
    assert train_cli.main(args + ["--init", "none"]) == 130
    err = capsys.readouterr().err
    last = find_last(str(tmp_path / "logs"), config.NAME)
    assert f"interrupted: the last completed epoch is saved in {last}" in err and "Traceback" not in err
    resume_line = err.strip().splitlines()[-1]
    assert resume_line.startswith("resume: python -m model.train ") and resume_line.endswith("--init last")
    assert "--init none" not in resume_line
    monkeypatch.setattr(model.training.loop, "train_model", real_train)
    assert train_cli.main(resume_line.split()[4:-2] + ["--epochs", "2", "--init", "last"]) == 0
    assert "trained to epoch 2" in capsys.readouterr().out


def test_ctrl_c_before_the_first_epoch(tmp_path, capsys, monkeypatch):
    import model.training.loop

    _, args = tiny_cli_args(tmp_path, tmp_path / "logs")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(model.training.loop, "train_model", interrupted)
    assert train_cli.main(args) == 130
    assert "wrote no checkpoint" in capsys.readouterr().err
