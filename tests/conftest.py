"""Shared fixtures: tiny generated models, a rendered street dataset, a built map."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import thumbnail_model  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return thumbnail_model(tmp_path_factory.mktemp("models") / "tiny-thumb.onnx")


@pytest.fixture(scope="session")
def street(tmp_path_factory) -> Path:
    from placekit.tools.demo import write_dataset

    return write_dataset(tmp_path_factory.mktemp("street"), n_database=40, n_queries=12, n_foreign=6, seed=3)


@pytest.fixture(scope="session")
def street_map(tmp_path_factory, tiny_model, street) -> Path:
    import placekit as pk
    from placekit.ingest import read_locations_csv

    builder = pk.MapBuilder(pk.BuildOptions(model=str(tiny_model), match_radius_m=10.0))
    for name, loc in read_locations_csv(street / "database.csv").items():
        builder.add(street / "database" / name, loc, name)
    out = tmp_path_factory.mktemp("maps") / "street.pkmap"
    builder.build(out)
    return out


@pytest.fixture()
def live(tmp_path, street_map, tiny_model):
    """An open Localizer on a private copy of the street map (live edits allowed)."""
    import shutil

    import placekit as pk

    path = tmp_path / "live.pkmap"
    shutil.copy(street_map, path)
    loc = pk.Localizer.open(path, pk.LocalizerOptions(model=str(tiny_model)))
    yield loc
    loc.close()


def needs_shared_data():
    return pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"real data not present at {SHARED_DATA}")
