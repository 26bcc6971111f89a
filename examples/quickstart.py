"""Build a map from a folder of photos + a locations CSV, then localize query photos.

    python examples/quickstart.py DATASET_DIR

DATASET_DIR holds database/, database.csv and queries/ (the layout ``placekit demo --workdir``
writes, and docs/data.md describes).
"""
import sys
from pathlib import Path

import placekit as pk
from placekit.ingest import read_locations_csv

root = Path(sys.argv[1])
builder = pk.MapBuilder(pk.BuildOptions(model=sys.argv[2] if len(sys.argv) > 2 else "default"))
for name, location in read_locations_csv(root / "database.csv").items():
    builder.add(root / "database" / name, location, name)
builder.build(root / "site.pkmap")

with pk.Localizer.open(root / "site.pkmap") as localizer:
    for query in sorted((root / "queries").iterdir()):
        result = localizer.localize(query)
        print(query.name, result.status, result.location, f"confidence {result.confidence:.2f}")
