"""The PCA-whitening of VLAD vectors shipped with a local model's vocabulary.

    python -m placekit_export.vlad_whitening --local hardnet-int8 --words 64 --dim 256 \\
        -o models/hardnet/hardnet-int8-vlad64-pcaw256.npz

A VLAD (``placekit.local.vlad``) of a few images cannot learn its own whitening: a map of 16
photos gives a 15-D PCA. This one is learned once, on the training-side pool of
``placekit_export.vlad_vocabulary`` (the pool photos, Strecha fountain-P11 and Herz-Jesus-P8,
200 IE Tower frames of the training floors; never ``landmarks_val``, ``wxbs`` or KITTI), with
the shipped vocabulary. Each photo gives its whole-image VLAD and ``--crops`` VLADs of random
sub-windows (35-100% of the area: the keypoints inside them), so the covariance sees partial
views as queries are. ``placekit.index.quantize.PCAWhitening.fit`` (eigenvalue shrinkage by
samples per dimension) learns ``--dim`` dims; the ``.npz`` holds ``mean`` (words * D,) and
``projection`` (words * D, dim) float32 and is recorded under the vocabulary's entry of the
card (``whitening``), which is how ``MapBuilder`` finds it for ``vlad_vocabulary="shipped"``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from placekit.index.quantize import PCAWhitening
from placekit.inference.catalog import resolve_model, shipped_vocabulary
from placekit.local.extractor import LocalFeatures
from placekit.local.vlad import vlad

from .cards import write_card
from .vlad_vocabulary import pool_features

MIN_CROP_AREA = 0.35
DEFAULT_CROPS = 7


def crop_vlads(features: LocalFeatures, vocabulary: np.ndarray, crops: int, rng: np.random.Generator) -> np.ndarray:
    """(1 + crops, words * D): the VLAD of the whole image, then of ``crops`` random
    sub-windows (``MIN_CROP_AREA``-100% of the area, the image's aspect)."""
    w, h = features.image_size
    out = [vlad(features.descriptors, vocabulary)]
    for _ in range(crops):
        side = np.sqrt(rng.uniform(MIN_CROP_AREA, 1.0))
        cw, ch = side * w, side * h
        x0, y0 = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
        xy = features.xy
        inside = (xy[:, 0] >= x0) & (xy[:, 0] < x0 + cw) & (xy[:, 1] >= y0) & (xy[:, 1] < y0 + ch)
        out.append(vlad(features.descriptors[inside], vocabulary))
    return np.stack(out)


def learn(local: str, words: int, dim: int, crops: int, seed: int = 0) -> tuple[PCAWhitening, int, int, str]:
    """(the whitening, images, training vectors, the vocabulary's file name)."""
    model_path = Path(resolve_model(local))
    features, images = pool_features(local)
    shipped = shipped_vocabulary(model_path, words, features[0].descriptors.shape[1])
    if shipped is None:
        raise FileNotFoundError(f"no shipped {words}-word vocabulary for {model_path.name}: run vlad_vocabulary first")
    vocabulary, name = shipped
    rng = np.random.default_rng(seed)
    x = np.concatenate([crop_vlads(f, vocabulary, crops, rng) for f in features if len(f)])
    return PCAWhitening.fit(x, dim), len(images), len(x), name


def record_in_card(
    path: Path, vocabulary_file: str, whitening: PCAWhitening, images: int, vectors: int, command: str
) -> None:
    """Add (or replace) the ``whitening`` of the vocabulary's entry in its folder's card.json."""
    card_path = path.parent / "card.json"
    card = json.loads(card_path.read_text())
    entries = [e for e in card.get("vlad_vocabularies", []) if e.get("file") == vocabulary_file]
    if not entries:
        raise ValueError(f"{card_path} has no vocabulary entry for {vocabulary_file}")
    entries[0]["whitening"] = {
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "dim": whitening.dim,
        "trained_on": f"{vectors} VLADs (whole images and random sub-windows) of the vocabulary's {images} "
        "training-side images",
        "command": command,
    }
    write_card(card_path.parent, card)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--local", default="hardnet-int8")
    p.add_argument("--words", type=int, default=64)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--crops", type=int, default=DEFAULT_CROPS)
    p.add_argument("-o", "--output", type=Path, required=True)
    args = p.parse_args(argv)
    whitening, images, vectors, vocabulary_file = learn(args.local, args.words, args.dim, args.crops)
    tmp = args.output.with_name(args.output.name + ".tmp.npz")
    np.savez(tmp, mean=whitening.mean.astype(np.float32), projection=whitening.projection.astype(np.float32))
    os.replace(tmp, args.output)
    command = (
        f"python -m placekit_export.vlad_whitening --local {args.local} --words {args.words} "
        f"--dim {args.dim} --crops {args.crops} -o {args.output}"
    )
    record_in_card(args.output, vocabulary_file, whitening, images, vectors, command)
    print(f"wrote {args.output}: {whitening.projection.shape} from {vectors} VLADs of {images} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
