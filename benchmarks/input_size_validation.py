"""Test-time input size of the default global model, chosen on training-side validation data only.

    python benchmarks/input_size_validation.py --out benchmarks/results/input_size_validation.json

The ImageNet GeM (``gem-imagenet-fp32``) at single input sizes (long side) and at averages of
several sizes (multi-scale GeM: the L2-normalised sum of the per-size descriptors), scored by
recall@1 on two validation sets that no evaluation set overlaps:

* ``ie-tower-validation``: frames of the IE Tower training floors (every 6th of the frames
  ``placekit-train gem`` skips; ``retrieval_eval.ie_tower_validation``); relevant = same area
  type in another clip, own clip excluded.
* ``pool``: the unlabelled landmark photos in ``shared/data/pool``, each querying all others;
  relevant = same collection.

Each descriptor set is scored raw (cosine) and PCA-whitened as a map would whiten it: each
query's capture clip (IE Tower) or the query itself (pool) is left out of the whitening it is
scored under, every other image is in it.
``landmarks_val`` and the other suite sets are never read here: sizes are picked on these
sets, then reported on the suite.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SIZES = (320, 400, 480, 560, 640, 720)
COMBOS = ((320, 480, 640), (400, 480, 560), (400, 560, 720), (480, 640), (400, 480, 560, 640))
MAX_PCA_DIM = 256


def describe_all(images: list[np.ndarray], sizes: tuple[int, ...], threads: int) -> dict[int, np.ndarray]:
    """Input size -> (N, D) descriptors of ``images`` by the default global model."""
    from placekit.inference.engine import open_engine
    from placekit.inference.extractors import GlobalExtractor
    from placekit.inference.catalog import resolve_model

    engine = open_engine(resolve_model("gem-imagenet-fp32"), threads=threads)
    out = {}
    for size in sizes:
        extractor = GlobalExtractor(engine)
        extractor.info = dataclasses.replace(engine.info, input_size=size)
        out[size] = np.stack([extractor.describe_bgr(im) for im in images])
    return out


def recall_at_1(x: np.ndarray, relevant: np.ndarray, exclude: np.ndarray | None, whiten: bool,
                units: np.ndarray | None = None) -> float:
    """Each row queries all others (never itself nor ``exclude``); mean hit@1 over rows with a
    relevant item. ``whiten``: each query's unit (its capture clip, or itself) is scored in a
    PCA-whitening fitted on all other rows, as a new photo meets a map whitened on its images."""
    from placekit.index.quantize import PCAWhitening

    n = len(x)
    blocked = np.eye(n, dtype=bool) | (exclude if exclude is not None else False)
    if whiten:
        units = np.arange(n) if units is None else units
        scores = np.empty((n, n), np.float32)
        for unit in np.unique(units):
            inside = units == unit
            pca = PCAWhitening.fit(x[~inside], min(MAX_PCA_DIM, int((~inside).sum()) - 1))
            scores[inside] = pca.apply(x[inside]) @ pca.apply(x).T
    else:
        scores = x @ x.T
    scores[blocked] = -np.inf
    has = relevant.any(1)
    return float(relevant[np.arange(n), scores.argmax(1)][has].mean())


def validation_sets(threads: int) -> dict[str, tuple[dict[int, np.ndarray], np.ndarray, np.ndarray | None]]:
    from placekit.inference.imageio import read_image
    from placekit_export.retrieval_eval import clip_of, ie_tower_validation

    ie = ie_tower_validation(DATA, stride=6)
    pool = sorted(p for p in DATA.glob("pool/*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    collection = np.array([p.parent.name for p in pool])
    pool_relevant = (collection[:, None] == collection[None]) & ~np.eye(len(pool), dtype=bool)
    return {
        "ie-tower-validation": (describe_all([read_image(p) for p in ie.database], SIZES, threads), ie.relevant,
                                ie.exclude, np.array([clip_of(p) for p in ie.database])),
        "pool": (describe_all([read_image(p) for p in pool], SIZES, threads), pool_relevant, None, None),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if not DATA.is_dir():
        print(f"input-size validation skipped: {DATA} is not present")
        return
    from placekit.index.quantize import l2_normalize

    sets = validation_sets(args.threads)
    rows = []
    for combo in [(s,) for s in SIZES] + list(COMBOS):
        row = {"sizes": list(combo)}
        for name, (by_size, relevant, exclude, units) in sets.items():
            x = l2_normalize(sum(by_size[s] for s in combo))
            row[name] = {"raw": recall_at_1(x, relevant, exclude, False),
                         "whitened": recall_at_1(x, relevant, exclude, True, units),
                         "queries": int(relevant.any(1).sum())}
        rows.append(row)
        print(combo, {k: v for k, v in row.items() if k != "sizes"}, flush=True)
    save(args.out, {"model": "gem-imagenet-fp32", "rows": rows})


if __name__ == "__main__":
    main()
