"""The ORB detector path, query keypoint budgets, one-pass verification + pose, and degenerate
inputs that verification must survive (issue 16)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import placekit as pk
from placekit.geometry.pose import MIN_INLIERS, estimate_pose
from placekit.geometry.rotation import matrix_to_quaternion
from placekit.inference.loading import local_extractor
from placekit.local.extractor import GRID_CELLS, detect_sift_without_upsampling, spread_over_grid
from placekit.local.verification import inlier_matches, verify_places
from placekit.mapfile.placemap import PlaceMap
from placekit.options import RuntimeOptions

from posed_scene import IMAGE_H, IMAGE_W, K, views

INTRINSICS = (K[0, 0], K[1, 1], K[0, 2], K[1, 2])


def test_grid_spread_takes_every_cell_before_a_second_point_of_any():
    rng = np.random.default_rng(0)
    crowded = rng.uniform(0, 40, (500, 2))                 # a textured corner: 500 strong points
    sparse = np.array([[(i + 0.5) * 80, (j + 0.5) * 80] for i in range(GRID_CELLS[0]) for j in range(GRID_CELLS[1])])
    xy = np.concatenate([crowded, sparse]).astype(np.float32)
    response = np.concatenate([np.full(500, 10.0), np.full(len(sparse), 1.0)]).astype(np.float32)
    picked = spread_over_grid(xy, response, (480, 640), GRID_CELLS[0] * GRID_CELLS[1])
    cells = {(int(x * GRID_CELLS[0] / 640), int(y * GRID_CELLS[1] / 480)) for x, y in xy[picked]}
    assert len(picked) == len(cells) == GRID_CELLS[0] * GRID_CELLS[1]
    assert len(spread_over_grid(xy[:10], response[:10], (480, 640), 100)) == 10


@pytest.fixture(scope="module")
def orb_extractor():
    extractor, _ = local_extractor("hardnet-int8", 512, 640, RuntimeOptions(threads=1), detector="orb")
    return extractor


def test_orb_keypoints_are_capped_spread_and_described(orb_extractor):
    gray = views(1, seed=0)[0][2][..., 0]
    feats = orb_extractor.extract(gray)
    assert 100 < len(feats) <= 512 and feats.descriptors.shape == (len(feats), 128)
    np.testing.assert_allclose(np.linalg.norm(feats.descriptors, axis=1), 1.0, atol=1e-3)
    assert np.ptp(feats.xy[:, 0]) > 0.7 * IMAGE_W and np.ptp(feats.xy[:, 1]) > 0.7 * IMAGE_H
    fewer = orb_extractor.with_max_keypoints(128).extract(gray)
    assert len(fewer) <= 128 and fewer.descriptors.shape[1] == 128


@pytest.mark.parametrize("shape", [(120, 160), (20, 20), (480, 640)])
def test_blank_tiny_and_blurred_frames_give_few_or_no_features(orb_extractor, shape):
    blank = np.full(shape, 128, np.uint8)
    assert len(orb_extractor.extract(blank)) == 0
    noise = np.random.default_rng(1).integers(0, 255, shape, np.uint8)
    blurred = cv2.GaussianBlur(noise, (0, 0), 8)
    for image in (noise, blurred):                          # whatever they yield, consistently shaped
        feats = orb_extractor.extract(image)
        assert feats.descriptors.shape == (len(feats), 128) and len(feats) <= 512


def test_an_image_with_a_single_corner_does_not_break_the_orb_path(orb_extractor):
    gray = np.zeros((252, 240), np.uint8)
    gray[100:, 120:] = 255                 # one corner (a WxBS image once gave ORB a single keypoint)
    feats = orb_extractor.extract(gray)
    assert len(feats) <= 8 and feats.descriptors.shape == (len(feats), 128)


def test_degenerate_matches_verify_nothing():
    rng = np.random.default_rng(2)
    desc = rng.normal(size=(50, 128)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    same_point = np.zeros((50, 4), np.float32)                       # all keypoints identical
    collinear = np.stack([np.arange(50.0), np.arange(50.0), np.ones(50), np.zeros(50)], 1).astype(np.float32)
    for kps in (same_point, collinear):
        assert len(inlier_matches(kps[:, :2], desc, kps, desc)) <= 50   # no exception, at most all
    identical_desc = np.repeat(desc[:1], 50, axis=0)
    assert len(inlier_matches(collinear[:, :2], identical_desc, collinear, identical_desc)) == 0
    assert estimate_pose(np.zeros((MIN_INLIERS - 1, 2)), np.zeros((MIN_INLIERS - 1, 3)), K) is None
    assert estimate_pose(np.zeros((40, 2)), np.zeros((40, 3)), K) is None      # all one point


def _blobs(shape: tuple[int, int], centres: np.ndarray, sigma: float) -> np.ndarray:
    """Dark Gaussian blobs of ``sigma`` pixels at sub-pixel ``centres`` (N, 2) on a light image."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    image = np.full(shape, 220.0)
    for x, y in centres:
        image -= 160.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.clip(image, 0, 255).astype(np.uint8)


def test_sift_fast_finds_blobs_where_they_are_in_the_images_pixels():
    rng = np.random.default_rng(3)
    grid = np.array([[60.0 + 90 * i, 60.0 + 90 * j] for i in range(6) for j in range(4)])
    centres = grid + rng.uniform(-0.5, 0.5, grid.shape)    # sub-pixel positions, odd and even
    gray = _blobs((420, 600), centres, sigma=4.0)
    k = detect_sift_without_upsampling(gray, 256)
    assert k.shape[1] == 4 and k.dtype == np.float32 and len(k) >= len(centres)
    nearest = np.linalg.norm(k[:, None, :2] - centres[None], axis=2).min(axis=0)
    assert np.all(nearest < 0.3)                            # a half-pixel slip of the halved image would fail
    full = cv2.SIFT_create().detect(gray, None)           # the same blobs at OpenCV SIFT's size
    near_full = min(full, key=lambda kp: np.hypot(kp.pt[0] - centres[0, 0], kp.pt[1] - centres[0, 1]))
    near_fast = k[np.argmin(np.linalg.norm(k[:, :2] - centres[0], axis=1))]
    assert near_fast[2] == pytest.approx(near_full.size, rel=0.2)


@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (3, 3), (120, 160)])
def test_sift_fast_on_tiny_and_blank_images_finds_nothing(shape):
    assert detect_sift_without_upsampling(np.full(shape, 128, np.uint8), 64).shape == (0, 4)


def test_sift_fast_keeps_the_cap_and_the_strongest():
    noise = cv2.GaussianBlur(np.random.default_rng(4).integers(0, 255, (480, 640), np.uint8), (0, 0), 2)
    capped = detect_sift_without_upsampling(noise, 100)
    assert len(capped) == 100
    more = detect_sift_without_upsampling(noise, 400)
    assert len(more) > 100


@pytest.fixture(scope="module")
def sift_fast_map(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("sift_fast") / "sift_fast.pkmap"
    builder = pk.MapBuilder(pk.BuildOptions(model=str(tiny_model), match_radius_m=1.0, local_features="hardnet-int8",
                                            max_keypoints=512, local_detector="sift-fast"))
    for i, (R, c, img) in enumerate(views(7, seed=0)):
        builder.add(img, pk.Location(x=c[0], y=c[1], z=c[2], rotation=matrix_to_quaternion(R), intrinsics=INTRINSICS),
                    f"m{i}.png")
    builder.build(path)
    return path


def test_sift_fast_map_records_its_detector_and_gives_poses(sift_fast_map, tiny_model):
    m = PlaceMap.load(sift_fast_map)
    try:
        assert m.manifest["min_reader_version"] == 3 and m.manifest["local"]["detector"] == "sift-fast"
    finally:
        m.close()
    options = pk.LocalizerOptions(model=str(tiny_model), intrinsics=INTRINSICS)
    with pk.Localizer.open(sift_fast_map, options) as loc:
        assert loc.local.detector == "sift-fast"
        errors = []
        for R, c, img in views(4, seed=0, offset=0.2):
            r = loc.localize(img)
            assert r.status == "localized" and r.pose is not None
            errors.append(np.linalg.norm(np.array(r.pose.center) - c))
        assert np.median(errors) < 0.1


@pytest.fixture(scope="module")
def orb_map(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("orb") / "orb.pkmap"
    builder = pk.MapBuilder(pk.BuildOptions(model=str(tiny_model), match_radius_m=1.0, local_features="hardnet-int8",
                                            max_keypoints=512, local_detector="orb"))
    for i, (R, c, img) in enumerate(views(7, seed=0)):
        builder.add(img, pk.Location(x=c[0], y=c[1], z=c[2], rotation=matrix_to_quaternion(R), intrinsics=INTRINSICS),
                    f"m{i}.png")
    builder.build(path)
    return path


def test_orb_map_asks_for_a_reader_that_knows_its_detector(orb_map):
    m = PlaceMap.load(orb_map)
    try:
        assert m.manifest["min_reader_version"] == 3 and m.manifest["local"]["detector"] == "orb"
    finally:
        m.close()


@pytest.mark.parametrize("query_keypoints", [None, 256])
def test_orb_map_gives_poses_with_fewer_query_keypoints(orb_map, tiny_model, query_keypoints):
    options = pk.LocalizerOptions(model=str(tiny_model), intrinsics=INTRINSICS, query_keypoints=query_keypoints)
    with pk.Localizer.open(orb_map, options) as loc:
        errors = []
        for R, c, img in views(4, seed=0, offset=0.2):
            r = loc.localize(img)
            assert r.status == "localized" and r.pose is not None
            errors.append(np.linalg.norm(np.array(r.pose.center) - c))
        assert np.median(errors) < 0.1
        blank = loc.localize(np.full((IMAGE_H, IMAGE_W, 3), 128, np.uint8))
        assert blank.status == "unknown" and blank.pose is None


def test_places_without_features_are_neither_confirmed_nor_rejected(orb_map, tiny_model):
    with pk.Localizer.open(orb_map, pk.LocalizerOptions(model=str(tiny_model))) as loc:
        live = loc.add_place(views(1, seed=5)[0][2], pk.Location(x=50.0, y=0.0))
        feats = loc.local.extract(views(1, seed=0)[0][2][..., 0])
        result = verify_places(feats.xy, feats.descriptors, loc.map.pointmap, np.array([live, 0]))
        assert result.inliers[0] == -1 and result.inliers[1] > 0
        rows, points = result.correspondences(np.array([0, 1]))
        assert len(rows) == len(points) and (points >= 0).all()


@pytest.fixture(scope="module")
def dense_extractor(tmp_path_factory):
    from tiny_models import dense_model

    path = dense_model(tmp_path_factory.mktemp("dense") / "tiny-dense.onnx")
    extractor, ref = local_extractor(str(path), 300, 640, RuntimeOptions(threads=1))
    assert ref.name == "tiny-dense" and extractor.detector == "dense" and extractor.dim == 16
    return extractor


@pytest.mark.parametrize("shape", [(480, 640), (427, 640), (120, 160), (1000, 700)])
def test_dense_model_gives_capped_keypoints_inside_the_image(dense_extractor, shape):
    gray = np.random.default_rng(3).integers(0, 255, shape, np.uint8)
    feats = dense_extractor.extract(gray)
    assert 0 < len(feats) <= 300 and feats.descriptors.shape == (len(feats), 16)
    np.testing.assert_allclose(np.linalg.norm(feats.descriptors, axis=1), 1.0, atol=1e-4)
    h, w = shape
    assert (feats.xy[:, 0] >= 0).all() and (feats.xy[:, 0] < w).all()
    assert (feats.xy[:, 1] >= 0).all() and (feats.xy[:, 1] < h).all()
    assert len(np.unique(feats.xy, axis=0)) == len(feats)              # non-maximum suppression


def test_dense_model_on_images_smaller_than_its_grid_finds_nothing(dense_extractor):
    assert len(dense_extractor.extract(np.zeros((20, 20), np.uint8))) == 0


def test_dense_describer_refuses_other_model_kinds(tiny_model):
    from placekit.errors import ModelFormatError
    from placekit.inference.engine import open_engine
    from placekit.inference.extractors import DenseDescriber

    with pytest.raises(ModelFormatError, match="need a dense one"):
        DenseDescriber(open_engine(tiny_model))


def test_map_with_a_dense_local_model_stores_and_verifies_its_features(tmp_path, tiny_model):
    from tiny_models import dense_model

    model = dense_model(tmp_path / "tiny-dense.onnx")
    builder = pk.MapBuilder(pk.BuildOptions(model=str(tiny_model), match_radius_m=1.0, local_features=str(model),
                                            max_keypoints=400))
    for i, (R, c, img) in enumerate(views(5, seed=0)):
        builder.add(img, pk.Location(x=c[0], y=c[1], z=c[2], rotation=matrix_to_quaternion(R), intrinsics=INTRINSICS),
                    f"m{i}.png")
    info = builder.build(tmp_path / "dense.pkmap")
    assert info.local["extractor"] == "tiny-dense" and info.local["detector"] == "dense"
    with pk.Localizer.open(tmp_path / "dense.pkmap", pk.LocalizerOptions(model=str(tiny_model))) as loc:
        r = loc.localize(views(1, seed=0, offset=0.2)[0][2])
        assert r.matches and r.matches[0].inliers is not None and "verify" in r.timings_ms
