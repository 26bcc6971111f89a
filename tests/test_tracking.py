"""Tracker: the Bayes filter over places, driven by crafted observations on a real map."""
from __future__ import annotations

import numpy as np
import pytest

import placekit as pk
from placekit.types import Localization, Match


class ScriptedLocalizer(pk.Localizer):
    """A real map and model, but ``localize`` returns scores we script per frame:
    ``frame`` is a dict {place row: score}."""

    def localize(self, frame, prior=None, top_k=None):
        rows = np.array(sorted(frame, key=frame.get, reverse=True)[:top_k])
        places = self.map.places
        locs = self.map.location_of(rows)
        matches = tuple(Match(int(places.ids[r]), places.name(r), float(frame[r]), loc) for r, loc in zip(rows, locs))
        return Localization("localized", locs[0], 1.0, 0.9, matches, timings_ms={"total": 1.0})


@pytest.fixture()
def scripted(street_map, tiny_model):
    loc = ScriptedLocalizer.open(street_map, pk.LocalizerOptions(model=str(tiny_model)))
    yield loc
    loc.close()


def _obs(n_places, true_row, rng, good=0.9, noise=0.03, decoy=None):
    scores = {r: 0.5 + noise * rng.normal() for r in range(n_places)}
    scores[true_row] = good + noise * rng.normal()
    for r in (true_row - 1, true_row + 1):
        if 0 <= r < n_places:
            scores[r] = good - 0.05 + noise * rng.normal()
    if decoy is not None:
        scores[decoy] = scores[true_row] + 0.04          # a far look-alike wins the frame
    return scores


def _error_m(placemap, result, row):
    return float(np.linalg.norm(placemap.to_metric(result.location)[:2] - placemap.places.xyz[row][:2]))


def test_tracking_rides_out_look_alikes_that_fool_single_frames(scripted):
    rng = np.random.default_rng(0)
    n = len(scripted.map.places)
    tracker = pk.Tracker(scripted)
    single_ok = tracked_ok = 0
    for step in range(30):
        row = 5 + step // 3                                  # 7.5 m between places, ~2.5 m per frame
        decoy = n - 1 - row if step % 4 == 3 else None       # every 4th frame a far look-alike wins
        frame = _obs(n, row, rng, decoy=decoy)
        single_ok += max(frame, key=frame.get) == row
        result = tracker.track(frame, timestamp=0.1 * step)
        tracked_ok += result.status == "localized" and _error_m(scripted.map, result, row) < 10
    assert single_ok <= 23 and tracked_ok >= 28
    assert "track" in result.timings_ms and len(result.matches) == scripted.options.top_k


def test_tracking_recovers_after_a_kidnap(scripted):
    rng = np.random.default_rng(1)
    n = len(scripted.map.places)
    tracker = pk.Tracker(scripted)
    for step in range(10):
        tracker.track(_obs(n, 3 + step // 3, rng), timestamp=0.1 * step)
    recovered_after = None
    for k in range(15):                                       # carried to the other end of the street
        result = tracker.track(_obs(n, 35, rng), timestamp=1.0 + 0.1 * k)
        if result.status == "localized" and _error_m(scripted.map, result, 35) < 10:
            recovered_after = k + 1
            break
    assert recovered_after is not None and recovered_after <= 5


def test_tracking_says_unknown_off_the_map_and_odometry_moves_the_belief(scripted):
    rng = np.random.default_rng(2)
    n = len(scripted.map.places)
    low = scripted.map.calibration.unknown_threshold - 0.3
    tracker = pk.Tracker(scripted)
    for step in range(8):
        result = tracker.track({r: low + 0.01 * rng.normal() for r in range(n)}, timestamp=0.1 * step)
    assert result.status == "unknown" and result.location is None
    # odometry: flat observations, but the robot reports moving 7.5 m east per frame
    tracker.reset()
    tracker.track(_obs(n, 10, rng, noise=0.0), timestamp=0.0)
    flat = {r: 0.6 for r in range(n)}
    east = scripted.map.places.xyz[11] - scripted.map.places.xyz[10]
    for k in range(1, 4):
        result = tracker.track(flat, timestamp=0.1 * k, odometry=east)
    assert _error_m(scripted.map, result, 13) < 5
    with pytest.raises(pk.OptionsError, match="odometry"):
        tracker.track(flat, timestamp=1.0, odometry=[1.0])
    with pytest.raises(pk.OptionsError, match="backwards"):
        tracker.track(flat, timestamp=0.5)
    with pytest.raises(pk.OptionsError):
        pk.TrackerOptions(kidnap_probability=1.5)
