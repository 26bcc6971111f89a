"""Held-out and validation splits of IE Tower (a generated dataset.csv, no images needed)."""
from __future__ import annotations

import csv

import numpy as np

from placekit_export.retrieval_eval import (HELDOUT_FLOOR_RANGE, ie_tower_heldout, ie_tower_rows, ie_tower_validation,
                                            paired_bootstrap, per_query_scores, retrieval_metrics)


def fake_ie_tower(tmp_path):
    rows = []
    for floor_range in ("lowrise", HELDOUT_FLOOR_RANGE, "midrise"):
        for clip in range(3):
            for frame in range(4):
                area = f"area{clip % 2}"
                rows.append({"image_path": f"f/{floor_range}_{area}_c{clip:03d}{floor_range}_frame_{frame:06d}.jpg",
                             "label": floor_range, "area": area, "floor_range": floor_range})
    (tmp_path / "ie_tower").mkdir()
    with open(tmp_path / "ie_tower" / "dataset.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return tmp_path


def test_validation_is_the_training_floors_frames_that_training_skips(tmp_path):
    data = fake_ie_tower(tmp_path)
    training = {data / "ie_tower" / r["image_path"]
                for r in [r for r in ie_tower_rows(data) if r["floor_range"] != HELDOUT_FLOOR_RANGE][::2]}
    val = ie_tower_validation(data)
    held = ie_tower_heldout(data)
    assert val.database and not set(val.database) & training
    assert not set(val.database) & set(held.database)
    assert len(val.database) + len(training) == 24
    # relevant: same area type, never the same clip
    assert not (val.relevant & val.exclude).any() and val.relevant.any()
    assert np.array_equal(val.exclude, val.exclude.T)


def test_per_query_scores_rank_and_skip_queries_without_relevant_items():
    db = np.eye(3, dtype=np.float32)
    queries = np.array([[0.9, 0.1, 0], [0, 0.2, 0.8], [1, 0, 0]], np.float32)
    relevant = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]], bool)   # query 2 has nothing relevant
    hit1, ap = per_query_scores(db, queries, relevant)
    assert list(hit1) == [False, True] and np.allclose(ap, [0.5, 1.0])
    exclude = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0]], bool)      # excluding the top item promotes the next
    assert retrieval_metrics(db, queries, relevant, exclude) == {"recall_at_1": 1.0, "mAP": 1.0, "queries": 2}


def test_paired_bootstrap_brackets_the_mean_difference_and_spans_zero_for_noise():
    rng = np.random.default_rng(1)
    a = rng.random(200)
    b = a + rng.normal(0.1, 0.05, 200)
    better = paired_bootstrap(a, b)
    assert better["low"] < better["mean"] < better["high"] and better["low"] > 0
    assert abs(better["mean"] - float((b - a).mean())) < 1e-12
    noise = paired_bootstrap(a, rng.permutation(a))
    assert noise["low"] < 0 < noise["high"]
