"""Map calibration on its own images, with and without capture groups."""
from __future__ import annotations

import numpy as np
import pytest

import placekit as pk
from placekit.calibration import MIN_GROUP_POSITIVES, calibrate
from placekit.index import PlaceIndex


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
    assert info["calibration"]["stats"]["groups"] == "other groups only"
