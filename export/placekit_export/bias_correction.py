"""Prepare a network for int8: fold BatchNorm into convolutions, then correct each conv's bias
for the expected output shift its int8 weight rounding causes (Nagel et al., "Data-Free
Quantization Through Weight Equalization and Bias Correction", ICCV 2019).

With per-channel symmetric int8 weights W_q = round(W / s) * s, s = max|W_o| / 127, a conv's
output moves by (W_q - W) * E[x] on average; the bias absorbs that. E[x] (mean input per
channel) is measured on the calibration inputs. The folded, corrected network computes the same
function in float (up to that shift), so parity is still checked against the original.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


def _parent(root: nn.Module, name: str) -> tuple[nn.Module, str]:
    parts = name.split(".")
    parent = root
    for p in parts[:-1]:
        parent = getattr(parent, p)
    return parent, parts[-1]


def fold_batchnorm(net: nn.Module, example: torch.Tensor) -> nn.Module:
    """Copy of ``net`` (eval) with each BatchNorm2d that directly consumes a Conv2d's output
    folded into that conv (found by running ``example`` with hooks) and replaced by Identity."""
    net = copy.deepcopy(net).eval()
    produced: dict[int, nn.Conv2d] = {}
    pairs: list[tuple[nn.Conv2d, str]] = []
    names = {m: n for n, m in net.named_modules()}
    hooks = []
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(lambda m, i, o: produced.__setitem__(id(o), m)))
        elif isinstance(module, nn.BatchNorm2d):
            hooks.append(
                module.register_forward_pre_hook(
                    lambda m, i: pairs.append((produced[id(i[0])], names[m])) if id(i[0]) in produced else None
                )
            )
    with torch.no_grad():
        net(example)
    for h in hooks:
        h.remove()
    for conv, bn_name in pairs:
        parent, attr = _parent(net, bn_name)
        bn = getattr(parent, attr)
        std = torch.sqrt(bn.running_var + bn.eps)
        gamma = bn.weight if bn.affine else torch.ones_like(std)
        beta = bn.bias if bn.affine else torch.zeros_like(std)
        with torch.no_grad():
            conv.weight.mul_((gamma / std).reshape(-1, 1, 1, 1))
            bias = conv.bias if conv.bias is not None else torch.zeros_like(std)
            conv.bias = nn.Parameter((bias - bn.running_mean) * gamma / std + beta)
        setattr(parent, attr, nn.Identity())
    return net


def int8_weight_error(weight: torch.Tensor) -> torch.Tensor:
    """W_q - W for per-output-channel symmetric int8 rounding."""
    amax = weight.abs().flatten(1).max(1).values.clamp(min=1e-12).reshape(-1, 1, 1, 1)
    scale = amax / 127.0
    return torch.clamp(torch.round(weight / scale), -127, 127) * scale - weight


def bias_correct(net: nn.Module, calibration: list[np.ndarray]) -> nn.Module:
    """Fold BatchNorm, then subtract each conv's expected int8 weight-rounding shift."""
    folded = fold_batchnorm(net, torch.from_numpy(calibration[0]))
    sums: dict[nn.Conv2d, torch.Tensor] = {}
    hooks = [
        m.register_forward_pre_hook(lambda m, i: sums.__setitem__(m, sums.get(m, 0) + i[0].mean(dim=(0, 2, 3))))
        for m in folded.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        for x in calibration:
            folded(torch.from_numpy(x))
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for conv, total in sums.items():
            mean_in = total / len(calibration)
            eps = int8_weight_error(conv.weight)
            if conv.groups == 1:
                shift = eps.sum(dim=(2, 3)) @ mean_in
            else:
                per_group = conv.in_channels // conv.groups
                out_per_group = conv.out_channels // conv.groups
                x = mean_in.reshape(conv.groups, per_group).repeat_interleave(out_per_group, dim=0)
                shift = (eps.sum(dim=(2, 3)) * x).sum(1)
            bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
            conv.bias = nn.Parameter(bias - shift)
    return folded
