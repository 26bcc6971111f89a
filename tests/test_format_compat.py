"""Files written by earlier format versions keep opening (fixtures in tests/data)."""
import json
from pathlib import Path

import numpy as np

import placekit as pk
from placekit.placemap import PlaceMap

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
