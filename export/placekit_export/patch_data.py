"""Patch pairs for HardNet from real images, and HPatches evaluation pairs.

* ``strecha_pairs``: SIFT keypoints matched between views of one Strecha scene (ratio test),
  kept only when the ground-truth cameras agree (symmetric epipolar distance < 1 px). Each
  side keeps its own detected scale and orientation, so patches carry real detector noise.
* ``homography_pairs``: keypoints of a real photo and of a random homography + photometric
  warp of it, the warped keypoint's scale and angle following the local affine of the warp.
* ``sfm_track_pairs``: two observations of one 3D point of a pycolmap reconstruction
  (``placekit_export.sfm``), each with COLMAP's detected scale and orientation.
* ``hpatches_pairs``: ground-truth pairs from HPatches sequences (image 1 -> k), for
  evaluation only.

All patches are cut by ``placekit.local.patches.cut_patches``, the runtime's own patch cutter.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from placekit.inference.imageio import list_images, read_image
from placekit.local.patches import cut_patches, keypoints_array

MAX_KEYPOINTS = 1500


def gray(path: Path) -> np.ndarray:
    return cv2.cvtColor(read_image(path), cv2.COLOR_BGR2GRAY)


def read_strecha_camera(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K (3, 3), R (3, 3) camera-to-world rotation, C (3,) centre; projection x ~ K R^T (X - C)."""
    rows = [list(map(float, line.split())) for line in path.read_text().splitlines() if line.strip()]
    return np.array(rows[0:3]), np.array(rows[4:7]), np.array(rows[7])


def fundamental(cam1, cam2) -> np.ndarray:
    (k1, r1, c1), (k2, r2, c2) = cam1, cam2
    r = r2.T @ r1
    t = r2.T @ (c1 - c2)
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    return np.linalg.inv(k2).T @ tx @ r @ np.linalg.inv(k1)


def epipolar_distance(f: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Symmetric point-to-epipolar-line distance in pixels, (N,)."""
    h1 = np.c_[p1, np.ones(len(p1))]
    h2 = np.c_[p2, np.ones(len(p2))]
    l2 = h1 @ f.T
    l1 = h2 @ f
    num = np.abs((h2 * l2).sum(1))
    return 0.5 * (num / np.hypot(l2[:, 0], l2[:, 1]) + num / np.hypot(l1[:, 0], l1[:, 1]))


def sift_features(img: np.ndarray, n: int = MAX_KEYPOINTS):
    sift = cv2.SIFT_create(n)
    kps, desc = sift.detectAndCompute(img, None)
    return keypoints_array(kps), desc


def strecha_pairs(scene: Path, max_gap: int = 2, ratio: float = 0.85) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32) uint8 patches of side A and of side B for GT-verified matches in a scene."""
    images = list_images(scene / "images")
    cams = [read_strecha_camera(scene / "cameras" / f"{p.name}.camera") for p in images]
    grays = [gray(p) for p in images]
    feats = [sift_features(g) for g in grays]
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    side_a, side_b = [], []
    for i in range(len(images)):
        for j in range(i + 1, min(i + 1 + max_gap, len(images))):
            (ka, da), (kb, db) = feats[i], feats[j]
            if da is None or db is None or len(da) < 2 or len(db) < 2:
                continue
            knn = matcher.knnMatch(da, db, k=2)
            good = [m[0] for m in knn if len(m) == 2 and m[0].distance < ratio * m[1].distance]
            if not good:
                continue
            ia = np.array([m.queryIdx for m in good])
            ib = np.array([m.trainIdx for m in good])
            ok = epipolar_distance(fundamental(cams[i], cams[j]), ka[ia, :2], kb[ib, :2]) < 1.0
            side_a.append(cut_patches(grays[i], ka[ia[ok]]))
            side_b.append(cut_patches(grays[j], kb[ib[ok]]))
    return np.concatenate(side_a), np.concatenate(side_b)


def random_homography(h: int, w: int, rng: np.random.Generator, strength: float = 0.25) -> np.ndarray:
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-strength, strength, (4, 2)) * [w, h]
    dst = (src + jitter).astype(np.float32)
    angle = rng.uniform(-30, 30)
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, rng.uniform(0.7, 1.3))
    dst = cv2.transform(dst[None], rot)[0].astype(np.float32)
    return cv2.getPerspectiveTransform(src, dst)


def warp_keypoints(kps: np.ndarray, hmat: np.ndarray) -> np.ndarray:
    """Map keypoints through a homography; scale and angle follow its local affine part."""
    pts = cv2.perspectiveTransform(kps[None, :, :2].astype(np.float64), hmat)[0]
    x, y = kps[:, 0], kps[:, 1]
    den = hmat[2, 0] * x + hmat[2, 1] * y + hmat[2, 2]
    jac = np.empty((len(kps), 2, 2))
    for r in range(2):
        num = hmat[r, 0] * x + hmat[r, 1] * y + hmat[r, 2]
        jac[:, r, 0] = (hmat[r, 0] * den - num * hmat[2, 0]) / den**2
        jac[:, r, 1] = (hmat[r, 1] * den - num * hmat[2, 1]) / den**2
    scale = np.sqrt(np.abs(np.linalg.det(jac)))
    theta = np.radians(np.where(kps[:, 3] >= 0, kps[:, 3], 0.0))
    direction = np.stack([np.cos(theta), -np.sin(theta)], 1)  # OpenCV angles: y axis points down
    mapped = np.einsum("nij,nj->ni", jac, direction)
    angle = np.degrees(np.arctan2(-mapped[:, 1], mapped[:, 0])) % 360.0
    return np.c_[pts, kps[:, 2] * scale, angle].astype(np.float32)


def homography_pairs(paths: list[Path], per_image: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    side_a, side_b = [], []
    for path in paths:
        g = gray(path)
        h, w = g.shape
        hmat = random_homography(h, w, rng)
        warped = cv2.warpPerspective(g, hmat, (w, h), borderMode=cv2.BORDER_REFLECT)
        gain, bias = rng.uniform(0.6, 1.4), rng.uniform(-30, 30)
        warped = np.clip(warped.astype(np.float32) * gain + bias + rng.normal(0, 4, warped.shape), 0, 255)
        warped = cv2.GaussianBlur(warped.astype(np.uint8), (0, 0), rng.uniform(0.3, 1.2))
        kps, _ = sift_features(g, per_image)
        moved = warp_keypoints(kps, hmat)
        inside = (moved[:, 0] > 8) & (moved[:, 0] < w - 8) & (moved[:, 1] > 8) & (moved[:, 1] < h - 8)
        side_a.append(cut_patches(g, kps[inside]))
        side_b.append(cut_patches(warped, moved[inside]))
    return np.concatenate(side_a), np.concatenate(side_b)


def sfm_track_pairs(scene, max_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32) uint8 patches of two different observations of the same 3D point, one pair
    per point (at most ``max_pairs`` points, chosen at random)."""
    rng = np.random.default_rng(seed)
    tracks = scene.tracks
    if len(tracks) == 0:
        return np.zeros((0, 32, 32), np.uint8), np.zeros((0, 32, 32), np.uint8)
    order = np.argsort(tracks[:, 0], kind="stable")
    tracks = tracks[order]
    starts = np.flatnonzero(np.r_[True, np.diff(tracks[:, 0]) != 0])
    ends = np.r_[starts[1:], len(tracks)]
    chosen = rng.permutation(len(starts))[:max_pairs]
    first, second = [], []
    for k in chosen:
        a, b = rng.choice(np.arange(starts[k], ends[k]), 2, replace=False)
        first.append(a)
        second.append(b)
    side_a, side_b = [], []
    obs_a, obs_b = tracks[first], tracks[second]
    for image_index in range(len(scene.images)):
        g = gray(scene.images[image_index])
        for obs, side in ((obs_a, side_a), (obs_b, side_b)):
            rows = np.flatnonzero(obs[:, 1] == image_index)
            if len(rows):
                side.append((rows, cut_patches(g, obs[rows, 2:6])))
    return _assemble(side_a, len(chosen)), _assemble(side_b, len(chosen))


def _assemble(parts: list[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    """(rows, patches) cut image by image -> (n, 32, 32) in row order."""
    out = np.zeros((n, 32, 32), np.uint8)
    for rows, patches in parts:
        out[rows] = patches
    return out


def hpatches_keypoints(sequence: Path, k: int, per_pair: int = 500):
    """Grey image 1, its SIFT keypoints (N, 4), grey image k and the keypoints mapped there by the
    ground-truth homography (N, 4), keeping only those that land 8 px inside image k."""
    g1 = gray(sequence / "1.ppm")
    kps, _ = sift_features(g1, per_pair)
    gk = gray(sequence / f"{k}.ppm")
    moved = warp_keypoints(kps, np.loadtxt(sequence / f"H_1_{k}"))
    h, w = gk.shape
    inside = (moved[:, 0] > 8) & (moved[:, 0] < w - 8) & (moved[:, 1] > 8) & (moved[:, 1] < h - 8)
    return g1, kps[inside], gk, moved[inside]


def hpatches_pairs(sequence: Path, per_pair: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth patch pairs from image 1 to images 2..6 of an HPatches sequence."""
    side_a, side_b = [], []
    for k in range(2, 7):
        g1, k1, gk, kk = hpatches_keypoints(sequence, k, per_pair)
        side_a.append(cut_patches(g1, k1))
        side_b.append(cut_patches(gk, kk))
    return np.concatenate(side_a), np.concatenate(side_b)
