"""City scale: a map of 10 million places built through the Ray path, searched on one device
with the process confined to 1 GiB of memory.

    python benchmarks/bench_scale_10m.py --places 10000000 --real /tmp/real_descriptors_30k.npz \
        --workdir /tmp/scale10m --out benchmarks/results/scale_10m.json

Data: clustered 256-D unit descriptors (``synthetic.py``'s mixture, one cluster per 100 places,
generated chunk by chunk inside the encoding tasks), plus real GeM descriptors of photos from
``shared/data`` and their augmented crops (``--real``: a cache written by ``scale_run.py``'s
``extract``), projected to 256-D by a PCA fitted on those database descriptors. Queries: 1,000 fresh draws of the
mixture and the real set's 1,000 query crops; exact search over all places is the truth.

Build (``--workers`` Ray workers on a local instance): the index (``OPQ,IVF<n>_HNSW64,PQ32,Refine``,
``n`` by ``auto_recipe``'s rule unless ``--nlist``; beyond 16,384 lists a two-level coarse
quantizer) trained in one task on the sample ``MapBuilder`` would take (``training_rows``)
(``placekit.index.build.train_index``), every chunk generated and encoded in a task
(``PlaceIndex.encode``), assembled once (``add_encoded``), then the places table (columnar
arrays) and the map file written by ``PlaceMap.save``.

Search, in a child process per setting, moved into a cgroup-v1 memory group limited to
``--memory-limit`` bytes after the page cache was dropped: open time, single-thread latency over
``--timing-queries`` queries, recall@1 of the index against exact search, bytes read from
storage per query (``/proc/self/io``), the group's peak memory (page cache included) and the
process's peak RSS. The fp16 re-rank vectors stay in the map file: every re-ranked candidate
is a read from storage unless it is still in the group's share of the page cache. Without a
memory cgroup (not root, cgroup v2 only) the limit is not applied and the JSON says so.

Peer in the same run: faiss ``IVF<n>_HNSW32,PQ32`` (the IVF-HNSW of Baranchuk et al., 32-byte
codes like ours, everything in RAM, no re-rank), trained on the same sample, same data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

DIM = 256
CHUNK = 65_536
SEED = 20261206
CENTRE_SEED = 12345
N_QUERIES = 1000
CGROUP = Path("/sys/fs/cgroup/memory/placekit_bench")


# --------------------------------------------------------------------------- data
def mixture(n_synthetic: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres (k, D) float32, spectrum (D,)) of the clustered mixture, k = n / 100."""
    k = max(n_synthetic // 100, 16)
    spectrum = (1.0 / np.sqrt(1.0 + np.arange(DIM) / 16.0)).astype(np.float32)
    centres = np.random.default_rng(CENTRE_SEED).normal(size=(k, DIM)).astype(np.float32) * spectrum
    return centres, spectrum


def draw(centres: np.ndarray, spectrum: np.ndarray, n: int, seed: tuple[int, ...]) -> np.ndarray:
    """n unit vectors of the mixture, from a seeded generator."""
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.normal(size=(n, DIM)).astype(np.float32) * spectrum
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def chunk_rows(n_synthetic: int, chunk: int) -> tuple[int, int]:
    start = chunk * CHUNK
    return start, min(CHUNK, n_synthetic - start)


class Data:
    """The database (synthetic chunks generated on demand + real rows at the end) and queries."""

    def __init__(self, n_places: int, real_path: Path | None):
        self.real = np.zeros((0, DIM), np.float32)
        self.real_queries = np.zeros((0, DIM), np.float32)
        if real_path is not None:
            cache = np.load(real_path)
            db, q = cache["db"].astype(np.float32), cache["q"].astype(np.float32)
            mean = db.mean(0)
            _, _, vt = np.linalg.svd(db - mean, full_matrices=False)
            project = vt[:DIM].T
            self.real = _unit((db - mean) @ project)
            self.real_queries = _unit((q - mean) @ project)
        self.n_synthetic = n_places - len(self.real)
        self.n = n_places
        self.centres, self.spectrum = mixture(self.n_synthetic)
        self.chunks = math.ceil(self.n_synthetic / CHUNK)
        self.queries = draw(self.centres, self.spectrum, N_QUERIES, (SEED, 1 << 30))

    def chunk(self, i: int) -> np.ndarray:
        _, size = chunk_rows(self.n_synthetic, i)
        return draw(self.centres, self.spectrum, size, (SEED, i))

    def training_sample(self, rows: int) -> np.ndarray:
        """The first synthetic chunks (iid draws, so a uniform sample of the mixture) and the real
        rows at the same sampling rate."""
        synthetic = np.concatenate([self.chunk(i) for i in range(min(self.chunks, math.ceil(rows / CHUNK)))])
        share = max(1, round(len(self.real) * len(synthetic) / max(self.n_synthetic, 1)))
        real = self.real[np.random.default_rng(SEED).choice(len(self.real), share, replace=False)] if len(
            self.real) else self.real
        return np.concatenate([synthetic, real])


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------- tasks
def encode_generated(data: Data, index, i: int):
    return index.encode(data.chunk(i))


def exact_best(data: Data, queries: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Best (score, id) of every query within synthetic chunk i."""
    scores = queries @ data.chunk(i).T
    best = np.argmax(scores, axis=1)
    return scores[np.arange(len(queries)), best], best + chunk_rows(data.n_synthetic, i)[0]


# --------------------------------------------------------------------------- build
def build(args, data: Data) -> dict:
    import functools

    from placekit.decision.calibration import Calibration
    from placekit.executors import RayExecutor
    from placekit.index.build import train_index
    from placekit.index.ivf import Recipe, SearchParams, default_nprobe
    from placekit.mapfile.placemap import PlaceMap
    from placekit.mapfile.places import PlaceTable

    nlist = args.nlist
    recipe = f"OPQ,IVF{nlist}_HNSW64,PQ32,Refine"
    out: dict = {"recipe": recipe, "places": data.n, "synthetic": data.n_synthetic, "real": len(data.real)}
    t0 = time.perf_counter()
    with RayExecutor("local", num_cpus=args.workers) as executor:
        t = time.perf_counter()
        sample = data.training_sample(train_rows(nlist))
        params = SearchParams(nprobe=default_nprobe(Recipe.parse(recipe)), rerank=128)
        index = executor.call(train_index, recipe, sample, params, 0)
        out["train_s"] = time.perf_counter() - t
        t = time.perf_counter()
        parts = executor.map(functools.partial(encode_generated, data, index), range(data.chunks), "encoding", True)
        if len(data.real):
            parts.append(index.encode(data.real))
        out["encode_s"] = time.perf_counter() - t
        t = time.perf_counter()
        index.add_encoded(np.arange(data.n, dtype=np.int64), parts)
        del parts
        out["assemble_s"] = time.perf_counter() - t
        t = time.perf_counter()
        queries = np.concatenate([data.queries, data.real_queries])
        best = executor.map(functools.partial(exact_best, data, queries), range(data.chunks), "exact search", True)
        scores = np.stack([b[0] for b in best])
        ids = np.stack([b[1] for b in best])
        truth = ids[np.argmax(scores, axis=0), np.arange(len(queries))]
        if len(data.real):
            real_scores = queries @ data.real.T
            better = real_scores.max(1) > scores.max(0)
            truth[better] = data.n_synthetic + np.argmax(real_scores[better], axis=1)
        out["exact_truth_s"] = time.perf_counter() - t
    t = time.perf_counter()
    xyz = np.zeros((data.n, 3))
    xyz[:, 0], xyz[:, 1] = (np.arange(data.n) % 4096) * 5.0, (np.arange(data.n) // 4096) * 5.0
    places = PlaceTable.create(np.arange(data.n), xyz, [f"p{i:08d}" for i in range(data.n)])
    out["places_table_s"] = time.perf_counter() - t
    t = time.perf_counter()
    model = {"name": "synthetic-256", "sha256": "0" * 64, "file": None, "path_hint": None, "info": {}}
    PlaceMap(model, {"kind": "gem", "dim": DIM}, index, places, None, Calibration()).save(args.map)
    out["write_s"] = time.perf_counter() - t
    out["build_s"] = time.perf_counter() - t0
    out["file_bytes"] = os.path.getsize(args.map)
    np.save(args.workdir / "queries.npy", queries)
    np.save(args.workdir / "truth.npy", truth)
    return out


def train_rows(nlist: int) -> int:
    """As ``MapBuilder`` samples: ``placekit.index.build.training_rows``."""
    from placekit.index.build import training_rows

    return training_rows(f"IVF{nlist}_HNSW64,PQ32")


def faiss_peer(data: Data, nlist: int, code_bytes: int, timing_queries: np.ndarray, truth: np.ndarray) -> dict:
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    t = time.perf_counter()
    index = faiss.index_factory(DIM, f"IVF{nlist}_HNSW32,PQ{code_bytes}", faiss.METRIC_INNER_PRODUCT)
    index.train(data.training_sample(train_rows(nlist)))
    for i in range(data.chunks):
        index.add(data.chunk(i))
    if len(data.real):
        index.add(data.real)
    build_s = time.perf_counter() - t
    faiss.extract_index_ivf(index).nprobe = 16
    faiss.omp_set_num_threads(1)
    top1, times = np.empty(len(timing_queries), np.int64), []
    for i, q in enumerate(timing_queries):
        t = time.perf_counter()
        top1[i] = index.search(q[None], 1)[1][0, 0]
        times.append((time.perf_counter() - t) * 1000)
    n_syn = min(N_QUERIES, len(truth))
    size = faiss.serialize_index(index).nbytes
    return {"method": f"faiss IVF{nlist}_HNSW32,PQ{code_bytes} (nprobe 16, in RAM)",
            "recall_at_1_synthetic": float((top1[:n_syn] == truth[:n_syn]).mean()),
            "recall_at_1_real": float((top1[N_QUERIES:len(truth)] == truth[N_QUERIES:]).mean())
            if len(truth) > N_QUERIES else None,
            "p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "bytes_per_place": size / data.n, "build_s": build_s}


# --------------------------------------------------------------------------- search (child process)
def confine(limit: int) -> str:
    """Drop the page cache and move this process into a memory cgroup of ``limit`` bytes."""
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        CGROUP.mkdir(exist_ok=True)
        (CGROUP / "memory.limit_in_bytes").write_text(str(limit))
        (CGROUP / "memory.max_usage_in_bytes").write_text("0")  # reset the peak
        (CGROUP / "cgroup.procs").write_text(str(os.getpid()))
        return "cgroup v1 memory.limit_in_bytes, page cache dropped first"
    except OSError as exc:
        return f"not confined ({exc})"


def read_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    return 0


def search_child(args) -> None:
    confinement = confine(args.memory_limit)
    from placekit.mapfile.placemap import PlaceMap

    queries, truth = np.load(args.workdir / "queries.npy"), np.load(args.workdir / "truth.npy")
    r0 = read_bytes()
    t = time.perf_counter()
    placemap = PlaceMap.load(args.map, verify=False)
    open_s = time.perf_counter() - t
    open_read = read_bytes() - r0
    index = placemap.index
    rng = np.random.default_rng(1)
    timing = np.concatenate([queries, draw(*mixture(args.n_synthetic), args.timing_queries, (SEED, 1 << 31))])
    timing = timing[:max(args.timing_queries, len(queries))]
    top1, times = np.empty(len(timing), np.int64), []
    r1 = read_bytes()
    for i in rng.permutation(len(timing)):
        t = time.perf_counter()
        ids, _ = index.search(timing[i], k=1, nprobe=args.nprobe, rerank=args.rerank)
        times.append((time.perf_counter() - t) * 1000)
        top1[i] = ids[0]
    per_query_read = (read_bytes() - r1) / len(timing)
    peak = None
    try:
        peak = int((CGROUP / "memory.max_usage_in_bytes").read_text())
    except OSError:
        pass
    status = Path("/proc/self/status").read_text()
    hwm = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) * 1024
    n_syn = min(N_QUERIES, len(truth))
    print(json.dumps({
        "nprobe": args.nprobe, "rerank": args.rerank, "confinement": confinement, "memory_limit_bytes": args.memory_limit,
        "open_s": open_s, "open_read_bytes": open_read, "queries_timed": len(timing),
        "p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
        "p50_ms_last_half": float(np.percentile(times[len(times) // 2:], 50)),
        "recall_at_1_synthetic": float((top1[:n_syn] == truth[:n_syn]).mean()),
        "recall_at_1_real": float((top1[N_QUERIES:len(truth)] == truth[N_QUERIES:]).mean())
        if len(truth) > N_QUERIES else None,
        "storage_read_bytes_per_query": per_query_read, "cgroup_peak_bytes": peak, "process_peak_rss_bytes": hwm,
    }))


def map_info_seconds(path: Path) -> dict:
    """``placekit map info`` in a fresh process (not confined): once after dropping the page
    cache, then twice warm."""
    cmd = [sys.executable, "-c", "from placekit.tools.cli import main; raise SystemExit(main())", "map", "info",
           str(path)]
    times = []
    for run in range(3):
        if run == 0:
            subprocess.run(["sync"], check=True)
            try:
                Path("/proc/sys/vm/drop_caches").write_text("1\n")
            except OSError:
                pass
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if done.returncode != 0:
            return {"failed": done.stderr[-500:]}
    return {"map_info_cold_s": times[0], "map_info_warm_s": float(np.median(times[1:]))}


def run_search(args, nprobe: int, rerank: int) -> dict:
    cmd = [sys.executable, __file__, "--search-child", "--map", str(args.map), "--workdir", str(args.workdir),
           "--nprobe", str(nprobe), "--rerank", str(rerank), "--memory-limit", str(args.memory_limit), "--timing-queries",
           str(args.timing_queries), "--n-synthetic", str(args.n_synthetic)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"nprobe": nprobe, "rerank": rerank, "failed": done.stderr[-2000:], "returncode": done.returncode}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from placekit.index.ivf import Recipe, auto_recipe

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--places", type=int, default=10_000_000)
    p.add_argument("--real", type=Path, default=None, help="real descriptors cache (scale_run.py extract)")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/scale10m"))
    p.add_argument("--map", type=Path, default=None)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--settings", nargs="+", default=["16/64", "32/64", "64/64", "64/128", "128/128"],
                   help="search settings NPROBE/RERANK, each measured in its own confined process")
    p.add_argument("--search-only", action="store_true", help="reuse the map, queries and truth in --workdir "
                   "(and the build figures of --out)")
    p.add_argument("--memory-limit", type=int, default=1 << 30)
    p.add_argument("--timing-queries", type=int, default=10_000)
    p.add_argument("--nlist", type=int, default=None, help="inverted lists (default: auto_recipe's rule)")
    p.add_argument("--faiss-codes", type=int, nargs="*", default=[32, 64], help="faiss peers' PQ code bytes")
    p.add_argument("--faiss-nlist", type=int, default=8192, help="faiss peers' inverted lists (its k-means over "
                   "65,536 lists takes hours on 2 cores)")
    p.add_argument("--map-info-only", action="store_true", help="only time `placekit map info` on --map and "
                   "store it in --out under map_info")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--search-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rerank", type=int, default=128, help=argparse.SUPPRESS)
    p.add_argument("--nprobe", type=int, default=16, help=argparse.SUPPRESS)
    p.add_argument("--n-synthetic", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.search_child:
        search_child(args)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.map = args.map or args.workdir / f"scale_{args.places}.pkmap"
    if args.map_info_only:
        result = json.loads(args.out.read_text())
        result["map_info"] = dict(map_info_seconds(args.map), command=" ".join(sys.argv))
        args.out.write_text(json.dumps(result, indent=1))
        print(result["map_info"])
        return
    args.nlist = args.nlist or Recipe.parse(auto_recipe(args.places, DIM)).nlist
    data = Data(args.places, args.real)
    args.n_synthetic = data.n_synthetic
    previous = json.loads(args.out.read_text()) if (args.search_only and args.out and args.out.is_file()) else {}
    result = {"build": previous["build"]} if args.search_only else {"build": build(args, data)}
    settings = [tuple(int(v) for v in s.split("/")) for s in args.settings]
    result["search"] = [run_search(args, nprobe, rerank) for nprobe, rerank in settings]
    result["map_info"] = map_info_seconds(args.map)
    queries, truth = np.load(args.workdir / "queries.npy"), np.load(args.workdir / "truth.npy")
    if args.search_only and "faiss" in previous and not args.faiss_codes:
        result["faiss"] = previous["faiss"]
    else:
        result["faiss"] = [faiss_peer(data, args.faiss_nlist, code, queries, truth) for code in args.faiss_codes]
    print(save(args.out, result))


if __name__ == "__main__":
    main()
