"""A posed synthetic scene for local-feature tests: a textured wall (the plane z = 0, 6 m x 4 m)
seen by pinhole cameras with known poses, rendered with one homography per view."""
from __future__ import annotations

import cv2
import numpy as np

PX_PER_M = 200.0
WALL_W, WALL_H = 6.0, 4.0
IMAGE_W, IMAGE_H = 640, 480
K = np.array([[500.0, 0, IMAGE_W / 2], [0, 500.0, IMAGE_H / 2], [0, 0, 1]])


def texture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = int(WALL_H * PX_PER_M), int(WALL_W * PX_PER_M)
    img = np.zeros((h, w), np.float32)
    for sigma in (1.5, 4, 10):
        img += cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * sigma
    for _ in range(300):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(img, c, int(rng.integers(3, 25)), float(rng.uniform(-8, 8)), -1)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_GRAY2BGR)


def rotation(yaw_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
    """World-to-camera rotation of a camera looking along +z, turned by yaw (about y) and pitch."""
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    Ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    Rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return (Ry @ Rx).T


def render(tex: np.ndarray, R: np.ndarray, center: np.ndarray) -> np.ndarray:
    t = -R @ center
    # texture pixel (u, v) -> world (X, Y, 0) -> image
    A = np.array([[1 / PX_PER_M, 0, -WALL_W / 2], [0, 1 / PX_PER_M, -WALL_H / 2], [0, 0, 1]])
    H = K @ np.column_stack([R[:, 0], R[:, 1], t]) @ A
    return cv2.warpPerspective(tex, H, (IMAGE_W, IMAGE_H), borderValue=(90, 90, 90))


def views(n: int, seed: int, offset: float = 0.0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """n cameras on a line 3.5 m in front of the wall, x in [-1.5, 1.5] (+ offset), turned
    towards the wall's centre. Returns (R, centre, image) triples."""
    tex = texture(seed)
    out = []
    for x in np.linspace(-1.5, 1.5, n) + offset:
        center = np.array([x, 0.1 * np.sin(3 * x), -3.5])
        R = rotation(np.degrees(np.arctan2(-x, 3.5)) * 0.7, 2.0)
        out.append((R, center, render(tex, R, center)))
    return out
