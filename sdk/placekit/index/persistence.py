"""Index <-> map-file members. Arrays go to ``index/*.npy``; scalars to the manifest's
``index`` section. The hnswlib graph is stored as its own arrays (its serialization state,
never pickled) and rebuilt from the centroids if that state cannot be restored."""

from __future__ import annotations

import hnswlib
import numpy as np

from placekit.errors import MapFormatError
from placekit.index.ivf import InvertedLists, PlaceIndex, Recipe, SearchParams, build_graph
from placekit.index.quantize import CoarseTree, PCAWhitening, ProductQuantizer

_GRAPH_ARRAYS = ("label_lookup_external", "label_lookup_internal", "element_levels", "data_level0", "link_lists")


def index_to_members(index: PlaceIndex) -> tuple[dict, dict[str, np.ndarray]]:
    lists = index.lists
    arrays: dict[str, np.ndarray] = {"index/ids.npy": lists.ids, "index/offsets.npy": lists.offsets}
    if lists.deleted is not None:
        arrays["index/deleted.npy"] = lists.deleted
    if lists.codes is not None:
        arrays["index/codes.npy"] = lists.codes
    if lists.vectors is not None:
        arrays["index/vectors.npy"] = lists.vectors
    if index.pca is not None:
        arrays["index/pca_mean.npy"] = index.pca.mean
        arrays["index/pca_projection.npy"] = index.pca.projection
    if index.rotation is not None:
        arrays["index/rotation.npy"] = index.rotation
    if index.centroids is not None and index.pq is not None and index.centroid_sqnorms is not None:
        arrays["index/centroids.npy"] = index.centroids
        arrays["index/centroid_sqnorms.npy"] = index.centroid_sqnorms
        arrays["index/pq_codebooks.npy"] = index.pq.codebooks
    if index.coarse_tree is not None:
        arrays["index/coarse_parents.npy"] = index.coarse_tree.parents
        arrays["index/coarse_top.npy"] = index.coarse_tree.top
    section = {
        "recipe": str(index.recipe),
        "dim_in": index.dim_in,
        "dim": index.dim,
        "search": {
            "k": index.params.k,
            "nprobe": index.params.nprobe,
            "rerank": index.params.rerank,
            "ef": index.params.ef,
        },
        "ntotal": index.ntotal,
    }
    state = index.graph_state()
    if state is not None:
        for key in _GRAPH_ARRAYS:
            arrays[f"index/graph_{key}.npy"] = np.asarray(state.pop(key))
        section["graph"] = state
    return section, arrays


def index_from_members(section: dict, arrays: dict[str, np.ndarray], source: str) -> PlaceIndex:
    try:
        search = SearchParams(**section["search"])
        index = PlaceIndex(Recipe.parse(section["recipe"]), int(section["dim_in"]), search)
        if "index/pca_mean.npy" in arrays:
            index.pca = PCAWhitening(arrays["index/pca_mean.npy"], arrays["index/pca_projection.npy"])
        index.rotation = arrays.get("index/rotation.npy")
        r = index.recipe
        n = len(arrays["index/ids.npy"])
        codes: np.ndarray | None = None
        vectors: np.ndarray | None
        if r.flat:
            vectors = arrays["index/vectors.npy"]
            _expect(vectors.shape == (n, index.dim) and vectors.dtype == np.float16, "vectors")
        else:
            centroids, sqnorms = arrays["index/centroids.npy"], arrays["index/centroid_sqnorms.npy"]
            pq = ProductQuantizer(arrays["index/pq_codebooks.npy"])
            codes = arrays["index/codes.npy"]
            _expect(sqnorms.shape == (r.nlist,), "centroid_sqnorms")
            _expect(centroids.shape == (r.nlist, index.dim), "centroids")
            _expect(pq.codebooks.shape[0] == r.pq_m and pq.m * pq.dsub == index.dim, "codebooks")
            _expect(codes.shape == (n, r.pq_m) and codes.dtype == np.uint8, "codes")
            vectors = arrays.get("index/vectors.npy")
            _expect(not r.refine or (vectors is not None and vectors.shape == (n, index.dim)), "vectors")
            index.centroids, index.centroid_sqnorms, index.pq = centroids, sqnorms, pq
            if "index/coarse_parents.npy" in arrays:
                index.coarse_tree = _coarse_tree(arrays, r.nlist, index.dim)
            else:
                index.set_graph(_restore_graph(section.get("graph"), arrays, centroids, r.hnsw_m))
        offsets = arrays["index/offsets.npy"]
        _expect(offsets.shape == ((r.nlist if not r.flat else 1) + 1,), "offsets")
        _expect(offsets[0] == 0 and offsets[-1] == n and bool(np.all(np.diff(offsets) >= 0)), "offsets")
        deleted = arrays.get("index/deleted.npy")
        _expect(deleted is None or deleted.shape == (n,), "deleted")
        _expect(index.pca is None or index.pca.projection.shape == (index.dim_in, index.dim), "projection")
        _expect(index.rotation is None or index.rotation.shape == (index.dim, index.dim), "rotation")
        index.restore_lists(InvertedLists(offsets, arrays["index/ids.npy"], codes, vectors, deleted))
        return index
    except MapFormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MapFormatError(f"{source}: invalid index section ({type(exc).__name__}: {exc})") from exc


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise MapFormatError(f"index member '{what}' has an unexpected shape or type")


def _coarse_tree(arrays: dict[str, np.ndarray], nlist: int, dim: int) -> CoarseTree:
    parents, top = arrays["index/coarse_parents.npy"], arrays["index/coarse_top.npy"]
    _expect(parents.shape == (nlist,) and parents.dtype == np.int64, "coarse_parents")
    _expect(top.ndim == 2 and top.shape[1] == dim and top.dtype == np.float32 and 0 < len(top) <= nlist, "coarse_top")
    _expect(bool(np.all(np.diff(parents) >= 0)) and parents[0] >= 0 and parents[-1] < len(top), "coarse_parents")
    return CoarseTree(parents, top)


def _restore_graph(state: dict | None, arrays: dict[str, np.ndarray], centroids: np.ndarray, m: int):
    if state is not None and all(f"index/graph_{k}.npy" in arrays for k in _GRAPH_ARRAYS):
        full = dict(state)
        for key in _GRAPH_ARRAYS:
            full[key] = arrays[f"index/graph_{key}.npy"]  # hnswlib copies it into its own memory
        # every size hnswlib allocates from must match the centroids: a crafted max_elements of
        # 1e12 (valid checksums) would otherwise allocate before anything is checked
        ok = (
            full.get("dim") == centroids.shape[1]
            and full.get("cur_element_count") == len(centroids)
            and full.get("max_elements") == len(centroids)
            and len(full["data_level0"]) == full.get("cur_element_count", -1) * full.get("size_data_per_element", -1)
        )
        if ok:
            try:
                graph = hnswlib.Index.__new__(hnswlib.Index)
                graph.__setstate__((full,))
                graph.set_num_threads(1)
                return graph
            except (RuntimeError, TypeError, ValueError):
                pass
    return build_graph(np.asarray(centroids, np.float32), m)
