"""3D points for a map built from posed images: match local features between neighbouring map
images, keep the matches their known cameras agree with, triangulate them (OpenCV), and merge
observations of the same point into tracks.

Cameras: ``Camera`` holds K (3, 3), R (3, 3) world-to-camera and the centre C (3,) in the map
frame, so a world point X projects to K (R X + t) with t = -R C. Keypoints are in the pixels
of the image the intrinsics describe.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from placekit.geometry.rotation import quaternion_to_matrix
from placekit.local.matching import mutual_matches

NEIGHBOURS = 4
MAX_EPIPOLAR_PX = 2.0
MAX_REPROJECTION_PX = 3.0
MIN_ANGLE_DEG = 1.0


@dataclass(frozen=True)
class Camera:
    K: np.ndarray
    R: np.ndarray
    center: np.ndarray

    @property
    def t(self) -> np.ndarray:
        return -self.R @ self.center

    @property
    def P(self) -> np.ndarray:
        return self.K @ np.hstack([self.R, self.t[:, None]])

    @classmethod
    def from_location(cls, rotation_wxyz, center, intrinsics) -> Camera:
        fx, fy, cx, cy = intrinsics
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], float)
        return cls(K, quaternion_to_matrix(rotation_wxyz), np.asarray(center, float))


def fundamental(a: Camera, b: Camera) -> np.ndarray:
    """F with x_b^T F x_a = 0 for the two cameras."""
    R = b.R @ a.R.T
    t = b.t - R @ a.t
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    return np.linalg.inv(b.K).T @ tx @ R @ np.linalg.inv(a.K)


def sampson(F: np.ndarray, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """(N,) Sampson distance in pixels of matches xa (N, 2) -> xb (N, 2)."""
    ha = np.hstack([xa, np.ones((len(xa), 1))])
    hb = np.hstack([xb, np.ones((len(xb), 1))])
    Fa, Ftb = ha @ F.T, hb @ F
    num = np.einsum("ij,ij->i", hb, Fa) ** 2
    den = Fa[:, 0] ** 2 + Fa[:, 1] ** 2 + Ftb[:, 0] ** 2 + Ftb[:, 1] ** 2
    return np.sqrt(num / np.maximum(den, 1e-12))


def _reprojection(cam: Camera, X: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(depth (N,), pixel error (N,)) of world points X (N, 3) against observations x (N, 2)."""
    Xc = X @ cam.R.T + cam.t
    proj = Xc @ cam.K.T
    px = proj[:, :2] / np.where(np.abs(proj[:, 2:]) > 1e-12, proj[:, 2:], 1e-12)
    return Xc[:, 2], np.linalg.norm(px - x, axis=1)


def triangulate_pair(a: Camera, b: Camera, xa: np.ndarray, xb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangulate matched pixels; returns (points (N, 3), good (N,) bool: in front of both
    cameras, reprojecting within MAX_REPROJECTION_PX, seen under >= MIN_ANGLE_DEG)."""
    if len(xa) == 0:
        return np.zeros((0, 3)), np.zeros(0, bool)
    Xh = cv2.triangulatePoints(a.P, b.P, xa.T.astype(np.float64), xb.T.astype(np.float64))
    X = (Xh[:3] / np.where(np.abs(Xh[3]) > 1e-12, Xh[3], 1e-12)).T
    da, ea = _reprojection(a, X, xa)
    db, eb = _reprojection(b, X, xb)
    ra, rb = X - a.center, X - b.center
    cos = np.einsum("ij,ij->i", ra, rb) / np.maximum(np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1), 1e-12)
    angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    good = (da > 0) & (db > 0) & (ea < MAX_REPROJECTION_PX) & (eb < MAX_REPROJECTION_PX) & (angle >= MIN_ANGLE_DEG)
    return X, good


def triangulate_map(
    features: dict[int, tuple[np.ndarray, np.ndarray]], cameras: dict[int, Camera], neighbours: int = NEIGHBOURS
) -> tuple[dict[int, np.ndarray], np.ndarray, dict]:
    """features: place id -> (keypoints (n, >=2), descriptors (n, D)); cameras: place id ->
    Camera for the posed places. Returns (place id -> point ids (n,) int32, -1 = none;
    points (P, 3) float32; stats)."""
    ids = sorted(i for i in cameras if i in features and len(features[i][0]))
    parent: dict[tuple[int, int], tuple[int, int]] = {}

    def find(u):
        while parent.setdefault(u, u) != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    estimates: dict[tuple[int, int], list[np.ndarray]] = {}
    centres = np.array([cameras[i].center for i in ids]).reshape(-1, 3)
    pairs, kept, done = 0, 0, set()
    for k, i in enumerate(ids):
        order = np.argsort(np.linalg.norm(centres - centres[k], axis=1))[1 : neighbours + 1]
        for j in (ids[o] for o in order):
            if (min(i, j), max(i, j)) in done:
                continue
            done.add((min(i, j), max(i, j)))
            (ka, da), (kb, db) = features[i], features[j]
            m = mutual_matches(da, db)
            if len(m) == 0:
                continue
            xa, xb = ka[m[:, 0], :2].astype(float), kb[m[:, 1], :2].astype(float)
            ok = sampson(fundamental(cameras[i], cameras[j]), xa, xb) < MAX_EPIPOLAR_PX
            X, good = triangulate_pair(cameras[i], cameras[j], xa[ok], xb[ok])
            pairs += 1
            for (u, v), x in zip(m[ok][good], X[good]):
                ru, rv = find((i, int(u))), find((j, int(v)))
                if ru != rv:
                    parent[ru] = rv
                estimates.setdefault((i, int(u)), []).append(x)
                estimates.setdefault((j, int(v)), []).append(x)
                kept += 1
    tracks: dict[tuple[int, int], list[np.ndarray]] = {}
    for obs, xs in estimates.items():
        tracks.setdefault(find(obs), []).extend(xs)
    root_index = {root: n for n, root in enumerate(tracks)}
    points = np.array([np.median(np.array(xs), axis=0) for xs in tracks.values()], np.float32).reshape(-1, 3)
    point_ids = {i: np.full(len(features[i][0]), -1, np.int32) for i in features}
    for i, u in estimates:
        point_ids[i][u] = root_index[find((i, u))]
    stats = {
        "posed_places": len(ids),
        "pairs_matched": pairs,
        "pair_triangulations": kept,
        "points": len(points),
        "observations": len(estimates),
    }
    return point_ids, points, stats
