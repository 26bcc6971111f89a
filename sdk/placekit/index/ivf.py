"""Place index: projection -> coarse inverted file searched with an hnswlib graph -> PQ codes
of residuals -> optional exact re-ranking with fp16 vectors. Or an exact (flat) mode.

An index is described by a recipe string, comma-separated, in pipeline order:

    ``PCAW256``        PCA-whitening to 256 dims (``PCA256``: rotation only, no whitening)
    ``OPQ``            learned rotation before product quantization
    ``IVF1024_HNSW64`` 1024 inverted lists; centroids searched with an hnswlib graph (M=64;
                       the default: smaller M leaves centroids of clustered data unreachable),
                       or exactly, by one product, up to ``EXACT_COARSE_MAX_LISTS`` lists;
                       beyond, through a two-level tree of centroids (no graph)
    ``PQ32``           32 one-byte sub-quantizer codes per vector
    ``Refine``         keep fp16 vectors for exact re-ranking of a shortlist
    ``Flat``           exact search over fp16 vectors (replaces IVF/PQ/Refine; tiny maps)

e.g. ``PCAW256,OPQ,IVF1024_HNSW64,PQ32,Refine`` or ``PCAW256,Flat``. ``auto`` picks one from
the number of training vectors (``auto_recipe``).

Scores are cosine similarities of the projected, L2-normalised vectors (approximated by the
inner product with the PQ reconstruction when no re-ranking runs). Searches are lock-free and thread-safe:
``add``/``remove``/``compact`` build new arrays and swap them in under a writer lock.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, replace
from typing import Any, Sequence

import hnswlib
import numpy as np

from placekit.errors import PlaceIndexError
from placekit.index.prefetch import prefetch_rows
from placekit.index.quantize import (
    CoarseTree,
    PCAWhitening,
    ProductQuantizer,
    adc_inner_products,
    assign,
    fit_opq,
    half_to_float,
    kmeans,
    l2_normalize,
    two_level_kmeans,
)
from placekit.options import SEARCH_PARAM_RANGES

_TOKEN_PATTERNS = {
    "pca": re.compile(r"^PCA(W?)(\d+)$"),
    "ivf": re.compile(r"^IVF(\d+)(?:_HNSW(\d+))?$"),
    "pq": re.compile(r"^PQ(\d+)$"),
}
MAX_TRAIN_COARSE_PER_LIST = 64
MAX_TRAIN_PQ = 65536
PRIOR_DIRECT_ROWS = 4096  # search_among scores up to this many rows directly
MAX_TRAIN_OPQ = 32768
# up to this many lists a query scores every centroid (measured at 8,192 x 256: 0.19 ms against
# 0.21 ms for the graph at ef 128, and the true neighbour's list among the 32 probed for 87.7%
# of queries against 85.6%). Larger coarse quantizers are a two-level tree (``CoarseTree``),
# used to train, assign and probe; maps written before it search theirs through the graph.
EXACT_COARSE_MAX_LISTS = 16384
TREE_ASSIGN_MIN_ROWS = 256  # fewer rows (live additions) are assigned exactly: cheap, and exact


@dataclass(frozen=True)
class Recipe:
    """Parsed index recipe; ``str(recipe)`` gives the canonical string back."""

    pca_dim: int = 0
    whiten: bool = True
    opq: bool = False
    nlist: int = 0
    hnsw_m: int = 64
    pq_m: int = 0
    refine: bool = False

    @property
    def flat(self) -> bool:
        return self.nlist == 0

    @classmethod
    def parse(cls, text: str) -> Recipe:
        tokens = [t.strip() for t in text.split(",") if t.strip()]
        if not tokens:
            raise PlaceIndexError("empty index recipe")
        fields: dict[str, object] = {}
        seen_flat = False
        for token in tokens:
            if m := _TOKEN_PATTERNS["pca"].match(token):
                fields.update(pca_dim=int(m.group(2)), whiten=m.group(1) == "W")
            elif token == "OPQ":
                fields["opq"] = True
            elif m := _TOKEN_PATTERNS["ivf"].match(token):
                fields.update(nlist=int(m.group(1)), hnsw_m=int(m.group(2) or 64))
            elif m := _TOKEN_PATTERNS["pq"].match(token):
                fields["pq_m"] = int(m.group(1))
            elif token == "Refine":
                fields["refine"] = True
            elif token == "Flat":
                seen_flat = True
            else:
                raise PlaceIndexError(
                    f"unknown token {token!r} in index recipe {text!r} (placekit recipes are not faiss "
                    "index_factory strings: docs/map-format.md)"
                )
        recipe = cls(**fields)  # type: ignore[arg-type]
        if seen_flat and (recipe.nlist or recipe.pq_m or recipe.refine or recipe.opq):
            raise PlaceIndexError(f"'Flat' excludes IVF, PQ, OPQ and Refine: {text!r}")
        if not seen_flat and not (recipe.nlist and recipe.pq_m):
            raise PlaceIndexError(f"recipe {text!r} needs either 'Flat' or both IVF and PQ")
        if min(recipe.pca_dim, 0) < 0 or recipe.nlist < 0 or recipe.hnsw_m < 2:
            raise PlaceIndexError(f"invalid numbers in recipe {text!r}")
        return recipe

    def __str__(self) -> str:
        parts = []
        if self.pca_dim:
            parts.append(f"PCA{'W' if self.whiten else ''}{self.pca_dim}")
        if self.flat:
            parts.append("Flat")
            return ",".join(parts)
        if self.opq:
            parts.append("OPQ")
        parts.append(f"IVF{self.nlist}_HNSW{self.hnsw_m}")
        parts.append(f"PQ{self.pq_m}")
        if self.refine:
            parts.append("Refine")
        return ",".join(parts)


LISTS_PER_SQRT_N = 4
FLAT_COARSE_MAX_LISTS = 8192  # auto_recipe's largest flat k-means coarse quantizer
TREE_LISTS_PER_SQRT_N = 16


def _power_of_two(x: float) -> int:
    return int(2 ** int(round(math.log2(x))))


def auto_recipe(n: int, dim: int) -> str:
    """A recipe for ``n`` training vectors of dimension ``dim``.

    Fewer than 16 vectors: exact search over the raw descriptors. Up to 20,000: exact search
    after PCA-whitening learned on the map itself (to at most ``n - 1`` dims; whitening removes
    the component all images share, which separates places from look-alikes). Beyond: IVF-PQ
    with OPQ and exact re-ranking, over 4 sqrt(n) inverted lists (a power of two) up to 8,192;
    where that rule would give more (from about 8.4M vectors), 16 sqrt(n) lists as a two-level
    tree (65,536 at 10M). Measured with ``benchmarks/bench_coarse_quantizer.py``: at 3M places
    8,192 flat lists reach the true neighbour's list as often as 32,768 tree lists at less
    cost per query; at 10M, 65,536 tree lists reach it for 97% of queries probing 32 of them
    (9k codes scanned) where 8,192 flat lists need 64 (140k codes) for 95%.
    """
    if n < 16:
        return "Flat"
    out = min(256, dim, n - 1)
    if n < 20000:
        return f"PCAW{out},Flat"
    nlist = _power_of_two(LISTS_PER_SQRT_N * math.sqrt(n))
    if nlist > FLAT_COARSE_MAX_LISTS:
        nlist = _power_of_two(TREE_LISTS_PER_SQRT_N * math.sqrt(n))
    pq_m = 32 if out % 32 == 0 else next(m for m in (16, 8, 4, 2, 1) if out % m == 0)
    return f"PCAW{out},OPQ,IVF{nlist}_HNSW64,PQ{pq_m},Refine"


DEFAULT_NPROBE = 16
LISTS_PER_PROBE = 1024  # coarse quantizers over 16 x this many lists probe one list in this many


def default_nprobe(recipe: Recipe) -> int:
    """Lists a query probes unless told otherwise: 16, or one in ``LISTS_PER_PROBE`` of a larger
    coarse quantizer (64 of 65,536: recall@1 0.98 / 0.95 of exact on the 10M benchmark's
    synthetic / real queries at a 4 ms p50 under 1 GiB, ``docs/scale.md``)."""
    return max(DEFAULT_NPROBE, recipe.nlist // LISTS_PER_PROBE)


@dataclass(frozen=True)
class SearchParams:
    """Search defaults, stored with the index. ``rerank``: shortlist re-ranked exactly."""

    k: int = 10
    nprobe: int = DEFAULT_NPROBE
    rerank: int = 128
    ef: int = 128

    def validated(self) -> SearchParams:
        for name, (lo, hi) in SEARCH_PARAM_RANGES.items():
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not lo <= value <= hi:
                raise PlaceIndexError(f"search parameter {name} must be an integer within {lo}..{hi}, got {value!r}")
        return self


@dataclass(frozen=True)
class InvertedLists:
    """Immutable snapshot of the stored vectors, rows grouped by inverted list."""

    offsets: np.ndarray  # (nlist + 1,) int64; flat mode: (2,)
    ids: np.ndarray  # (N,) int64
    codes: np.ndarray | None  # (N, M) uint8 (IVF mode)
    vectors: np.ndarray | None  # (N, D) float16 (flat mode, or Refine)
    deleted: np.ndarray | None  # (N,) bool, None when nothing is deleted

    @property
    def stored_codes(self) -> np.ndarray:
        """(N, M) codes; raises when this recipe stores none."""
        if self.codes is None:
            raise PlaceIndexError("this index stores no PQ codes")
        return self.codes

    @property
    def stored_vectors(self) -> np.ndarray:
        """(N, D) fp16 vectors; raises when this recipe stores none."""
        if self.vectors is None:
            raise PlaceIndexError("this index stores no vectors (no Flat or Refine in its recipe)")
        return self.vectors


@dataclass(frozen=True)
class EncodedRows:
    """What the index stores of N vectors, before they are placed in its lists: the inverted
    list of each (N,) int64 and PQ codes (N, M) uint8 (IVF recipes); fp16 vectors (N, D) (Flat
    recipes, or Refine)."""

    lists: np.ndarray | None
    codes: np.ndarray | None
    vectors: np.ndarray | None

    @property
    def rows(self) -> int:
        for a in (self.lists, self.codes, self.vectors):
            if a is not None:
                return len(a)
        return 0

    @property
    def stored_lists(self) -> np.ndarray:
        if self.lists is None:
            raise PlaceIndexError("these rows were encoded for a Flat index")
        return self.lists


class PlaceIndex:
    """See the module docstring. Vectors in are (N, d_in) float; ids are int64."""

    def __init__(self, recipe: str | Recipe, dim_in: int, params: SearchParams = SearchParams()):
        self.recipe = recipe if isinstance(recipe, Recipe) else Recipe.parse(recipe)
        if dim_in < 1:
            raise PlaceIndexError("index input dimension must be >= 1")
        self.dim_in = int(dim_in)
        self.params = params.validated()
        self.pca: PCAWhitening | None = None
        self.rotation: np.ndarray | None = None
        self.centroids: np.ndarray | None = None  # (nlist, D); read by train/add and exact probing
        self.centroid_sqnorms: np.ndarray | None = None  # (nlist,); search uses these instead
        self.pq: ProductQuantizer | None = None
        self._graph: Any = None  # hnswlib.Index of the coarse centroids (IVF recipes up to
        # EXACT_COARSE_MAX_LISTS lists, and larger ones from maps written before the tree)
        self.coarse_tree: CoarseTree | None = None  # larger IVF recipes
        self._write_lock = threading.Lock()
        self._lists = self._empty_lists()
        self.is_trained = False

    # ----------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        """Dimension of the stored (projected) vectors."""
        return self.pca.dim if self.pca is not None else self.dim_in

    @property
    def ntotal(self) -> int:
        """Number of live (not removed) vectors."""
        lists = self._lists
        n = len(lists.ids)
        return n - int(lists.deleted.sum()) if lists.deleted is not None else n

    @property
    def ids(self) -> np.ndarray:
        """Live ids, in storage order."""
        lists = self._lists
        return lists.ids if lists.deleted is None else lists.ids[~lists.deleted]

    @property
    def lists(self) -> InvertedLists:
        """The stored rows (ids, codes or vectors, deletion marks) as one consistent snapshot."""
        return self._lists

    def graph_state(self) -> dict | None:
        """The hnswlib coarse graph's serialization state (arrays and sizes), None without one."""
        return dict(self._graph.__getstate__()[0]) if self._graph is not None else None

    def restore_lists(self, lists: InvertedLists) -> None:
        """Install stored rows read from a map file (``placekit.index.persistence``); marks the
        index trained. The caller has set the projection, centroids and quantizer."""
        self._lists = lists
        self.is_trained = True

    def to_members(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(manifest section, {member name: array}) to store this index in a map file."""
        from placekit.index.persistence import index_to_members

        return index_to_members(self)

    def __reduce__(self) -> tuple[Any, tuple[dict, dict[str, np.ndarray], str]]:
        """Pickled as its map-file members, for handing a trained index to build tasks on other
        processes (``placekit.index.build``). Map files never hold pickles."""
        section, arrays = self.to_members()
        return PlaceIndex.from_members, (section, arrays, "a pickled index")

    @classmethod
    def from_members(cls, section: dict, arrays: dict[str, np.ndarray], source: str) -> PlaceIndex:
        """The index a map file stored (``to_members``); ``MapFormatError`` if malformed."""
        from placekit.index.persistence import index_from_members

        return index_from_members(section, arrays, source)

    # ----------------------------------------------------------------- training
    def train(self, x: np.ndarray, seed: int = 0) -> None:
        """Learn projection, rotation, coarse centroids and PQ codebooks from (N, d_in)."""
        x = self._check(x)
        r = self.recipe
        rng = np.random.default_rng(seed)
        if r.pca_dim:
            if r.pca_dim > self.dim_in:
                raise PlaceIndexError(f"PCA to {r.pca_dim} dims needs inputs of >= that dim ({self.dim_in})")
            if len(x) <= r.pca_dim:
                raise PlaceIndexError(
                    f"PCA{r.pca_dim} needs more than {r.pca_dim} training vectors, got {len(x)}; "
                    "use a smaller PCA or the 'Flat' recipe"
                )
            self.pca = PCAWhitening.fit(x, r.pca_dim, whiten=r.whiten)
        z = self._project(x)
        if not r.flat:
            if r.pq_m < 1 or self.dim % r.pq_m:
                raise PlaceIndexError(f"PQ{r.pq_m} needs the dimension ({self.dim}) to be a multiple of it")
            if len(z) < r.nlist:
                raise PlaceIndexError(f"IVF{r.nlist} needs >= {r.nlist} training vectors, got {len(z)}")
            if r.opq:
                self.rotation = fit_opq(_sample(z, MAX_TRAIN_OPQ, rng), r.pq_m, seed=seed)
                z = z @ self.rotation
            coarse_sample = _sample(z, MAX_TRAIN_COARSE_PER_LIST * r.nlist, rng)
            if r.nlist > EXACT_COARSE_MAX_LISTS:
                self.centroids, self.coarse_tree = two_level_kmeans(coarse_sample, r.nlist, iters=12, seed=seed)
            else:
                self.centroids = kmeans(coarse_sample, r.nlist, iters=12, seed=seed)
                self.set_graph(build_graph(self.centroids, r.hnsw_m))
            self.centroid_sqnorms = (self.centroids**2).sum(1)
            pq_sample = _sample(z, MAX_TRAIN_PQ, rng)
            residuals = pq_sample - self.centroids[self._coarse_assign(pq_sample)]
            self.pq = ProductQuantizer.fit(residuals, r.pq_m, seed=seed)
        empty = self._empty_lists()
        self._lists = replace(
            empty,
            codes=None if r.flat else np.zeros((0, r.pq_m), np.uint8),
            vectors=np.zeros((0, self.dim), np.float16) if (r.flat or r.refine) else None,
        )
        self.is_trained = True

    # ----------------------------------------------------------------- updates
    def add(self, x: np.ndarray, ids: np.ndarray) -> None:
        """Add (N, d_in) vectors under the given unique int64 ids (no retraining)."""
        self.add_encoded(ids, [self.encode(x)])

    def encode(self, x: np.ndarray) -> EncodedRows:
        """(N, d_in) vectors -> what the index stores of them (``add_encoded`` stores it). Reads
        only the trained quantizers, so chunks can be encoded in parallel, in other processes."""
        self._require_trained()
        z = self._transform(self._check(x))
        if self.recipe.flat:
            return EncodedRows(None, None, z.astype(np.float16))
        pq, centroids = self._quantizers()
        lists = self._coarse_assign(z)
        codes = pq.encode(z - centroids[lists])
        return EncodedRows(lists, codes, z.astype(np.float16) if self.recipe.refine else None)

    def add_encoded(self, ids: np.ndarray, parts: Sequence[EncodedRows]) -> None:
        """Store encoded rows (``encode``'s output, in order) under ``ids`` (their total count,
        unique int64, none already in the index), in one pass over the stored arrays."""
        self._require_trained()
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        n_new = sum(p.rows for p in parts)
        if len(ids) != n_new:
            raise PlaceIndexError(f"got {n_new} vectors but {len(ids)} ids")
        if len(np.unique(ids)) != len(ids):
            raise PlaceIndexError("ids to add must be unique")
        with self._write_lock:
            old = self._lists
            if np.isin(ids, old.ids).any():
                raise PlaceIndexError("some ids to add are already in the index")
            deleted = _concat_deleted(old.deleted, len(ids))
            if self.recipe.flat:
                vectors = _concat_parts(old.vectors, [p.vectors for p in parts], np.float16, self.dim)
                offsets = np.array([0, len(old.ids) + len(ids)], np.int64)
                self._lists = InvertedLists(offsets, np.concatenate([old.ids, ids]), None, vectors, deleted)
                return
            nlist = self.recipe.nlist
            old_lists = np.repeat(np.arange(nlist), np.diff(old.offsets))
            all_lists = np.concatenate([old_lists, *[p.stored_lists for p in parts]])
            order = np.argsort(all_lists, kind="stable")
            offsets = np.zeros(nlist + 1, np.int64)
            offsets[1:] = np.cumsum(np.bincount(all_lists, minlength=nlist))
            # each row's place in list order; rows are written there directly (one copy of
            # each array, not a concatenation and then a permuted copy: at 10M rows the fp16
            # vectors alone are 5 GB)
            dest = np.empty_like(order)
            dest[order] = np.arange(len(order))
            self._lists = InvertedLists(
                offsets,
                np.concatenate([old.ids, ids])[order],
                _scatter(old.codes, [p.codes for p in parts], dest),
                _scatter(old.vectors, [p.vectors for p in parts], dest) if self.recipe.refine else None,
                deleted[order] if deleted is not None else None,
            )

    def remove(self, ids: np.ndarray) -> int:
        """Mark ids as removed (searches skip them at once); returns how many were live."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        with self._write_lock:
            old = self._lists
            hit = np.isin(old.ids, ids)
            if old.deleted is not None:
                hit &= ~old.deleted
            n = int(hit.sum())
            if n:
                deleted = hit if old.deleted is None else (old.deleted | hit)
                self._lists = replace(old, deleted=deleted)
            return n

    def compact(self) -> None:
        """Drop removed rows physically."""
        with self._write_lock:
            old = self._lists
            if old.deleted is None:
                return
            keep = ~old.deleted
            if self.recipe.flat:
                offsets = np.array([0, int(keep.sum())], np.int64)
            else:
                lists = np.repeat(np.arange(self.recipe.nlist), np.diff(old.offsets))[keep]
                offsets = np.zeros(self.recipe.nlist + 1, np.int64)
                offsets[1:] = np.cumsum(np.bincount(lists, minlength=self.recipe.nlist))
            self._lists = InvertedLists(
                offsets,
                old.ids[keep],
                old.codes[keep] if old.codes is not None else None,
                old.vectors[keep] if old.vectors is not None else None,
                None,
            )

    # ----------------------------------------------------------------- search
    def search(
        self, query: np.ndarray, k: int | None = None, nprobe: int | None = None, rerank: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest ids of one (d_in,) query: (ids (k',) int64, scores (k',) float32), best
        first, k' = min(k, live vectors found). Parameters default to ``self.params``."""
        k, z = self._prepare_query(query, k)
        lists = self._lists
        if len(lists.ids) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self.recipe.flat:
            return self._search_flat(z, k, lists)
        return self._search_ivf(
            z, k, lists, nprobe or self.params.nprobe, self.params.rerank if rerank is None else rerank
        )

    def search_among(self, query: np.ndarray, ids: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Search restricted to ``ids`` (e.g. the places near a position prior): every listed
        live vector is scored: exactly in a Flat index; by ADC, then an exact re-rank of the
        best ``rerank``, in an IVF one (no coarse probing: the restriction replaces it). Same
        return as ``search``; ids not in the index are ignored. Cost grows with len(ids)."""
        k, z = self._prepare_query(query, k)
        lists = self._lists
        rows = _rows_of_ids(lists, np.asarray(ids, np.int64).reshape(-1))
        if lists.deleted is not None:
            rows = rows[~lists.deleted[rows]]
        if len(rows) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if self.recipe.flat:
            rows = np.unique(rows)
            scores = half_to_float(lists.stored_vectors[rows]) @ z
            best = _top_k(-scores, k)
            return lists.ids[rows[best]].astype(np.int64), scores[best].astype(np.float32)
        n = len(lists.ids)
        if len(rows) <= max(PRIOR_DIRECT_ROWS, n * self.params.nprobe // self.recipe.nlist):
            # few allowed rows: score them all (ADC + exact re-rank), no coarse probing
            rows = np.unique(rows)
            which = np.searchsorted(lists.offsets, rows, side="right") - 1
            pq, centroids = self._quantizers()
            centroid_ip = (centroids @ z)[which]
            scores = adc_inner_products(pq.inner_product_table(z), lists.stored_codes[rows]) + centroid_ip
            return self._finish_ivf(z, k, lists, rows, scores, self.params.rerank)
        # many: the usual probed search, probing as many more lists as the restriction thins them
        allowed = np.zeros(n, bool)
        allowed[rows] = True
        nprobe = int(np.ceil(self.params.nprobe * n / len(rows)))
        return self._search_ivf(z, k, lists, nprobe, self.params.rerank, allowed)

    def _prepare_query(self, query: np.ndarray, k: int | None) -> tuple[int, np.ndarray]:
        """Checked k and the (D,) projected query."""
        self._require_trained()
        k = self.params.k if k is None else int(k)
        if k < 1:
            raise PlaceIndexError("k must be >= 1")
        return k, self._transform(self._check(np.asarray(query).reshape(1, -1)))[0]

    def _search_flat(self, z, k, lists):
        scores = half_to_float(lists.vectors) @ z
        if lists.deleted is not None:
            scores[lists.deleted] = -np.inf
        rows = _top_k(-scores, k)
        rows = rows[np.isfinite(scores[rows])]
        return lists.ids[rows], scores[rows].astype(np.float32)

    def _search_ivf(self, z, k, lists, nprobe, rerank, allowed: np.ndarray | None = None):
        """Inner-product ADC on residual codes: score(x) ~ <z, c_list> + <z, r_hat>, one lookup
        table per query (vectors are unit norm, so ranking by inner product is ranking by
        distance up to the PQ error, which the exact re-ranking removes)."""
        nprobe = min(nprobe, self.recipe.nlist)
        probed, centroid_ip = self._probe(z, nprobe)
        starts, ends = lists.offsets[probed], lists.offsets[probed + 1]
        sizes = ends - starts
        if sizes.sum() == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        rows = _ranges(starts, sizes)
        row_centroid_ip = np.repeat(centroid_ip.astype(np.float32), sizes)
        # the probed lists' codes, copied list by list (contiguous slices: far cheaper than
        # gathering row by row, and on a memory-mapped map each list is one sequential read)
        stored = lists.stored_codes
        codes = np.concatenate([stored[s:e] for s, e in zip(starts.tolist(), ends.tolist())])
        if allowed is not None:
            keep = allowed[rows]
            rows, row_centroid_ip, codes = rows[keep], row_centroid_ip[keep], codes[keep]
        pq, _ = self._quantizers()
        scores = adc_inner_products(pq.inner_product_table(z), codes) + row_centroid_ip
        return self._finish_ivf(z, k, lists, rows, scores, rerank)

    def _probe(self, z: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``nprobe`` lists nearest to the (D,) query and its inner product with their
        centroids. Up to ``EXACT_COARSE_MAX_LISTS`` lists every centroid is scored (one
        matrix-vector product: as fast as the graph there, and exact); beyond, the two-level
        tree the index was trained with (``CoarseTree.probe``), or the hnswlib graph of maps
        written before the tree."""
        sqnorms = self.centroid_sqnorms
        if sqnorms is None:
            raise PlaceIndexError("the index is not trained")
        if self.coarse_tree is not None:
            _, centroids = self._quantizers()
            return self.coarse_tree.probe(z, centroids, sqnorms, nprobe)
        if self.recipe.nlist <= EXACT_COARSE_MAX_LISTS:
            _, centroids = self._quantizers()
            ip = np.asarray(centroids, np.float32) @ z
            probed = _top_k(sqnorms - 2.0 * ip, nprobe)  # nearest in L2, as the graph ranks them
            return probed.astype(np.int64), ip[probed]
        labels, sq_dist = self._graph.knn_query(z, k=nprobe)
        probed = labels[0].astype(np.int64)
        # <z, c> from the graph's squared L2 distance: |z - c|^2 = |z|^2 + |c|^2 - 2 <z, c>, |z| = 1
        return probed, (1.0 + sqnorms[probed] - sq_dist[0]) * 0.5

    def _finish_ivf(self, z, k, lists, rows, scores, rerank):
        """Shortlist by ADC score (removed rows skipped), exact re-rank when the index refines."""
        if lists.deleted is not None:
            scores[lists.deleted[rows]] = -np.inf
        shortlist = max(k, rerank) if (self.recipe.refine and rerank) else k
        best = _top_k(-scores, shortlist)
        best = best[np.isfinite(scores[best])]
        rows = rows[best]
        if self.recipe.refine and rerank:
            prefetch_rows(lists.stored_vectors, rows)  # start every storage read at once
            exact = half_to_float(lists.stored_vectors[rows]) @ z
            order = np.argsort(-exact, kind="stable")[:k]
            return lists.ids[rows[order]].astype(np.int64), exact[order]
        return lists.ids[rows[:k]].astype(np.int64), scores[best[:k]].astype(np.float32)

    # ----------------------------------------------------------------- helpers
    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim_in:
            raise PlaceIndexError(f"expected vectors of shape (N, {self.dim_in}), got {x.shape}")
        if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all():
            raise PlaceIndexError("vectors must be finite floats")
        return x.astype(np.float32, copy=False)

    def _empty_lists(self) -> InvertedLists:
        n_offsets = 2 if self.recipe.flat else self.recipe.nlist + 1
        return InvertedLists(np.zeros(n_offsets, np.int64), np.zeros(0, np.int64), None, None, None)

    def _require_trained(self) -> None:
        if not self.is_trained:
            raise PlaceIndexError("the index is not trained; call train() first")

    def _project(self, x: np.ndarray) -> np.ndarray:
        return self.pca.apply(x) if self.pca is not None else l2_normalize(x)

    def _transform(self, x: np.ndarray) -> np.ndarray:
        """(N, d_in) -> (N, D) in the space the codes and vectors live in."""
        z = self._project(x)
        return z @ self.rotation if self.rotation is not None else z

    def _coarse_assign(self, z: np.ndarray) -> np.ndarray:
        """(N,) inverted list of each (N, D) row: its nearest centroid (through the tree, when
        the index has one, for batches large enough to be worth it)."""
        if self.centroids is None:
            raise PlaceIndexError("the index has no coarse centroids (not trained, or a Flat recipe)")
        if self.coarse_tree is not None and self.centroid_sqnorms is not None and len(z) > TREE_ASSIGN_MIN_ROWS:
            return self.coarse_tree.assign(z, self.centroids, self.centroid_sqnorms)
        return assign(z, self.centroids)

    def _quantizers(self) -> tuple[ProductQuantizer, np.ndarray]:
        """(PQ, coarse centroids (nlist, D)) of a trained IVF index."""
        if self.pq is None or self.centroids is None:
            raise PlaceIndexError("the index is not trained (or its recipe has no IVF-PQ)")
        return self.pq, self.centroids

    def set_graph(self, graph) -> None:
        self._graph = graph
        graph.set_ef(max(self.params.ef, self.params.nprobe))


def build_graph(centroids: np.ndarray, m: int) -> hnswlib.Index:
    """hnswlib L2 graph over the coarse centroids, labelled 0..nlist-1."""
    graph = hnswlib.Index(space="l2", dim=centroids.shape[1])
    graph.init_index(max_elements=len(centroids), M=m, ef_construction=400, random_seed=0)
    graph.set_num_threads(1)
    graph.add_items(centroids, np.arange(len(centroids)))
    return graph


def _sample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= n else x[np.sort(rng.choice(len(x), n, replace=False))]


def _or_empty(a: np.ndarray | None, width: int, dtype) -> np.ndarray:
    return np.zeros((0, width), dtype) if a is None else np.asarray(a)


def _concat_parts(old: np.ndarray | None, parts: list[np.ndarray | None], dtype, width: int) -> np.ndarray | None:
    """``old`` rows followed by every part's (None when neither old nor the parts hold any)."""
    present = [p for p in parts if p is not None]
    if old is None and not present:
        return None
    return np.concatenate([_or_empty(old, width, dtype), *[np.asarray(p, dtype) for p in present]])


def _scatter(old: np.ndarray | None, parts: Sequence[np.ndarray | None], dest: np.ndarray) -> np.ndarray | None:
    """Rows of ``old`` then of each part, row i written to ``dest[i]``: ``concatenate(...)[order]``
    for ``dest`` the inverse of ``order``, without the intermediate copy. None when no rows
    are stored (old is None and no part has any)."""
    present = [np.asarray(p) for p in parts if p is not None]
    if old is None and not present:
        return None
    first = np.asarray(old) if old is not None else present[0]
    out = np.empty((len(dest), *first.shape[1:]), first.dtype)
    start = 0
    for block in ([np.asarray(old)] if old is not None else []) + present:
        out[dest[start : start + len(block)]] = block
        start += len(block)
    return out


def _concat_deleted(deleted: np.ndarray | None, n_new: int) -> np.ndarray | None:
    return None if deleted is None else np.concatenate([deleted, np.zeros(n_new, bool)])


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + n) for each (s, n), without a Python loop."""
    total = int(sizes.sum())
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
    return np.arange(total, dtype=np.int64) + offsets


def _rows_of_ids(lists: InvertedLists, ids: np.ndarray) -> np.ndarray:
    """Storage rows of the given ids (those present; repeated ids give repeated rows), sorted,
    through an id-sorted order cached on the snapshot (snapshots are immutable, so the cache
    never goes stale)."""
    order = lists.__dict__.get("_id_order")
    if order is None:
        order = np.argsort(lists.ids, kind="stable")
        object.__setattr__(lists, "_id_order", order)
    if len(order) == 0:
        return np.zeros(0, np.int64)
    pos = np.minimum(np.searchsorted(lists.ids[order], ids), len(order) - 1)
    found = lists.ids[order[pos]] == ids
    return np.sort(order[pos[found]])


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest values, sorted ascending."""
    if k >= len(values):
        return np.argsort(values, kind="stable")
    part = np.argpartition(values, k)[:k]
    return part[np.argsort(values[part], kind="stable")]
