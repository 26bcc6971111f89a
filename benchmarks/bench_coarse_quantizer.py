"""Coarse quantizers for 10M places, compared without building a map: for each quantizer, the
share of queries whose true nearest neighbour lies in one of the ``nprobe`` probed lists
(coverage: an upper bound on recall@1 after re-ranking) against the codes a query scans
(the ADC cost), and the time to find the probed lists. Coverage is given with the database
assigned as the index assigns it (two-level: through the tree) and, for comparison, exactly;
the probed lists are the exact nearest centroids.

    python benchmarks/bench_coarse_quantizer.py --real /tmp/real_descriptors_30k.npz \
        --workdir /tmp/scale10m --out benchmarks/results/coarse_quantizer_10m.json

Data as ``bench_scale_10m.py`` (same generator, same queries; the truth is read from its
``--workdir`` when there, else computed). List sizes are estimated from the last 524,288 database
rows, which no quantizer trained on (samples are taken from the first rows). Quantizers: flat k-means (``quantize.kmeans``) and two-level
k-means (``quantize.two_level_kmeans``) at several list counts, each trained on its own sample.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale_10m import CHUNK, Data, exact_best  # noqa: E402
from provenance import save  # noqa: E402

SIZE_CHUNKS = 8  # list sizes from the last 8 full chunks of 65,536 rows, past every training sample
NPROBES = (8, 16, 32, 64, 128, 256, 512)


def truth_vectors(data: Data, workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(queries, their exact nearest neighbours' vectors)."""
    queries = np.concatenate([data.queries, data.real_queries])
    truth_path = workdir / "truth.npy"
    if truth_path.is_file():
        truth = np.load(truth_path)
    else:
        best = [exact_best(data, queries, i) for i in range(data.chunks)]
        scores, ids = np.stack([b[0] for b in best]), np.stack([b[1] for b in best])
        truth = ids[np.argmax(scores, axis=0), np.arange(len(queries))]
        if len(data.real):
            real_scores = queries @ data.real.T
            better = real_scores.max(1) > scores.max(0)
            truth[better] = data.n_synthetic + np.argmax(real_scores[better], axis=1)
    nn = np.zeros_like(queries)
    synthetic = truth < data.n_synthetic
    for chunk in np.unique(truth[synthetic] // CHUNK):
        rows = np.flatnonzero(synthetic & (truth // CHUNK == chunk))
        nn[rows] = data.chunk(int(chunk))[truth[rows] - chunk * CHUNK]
    nn[~synthetic] = data.real[truth[~synthetic] - data.n_synthetic]
    return queries, nn


def evaluate(name: str, centroids: np.ndarray, assign_fn, queries: np.ndarray, nn: np.ndarray,
             size_sample: np.ndarray, n_total: int, n_syn: int, tree=None) -> dict:
    import hnswlib

    from placekit.index.quantize import assign

    k = len(centroids)
    nn_list = assign_fn(nn)
    nn_exact = assign(nn, centroids)
    sizes = np.bincount(assign_fn(size_sample), minlength=k) * (n_total / len(size_sample))
    sq = (centroids**2).sum(1)
    order = np.argsort(sq[None, :] - 2.0 * queries @ centroids.T, axis=1)[:, : max(NPROBES)]
    tree_order = None
    if tree is not None:  # the lists the index probes: through the tree
        tree_order = np.stack([tree.probe(q, centroids, sq, max(NPROBES))[0] for q in queries])
    rows = []
    for nprobe in NPROBES:
        hit = (order[:, :nprobe] == nn_list[:, None]).any(1)
        hit_exact = (order[:, :nprobe] == nn_exact[:, None]).any(1)
        if tree_order is not None:
            hit_tree = (tree_order[:, :nprobe] == nn_list[:, None]).any(1)
            extra = {"coverage_synthetic_tree_probing": float(hit_tree[:n_syn].mean()),
                     "coverage_real_tree_probing": float(hit_tree[n_syn:].mean()) if len(hit) > n_syn else None}
        else:
            extra = {}
        scanned = sizes[order[:, :nprobe]].sum(1)
        rows.append({"nprobe": nprobe, "coverage_synthetic": float(hit[:n_syn].mean()),
                     "coverage_real": float(hit[n_syn:].mean()) if len(hit) > n_syn else None,
                     "coverage_synthetic_exact_assignment": float(hit_exact[:n_syn].mean()),
                     "codes_scanned_mean": float(scanned.mean()), "codes_scanned_p90": float(np.percentile(scanned, 90)),
                     **extra})
    # time to find the probed lists, single thread: exact scoring vs the hnswlib graph
    graph = hnswlib.Index(space="l2", dim=centroids.shape[1])
    graph.init_index(max_elements=k, M=64, ef_construction=200, random_seed=0)
    graph.set_num_threads(2)
    graph.add_items(centroids, np.arange(k))
    graph.set_num_threads(1)
    timing = {}
    for nprobe in (32, 128, 256):
        graph.set_ef(max(128, nprobe))
        t = time.perf_counter()
        labels, _ = graph.knn_query(queries[:500], k=nprobe, num_threads=1)
        graph_ms = (time.perf_counter() - t) * 1000 / 500
        agree = np.mean([len(np.intersect1d(a, b)) / nprobe for a, b in zip(labels, order[:500, :nprobe])])
        t = time.perf_counter()
        for q in queries[:200]:
            s = sq - 2.0 * (centroids @ q)
            np.argpartition(s, nprobe)[:nprobe]
        exact_ms = (time.perf_counter() - t) * 1000 / 200
        timing[str(nprobe)] = {"graph_ms": graph_ms, "graph_overlap_with_exact": float(agree), "exact_ms": exact_ms}
        if tree is not None:
            t = time.perf_counter()
            found = [tree.probe(q, centroids, sq, nprobe)[0] for q in queries[:200]]
            timing[str(nprobe)]["tree_ms"] = (time.perf_counter() - t) * 1000 / 200
            timing[str(nprobe)]["tree_overlap_with_exact"] = float(np.mean(
                [len(np.intersect1d(a, b)) / nprobe for a, b in zip(found, order[:200, :nprobe])]))
    return {"quantizer": name, "lists": k, "list_size_median": float(np.median(sizes)),
            "list_size_max": float(sizes.max()), "probing": rows, "probe_time": timing}


def main() -> None:
    from placekit.index.quantize import ASSIGN_BEAM, assign, kmeans, two_level_kmeans

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--places", type=int, default=10_000_000)
    p.add_argument("--real", type=Path, default=None)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/scale10m"))
    p.add_argument("--configs", nargs="+", default=["flat:8192:64", "two:16384:32", "two:32768:32", "two:65536:32"],
                   help="KIND:LISTS:ROWS_PER_LIST[:BEAM] (KIND flat or two; BEAM: top clusters searched to "
                   f"assign, default {ASSIGN_BEAM} as the index does)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    data = Data(args.places, args.real)
    t = time.perf_counter()
    queries, nn = truth_vectors(data, args.workdir)
    print(f"truth: {time.perf_counter() - t:.0f} s", flush=True)
    last_full = data.chunks - 1  # the last chunk may be short
    size_sample = np.concatenate([data.chunk(i) for i in range(last_full - SIZE_CHUNKS, last_full)])
    results = []
    for config in args.configs:
        kind, lists, per_list, *beam = config.split(":")
        k, rows = int(lists), int(lists) * int(per_list)
        beam = int(beam[0]) if beam else ASSIGN_BEAM
        sample = np.concatenate([data.chunk(i) for i in range(-(-rows // CHUNK))])[:rows]
        t = time.perf_counter()
        if kind == "flat":
            centroids = kmeans(sample, k, iters=12, seed=0)
            tree = None
            assign_fn = lambda x, c=centroids: assign(x, c)  # noqa: E731
        else:
            centroids, tree = two_level_kmeans(sample, k, iters=12, seed=0)
            sqnorms = (centroids**2).sum(1)
            assign_fn = lambda x, c=centroids, t=tree, b=beam, s=sqnorms: t.assign(x, c, s, beam=b)  # noqa: E731
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        assign_fn(size_sample[:65536])
        assign_rate = 65536 / (time.perf_counter() - t)
        r = evaluate(config, centroids, assign_fn, queries, nn, size_sample, data.n, len(data.queries),
                     tree if kind == "two" else None)
        r.update(train_s=train_s, training_rows=rows, assign_rows_per_s=assign_rate)
        print(r, flush=True)
        results.append(r)
    if args.out:
        print(save(args.out, {"places": data.n, "results": results}))


if __name__ == "__main__":
    main()
