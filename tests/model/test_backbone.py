"""BatchNorm modes: frozen, batch statistics and Batch Renormalization, against a
per-channel numpy reference of the formulas (Ioffe 2017, Algorithm 1)."""

import copy

import numpy as np
import pytest
import torch

from model.backbone import RENORM_RAMP_STEPS, BatchNorm, BatchNormMode
from model.configs import ShapesConfig
from model.maskrcnn import MaskRCNN

EPS = 1e-3


def reference_renorm(x, gamma, beta, moving_mean, moving_var, r_max, d_max):
    """y = gamma * ((x - mu_B) / sigma_B * r + d) + beta, per channel of x [B,C,H,W]."""
    y = np.empty_like(x)
    for c in range(x.shape[1]):
        values = x[:, c]
        mu, sigma = values.mean(), np.sqrt(values.var() + EPS)
        moving_sigma = np.sqrt(moving_var[c] + EPS)
        r = np.clip(sigma / moving_sigma, 1 / r_max, r_max)
        d = np.clip((mu - moving_mean[c]) / moving_sigma, -d_max, d_max)
        y[:, c] = gamma[c] * ((values - mu) / sigma * r + d) + beta[c]
    return y


def renorm_layer(channels=3, steps=0, momentum=0.1, seed=0):
    torch.manual_seed(seed)
    layer = BatchNorm(channels, BatchNormMode(frozen=False, renorm_momentum=momentum)).double().train()
    layer.weight.data.uniform_(0.5, 1.5)
    layer.bias.data.uniform_(-0.5, 0.5)
    layer.num_batches_tracked.fill_(steps)
    return layer


def channels(values):
    """[C] -> [1,C,1,1] numpy, to broadcast over [B,C,H,W]."""
    return values.detach().numpy()[None, :, None, None]


def inputs(seed=1, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, 3, 5, 4)) * scale + shift


@pytest.mark.parametrize("steps, r_max, d_max", [(0, 1.0, 0.0), (RENORM_RAMP_STEPS // 2, 2.0, 2.5),
                                                 (RENORM_RAMP_STEPS * 3, 3.0, 5.0)])
@pytest.mark.parametrize("shift, scale", [(0.0, 1.0), (0.3, 1.5), (20.0, 10.0)])
def test_renorm_matches_reference(steps, r_max, d_max, shift, scale):
    layer = renorm_layer(steps=steps)
    layer.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64))
    layer.running_var.copy_(torch.tensor([0.8, 1.2, 2.0], dtype=torch.float64))
    x = inputs(shift=shift, scale=scale)
    expected = reference_renorm(x, layer.weight.detach().numpy(), layer.bias.detach().numpy(),
                                layer.running_mean.numpy().copy(), layer.running_var.numpy().copy(), r_max, d_max)
    np.testing.assert_allclose(layer(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-10, atol=1e-10)


def test_renorm_ramp_starts_as_batch_norm_and_ends_as_moving_statistics():
    x = inputs(shift=0.3, scale=1.2)
    start = renorm_layer(steps=0)
    plain = copy.deepcopy(start)
    plain.renorm_momentum = None
    torch.testing.assert_close(start(torch.from_numpy(x)), plain(torch.from_numpy(x)))
    ramped = renorm_layer(steps=RENORM_RAMP_STEPS)  # moving statistics within the clip
    ramped.running_mean.fill_(0.25)
    ramped.running_var.fill_(1.3)
    expected = (x - 0.25) / np.sqrt(1.3 + EPS) * channels(ramped.weight) + channels(ramped.bias)
    np.testing.assert_allclose(ramped(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-10)
    ramped.eval()  # inference normalises with the moving statistics too (updated by the call above)
    moved = (x - channels(ramped.running_mean)) / np.sqrt(channels(ramped.running_var) + EPS)
    expected = moved * channels(ramped.weight) + channels(ramped.bias)
    np.testing.assert_allclose(ramped(torch.from_numpy(x)).detach().numpy(), expected, rtol=1e-10)


def test_renorm_updates_moving_statistics_and_counts_steps():
    layer = renorm_layer(steps=7, momentum=0.1)
    x = inputs()
    before_mean, before_var = layer.running_mean.clone().numpy(), layer.running_var.clone().numpy()
    layer(torch.from_numpy(x))
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.9 * before_mean + 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var.numpy(), 0.9 * before_var + 0.1 * var, rtol=1e-12)
    assert int(layer.num_batches_tracked) == 8


def test_renorm_gradient_flows_through_the_batch_statistics():
    """With r and d held at their clip limits (constants, as the paper's stop-gradient
    makes them), the analytic gradient is the true derivative of the output."""
    layer = renorm_layer(steps=RENORM_RAMP_STEPS)
    layer.running_mean.fill_(-50.0)  # d clipped at +5 for every batch near 0
    layer.running_var.fill_(1e-4)  # r clipped at 3
    x = torch.from_numpy(inputs()).requires_grad_(True)

    def output(values, weight, bias):
        fresh = copy.deepcopy(layer)  # each call sees the same moving statistics
        return torch.func.functional_call(fresh, {"weight": weight, "bias": bias}, (values,))

    assert torch.autograd.gradcheck(output, (x, layer.weight.detach().clone().requires_grad_(True),
                                             layer.bias.detach().clone().requires_grad_(True)))


def test_config_selects_the_mode():
    frozen = MaskRCNN(ShapesConfig(TRAIN_BN=False, BACKBONE="resnet50"))
    renorm = MaskRCNN(ShapesConfig(TRAIN_BN=None, BATCH_RENORM=True, BATCH_RENORM_MOMENTUM=0.9))
    layers = [m for m in renorm.modules() if isinstance(m, BatchNorm)]
    assert layers and all(not m.frozen and m.renorm_momentum == pytest.approx(0.1) for m in layers)
    assert all(m.frozen for m in frozen.modules() if isinstance(m, BatchNorm))
