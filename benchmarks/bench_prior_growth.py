"""Position priors (speed vs recall) and live map growth (recall as a map grows 10x past the
set its quantizers were trained on), on the real descriptors of the scale run.

    python benchmarks/bench_prior_growth.py --cache /tmp/scale_descriptors.npz \
        --out benchmarks/results/prior_growth.json

Needs the descriptor cache written by ``scale_run.py`` (100k real GeM descriptors of the
shared photos and their augmented crops + 1,000 held-out query crops). Photos are laid out on
a 100 m grid (a 5.6 km x 5.6 km district); a photo's crops share its position.

* priors: ``Localizer``'s search path with ``Prior(location, radius)`` centred on the query's
  true position plus an error of up to half the radius; search latency (spatial lookup +
  restricted scoring, one query at a time) and the share of queries whose top-1 is a crop of
  their own photo, against the unrestricted search.
* growth: a map trained on a random 10% of the places, then places added in steps up to all
  of them without retraining (``PlaceIndex.add``, what ``Localizer.add_place`` calls);
  recall@1 against exact search and own-photo@1 at each size, beside a map trained on all.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

GRID_M = 100.0
RADII = (None, 2000.0, 1000.0, 500.0, 200.0)


def grid(src: np.ndarray, side: int) -> np.ndarray:
    return np.stack([GRID_M * (src % side), GRID_M * (src // side), np.zeros(len(src))], axis=1)


def prior_tradeoff(db, db_src, q, q_src, side, threads) -> list[dict]:
    import placekit as pk

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.pkmap"
        builder = pk.MapBuilder(pk.BuildOptions(threads=threads))
        xyz = grid(db_src, side)
        for i, (d, p) in enumerate(zip(db, xyz)):
            builder.add_descriptor(d, pk.Location(x=p[0], y=p[1]), f"p{i:06d}")
        builder.build(path)
        q_xyz = grid(q_src, side)
        rng = np.random.default_rng(0)
        with pk.Localizer.open(path, pk.LocalizerOptions(threads=threads)) as loc:
            for radius in RADII:
                times, hits, candidates = [], [], []
                for d, s, true in zip(q, q_src, q_xyz):
                    prior = None
                    if radius is not None:
                        angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0, radius / 2)
                        centre = true + dist * np.array([np.cos(angle), np.sin(angle), 0.0])
                        prior = pk.Prior(pk.Location(x=centre[0], y=centre[1]), radius)
                    t = time.perf_counter()
                    ids, _ = loc._search(d, prior, 5)
                    times.append(time.perf_counter() - t)
                    hits.append(len(ids) > 0 and db_src[ids[0]] == s)
                    if prior is not None:
                        candidates.append(len(loc.map.places.within(loc.map.to_metric(prior.location), radius)))
                rows.append({"radius_m": radius, "search_ms_p50": float(np.median(times) * 1000),
                             "search_ms_p99": float(np.percentile(times, 99) * 1000),
                             "own_photo_at_1": float(np.mean(hits)),
                             "places_searched_median": float(np.median(candidates)) if candidates else float(len(db))})
                print("prior", rows[-1], flush=True)
    return rows


def growth(db, db_src, q, q_src, seed=0) -> list[dict]:
    from placekit.index.ivf import PlaceIndex, auto_recipe

    n = len(db)
    order = np.random.default_rng(seed).permutation(n)
    train_n = n // 10
    recipe = auto_recipe(n, db.shape[1])
    grown = PlaceIndex(recipe, db.shape[1])
    grown.train(db[order[:train_n]], seed=seed)
    full = PlaceIndex(recipe, db.shape[1])
    full.train(db, seed=seed)
    full.add(db, np.arange(n))
    rows, added = [], 0
    for size in (train_n, 2 * train_n, 5 * train_n, n):
        grown.add(db[order[added:size]], order[added:size])
        added = size
        rows.append(_recall_row(grown, f"trained on the first {train_n:,}, grown by add", size, db, db_src, q, q_src,
                                np.sort(order[:size])))
    rows.append(_recall_row(full, "trained on all", n, db, db_src, q, q_src, np.arange(n)))
    return rows


def _recall_row(index, label, size, db, db_src, q, q_src, live) -> dict:
    exact = live[np.argmax(index._transform(q) @ index._transform(db[live]).T, axis=1)]
    top1 = np.array([(lambda f: f[0] if len(f) else -1)(index.search(d, k=1)[0]) for d in q])
    row = {"places": int(size), "index": label, "recall_at_1_vs_exact": float(np.mean(top1 == exact)),
           "own_photo_at_1": float(np.mean(db_src[np.maximum(top1, 0)] == q_src))}
    print("growth", row, flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if not args.cache.is_file():
        print(f"skipped: no descriptor cache at {args.cache} (run scale_run.py --cache first)")
        return
    data = dict(np.load(args.cache))
    db, db_src, q, q_src = data["db"], data["db_src"], data["q"], data["q_src"]
    side = int(np.ceil(np.sqrt(int(db_src.max()) + 1)))
    result = {"places": int(len(db)), "queries": int(len(q)), "grid_m": GRID_M,
              "prior": prior_tradeoff(db, db_src, q, q_src, side, args.threads),
              "growth": growth(db, db_src, q, q_src)}
    save(args.out, result)


if __name__ == "__main__":
    main()
