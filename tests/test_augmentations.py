"""Training augmentations and the held-out dusk degradation (numpy + OpenCV only)."""
from __future__ import annotations

import numpy as np

from placekit_export.augmentations import TRAIN_HW, adverse_conditions, augment
from placekit_export.retrieval_eval import RetrievalSet, degraded_sets, dusk_lens


def textured(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(60, 200, (h, w, 3), dtype=np.uint8)


def test_augment_gives_a_training_crop():
    out = augment(textured(400, 600), np.random.default_rng(0))
    assert out.shape == (*TRAIN_HW, 3) and out.dtype == np.uint8


def test_adverse_conditions_keep_shape_and_are_seeded():
    img = textured()
    a = adverse_conditions(img, np.random.default_rng(3))
    b = adverse_conditions(img, np.random.default_rng(3))
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


def test_adverse_conditions_draw_each_failure_sometimes():
    """Over many draws: some views darker, some blurred (less high-frequency energy), some untouched."""
    img = textured()
    rng = np.random.default_rng(0)
    outs = [adverse_conditions(img, rng) for _ in range(64)]
    means = np.array([o.mean() for o in outs])
    detail = np.array([np.abs(np.diff(o.astype(np.float32), axis=1)).mean() for o in outs])
    base_detail = np.abs(np.diff(img.astype(np.float32), axis=1)).mean()
    assert (means < 0.8 * img.mean()).any() and (means > 0.95 * img.mean()).any()
    assert (detail < 0.5 * base_detail).any()
    assert any(np.array_equal(o, img) for o in outs)     # all four failures skipped: 1/16 of draws


def test_dusk_lens_darkens_blurs_and_occludes():
    img = textured(370, 1226)
    out = dusk_lens(img, np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert out.mean() < 0.6 * img.mean()
    flat = (out == 60).all(axis=2)   # the occluder's grey, untouched by noise
    assert flat.mean() > 0.15


def test_degraded_sets_keep_relevance_and_flag_their_queries():
    rs = RetrievalSet("kitti", ["a", "b"], ["c"], np.array([[True, False]]))
    (dusk,) = degraded_sets([rs])
    assert dusk.name == "kitti-dusk" and dusk.degraded_queries and not rs.degraded_queries
    assert dusk.database == rs.database and dusk.relevant is rs.relevant
