"""Structure from motion on unlabelled photo collections (pycolmap), reduced to what training needs.

``reconstruct(collection, work_dir)`` runs COLMAP's SIFT extraction, exhaustive matching and
incremental mapping on one folder of photos and returns one ``SfmScene`` per reconstruction:

* ``images``: registered image paths, (N,)
* ``covisibility``: (N, N) int32, 3D points seen by both images (the diagonal counts each image's)
* ``tracks``: (M, 6) float32 rows ``point_id, image_index, x, y, size, angle`` for every
  observation of a 3D point seen at least twice. ``size`` and ``angle`` follow OpenCV's
  ``KeyPoint`` convention (diameter in pixels, degrees, y axis down) so the runtime's patch cutter
  takes them as they are; COLMAP's affine SIFT shape ``[a11 a12; a21 a22]`` gives
  ``scale = sqrt(|det|)``, ``size = SIZE_PER_SCALE * scale`` and ``angle = atan2(a21, a11)``
  (checked against OpenCV SIFT on the same photo: size ratio 1.00, median angle difference 1.8
  degrees).

Scenes are cached as ``.npz`` (no pickle) under ``work_dir`` keyed by the collection name, so a
second run reads them back instead of re-running SfM.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from placekit.inference.imageio import list_images

SIZE_PER_SCALE = 2.0  # OpenCV SIFT reports the keypoint diameter 2 x sigma; COLMAP reports sigma
MIN_TRACK = 2


@dataclass
class SfmScene:
    name: str
    images: list[Path]
    covisibility: np.ndarray
    tracks: np.ndarray

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            name=np.array(self.name),
            images=np.array([str(p) for p in self.images]),
            covisibility=self.covisibility,
            tracks=self.tracks,
        )

    @classmethod
    def load(cls, path: Path) -> SfmScene:
        with np.load(path, allow_pickle=False) as z:
            return cls(str(z["name"]), [Path(p) for p in z["images"]], z["covisibility"], z["tracks"])


def _affine_to_size_angle(shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) COLMAP affine ``a11 a12 a21 a22`` -> OpenCV size (N,) and angle in degrees (N,)."""
    a11, a12, a21, a22 = shape.T
    scale = np.sqrt(np.abs(a11 * a22 - a12 * a21))
    angle = np.degrees(np.arctan2(a21, a11)) % 360.0
    return SIZE_PER_SCALE * scale, angle


def _opencv_keypoints(colmap_keypoints: np.ndarray) -> np.ndarray:
    """COLMAP keypoints (N, 6) ``x y a11 a12 a21 a22`` or (N, 4) ``x y scale orientation`` ->
    (N, 4) ``x y size angle`` in OpenCV's convention."""
    kp = np.asarray(colmap_keypoints, np.float64)
    if kp.shape[1] >= 6:
        size, angle = _affine_to_size_angle(kp[:, 2:6])
    else:
        size, angle = kp[:, 2] * SIZE_PER_SCALE, np.degrees(kp[:, 3]) % 360.0
    return np.c_[kp[:, :2], size, angle]


def _scene_from_reconstruction(name: str, rec, database, image_dir: Path) -> SfmScene:
    image_ids = sorted(rec.reg_image_ids())
    index = {iid: k for k, iid in enumerate(image_ids)}
    keypoints = {iid: _opencv_keypoints(database.read_keypoints(iid)) for iid in image_ids}
    rows = []
    covis = np.zeros((len(image_ids), len(image_ids)), np.int32)
    for pid, point in rec.points3D.items():
        elements = point.track.elements
        if len(elements) < MIN_TRACK:
            continue
        seen = sorted({index[e.image_id] for e in elements})
        covis[np.ix_(seen, seen)] += 1
        for e in elements:
            rows.append((pid, index[e.image_id], *keypoints[e.image_id][e.point2D_idx]))
    tracks = np.array(rows, np.float32).reshape(-1, 6)
    images = [image_dir / rec.image(iid).name for iid in image_ids]
    return SfmScene(name, images, covis, tracks)


def reconstruct(
    image_dir: Path, work_dir: Path, name: str | None = None, max_features: int = 4096, max_image_size: int = 1024
) -> list[SfmScene]:
    """SfM on one folder of photos -> its reconstructions (largest first); cached under work_dir."""
    import pycolmap

    name = name or image_dir.name
    work_dir.mkdir(parents=True, exist_ok=True)
    cached = sorted(work_dir.glob(f"{name}.rec*.npz"))
    if cached or (work_dir / f"{name}.empty").exists():
        return [SfmScene.load(p) for p in cached]
    scratch = work_dir / f"{name}.colmap"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    database_path = scratch / "database.db"
    names = [p.name for p in list_images(image_dir)]
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.sift.max_num_features = max_features
    extraction.max_image_size = max_image_size
    pycolmap.extract_features(
        database_path,
        image_dir,
        image_names=names,
        camera_mode=pycolmap.CameraMode.PER_IMAGE,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )
    pycolmap.match_exhaustive(database_path, device=pycolmap.Device.cpu)
    reconstructions = pycolmap.incremental_mapping(database_path, image_dir, scratch / "sparse")
    database = (
        pycolmap.Database.open(database_path)
        if hasattr(pycolmap.Database, "open")
        else pycolmap.Database(database_path)
    )
    scenes = [
        _scene_from_reconstruction(f"{name}.rec{k}", rec, database, image_dir)
        for k, rec in enumerate(sorted(reconstructions.values(), key=lambda r: -r.num_reg_images()))
    ]
    database.close()
    scenes = [s for s in scenes if len(s.images) >= 2]
    for k, scene in enumerate(scenes):
        scene.save(work_dir / f"{name}.rec{k}.npz")
    if not scenes:
        (work_dir / f"{name}.empty").write_text("no reconstruction with two or more images\n")
    shutil.rmtree(scratch, ignore_errors=True)
    return scenes
