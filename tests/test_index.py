"""PlaceIndex: recipes, recall against exact search, updates, edge cases, concurrency."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from placekit.errors import PlaceIndexError
from placekit.index.ivf import PlaceIndex, Recipe, SearchParams, auto_recipe
from placekit.index.quantize import l2_normalize


def clustered(n, d=64, clusters=100, seed=0, noise=0.35):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    return (centres[rng.integers(0, clusters, n)] + noise * rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.parametrize("text", ["Flat", "PCAW32,Flat", "PCA16,Flat", "IVF64_HNSW16,PQ8",
                                  "PCAW32,OPQ,IVF64_HNSW64,PQ8,Refine"])
def test_recipe_round_trip(text):
    assert str(Recipe.parse(text)) == text


@pytest.mark.parametrize("text", ["", "PQ8", "IVF64", "Flat,PQ8", "HNSW", "PCAW,Flat", "IVF64,PQ8,Bogus"])
def test_bad_recipes(text):
    with pytest.raises(PlaceIndexError):
        Recipe.parse(text)


def test_auto_recipe_scales_with_size():
    assert auto_recipe(10, 1280) == "Flat"
    assert auto_recipe(500, 1280) == "PCAW256,Flat"
    assert auto_recipe(50, 1280) == "PCAW49,Flat"
    assert auto_recipe(1_000_000, 1280).startswith("PCAW256,OPQ,IVF4096_HNSW64,PQ32")


def exact_top1(base, queries):
    b, q = l2_normalize(base), l2_normalize(queries)
    return np.argmax(q @ b.T, axis=1)


@pytest.mark.parametrize("recipe, min_recall", [
    ("Flat", 1.0), ("IVF64_HNSW16,PQ16,Refine", 0.95), ("OPQ,IVF64_HNSW16,PQ16", 0.6),
])
def test_recall_against_exact_search(recipe, min_recall):
    base = clustered(6000)
    queries = base[:200] + 0.1 * np.random.default_rng(9).normal(size=(200, 64)).astype(np.float32)
    index = PlaceIndex(recipe, 64, SearchParams(nprobe=8, rerank=32))
    index.train(base)
    index.add(base, np.arange(len(base)) + 1000)
    truth = exact_top1(base, queries) + 1000
    found = np.array([index.search(q, k=1)[0][0] for q in queries])
    assert (found == truth).mean() >= min_recall


def test_pca_whitened_flat_finds_itself():
    base = clustered(2000)
    index = PlaceIndex("PCAW32,Flat", 64)
    index.train(base)
    index.add(base, np.arange(2000))
    ids, scores = index.search(base[17], k=3)
    assert ids[0] == 17 and scores[0] == pytest.approx(1.0, abs=2e-3) and np.all(np.diff(scores) <= 0)


def test_k_larger_than_map_and_empty_map():
    base = clustered(300)
    index = PlaceIndex("IVF16_HNSW16,PQ8", 64)
    index.train(base)
    ids, scores = index.search(base[0], k=5)
    assert len(ids) == 0 and len(scores) == 0
    index.add(base[:3], np.array([5, 6, 7]))
    ids, _ = index.search(base[0], k=50, nprobe=16)
    assert sorted(ids.tolist()) == [5, 6, 7]


def test_add_remove_compact_without_retraining():
    base = clustered(3000)
    index = PlaceIndex("IVF32_HNSW16,PQ8,Refine", 64)
    index.train(base)
    index.add(base[:2000], np.arange(2000))
    codebooks = index.pq.codebooks.copy()
    index.add(base[2000:], np.arange(2000, 3000))
    assert index.ntotal == 3000 and np.array_equal(index.pq.codebooks, codebooks)
    assert index.search(base[2500], k=1, nprobe=32)[0][0] == 2500
    assert index.remove(np.array([2500, 2500, 99999])) == 1
    assert 2500 not in index.search(base[2500], k=10, nprobe=32)[0]
    assert index.ntotal == 2999
    index.compact()
    assert index.ntotal == 2999 and len(index.ids) == 2999 and 2500 not in index.ids
    assert index.search(base[10], k=1, nprobe=32)[0][0] == 10


def test_bad_updates_are_rejected():
    base = clustered(300)
    index = PlaceIndex("Flat", 64)
    with pytest.raises(PlaceIndexError, match="not trained"):
        index.add(base, np.arange(300))
    index.train(base)
    index.add(base[:10], np.arange(10))
    with pytest.raises(PlaceIndexError, match="already"):
        index.add(base[:1], np.array([3]))
    with pytest.raises(PlaceIndexError, match="unique"):
        index.add(base[:2], np.array([50, 50]))
    with pytest.raises(PlaceIndexError, match="shape"):
        index.add(base[:2, :10], np.array([60, 61]))
    with pytest.raises(PlaceIndexError, match="finite"):
        index.search(np.full(64, np.nan, np.float32))
    with pytest.raises(PlaceIndexError):
        PlaceIndex("IVF16_HNSW16,PQ7", 64).train(base)
    with pytest.raises(PlaceIndexError, match="training vectors"):
        PlaceIndex("PCAW256,Flat", 512).train(np.random.rand(100, 512).astype(np.float32))


def test_concurrent_search_while_adding():
    base = clustered(4000)
    index = PlaceIndex("IVF32_HNSW16,PQ8,Refine", 64)
    index.train(base)
    index.add(base[:1000], np.arange(1000))
    errors = []

    def searcher():
        try:
            for i in range(300):
                ids, _ = index.search(base[i % 1000], k=3, nprobe=32)
                assert len(ids) == 3
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    for s in range(1000, 4000, 500):
        index.add(base[s:s + 500], np.arange(s, s + 500))
    index.remove(np.arange(0, 100))
    for t in threads:
        t.join()
    assert not errors and index.ntotal == 3900


@pytest.mark.parametrize("allowed_share", [0.02, 0.5])
def test_search_among_an_ivf_index_is_as_good_as_a_full_search(allowed_share):
    """Few allowed ids are scored directly (ADC + re-rank: near exact); many go through masked
    probing with proportionally more lists, which should do as well as an unrestricted search."""
    base = clustered(6000)
    index = PlaceIndex("IVF64_HNSW32,PQ16,Refine", base.shape[1], SearchParams(nprobe=8, rerank=128))
    index.train(base)
    index.add(base, np.arange(len(base)))
    rng = np.random.default_rng(1)
    allowed = np.sort(rng.choice(len(base), int(allowed_share * len(base)), replace=False))
    index.remove(allowed[:3])
    live = allowed[3:]
    queries = clustered(60, seed=5)
    unit = l2_normalize(base)                     # the index ranks by cosine
    full = np.mean([index.search(q, k=1)[0][0] == np.argmax(unit @ q) for q in queries])
    hits = 0
    for q in queries:
        ids, scores = index.search_among(q, allowed, k=3)
        assert set(ids) <= set(live) and np.all(np.diff(scores) <= 1e-6)
        hits += ids[0] == live[np.argmax(unit[live] @ q)]
    assert hits / len(queries) >= (0.95 if allowed_share < 0.1 else full - 0.1)


def test_exact_and_graph_probing_agree_on_well_separated_lists(monkeypatch):
    """Small coarse quantizers are probed exactly, large ones through the hnswlib graph; both
    find the same lists where the nearest centroids are clear."""
    import placekit.index.ivf as ivf

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(32, 16)).astype(np.float32) * 4
    x = (centres[rng.integers(0, 32, 4000)] + rng.normal(size=(4000, 16)).astype(np.float32) * 0.2)
    index = ivf.PlaceIndex("IVF32_HNSW16,PQ4,Refine", 16, ivf.SearchParams(nprobe=4, rerank=32))
    index.train(x)
    index.add(x, np.arange(len(x)))
    exact = [index.search(q, k=5) for q in x[:50]]
    monkeypatch.setattr(ivf, "EXACT_COARSE_MAX_LISTS", 0)
    graph = [index.search(q, k=5) for q in x[:50]]
    for (ids_a, scores_a), (ids_b, scores_b) in zip(exact, graph):
        np.testing.assert_array_equal(ids_a, ids_b)
        np.testing.assert_allclose(scores_a, scores_b, atol=1e-5)


def _tree_index(monkeypatch, n=6000, nlist=256):
    """An IVF index large enough (with the threshold lowered) to be trained as a two-level tree."""
    import placekit.index.ivf as ivf

    monkeypatch.setattr(ivf, "EXACT_COARSE_MAX_LISTS", 64)
    base = clustered(n, d=32, clusters=300, seed=3)
    index = PlaceIndex(f"OPQ,IVF{nlist}_HNSW16,PQ8,Refine", 32, SearchParams(nprobe=16, rerank=64))
    index.train(base)
    index.add(base, np.arange(n))
    return index, base


def test_large_coarse_quantizers_are_a_tree_that_probes_like_exact_search(monkeypatch):
    index, base = _tree_index(monkeypatch)
    assert index.coarse_tree is not None and index.graph_state() is None
    tree = index.coarse_tree
    assert len(tree.parents) == 256 and np.all(np.diff(tree.parents) >= 0)
    z = index._transform(base[:300])
    centroids, sqnorms = index.centroids, index.centroid_sqnorms
    overlap = []
    for q in z:
        ids, ip = tree.probe(q, centroids, sqnorms, 16)
        np.testing.assert_allclose(ip, centroids[ids] @ q, rtol=1e-4, atol=1e-5)
        exact = np.argsort(sqnorms - 2.0 * centroids @ q)[:16]
        overlap.append(len(np.intersect1d(ids, exact)) / 16)
    assert np.mean(overlap) >= 0.97  # 16 parents here: the beam of 32 covers every child
    queries = base[:200] + 0.05 * np.random.default_rng(9).normal(size=(200, 32)).astype(np.float32)
    found = np.array([index.search(q, k=1)[0][0] for q in queries])
    assert (found == exact_top1(base, queries)).mean() >= 0.95


def test_tree_assignment_is_exact_with_a_full_beam_and_close_with_a_narrow_one(monkeypatch):
    from placekit.index.quantize import assign

    index, base = _tree_index(monkeypatch)
    z = index._transform(base[:2000])
    exact = assign(z, index.centroids)
    np.testing.assert_array_equal(index.coarse_tree.assign(z, index.centroids, index.centroid_sqnorms, beam=10_000), exact)
    assert (index.coarse_tree.assign(z, index.centroids, index.centroid_sqnorms, beam=4) == exact).mean() >= 0.8


def test_a_tree_index_survives_the_map_file_members_and_pickling(monkeypatch):
    import pickle

    from placekit.errors import MapFormatError

    index, base = _tree_index(monkeypatch)
    section, arrays = index.to_members()
    assert "index/coarse_parents.npy" in arrays and not any("graph" in name for name in arrays)
    for copy in (PlaceIndex.from_members(section, arrays, "test"), pickle.loads(pickle.dumps(index))):
        assert copy.coarse_tree is not None
        for q in base[:30]:
            np.testing.assert_array_equal(copy.search(q, k=5)[0], index.search(q, k=5)[0])
    broken = dict(arrays)
    broken["index/coarse_parents.npy"] = arrays["index/coarse_parents.npy"][::-1].copy()
    with pytest.raises(MapFormatError):
        PlaceIndex.from_members(section, broken, "test")


def test_children_are_shared_in_proportion_and_sum_to_k():
    from placekit.index.quantize import _children_per_parent, two_level_kmeans

    counts = np.array([100, 0, 3, 50, 1, 7])
    for k in (6, 20, 100, 161):
        children = _children_per_parent(counts, k)
        assert children.sum() == k and np.all(children <= counts) and np.all(children[counts > 0] >= 1)
    with pytest.raises(PlaceIndexError):
        two_level_kmeans(np.zeros((10, 4), np.float32), 20)


def test_default_nprobe_grows_with_large_coarse_quantizers():
    from placekit.index.ivf import default_nprobe

    assert default_nprobe(Recipe.parse("Flat")) == 16
    assert default_nprobe(Recipe.parse("IVF4096_HNSW64,PQ32")) == 16
    assert default_nprobe(Recipe.parse("IVF16384_HNSW64,PQ32")) == 16
    assert default_nprobe(Recipe.parse("IVF65536_HNSW64,PQ32")) == 64


def test_auto_recipe_turns_to_a_finer_tree_quantizer_only_beyond_8192_lists():
    def lists(n):
        return Recipe.parse(auto_recipe(n, 256)).nlist

    assert lists(1_000_000) == 4096 and lists(3_000_000) == 8192 and lists(8_000_000) == 8192
    assert lists(10_000_000) == 65536
