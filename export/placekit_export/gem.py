"""GeM global-descriptor network: EfficientNet-Lite0 -> GeM pooling -> optional whitening -> L2.

Input (B, 3, H, W) float32, RGB normalised with ``GEM_MEAN`` / ``GEM_STD``; H and W multiples
of 32. Output (B, D) L2-normalised descriptors (D = 1280 without whitening).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .efficientnet_lite import HEAD_CHANNELS, EfficientNetLite0, load_imagenet_backbone

GEM_MEAN = (127.0, 127.0, 127.0)
GEM_STD = (128.0, 128.0, 128.0)
GEM_EPS = 1e-6


class GeM(nn.Module):
    """Generalised-mean pooling with a learnable exponent p (Radenovic et al.).

    Written as clamp -> pow -> mean over H, W -> pow(1/p): no data-dependent control flow.
    """

    def __init__(self, p: float = 3.0, eps: float = GEM_EPS):
        super().__init__()
        self.p = nn.Parameter(torch.tensor([float(p)]))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3))
        return pooled.pow(1.0 / self.p)


class GeMNet(nn.Module):
    """(B, 3, H, W) -> (B, out_dim) unit-norm descriptors."""

    def __init__(self, backbone: EfficientNetLite0, p: float = 3.0, whiten_dim: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.pool = GeM(p)
        self.whiten = nn.Linear(HEAD_CHANNELS, whiten_dim, bias=True) if whiten_dim else None

    @property
    def out_dim(self) -> int:
        return self.whiten.out_features if self.whiten is not None else HEAD_CHANNELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = F.normalize(self.pool(self.backbone.features(x)), dim=1)
        if self.whiten is not None:
            d = F.normalize(self.whiten(d), dim=1)
        return d


def imagenet_gem(p: float = 3.0) -> GeMNet:
    """The off-the-shelf model: ImageNet EfficientNet-Lite0 + GeM(p), no whitening."""
    return GeMNet(load_imagenet_backbone(), p=p).eval()
