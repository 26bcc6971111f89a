"""Position priors and live map updates on an open Localizer."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import placekit as pk
from placekit.ingest import read_locations_csv


def test_prior_restricts_the_search_to_nearby_places(live, street):
    truth = read_locations_csv(street / "queries.csv")
    name, where = next(iter(truth.items()))
    centre = live.map.to_metric(where)
    result = live.localize(street / "queries" / name, prior=pk.Prior(where, radius_m=20.0))
    assert result.matches
    for m in result.matches:
        assert np.linalg.norm(live.map.to_metric(m.location)[:2] - centre[:2]) <= 20.0 + 1e-6
    far = pk.Location(lat=where.lat + 1.0, lon=where.lon)          # 111 km away: no places there
    empty = live.localize(street / "queries" / name, prior=pk.Prior(far, radius_m=50.0))
    assert empty.status == "unknown" and empty.matches == ()
    with pytest.raises(pk.LocationError, match="other kind"):
        live.localize(street / "queries" / name, prior=pk.Prior(pk.Location(x=0, y=0), 10.0))
    with pytest.raises(pk.LocationError):
        pk.Prior(where, radius_m=0.0)


def test_search_among_matches_a_full_search_over_the_same_ids(live):
    index = live.map.index
    rng = np.random.default_rng(0)
    q = rng.normal(size=index.dim_in).astype(np.float32)
    ids_all, scores_all = index.search(q, k=5)
    ids_sub, scores_sub = index.search_among(q, index.ids, k=5)
    assert np.array_equal(ids_all, ids_sub) and np.allclose(scores_all, scores_sub, atol=1e-5)
    some = index.ids[::3]
    ids_sub, _ = index.search_among(q, np.concatenate([some, [10**9]]), k=50)
    assert set(ids_sub) == set(some)


def test_add_remove_and_save_while_searching(live, street, tmp_path):
    query = street / "queries" / "q0003.jpg"
    where = read_locations_csv(street / "queries.csv")["q0003.jpg"]
    n0 = len(live.map.places)
    new_id = live.add_place(query, where, "added.jpg")
    first = live.localize(query).matches[0]
    assert first.place_id == new_id and first.name == "added.jpg" and first.score > 0.99
    with pytest.raises(pk.BuildError, match="already has"):
        live.add_place(query, where, "added.jpg")
    assert live.remove_place(new_id) and not live.remove_place(new_id)
    assert all(m.place_id != new_id for m in live.localize(query).matches)
    # concurrent: one thread adds places, two localize; nothing may raise
    errors = []

    def reader():
        try:
            for _ in range(15):
                live.localize(query)
        except Exception as exc:   # noqa: BLE001 - the test reports any escape
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(10):
        live.add_place(street / "queries" / f"q{i:04d}.jpg", where, f"live_{i}.jpg")
    live.remove_place(int(live.map.places.ids[0]))
    live.compact()
    for t in threads:
        t.join()
    assert not errors
    live.save()
    with pk.Localizer.open(live.source, live.options) as again:
        assert len(again.map.places) == n0 + 10 - 1
        assert again.localize(query).matches[0].name.startswith("live_")
        next_id = again.add_place(query, where, "after_reopen.jpg")
        assert next_id > max(int(i) for i in live.map.places.ids)
