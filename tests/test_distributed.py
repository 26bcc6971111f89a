"""Map builds on Ray (``placekit.executors.RayExecutor``) against the single-process build.

Every test that needs Ray skips with a reason when it is not installed (``pip install
"placekit[distributed]"``; CI installs it). One local Ray instance (2 CPUs) serves the module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import zipfile

import numpy as np
import pytest

import placekit as pk
from placekit.executors import LocalExecutor, RayExecutor

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'placekit[distributed]')")

# what may differ between two builds of the same inputs: when they were written
VOLATILE_MANIFEST_KEYS = ("created_utc", "manifest_sha256")  # the hash covers the time


@pytest.fixture(scope="module")
def cluster():
    executor = RayExecutor("local", num_cpus=2)
    yield executor
    executor.close()


def _options(tiny_model, **extra) -> pk.BuildOptions:
    return pk.BuildOptions(model=str(tiny_model), match_radius_m=10.0, threads=1, local_features="rootsift", **extra)


def _build(tiny_model, street, out, executor, **extra):
    builder = pk.MapBuilder(_options(tiny_model, **extra), executor=executor)
    builder.add_folder(street / "database", street / "database.csv")
    return builder.build(out)


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def _manifest(members: dict[str, bytes]) -> dict:
    manifest = json.loads(members["manifest.json"])
    for key in VOLATILE_MANIFEST_KEYS:
        manifest.pop(key, None)
    return manifest


def _same_members(ours: dict[str, bytes], theirs: dict[str, bytes]) -> None:
    """Every member the same bytes, except that a float array may differ in its last bits where
    the training task's BLAS rounded differently (other threads, other memory alignment)."""
    import io

    assert set(ours) == set(theirs)
    for name in ours:
        if name == "manifest.json" or ours[name] == theirs[name]:
            continue
        a, b = np.load(io.BytesIO(ours[name])), np.load(io.BytesIO(theirs[name]))
        assert a.dtype.kind == "f" and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


def _manifest_settings(members: dict[str, bytes]) -> dict:
    """The manifest without the creation time and the checksums that follow from it and from
    the members' bytes."""
    manifest = _manifest(members)
    manifest.pop("members", None)
    return manifest


def _answers(path, tiny_model, street):
    queries = sorted((street / "queries").iterdir())
    with pk.Localizer.open(path, pk.LocalizerOptions(model=str(tiny_model), threads=1)) as loc:
        return [loc.localize(q) for q in queries]


@pytest.fixture(scope="module")
def single_process_map(tmp_path_factory, tiny_model, street):
    out = tmp_path_factory.mktemp("single") / "street.pkmap"
    _build(tiny_model, street, out, LocalExecutor())
    return out


def test_ray_build_is_the_single_process_build(tmp_path, tiny_model, street, cluster, single_process_map):
    out = tmp_path / "ray.pkmap"
    info = _build(tiny_model, street, out, cluster)
    assert info.places == 40
    ours, theirs = _members(out), _members(single_process_map)
    assert _manifest_settings(ours) == _manifest_settings(theirs)
    _same_members(ours, theirs)
    for name in ("places/ids.npy", "places/xyz.npy", "places/names.bin", "index/ids.npy", "local/keypoints.npy"):
        if name in ours:
            assert ours[name] == theirs[name], name
    for a, b in zip(_answers(out, tiny_model, street), _answers(single_process_map, tiny_model, street)):
        assert a.status == b.status
        assert [m.name for m in a.matches] == [m.name for m in b.matches]
        np.testing.assert_allclose([m.score for m in a.matches], [m.score for m in b.matches], atol=1e-5)


class KillFirstTask(RayExecutor):
    """A RayExecutor whose first extraction task kills its own worker process (SIGKILL), once."""

    marker: str = ""

    def map(self, fn, items, desc="", progress=False):
        if desc != "extracting":
            return super().map(fn, items, desc, progress)
        marker = self.marker

        def dies_once(item):
            if not os.path.exists(marker):
                with open(marker, "w") as fh:
                    fh.write(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(item)

        return super().map(dies_once, items, desc, progress)


def test_a_killed_worker_is_retried_and_the_map_is_complete(tmp_path, tiny_model, street, cluster, single_process_map):
    killing = KillFirstTask.__new__(KillFirstTask)
    killing.__dict__.update(cluster.__dict__, _connected=False)  # share the module's connection
    killing.marker = str(tmp_path / "killed")
    out = tmp_path / "retried.pkmap"
    info = _build(tiny_model, street, out, killing)
    assert os.path.exists(killing.marker), "the task was not killed"
    assert int(open(killing.marker).read()) != os.getpid()  # a worker died, not this process
    assert info.places == 40
    _same_members(_members(out), _members(single_process_map))


def test_failing_images_are_named_not_dropped(tmp_path, tiny_model, street, cluster):
    folder = tmp_path / "db"
    shutil.copytree(street / "database", folder)
    broken = sorted(folder.iterdir())[:3]
    for path in broken:
        path.write_bytes(b"not an image")
    builder = pk.MapBuilder(_options(tiny_model), executor=cluster)
    with pytest.raises(pk.BuildError) as err:
        builder.add_folder(folder, street / "database.csv")
    for path in broken:
        assert path.name in str(err.value)
    assert "3 of 40 images" in str(err.value)
    assert len(builder) == 0  # unchanged: nothing half-added


def test_an_unreachable_address_fails_before_any_work(tmp_path):
    t = time.perf_counter()
    with pytest.raises(pk.ClusterError, match="cannot reach"):
        RayExecutor("ray://127.0.0.1:9")
    with pytest.raises(pk.ClusterError, match="cannot reach"):
        RayExecutor("127.0.0.1:9")
    assert time.perf_counter() - t < 30
    with pytest.raises(pk.ClusterError):
        RayExecutor("")
    with pytest.raises(pk.BuildError):
        pk.MapBuilder(pk.BuildOptions(), executor="ray")


def test_cli_ray_auto_builds_the_same_map(tmp_path, tiny_model, street, cluster, single_process_map):
    from placekit.tools.cli import main

    out = tmp_path / "cli.pkmap"
    code = main(
        [
            "map", "build", str(street / "database"), "--locations", str(street / "database.csv"), "-o", str(out),
            "--model", str(tiny_model), "--radius", "10", "--threads", "1", "--local-features", "rootsift",
            "--ray", "auto", "--quiet",
        ]
    )  # fmt: skip
    assert code == 0
    assert ray.is_initialized()  # the CLI joined the module's instance and left it running
    _same_members(_members(out), _members(single_process_map))


def test_encoding_tasks_fill_a_large_ivf_index_like_add(cluster):
    from placekit.index.build import build_index
    from placekit.index.ivf import PlaceIndex, SearchParams

    x = np.random.default_rng(0).normal(size=(3000, 32)).astype(np.float32)
    ids = np.arange(3000, dtype=np.int64) * 7
    recipe, params = "PCAW32,OPQ,IVF16_HNSW16,PQ8,Refine", SearchParams(nprobe=4)
    ref = PlaceIndex(recipe, 32, params)
    ref.train(x)
    ref.add(x, ids)
    import placekit.index.build as build

    old = build.ENCODE_CHUNK
    build.ENCODE_CHUNK = 700  # several encoding tasks
    try:
        distributed = build_index(recipe, x, ids, params, 0, cluster)
    finally:
        build.ENCODE_CHUNK = old
    for a, b in zip((ref.lists.ids, ref.lists.codes, ref.lists.vectors, ref.lists.offsets), (
        distributed.lists.ids, distributed.lists.codes, distributed.lists.vectors, distributed.lists.offsets)):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    q = x[:20] + 0.01
    for row in q:
        assert np.array_equal(ref.search(row, k=5)[0], distributed.search(row, k=5)[0])
