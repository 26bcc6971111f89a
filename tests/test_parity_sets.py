"""Parity gate details: tie-aware top-1 agreement, the parity image quotas and the calibration
folder (generated stand-in for shared/data, so these run on a fresh machine)."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

pytest.importorskip("torch", reason="export tests need torch (pip install 'placekit[train]')")

from placekit_export.onnx_export import retrieval_agreement  # noqa: E402
from placekit_export.calibration_images import calibration_set
from placekit_export.parity_images import parity_images  # noqa: E402


def _reference():
    """Five unit vectors: item 0's two nearest (1 at 0.900, 2 at 0.899) are a near tie; items
    1, 2 (-> 0), 3 (-> 4) and 4 (-> 3) have a clear nearest neighbour."""
    e = np.eye(6)
    return np.stack([e[0], 0.9 * e[0] + np.sqrt(1 - 0.81) * e[1], 0.899 * e[0] + np.sqrt(1 - 0.899 ** 2) * e[2],
                     e[3], 0.95 * e[3] + np.sqrt(1 - 0.9025) * e[4]])


def test_a_swapped_near_tie_is_reported_but_not_gated():
    ref = _reference()
    exported = ref.copy()
    exported[0] = ref[0] + 0.05 * np.eye(6)[2]
    exported[0] /= np.linalg.norm(exported[0])
    r = retrieval_agreement(ref, exported)
    assert r["decisive_items"] == 4
    assert r["top1_agreement"] == 1.0
    assert r["top1_agreement_all"] == pytest.approx(0.8)
    strict = retrieval_agreement(ref, exported, tie_margin=0.0)
    assert strict["top1_agreement"] == pytest.approx(0.8)


def test_a_decisive_flip_counts_against_agreement():
    ref = _reference()
    exported = ref.copy()
    exported[3] = ref[0]
    r = retrieval_agreement(ref, exported)
    assert r["decisive_items"] == 4
    assert r["top1_agreement"] == pytest.approx(0.75)


def _jpg(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (24, 32, 3), np.uint8))


@pytest.fixture()
def fake_shared(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data).mkdir()
    (data / "README.md").write_text("stand-in")
    seed = 0
    for scene in ("a", "b"):
        for i in range(3):
            _jpg(data / "strecha" / scene / "images" / f"{i:04d}.jpg", seed := seed + 1)
    rows = []
    for floor_range, floor in (("highrise", "floor20"), ("lowrise", "floor2")):
        for i in range(10):
            rel = f"processed_frames/{floor}/f_{i:03d}.jpg"
            _jpg(data / "ie_tower" / rel, seed := seed + 1)
            rows.append({"image_path": rel, "floor_range": floor_range})
    with open(data / "ie_tower" / "dataset.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["image_path", "floor_range"])
        w.writeheader()
        w.writerows(rows)
    for i in range(5):
        _jpg(data / "pool" / "place" / f"p{i}.jpg", seed := seed + 1)
    monkeypatch.setenv("PLACEKIT_SHARED_DATA", str(data))
    return data


def test_parity_quota_gives_a_small_source_all_it_has_and_the_rest_to_the_other(fake_shared):
    images, where = parity_images(n=12, sources=("strecha", "ie_tower"))
    assert len(images) == 12
    assert "6 strecha" in where and "6 ie_tower" in where
    images, where = parity_images(n=14, sources=("strecha", "ie_tower"))
    assert "6 strecha" in where and "8 ie_tower" in where


def test_calibration_set_is_outdoor_plus_non_held_out_indoor_and_disjoint_from_parity(fake_shared, tmp_path):
    from placekit.inference.engine import sha256_file

    written = calibration_set(tmp_path / "calib", n_outdoor=3, n_indoor=4)
    assert len(written) == 7
    assert sum(p.name.startswith("indoor_floor2_") for p in written) == 4
    assert not any("floor20" in p.name for p in written)
    calib = {sha256_file(p) for p in written}
    held = {sha256_file(p) for p in (fake_shared / "ie_tower" / "processed_frames" / "floor20").iterdir()}
    assert not calib & held
