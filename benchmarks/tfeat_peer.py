"""The TFeat peer (Balntas et al. 2016) as a placekit local model, for benchmarks only.

Builds the TFeat network (instance norm, 7x7 conv 32, tanh, 2x2 max-pool, 6x6 conv 64, tanh,
linear 4096 -> 128, tanh), loads ``shared/data/baselines/tfeat/tfeat-liberty.params`` (a PyTorch
state dict; MIT licence), and exports it to ONNX with placekit's metadata through
``placekit_export.onnx_export`` so the runtime cuts and describes patches exactly as for
HardNet (same cutter, same extent). Never shipped. Needs torch (the ``train`` extra).
"""
from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def tfeat_onnx(out: Path, weights: str = "liberty") -> Path:
    import torch
    from torch import nn

    from placekit.inference.modelinfo import ModelInfo
    from placekit.local.patches import EXTENT, PATCH_SIZE
    from placekit_export.onnx_export import export_onnx

    class TFeat(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.InstanceNorm2d(1, affine=False), nn.Conv2d(1, 32, 7), nn.Tanh(),
                                          nn.MaxPool2d(2, 2), nn.Conv2d(32, 64, 6), nn.Tanh())
            self.descr = nn.Sequential(nn.Linear(64 * 8 * 8, 128), nn.Tanh())

        def forward(self, x):
            d = self.descr(self.features(x).flatten(1))
            return d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)

    net = TFeat()
    path = DATA / "baselines" / "tfeat" / f"tfeat-{weights}.params"
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    info = ModelInfo(name=f"tfeat-{weights}", kind="local", output_dim=128, fixed_size=(PATCH_SIZE, PATCH_SIZE),
                     color="GRAY", mean=(0.0,), std=(255.0,), layout="NCHW", version="peer", precision="fp32",
                     checkpoint_sha256="", patch_extent=EXTENT)
    return export_onnx(net, info, out, (1, 1, PATCH_SIZE, PATCH_SIZE))
