"""Patch descriptors on the HPatches sequences (never trained on), all methods in one run.

    python benchmarks/bench_hpatches.py [--extra NAME=MODEL.onnx ...] [--out benchmarks/results/hpatches.json]

For each sequence and each image pair 1 -> k (k = 2..6): up to 500 SIFT keypoints of image 1,
mapped into image k by the ground-truth homography (scale and orientation follow the local
affine of the homography). Methods describe the same keypoints:

* SIFT and RootSIFT: OpenCV's descriptor computed at the keypoints, in each image;
* TFeat (``shared/data/baselines/tfeat``, a peer, never shipped) and every shipped HardNet model:
  32x32 patches cut by the runtime's ``placekit.local.patches.cut_patches`` and described through the
  runtime (ONNX Runtime / LiteRT);
* ``--extra NAME=PATH``: more ONNX / TFLite patch models (e.g. an earlier HardNet);
* the dense peers XFeat and DISK (``dense_peers.py``, when their weights are given): the network
  runs once on the whole image (zero-padded to its size multiple) and its descriptor map is
  sampled bilinearly at the same keypoints, as the runtime samples it at its own keypoints.

Metrics (``placekit_export.patch_metrics``): matching mAP, verification mAP and FPR95 per pair,
averaged over the 5 pairs of a sequence, then over sequences. Needs ../shared/data and the
``train`` extra (TFeat is built with torch).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dense_peers  # noqa: E402
from provenance import save  # noqa: E402

from placekit.inference.engine import open_engine  # noqa: E402
from placekit.inference.extractors import LocalDescriber  # noqa: E402
from placekit.local.extractor import root_sift  # noqa: E402
from placekit.inference.catalog import list_models  # noqa: E402
from placekit.local.patches import cut_patches  # noqa: E402
from placekit_export.patch_data import hpatches_keypoints  # noqa: E402
from placekit_export.patch_metrics import all_metrics  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "results" / "hpatches.json"


def sift_describe(gray: np.ndarray, kps: np.ndarray, root: bool) -> np.ndarray:
    keypoints = [cv2.KeyPoint(float(x), float(y), float(s), float(a)) for x, y, s, a in kps[:, :4]]
    _, desc = cv2.SIFT_create().compute(gray, keypoints)
    if len(desc) != len(kps):
        raise RuntimeError("OpenCV dropped keypoints while computing SIFT descriptors")
    desc = root_sift(desc) if root else desc / np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
    return desc.astype(np.float32)


def model_describer(path: Path, threads: int = 2):
    describer = LocalDescriber(open_engine(path, threads=threads))

    def describe(gray: np.ndarray, kps: np.ndarray) -> np.ndarray:
        return describer.describe_patches(cut_patches(gray, kps))

    return describe


def dense_describer(path: Path, threads: int = 2):
    """Descriptors of a dense model's map at given keypoints (see the module docstring)."""
    from placekit.inference.extractors import DenseDescriber, _sample_grid
    from placekit.index.quantize import l2_normalize

    describer = DenseDescriber(open_engine(path, threads=threads))

    def describe(gray: np.ndarray, kps: np.ndarray) -> np.ndarray:
        m = describer.size_multiple
        h, w = gray.shape
        padded = np.zeros((-(-h // m) * m, -(-w // m) * m), np.float32)
        padded[:h, :w] = gray
        out = np.asarray(describer.engine.run(padded[None, None]), np.float32)[0, : describer.dim]
        return l2_normalize(_sample_grid(out, kps[:, 0], kps[:, 1], *padded.shape).T)

    return describe


def methods(extra: list[str], tmp: Path, peers: dict[str, Path], torch_peers: dict | None = None,
            only: list[str] | None = None) -> dict:
    out = {"SIFT": lambda g, k: sift_describe(g, k, False), "RootSIFT": lambda g, k: sift_describe(g, k, True)}
    from tfeat_peer import tfeat_onnx

    out["TFeat (liberty, peer)"] = model_describer(tfeat_onnx(tmp / "tfeat.onnx"))
    for m in list_models():
        if m.kind == "local":
            out[f"{m.name} {m.precision} {m.format}"] = model_describer(m.path)
    for item in extra:
        name, path = item.split("=", 1)
        out[name] = model_describer(Path(path))
    for name, path in peers.items():
        out[dense_peers.LABELS[name]] = dense_describer(path)
    for name, extractor in (torch_peers or {}).items():
        out[name] = extractor.describe_at
    if only:
        out = {k: v for k, v in out.items() if k in only}
    return out


def evaluate(describe) -> dict:
    per_sequence = {}
    for seq in sorted(p for p in (DATA / "hpatches").iterdir() if p.is_dir()):
        pairs = []
        for k in range(2, 7):
            g1, k1, gk, kk = hpatches_keypoints(seq, k)
            pairs.append(all_metrics(describe(g1, k1), describe(gk, kk)))
        per_sequence[seq.name] = {key: float(np.mean([p[key] for p in pairs])) for key in pairs[0]}
    mean = {key: float(np.mean([s[key] for s in per_sequence.values()])) for key in ("matching_mAP",
                                                                                 "verification_mAP", "fpr95")}
    return {"mean": mean, "sequences": per_sequence}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--extra", action="append", default=[], help="NAME=PATH of another patch model")
    p.add_argument("--out", type=Path, default=OUT)
    dense_peers.add_arguments(p)
    p.add_argument("--only", nargs="*", default=None, help="only these methods (their labels)")
    args = p.parse_args()
    if not (DATA / "hpatches").is_dir():
        raise SystemExit(f"needs {DATA / 'hpatches'}")
    with tempfile.TemporaryDirectory() as tmp:
        found = methods(args.extra, Path(tmp), dense_peers.export_peers(Path(tmp), args),
                        dense_peers.torch_peers(args, 0, 0, 2), args.only)
        results = {name: evaluate(fn) for name, fn in found.items()}
    for name, r in results.items():
        m = r["mean"]
        print(f"{name:38s} matching mAP {m['matching_mAP']:.3f}  verification mAP {m['verification_mAP']:.3f}  "
              f"FPR95 {m['fpr95']:.3f}")
    save(args.out, {"methods": results})


if __name__ == "__main__":
    main()
