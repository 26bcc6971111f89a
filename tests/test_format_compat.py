"""Files written by earlier format versions keep opening (fixtures in tests/data)."""
import json
from pathlib import Path

import numpy as np

import placekit as pk
from placekit.mapfile.archive import FORMAT_VERSION
from placekit.mapfile.placemap import PlaceMap

DATA = Path(__file__).parent / "data"


def test_format_v1_fixture_opens_and_searches():
    m = PlaceMap.load(DATA / "map_v1.pkmap")
    try:
        assert m.manifest["format_version"] == 1 and m.user == {"fixture": "format v1"}
        assert m.index.ntotal == 24 and m.model["embedded"] and m.frame is not None
        q = json.loads((DATA / "map_v1_query.json").read_text())
        ids, scores = m.index.search(np.array(q["descriptor"], np.float32), k=1)
        assert m.places.name(int(m.places.rows(ids)[0])) == q["expected_name"]
    finally:
        m.close()


def test_format_v1_fixture_localizes_with_its_embedded_model():
    with pk.Localizer.open(DATA / "map_v1.pkmap") as loc:
        r = loc.localize(np.full((120, 160, 3), 100, np.uint8))
    assert r.status in ("localized", "ambiguous", "unknown")


def test_writers_ask_for_reader_2_only_when_a_map_uses_local_features(street_map, tmp_path, tiny_model):
    from posed_scene import K, views
    from placekit.geometry.rotation import matrix_to_quaternion

    m = PlaceMap.load(street_map)
    try:
        assert m.manifest["format_version"] == FORMAT_VERSION and m.manifest["min_reader_version"] == 1   # GeM only
    finally:
        m.close()
    builder = pk.MapBuilder(pk.BuildOptions(model=str(tiny_model), local_features="rootsift", max_keypoints=256))
    for i, (R, c, img) in enumerate(views(4, seed=0)):
        builder.add(img, pk.Location(x=c[0], y=c[1], z=c[2], rotation=matrix_to_quaternion(R),
                                     intrinsics=(K[0, 0], K[1, 1], K[0, 2], K[1, 2])), f"{i}.png")
    builder.build(tmp_path / "local.pkmap")
    m = PlaceMap.load(tmp_path / "local.pkmap")
    try:
        assert m.manifest["min_reader_version"] == 2 and m.pointmap is not None
    finally:
        m.close()


def test_format_v2_local_fixture_answers_as_the_version_that_wrote_it():
    """A map with local features and 3D points, written before the code moved into
    sub-packages (tests/data/make_map_v2.py at commit 019312f): same statuses, matches, inlier
    counts and positions as that version gave."""
    expected = json.loads((DATA / "map_v2_answers.json").read_text())
    # that version verified all five places: no early exit at a decisive one
    with pk.Localizer.open(DATA / "map_v2_local.pkmap", pk.LocalizerOptions(verify_early_exit=False)) as loc:
        got = [loc.localize(DATA / f"map_v2_q{i}.jpg").to_dict() for i in range(len(expected))]
    for want, have in zip(expected, got):
        assert have["status"] == want["status"]
        assert [m["place_id"] for m in have["matches"]] == [m["place_id"] for m in want["matches"]]
        assert [m["inliers"] for m in have["matches"]] == [m["inliers"] for m in want["matches"]]
        np.testing.assert_allclose([m["score"] for m in have["matches"]], [m["score"] for m in want["matches"]],
                                   atol=1e-4)
        for key in ("x", "y", "z"):
            assert abs(have["location"][key] - want["location"][key]) < 1e-3
        # the pose is solved from verification's own matches since the writing version (one
        # matching pass): the same position, a slightly different pose inlier count and so confidence
        assert abs(have["confidence"] - want["confidence"]) < 0.01
        assert (have["pose"] is None) == (want["pose"] is None)
