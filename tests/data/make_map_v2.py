"""Regenerate the format 2 fixtures: a map with local features and 3D points
(``map_v2_local.pkmap``), two query frames (``map_v2_q*.jpg``) and the answers the writing
version gave for them (``map_v2_answers.json``). Uses only the public API, so any version can
run it; the committed files were written by placekit 0.x at commit 019312f, before the code was
split into sub-packages, and later versions must answer the same:

    python tests/data/make_map_v2.py
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import cv2

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import placekit as pk  # noqa: E402
from posed_scene import K, views  # noqa: E402
from tiny_models import thumbnail_model  # noqa: E402


def quaternion(R):
    """(3, 3) world-to-camera rotation -> (w, x, y, z), via OpenCV (no placekit internals)."""
    import numpy as np
    w = np.sqrt(max(0.0, 1 + np.trace(R))) / 2
    x = np.copysign(np.sqrt(max(0.0, 1 + R[0, 0] - R[1, 1] - R[2, 2])) / 2, R[2, 1] - R[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] + R[1, 1] - R[2, 2])) / 2, R[0, 2] - R[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] - R[1, 1] + R[2, 2])) / 2, R[1, 0] - R[0, 1])
    return (float(w), float(x), float(y), float(z))


def answers(localizer: pk.Localizer, queries: list[Path]) -> list[dict]:
    out = []
    for q in queries:
        r = localizer.localize(q).to_dict()
        r.pop("timings_ms")
        out.append(r)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = thumbnail_model(Path(tmp) / "tiny-thumb.onnx", seed=2)
        builder = pk.MapBuilder(pk.BuildOptions(model=str(model), embed_model=True, local_features="rootsift",
                                                max_keypoints=256, match_radius_m=1.0))
        intrinsics = (K[0, 0], K[1, 1], K[0, 2], K[1, 2])
        for i, (R, c, img) in enumerate(views(6, seed=0)):
            builder.add(img, pk.Location(x=c[0], y=c[1], z=c[2], rotation=quaternion(R), intrinsics=intrinsics),
                        f"view{i}.png")
        builder.build(HERE / "map_v2_local.pkmap", user={"fixture": "format v2, local features"})
        queries = []
        for i, (_, _, img) in enumerate(views(2, seed=0, offset=0.3)):
            path = HERE / f"map_v2_q{i}.jpg"
            cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 85])
            queries.append(path)
        with pk.Localizer.open(HERE / "map_v2_local.pkmap") as loc:
            result = answers(loc, queries)
        (HERE / "map_v2_answers.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
