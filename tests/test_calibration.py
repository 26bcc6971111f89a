"""Map calibration on its own images, with and without capture groups."""
from __future__ import annotations

import numpy as np
import pytest

import placekit as pk
from placekit.decision.calibration import MIN_GROUP_POSITIVES, calibrate
from placekit.index.ivf import PlaceIndex


def _video_map(seed: int = 0):
    """20 places, each filmed by two clips of 5 frames. Frames of one clip are near-duplicates
    (cosine ~0.99); the other clip of the same place is about as far as other places are, as
    with an off-the-shelf descriptor indoors."""
    rng = np.random.default_rng(seed)
    dim, x, xyz, groups = 64, [], [], []
    common = rng.normal(size=dim)                      # what every view of the building shares
    for place in range(20):
        centre = common + rng.normal(size=dim)
        for clip in range(2):
            clip_centre = centre + 1.4 * rng.normal(size=dim)
            for _ in range(5):
                x.append(clip_centre + 0.1 * rng.normal(size=dim))
                xyz.append((100.0 * place, 0.0, 0.0))
                groups.append(f"p{place}c{clip}")
    x = np.array(x, np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = PlaceIndex("Flat", dim)
    index.train(x)
    index.add(x, np.arange(len(x)))
    return index, x, np.arange(len(x)), np.array(xyz), np.array(groups)


def test_groups_make_the_threshold_reflect_revisits_not_neighbouring_frames():
    index, x, ids, xyz, groups = _video_map()
    plain = calibrate(index, x, ids, xyz, 25.0, 0.9)
    grouped = calibrate(index, x, ids, xyz, 25.0, 0.9, groups=groups)
    assert grouped.stats["groups"] == "other groups only"
    # without groups the same-clip neighbour always wins: no wrong answers are ever seen and the
    # threshold only has to clear the impostors; another clip's view of the place is the real
    # test, and it fails sometimes, so the honest threshold is higher
    assert plain.stats["wrong_top1"] == 0 and grouped.stats["wrong_top1"] > 0
    assert plain.stats["recall_at_threshold"] > grouped.stats["recall_at_threshold"]
    assert grouped.unknown_threshold > plain.unknown_threshold


def test_one_group_falls_back_to_leave_one_out():
    index, x, ids, xyz, _ = _video_map()
    cal = calibrate(index, x, ids, xyz, 25.0, 0.9, groups=np.array(["drive"] * len(ids)))
    assert cal.stats["groups"].startswith("fell back") and str(MIN_GROUP_POSITIVES) in cal.stats["groups"]
    assert cal.unknown_threshold == pytest.approx(calibrate(index, x, ids, xyz, 25.0, 0.9).unknown_threshold)


def test_builder_passes_groups_and_accepts_descriptors(tmp_path, tiny_model):
    _, x, _, xyz, groups = _video_map()
    builder = pk.MapBuilder(pk.BuildOptions(model=str(tiny_model)))
    dim = builder.extractor.dim
    rng = np.random.default_rng(1)
    proj = rng.normal(size=(x.shape[1], dim)).astype(np.float32)
    for i, (v, p, g) in enumerate(zip(x @ proj, xyz, groups)):
        builder.add_descriptor(v, pk.Location(x=p[0], y=p[1]), f"f{i:03d}", group=g)
    with pytest.raises(pk.BuildError, match="descriptor must be"):
        builder.add_descriptor(np.zeros(dim + 1, np.float32), pk.Location(x=0, y=0), "bad")
    with pytest.raises(pk.BuildError, match="all zeros"):
        builder.add_descriptor(np.zeros(dim, np.float32), pk.Location(x=0, y=0), "zero")
    with pytest.raises(pk.BuildError, match="duplicate"):
        builder.add_descriptor(x[0] @ proj, pk.Location(x=0, y=0), "f000")
    assert len(builder) == len(x)
    info = builder.build(tmp_path / "m.pkmap")
    assert info.calibration["stats"]["groups"] == "other groups only"


def _one_road(seed: int = 0):
    """25 frames along one road (1 m apart): all share a strong 'road' component, neighbours
    are close; the index whitens on the map itself, as ``auto`` does for small maps. Photos
    of other places: unrelated unit vectors."""
    rng = np.random.default_rng(seed)
    dim, n = 128, 25
    road = 3.0 * rng.normal(size=dim)
    walk = np.cumsum(0.5 * rng.normal(size=(n, dim)), axis=0)
    x = (road + walk + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    xyz = np.stack([np.arange(n, dtype=float), np.zeros(n), np.zeros(n)], axis=1)
    index = PlaceIndex(f"PCAW{n - 1},Flat", dim)
    index.train(x)
    index.add(x, np.arange(n))

    def elsewhere(m, s):
        y = np.random.default_rng(s).normal(size=(m, dim)).astype(np.float32)
        return y / np.linalg.norm(y, axis=1, keepdims=True)
    return index, x, np.arange(n), xyz, elsewhere


def test_negatives_lift_the_threshold_above_what_other_places_score():
    index, x, ids, xyz, elsewhere = _one_road()
    plain = calibrate(index, x, ids, xyz, 5.0, 0.9)
    informed = calibrate(index, x, ids, xyz, 5.0, 0.9, negatives=elsewhere(60, 1))
    unseen = np.array([index.search(v, k=1)[1][0] for v in elsewhere(200, 2)])   # other places, not the negatives
    assert (unseen >= plain.unknown_threshold).mean() > 0.5          # the failure negatives are for
    assert informed.unknown_threshold > plain.unknown_threshold
    assert (unseen >= informed.unknown_threshold).mean() < 0.2
    assert informed.stats["negatives"] == 60 and informed.stats["negative_rejection"] >= 0.8
    assert "negatives" not in plain.stats


def test_builder_negatives_are_calibration_only(tmp_path, tiny_model):
    import cv2

    from placekit.tools.demo import render_view, render_world, street_location

    world, other = render_world(1), render_world(7)
    builder = pk.MapBuilder(pk.BuildOptions(model=str(tiny_model), match_radius_m=10.0))
    for i, s in enumerate(np.linspace(0.05, 0.95, 20)):
        lat, lon = street_location(float(s))
        builder.add(render_view(world, float(s), np.random.default_rng(i)), pk.Location(lat=lat, lon=lon), f"v{i}")
    for i in range(6):
        builder.add_negative(render_view(other, 0.1 + 0.15 * i, np.random.default_rng(50 + i)))
    path = tmp_path / "neg.jpg"
    cv2.imwrite(str(path), render_view(other, 0.5, np.random.default_rng(70)))
    builder.add_negative(path)
    with pytest.raises(pk.InvalidImageError):
        builder.add_negative(np.zeros((4, 4), np.float64))
    info = builder.build(tmp_path / "m.pkmap")
    assert info.places == 20 == len(builder)
    assert info.calibration["stats"]["negatives"] == 7
