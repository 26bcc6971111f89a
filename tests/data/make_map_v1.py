"""Regenerate ``map_v1.pkmap`` and ``map_v1_query.json`` (format version 1 fixtures).

Run once per format version and commit the outputs; later versions must keep reading them:

    python tests/data/make_map_v1.py
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import placekit as pk  # noqa: E402
from placekit.ingest import read_locations_csv  # noqa: E402
from placekit.tools.demo import write_dataset  # noqa: E402
from tiny_models import thumbnail_model  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp) / "street", n_database=24, n_queries=2, n_foreign=0, seed=11)
        model = thumbnail_model(Path(tmp) / "tiny-thumb.onnx", seed=2)
        builder = pk.MapBuilder(pk.BuildOptions(model=str(model), embed_model=True, match_radius_m=10.0))
        for name, loc in read_locations_csv(root / "database.csv").items():
            builder.add(root / "database" / name, loc, name)
        builder.build(HERE / "map_v1.pkmap", user={"fixture": "format v1"})
        query = builder.extractor.describe(root / "database" / "d0007.jpg")
        (HERE / "map_v1_query.json").write_text(json.dumps({
            "descriptor": [float(v) for v in query], "expected_name": "d0007.jpg"}))


if __name__ == "__main__":
    main()
