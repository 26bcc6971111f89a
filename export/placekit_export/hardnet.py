"""HardNet local descriptor (Mishchuk et al., NeurIPS 2017) on the L2-Net body (Tian et al.).

Input (B, 1, 32, 32) float32 grey patches, normalised per patch inside the network (mean 0,
std 1, as L2-Net does), so the runtime only scales pixels to [0, 1]. Output (B, 128) unit-norm.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

DESCRIPTOR_DIM = 128
BASE_CHANNELS = 32  # L2-Net's first layers; the published network. 16 gives HardNet-C16, 4x cheaper
VARIANCE_EPS = 1e-4  # spread floor of 0.01 (2.5 grey levels): bounds rsqrt for int8 ranges


def _conv_bn(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout, affine=False),
        nn.ReLU(),
    ]


def variant_name(channels: int) -> str:
    """The model name of a HardNet with ``channels`` first-layer channels: ``hardnet`` for the
    published width, ``hardnet-c16`` etc. otherwise."""
    return "hardnet" if channels == BASE_CHANNELS else f"hardnet-c{channels}"


def multiply_adds(net: nn.Module, patch_size: int = 32) -> int:
    """Multiply-adds of the convolutions of ``net`` for one (1, 1, P, P) patch."""
    total = 0
    hooks = []

    def count(module: nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * module.in_channels // module.groups * kh * kw

    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(count))
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(torch.rand(1, 1, patch_size, patch_size))
    net.train(was_training)
    for h in hooks:
        h.remove()
    return total


class HardNet(nn.Module):
    """L2-Net body: 7 conv layers (c-c-2c-2c-4c-4c with c = ``channels``, 32 in the published
    network, then an 8x8 conv to 128), BN without affine parameters, dropout before the last
    layer, L2 normalisation. The cost per 32 x 32 patch grows with c squared: about 40M
    multiply-adds at c = 32, 10M at c = 16."""

    def __init__(self, dropout: float = 0.3, channels: int = BASE_CHANNELS):
        super().__init__()
        c = int(channels)
        self.channels = c
        self.features = nn.Sequential(
            *_conv_bn(1, c),
            *_conv_bn(c, c),
            *_conv_bn(c, 2 * c, stride=2),
            *_conv_bn(2 * c, 2 * c),
            *_conv_bn(2 * c, 4 * c, stride=2),
            *_conv_bn(4 * c, 4 * c),
            nn.Dropout(dropout),
            nn.Conv2d(4 * c, DESCRIPTOR_DIM, 8, bias=False),
            nn.BatchNorm2d(DESCRIPTOR_DIM, affine=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # per-patch standardisation (unbiased variance, as torch.var) with reductions only: no
        # reshape that would bake the batch size into an exported graph. Multiplying by
        # rsqrt(var + eps) rather than dividing by the spread keeps int8 kernels defined on flat
        # patches, whose spread quantizes to zero (LiteRT's int8 DIV rejects a zero divisor); the
        # variance floor keeps rsqrt's range small enough for int8 activations.
        n = x.shape[1] * x.shape[2] * x.shape[3]
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        centred = x - mean
        var = centred.pow(2).sum(dim=(1, 2, 3), keepdim=True) / (n - 1)
        y = self.features(centred * torch.rsqrt(var + VARIANCE_EPS))
        return F.normalize(y.mean(dim=(2, 3)), dim=1)
