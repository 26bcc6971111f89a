"""Two-view matching helpers: mutual nearest neighbours, ratio test, USAC verification."""
from __future__ import annotations

import cv2
import numpy as np

from placekit.local.matching import mutual_matches, root_sift, sift_features, verified_inliers


def test_mutual_matches_keep_distinct_pairs_and_drop_ambiguous_ones():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 16)).astype(np.float32)
    perm = rng.permutation(50)
    b = a[perm] + 0.01 * rng.normal(size=(50, 16)).astype(np.float32)
    m = mutual_matches(a, b)
    assert len(m) == 50 and (perm[m[:, 1]] == m[:, 0]).all()
    step = 0.1 * rng.normal(size=(1, 16)).astype(np.float32)
    twins = np.concatenate([a[:1] + step, a[:1] - step, a[1:2]])   # two equally good candidates
    assert len(mutual_matches(a[:2], twins)) == 1                  # a[0] fails the ratio test, a[1] matches
    assert mutual_matches(a[:1], b).shape == (0, 2)


def test_verified_inliers_find_a_homography_among_outliers():
    rng = np.random.default_rng(1)
    xy1 = rng.uniform(0, 500, size=(200, 2)).astype(np.float32)
    H = np.array([[1.1, 0.05, 10], [-0.03, 0.95, 5], [1e-4, 0, 1]])
    xy2 = cv2.perspectiveTransform(xy1[None], H)[0].astype(np.float32)
    xy2[150:] = rng.uniform(0, 500, size=(50, 2))        # 25% wrong matches
    matches = np.stack([np.arange(200), np.arange(200)], 1)
    mask = verified_inliers(xy1, xy2, matches, model="homography")
    assert mask[:150].mean() > 0.95 and mask[150:].mean() < 0.1
    assert not verified_inliers(xy1[:5], xy2[:5], matches[:5]).any()


def test_sift_features_on_texture_and_on_a_blank_image():
    rng = np.random.default_rng(2)
    img = cv2.GaussianBlur((rng.uniform(size=(240, 320)) * 255).astype(np.uint8), (0, 0), 2)
    xy, desc = sift_features(img, 300)
    assert 0 < len(xy) <= 300 and desc.shape == (len(xy), 128)
    assert np.allclose(np.linalg.norm(desc, axis=1), 1, atol=1e-4)
    xy, desc = sift_features(np.zeros((100, 100), np.uint8))
    assert xy.shape == (0, 2) and desc.shape == (0, 128)
    assert np.allclose(root_sift(np.ones((1, 4))), 0.5)
