"""The moving average of the weights: its arithmetic against a float64 loop, its state,
and in train_model: updated every step, carried across stages and through a resume."""

import pytest
import torch
from torch import nn

from model.training.average import WeightAverage
from model.training.loop import find_last, resume, train_model
from tests.model.training.test_loop import new_model, shapes, training_config


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def reference_average(snapshots, decay):
    """The average of a list of {name: tensor} states, one update per snapshot after the
    first, in float64 and plain Python loops."""
    average = {name: t.double().clone() for name, t in snapshots[0].items()}
    for t, state in enumerate(snapshots[1:], start=1):
        d = min(decay, (1 + t) / (10 + t))
        for name in average:
            average[name] = d * average[name] + (1 - d) * state[name].double()
    return average


def float_snapshot(model):
    return {n: t.detach().clone() for n, t in model.state_dict().items() if t.is_floating_point()}


def test_the_average_follows_the_formula_over_parameters_and_buffers():
    net = small_net()
    snapshots = [float_snapshot(net)]
    average = WeightAverage(net, decay=0.9)
    generator = torch.Generator().manual_seed(1)
    for _ in range(30):
        with torch.no_grad():
            for t in float_snapshot(net):
                net.state_dict()[t].add_(torch.randn(net.state_dict()[t].shape, generator=generator))
        average.update(net)
        snapshots.append(float_snapshot(net))
    expected = reference_average(snapshots, 0.9)
    assert set(average.tensors) == set(expected)
    assert "1.running_mean" in expected and "1.num_batches_tracked" not in expected  # buffers too, floats only
    for name, value in expected.items():
        torch.testing.assert_close(average.tensors[name].double(), value, rtol=1e-5, atol=1e-5, msg=name)
        assert not torch.allclose(average.tensors[name], net.state_dict()[name])  # it lags the live weights


def test_copy_to_and_state_round_trip():
    net = small_net()
    average = WeightAverage(net, decay=0.5)
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].num_batches_tracked.fill_(7)
    average.update(net)
    restored = WeightAverage.from_state_dict(average.state_dict(), small_net())
    assert restored.updates == 1 and restored.decay == 0.5
    target = small_net()
    restored.copy_to(target)
    for name, value in average.tensors.items():
        torch.testing.assert_close(target.state_dict()[name], value, rtol=0, atol=0)
    assert int(target[1].num_batches_tracked) == 0  # integer buffers stay the model's


def test_bad_decay_and_a_foreign_average_are_refused():
    with pytest.raises(ValueError, match=r"decay must lie in \[0, 1\), got 1.0"):
        WeightAverage(small_net(), 1.0)
    other = WeightAverage(nn.Sequential(nn.Conv2d(3, 4, 3)), 0.9).state_dict()
    with pytest.raises(ValueError, match="does not fit this model"):
        WeightAverage.from_state_dict(other, small_net())


def test_train_model_averages_every_step_and_a_resume_continues_the_average(tiny_config, tmp_path):
    """Two stages in one process (as benchmarks.train_shapes runs them) against the first
    stage, a kill, and a resume from its checkpoint: the same average, bit for bit; and
    that average is the formula applied to the live weights after each step."""
    config = training_config(tiny_config, NUM_CLASSES=4, IMAGES_PER_GPU=1, STEPS_PER_EPOCH=2, OPTIMIZER="Adam")
    data, common = shapes(4), dict(layers="all", progress=False, flip=False)
    straight = new_model(config)
    snapshots = [float_snapshot(straight)]
    record = dict(on_step=lambda epoch, step, losses: snapshots.append(float_snapshot(straight)))
    run = train_model(straight, data, None, 1e-3, 1, log_dir=str(tmp_path / "a"), average_decay=0.6,
                      **record, **common)
    train_model(straight, data, None, 1e-4, 2, run=run, **record, **common)
    assert run.average.updates == 4 == len(snapshots) - 1
    expected = reference_average(snapshots, 0.6)
    for name, value in expected.items():
        torch.testing.assert_close(run.average.tensors[name].double(), value, rtol=1e-5, atol=1e-6, msg=name)

    first = new_model(config)
    train_model(first, data, None, 1e-3, 1, log_dir=str(tmp_path / "b"), average_decay=0.6, **common)
    resumed = new_model(config, seed=123)
    resumed_run = resume(resumed, find_last(str(tmp_path / "b"), config.NAME))
    assert resumed_run.average is not None and resumed_run.average.updates == 2
    train_model(resumed, data, None, 1e-4, 2, run=resumed_run, **common)
    for name, value in run.average.tensors.items():
        torch.testing.assert_close(resumed_run.average.tensors[name], value, rtol=0, atol=0, msg=name)


def test_without_a_decay_no_average_is_kept(tiny_config, tmp_path):
    config = training_config(tiny_config, NUM_CLASSES=4, IMAGES_PER_GPU=1, STEPS_PER_EPOCH=1)
    run = train_model(new_model(config), shapes(2), None, 1e-3, 1, layers="heads", progress=False, flip=False,
                      log_dir=str(tmp_path))
    assert run.average is None and resume(new_model(config), find_last(str(tmp_path), config.NAME)).average is None
