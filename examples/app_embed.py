"""The smallest useful embedding: one map file, one photo, one answer.

    python examples/app_embed.py SITE.pkmap PHOTO.jpg
"""
import sys

import placekit as pk

with pk.Localizer.open(sys.argv[1]) as localizer:
    result = localizer.localize(sys.argv[2])          # a path, or an (H, W, 3) uint8 BGR array
if result.status == "localized":
    print(f"at {result.location} (+/- {result.uncertainty_m:.0f} m, confidence {result.confidence:.2f})")
else:
    print(f"{result.status}: not sure where this is")
