"""Index benchmark: placekit's IVF-PQ (hnswlib coarse graph) against NumPy brute force,
hnswlib flat (float32), faiss IndexIVFPQ and faiss IndexHNSWFlat, on clustered 256-D
descriptors (``synthetic.py``). faiss is a benchmark peer only (pip install faiss-cpu).

    python benchmarks/bench_index.py --sizes 10000 100000 1000000 --queries 1000

For each size and method: recall@1 against exact search, single-query latency p50 / p99 (one
query at a time, one search thread for every method), bytes per vector held in RAM, and build
time (training + adding, all cores). Results: JSON (--out) and a Markdown table on stdout.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402
from synthetic import dataset  # noqa: E402

from placekit.index.ivf import PlaceIndex, SearchParams  # noqa: E402


def timed_queries(search, queries: np.ndarray) -> tuple[np.ndarray, list[float]]:
    top1, times = np.empty(len(queries), np.int64), []
    for i, q in enumerate(queries):
        t = time.perf_counter()
        top1[i] = search(q)
        times.append((time.perf_counter() - t) * 1000.0)
    return top1, times


def summary(name, top1, truth, times, bytes_per_vector, build_s, **extra) -> dict:
    return {"method": name, "recall_at_1": float((top1 == truth).mean()),
            "p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "bytes_per_vector": float(bytes_per_vector), "build_s": float(build_s), **extra}


def ours_ram_bytes(index: PlaceIndex, with_refine: bool) -> int:
    """Bytes a search reads: codes, ids, list offsets, centroid norms, the coarse graph (which
    holds the centroids), rotation and codebooks; plus the fp16 vectors when ``with_refine``.
    The separate centroid array is only read by ``add`` and stays memory-mapped."""
    lists = index.lists
    total = lists.ids.nbytes + lists.offsets.nbytes + (lists.codes.nbytes if lists.codes is not None else 0)
    for a in (index.centroid_sqnorms, index.rotation, index.pq.codebooks if index.pq else None):
        total += a.nbytes if a is not None else 0
    state = index.graph_state()
    if state is not None:
        total += state["data_level0"].nbytes + state["link_lists"].nbytes + state["element_levels"].nbytes
    if with_refine and lists.vectors is not None:
        total += lists.vectors.nbytes
    return total


def run_size(n: int, n_queries: int, methods: set[str]) -> list[dict]:
    xb, xq = dataset(n, n_queries)
    d = xb.shape[1]
    t = time.perf_counter()
    truth = np.concatenate([np.argmax(xq[s:s + 100] @ xb.T, axis=1) for s in range(0, len(xq), 100)])
    rows = []
    nlist = 2 ** int(round(math.log2(4 * math.sqrt(n))))
    nprobe = 16

    if "numpy" in methods:
        _, times = timed_queries(lambda q: int(np.argmax(xb @ q)), xq[:200])
        rows.append(summary("numpy brute force (float32)", truth[:200], truth[:200], times, d * 4, 0.0))

    if "hnswlib-flat" in methods:
        import hnswlib

        t = time.perf_counter()
        bf = hnswlib.BFIndex(space="ip", dim=d)
        bf.init_index(max_elements=n)
        bf.add_items(xb, np.arange(n))
        build = time.perf_counter() - t
        top1, times = timed_queries(lambda q: int(bf.knn_query(q, k=1)[0][0][0]), xq[:200])
        rows.append(summary("hnswlib BFIndex (flat float32)", top1, truth[:200], times, d * 4 + 8, build))
        del bf

    if methods & {"placekit", "placekit-norefine"}:
        t = time.perf_counter()
        recipe = f"OPQ,IVF{nlist}_HNSW64,PQ32,Refine"
        index = PlaceIndex(recipe, d, SearchParams(nprobe=nprobe, rerank=128, ef=128))
        index.train(xb)
        index.add(xb, np.arange(n))
        build = time.perf_counter() - t
        for rerank in (128, 0):
            if ("placekit" if rerank else "placekit-norefine") not in methods:
                continue
            top1, times = timed_queries(lambda q: int(index.search(q, k=1, rerank=rerank)[0][0]), xq)
            rows.append(summary(f"placekit {recipe} (rerank {rerank})", top1, truth, times,
                                ours_ram_bytes(index, False) / n, build, nprobe=nprobe, rerank=rerank,
                                refine_store_bytes_per_vector=index.lists.vectors.nbytes / n,
                                note="the fp16 re-rank vectors stay memory-mapped in the map file; they are "
                                     "not counted in RAM (see bench_map.py for measured resident memory)"))
        del index

    if methods & {"faiss-ivfpq", "faiss-hnsw"}:
        import faiss

        faiss.omp_set_num_threads(os.cpu_count() or 1)
        if "faiss-ivfpq" in methods:
            t = time.perf_counter()
            quant = faiss.IndexFlatL2(d)
            ivf = faiss.IndexIVFPQ(quant, d, nlist, 32, 8)
            ivf.train(xb[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)])
            ivf.add(xb)
            build = time.perf_counter() - t
            ivf.nprobe = nprobe
            faiss.omp_set_num_threads(1)
            top1, times = timed_queries(lambda q: int(ivf.search(q[None], 1)[1][0][0]), xq)
            size = faiss.serialize_index(ivf).nbytes
            rows.append(summary(f"faiss IndexIVFPQ (IVF{nlist},PQ32)", top1, truth, times, size / n, build,
                                nprobe=nprobe))
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            del ivf
        if "faiss-hnsw" in methods:
            t = time.perf_counter()
            hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = 40
            hnsw.add(xb)
            build = time.perf_counter() - t
            hnsw.hnsw.efSearch = 64
            faiss.omp_set_num_threads(1)
            top1, times = timed_queries(lambda q: int(hnsw.search(q[None], 1)[1][0][0]), xq)
            size = faiss.serialize_index(hnsw).nbytes
            rows.append(summary("faiss IndexHNSWFlat (M=32, efSearch=64)", top1, truth, times, size / n, build))
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            del hnsw
    for r in rows:
        r["n"] = n
    return rows


def markdown(rows: list[dict]) -> str:
    out = ["| N | method | recall@1 | p50 ms | p99 ms | bytes/vector in RAM | build s |",
           "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['n']:,} | {r['method']} | {r['recall_at_1']:.3f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} "
                   f"| {r['bytes_per_vector']:.1f} | {r['build_s']:.1f} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--methods", nargs="+", default=["numpy", "hnswlib-flat", "placekit", "placekit-norefine",
                                                     "faiss-ivfpq", "faiss-hnsw"])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    rows = []
    for n in args.sizes:
        rows += run_size(n, args.queries, set(args.methods))
        print(markdown([r for r in rows if r["n"] == n]), flush=True)
    save(args.out, {"results": rows})


if __name__ == "__main__":
    main()
