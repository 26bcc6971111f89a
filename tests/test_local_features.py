"""Local features, verification and 6-DoF poses on a posed synthetic scene."""
from __future__ import annotations

import numpy as np
import pytest

import placekit as pk
from placekit.options import DEFAULT_LOCAL_MAX_SIDE, DEFAULT_LOCAL_MODEL, DEFAULT_MAX_KEYPOINTS, DEFAULT_QUERY_KEYPOINTS
from placekit.geometry.rotation import matrix_to_quaternion, rotation_error_deg

from posed_scene import IMAGE_H, IMAGE_W, K, views

INTRINSICS = (K[0, 0], K[1, 1], K[0, 2], K[1, 2])


def _build(tmp_path, tiny_model, local: str, posed: bool = True, descriptor: str = "gem"):
    builder = pk.MapBuilder(pk.BuildOptions(model=str(tiny_model), match_radius_m=1.0, local_features=local,
                                            max_keypoints=512, descriptor=descriptor))
    for i, (R, c, img) in enumerate(views(7, seed=0)):
        extra = dict(rotation=matrix_to_quaternion(R), intrinsics=INTRINSICS) if posed else {}
        builder.add(img, pk.Location(x=c[0], y=c[1], z=c[2], **extra), f"m{i}.png")
    path = tmp_path / f"{local}-{posed}.pkmap"
    info = builder.build(path)
    return path, info


@pytest.mark.parametrize("local", ["rootsift", "hardnet-int8"])
def test_posed_map_gives_poses(tmp_path, tiny_model, local):
    path, info = _build(tmp_path, tiny_model, local)
    assert info.local["extractor"] in ("rootsift", "hardnet") and info.local["triangulation"]["points"] > 200
    queries = views(4, seed=0, offset=0.2)
    with pk.Localizer.open(path, pk.LocalizerOptions(model=str(tiny_model), intrinsics=INTRINSICS)) as loc:
        errors, rot_errors = [], []
        for R, c, img in queries:
            r = loc.localize(img)
            assert r.status == "localized" and r.pose is not None
            assert r.matches[0].inliers >= loc.map.calibration.min_inliers > 0
            assert {"verify", "pose"} <= set(r.timings_ms)
            errors.append(np.linalg.norm(np.array(r.pose.center) - c))
            rot_errors.append(rotation_error_deg(r.pose.rotation, matrix_to_quaternion(R)))
            assert r.location.x == pytest.approx(r.pose.center[0]) and r.uncertainty_m < 0.5
        assert np.median(errors) < 0.1 and np.median(rot_errors) < 1.0
        blank = loc.localize(np.full((IMAGE_H, IMAGE_W, 3), 128, np.uint8))
        assert blank.pose is None and blank.status == "unknown" and blank.location is None
        assert all(m.inliers == 0 for m in blank.matches)
        other_wall = views(3, seed=99)[1][2]          # the same kind of texture, another wall
        assert loc.localize(other_wall).status == "unknown"


def test_overlapped_local_features_give_the_same_answers_from_many_threads(tmp_path, tiny_model):
    """Local features extracted beside the global model (the default) answer exactly as the
    stages run one after the other, also with several threads calling at once."""
    from concurrent.futures import ThreadPoolExecutor

    path, _ = _build(tmp_path, tiny_model, "rootsift")
    frames = [img for _, _, img in views(4, seed=0, offset=0.2)]

    def answers(overlap: bool, threads: int):
        opts = pk.LocalizerOptions(model=str(tiny_model), intrinsics=INTRINSICS, overlap_local_features=overlap)
        with pk.Localizer.open(path, opts) as loc:
            with ThreadPoolExecutor(threads) as pool:
                results = list(pool.map(loc.localize, frames))
        return [(r.status, [(m.place_id, m.inliers) for m in r.matches], r.pose) for r in results]

    sequential = answers(False, 1)
    assert any(pose is not None for _, _, pose in sequential)
    assert answers(True, 1) == sequential
    assert answers(True, 3) == sequential


def test_verification_stops_at_a_decisive_place_unless_told_not_to(tmp_path, tiny_model):
    from placekit.localizer import DECISIVE_INLIER_FACTOR

    path, _ = _build(tmp_path, tiny_model, "rootsift")
    _, c, img = views(4, seed=0, offset=0.2)[1]
    answers = {}
    for early in (True, False):
        opts = pk.LocalizerOptions(model=str(tiny_model), intrinsics=INTRINSICS, verify_early_exit=early)
        with pk.Localizer.open(path, opts) as loc:
            floor = loc.map.calibration.min_inliers
            answers[early] = loc.localize(img)
    full = [m.inliers for m in answers[False].matches]
    assert all(n >= 0 for n in full[:5])                              # every one of the top 5 verified
    early = [m.inliers for m in answers[True].matches]
    first = next(k for k, n in enumerate(early) if n >= DECISIVE_INLIER_FACTOR * floor)
    assert early[first + 1 : 5] == [-1] * len(early[first + 1 : 5])   # none verified after the decisive place
    assert answers[True].status == answers[False].status == "localized"
    assert np.linalg.norm(np.array(answers[True].pose.center) - c) < 0.5


def test_auto_local_features_follow_the_cameras_and_auto_descriptor_is_gem(tmp_path, tiny_model):
    path, info = _build(tmp_path, tiny_model, "auto", descriptor="auto")
    # auto: the default local model (HardNet-C16) for images with a camera
    assert info.local["extractor"] == "hardnet-c16" and info.local["triangulation"]["points"] > 100
    assert info.local["model_file"] == f"{DEFAULT_LOCAL_MODEL}.onnx"
    assert info.descriptor["kind"] == "gem"              # auto is GeM: VLAD only when asked for
    path, info = _build(tmp_path, tiny_model, "auto", posed=False, descriptor="auto")
    assert info.local is None and info.descriptor["kind"] == "gem"


def test_queries_default_to_512_keypoints_at_most_the_maps_own(tmp_path, tiny_model):
    assert (DEFAULT_MAX_KEYPOINTS, DEFAULT_QUERY_KEYPOINTS, DEFAULT_LOCAL_MAX_SIDE) == (1024, 512, 640)
    assert pk.LocalizerOptions().query_keypoints == DEFAULT_QUERY_KEYPOINTS
    builder = pk.MapBuilder(pk.BuildOptions(model=str(tiny_model), match_radius_m=1.0, local_features="rootsift"))
    for i, (R, c, img) in enumerate(views(7, seed=0)):
        builder.add(img, pk.Location(x=c[0], y=c[1], z=c[2], rotation=matrix_to_quaternion(R),
                                     intrinsics=INTRINSICS), f"m{i}.png")
    info = builder.build(tmp_path / "defaults.pkmap")
    assert info.local["max_side"] == DEFAULT_LOCAL_MAX_SIDE and info.local["max_keypoints"] == DEFAULT_MAX_KEYPOINTS
    expected = {DEFAULT_QUERY_KEYPOINTS: DEFAULT_QUERY_KEYPOINTS, None: DEFAULT_MAX_KEYPOINTS,
                4096: DEFAULT_MAX_KEYPOINTS, 64: 64}     # None: every keypoint the map stores; never more
    for asked, used in expected.items():
        options = pk.LocalizerOptions(model=str(tiny_model), intrinsics=INTRINSICS, query_keypoints=asked)
        with pk.Localizer.open(tmp_path / "defaults.pkmap", options) as loc:
            assert loc.local.max_keypoints == used and loc.local.max_side == DEFAULT_LOCAL_MAX_SIDE
            if asked == DEFAULT_QUERY_KEYPOINTS:
                R, c, img = views(4, seed=0, offset=0.2)[1]
                r = loc.localize(img)
                assert r.pose is not None and np.linalg.norm(np.array(r.pose.center) - c) < 0.1


def test_unposed_map_verifies_without_poses(tmp_path, tiny_model):
    path, info = _build(tmp_path, tiny_model, "rootsift", posed=False)
    assert info.local["triangulation"] == {}
    R, c, img = views(4, seed=0, offset=0.2)[1]
    with pk.Localizer.open(path, pk.LocalizerOptions(model=str(tiny_model))) as loc:
        r = loc.localize(img)
        assert r.pose is None and r.matches[0].inliers > 20
        assert abs(r.location.x - c[0]) < 1.0
    with pk.Localizer.open(path, pk.LocalizerOptions(model=str(tiny_model), verify=False)) as loc:
        r = loc.localize(img)
        assert r.matches[0].inliers is None and "verify" not in r.timings_ms


def test_local_feature_members_survive_reopen_and_corruption_is_caught(tmp_path, tiny_model):
    path, _ = _build(tmp_path, tiny_model, "rootsift")
    with pk.Localizer.open(path, pk.LocalizerOptions(model=str(tiny_model))) as loc:
        pm = loc.map.pointmap
        kps, desc, pids = pm.features_of(int(pm.place_ids[0]))
        assert kps.shape[1] == 4 and desc.shape == (len(kps), 128) and (pids >= -1).all()
        assert np.allclose(np.linalg.norm(desc, axis=1), 1, atol=1e-3)
        assert pm.features_of(10**9)[0].shape == (0, 4)
    from placekit.mapfile.pointmap import PointMap
    members = dict(pm.to_members()[1])
    members["local/point_ids.npy"] = np.full_like(members["local/point_ids.npy"], 10**6)
    with pytest.raises(pk.MapFormatError, match="inconsistent"):
        PointMap.from_members(pm.section, members, "test")


@pytest.mark.parametrize("local", ["rootsift", "none"])
def test_vlad_map_builds_localizes_and_reopens(tmp_path, local):
    builder = pk.MapBuilder(pk.BuildOptions(descriptor="vlad", local_features=local, match_radius_m=1.0,
                                            max_keypoints=256, vlad_words=16))
    for i, (R, c, img) in enumerate(views(7, seed=0)):
        builder.add(img, pk.Location(x=c[0], y=c[1], z=c[2], rotation=matrix_to_quaternion(R),
                                     intrinsics=INTRINSICS), f"m{i}.png")
    with pytest.raises(pk.BuildError, match="descriptors from images"):
        builder.add_descriptor(np.ones(16), pk.Location(x=0, y=0), "d")
    info = builder.build(tmp_path / "vlad.pkmap")
    assert info.descriptor == {"kind": "vlad", "dim": 16 * 128, "words": 16, "vocabulary": "learned on the map"}
    assert info.local["extractor"] == ("rootsift" if local == "rootsift" else "hardnet")
    R, c, img = views(4, seed=0, offset=0.2)[2]
    with pk.Localizer.open(tmp_path / "vlad.pkmap", pk.LocalizerOptions(intrinsics=INTRINSICS)) as loc:
        r = loc.localize(img)
        assert r.status == "localized" and r.pose is not None
        assert np.linalg.norm(np.array(r.pose.center) - c) < 0.1
        assert loc.info().runtime["verification"]


def test_eval_reports_rotation_errors_and_recall_before_verification(tmp_path, tiny_model):
    import cv2

    from placekit.tools.evaluation import evaluate, load_dataset

    for split, cams in (("database", views(7, seed=0)), ("queries", views(4, seed=0, offset=0.2))):
        (tmp_path / split).mkdir()
        lines = ["name,x,y,z,qw,qx,qy,qz,fx,fy,cx,cy"]
        for i, (R, c, img) in enumerate(cams):
            cv2.imwrite(str(tmp_path / split / f"{i}.png"), img)
            q = matrix_to_quaternion(R)
            lines.append(",".join(map(str, [f"{i}.png", *c, *q, *INTRINSICS])))
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n")
    report = evaluate(load_dataset(tmp_path), model=str(tiny_model), threshold_m=1.0, local_features="rootsift")
    assert report["median_rotation_error_deg"] is not None and report["median_rotation_error_deg"] < 1.0
    assert report["pose_share"] == 1.0 and report["pose_within"]["0.25 m, 2.0 deg"] == 1.0
    assert "recall_at_1_before_verification" in report and report["median_position_error_m"] < 0.1
