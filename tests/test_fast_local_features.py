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
from placekit.local.extractor import GRID_CELLS, spread_over_grid
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
