"""Localizer: open a map, then ``localize(frame)`` -> ``Localization``."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Optional

import cv2
import numpy as np

from placekit.blas import blas_threads
from placekit.decision.rule import decide, decide_verified
from placekit.errors import BuildError, ClosedError, LocationError, MapFormatError, OptionsError
from placekit.geometry.pose import MIN_INLIERS, PoseEstimate, camera_matrix, estimate_pose
from placekit.geometry.rotation import matrix_to_quaternion
from placekit.inference.extractors import GlobalExtractor
from placekit.inference.imageio import Frame, to_bgr
from placekit.inference.loading import open_global_model, open_local_extractor
from placekit.local.extractor import LocalFeatureExtractor, LocalFeatures
from placekit.local.verification import Verification, verify_places
from placekit.local.vlad import VladExtractor
from placekit.mapfile.placemap import PlaceMap
from placekit.mapfile.places import PlaceTable
from placekit.options import TOP_K_RANGE, LocalizerOptions, is_integer
from placekit.search import search_map
from placekit.types import Localization, Location, MapInfo, Match, Pose, Prior, check_place_name

MAX_OVERLAP_WORKERS = 4
# a place verified with this many times the map's inlier floor ends the verification early
DECISIVE_INLIER_FACTOR = 3


class Localizer:
    """Answers where a frame was taken, from one map file.

    ``localize`` never raises for "no match" (the status says so); it raises typed errors for
    bad frames. It is safe to call from several threads on one Localizer, also while another
    thread adds or removes places (``add_place``, ``remove_place``, ``compact``, ``save``).
    """

    def __init__(
        self,
        placemap: PlaceMap,
        extractor: GlobalExtractor | VladExtractor,
        options: LocalizerOptions,
        source: str | None = None,
        local: LocalFeatureExtractor | None = None,
        overlap: bool = False,
    ):
        self.map = placemap
        self.extractor = extractor
        self.local = local
        self.options = options
        self.source = source
        self._closed = False
        self._close_lock = threading.Lock()
        self._update_lock = threading.Lock()
        self._overlap = overlap  # local features on a worker thread beside the global model
        self._workers: ThreadPoolExecutor | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str], options: LocalizerOptions = LocalizerOptions()) -> Localizer:
        """Open a map file; finds its model (embedded, ``options.model``, or shipped by sha256)."""
        if not isinstance(options, LocalizerOptions):
            raise OptionsError(
                f"options must be LocalizerOptions (LocalizerOptions.from_dict for a dict), "
                f"got {type(options).__name__}"
            )
        placemap = PlaceMap.load(path, verify=options.verify_map)
        try:
            verifying = placemap.pointmap is not None and options.verify
            # two models and NumPy matching per frame: ORT threads must stop spinning after a run
            spin = not verifying
            source = str(path)
            vlad = placemap.descriptor.get("kind") == "vlad"
            local = open_local_extractor(placemap, options.runtime, source, spin) if (vlad or verifying) else None
            cores = options.threads or os.cpu_count() or 1
            # Overlap pays where the local features are OpenCV's (RootSIFT): a second network
            # competing for the same cores made HardNet maps slower (benchmarks/bench_localize.py)
            overlap = (
                verifying
                and not vlad
                and options.overlap_local_features
                and cores >= 2
                and local is not None
                and local.describer is None
            )
            extractor: GlobalExtractor | VladExtractor
            if vlad:
                if local is None or placemap.vlad is None:
                    raise MapFormatError(f"{source}: a VLAD map needs its local features and vocabulary")
                extractor = VladExtractor(local, placemap.vlad)
            else:
                # overlapped, the global model leaves a core to OpenCV's local features
                runtime = replace(options.runtime, threads=cores - 1) if overlap else options.runtime
                extractor = GlobalExtractor(open_global_model(placemap, options.model, runtime, source, spin))
            if local is not None and options.query_keypoints is not None:
                local = local.with_max_keypoints(min(options.query_keypoints, local.max_keypoints))
            return cls(placemap, extractor, options, source, local if verifying else None, overlap)
        except BaseException:
            placemap.close()
            raise

    # ------------------------------------------------------------------ the action
    def localize(self, frame: Frame, prior: Optional[Prior] = None, top_k: Optional[int] = None) -> Localization:
        """Where was ``frame`` taken? frame: (H, W, 3) uint8 BGR, (H, W) grey, or a path.
        prior: search only the places within ``prior.radius_m`` of ``prior.location``.
        top_k: matches to return for this frame (default ``options.top_k``; a tracker asks
        for more candidates than it shows)."""
        with blas_threads(self.options.blas_threads):
            return self._localize(frame, prior, top_k)

    def _localize(self, frame: Frame, prior: Optional[Prior], top_k: Optional[int]) -> Localization:
        self._check_open()
        if top_k is None:
            top_k = self.options.top_k
        elif not is_integer(top_k) or not TOP_K_RANGE[0] <= int(top_k) <= TOP_K_RANGE[1]:
            raise OptionsError(f"top_k must be an integer within {TOP_K_RANGE[0]}..{TOP_K_RANGE[1]}, got {top_k!r}")
        top_k = int(top_k)
        if prior is not None and not isinstance(prior, Prior):
            raise LocationError(f"prior must be a placekit.Prior, got {type(prior).__name__}")
        self._check_file()
        t0 = time.perf_counter()
        bgr = to_bgr(frame)
        t1 = time.perf_counter()
        local = self.local
        verify_top = self.options.verify_top if local is not None else 0
        feats: LocalFeatures | None = None
        pending: Future[LocalFeatures] | None = None
        if isinstance(self.extractor, VladExtractor):  # local features once, for VLAD and verification
            descriptor, feats = self.extractor.describe_with_features(bgr)
        else:
            if local is not None and verify_top and self._overlap:
                pending = self._worker_pool().submit(local.extract, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
            try:
                descriptor = self.extractor.describe_bgr(bgr)
            except BaseException:
                if pending is not None:
                    pending.cancel()
                raise
        t2 = time.perf_counter()
        ids, scores = search_map(
            self.map, descriptor, max(top_k, verify_top), self.options.nprobe, self.options.rerank, prior
        )
        t3 = time.perf_counter()
        places = self.map.places  # read after the search: an added place is in it
        rows, present = places.rows_present(ids)
        ids, scores = ids[present], scores[present]
        inliers, pose, t_local, t4 = None, None, t3, t3
        if local is not None and verify_top and len(ids):
            if pending is not None:
                feats = pending.result()
            elif feats is None:
                feats = local.extract(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
            t_local = time.perf_counter()
            ids, scores, rows, verification = self._rerank_by_inliers(feats, ids, scores, rows, verify_top)
            inliers = verification.inliers
            t4 = time.perf_counter()
            pose = self._pose(feats, bgr.shape, verification, rows[0], places)
        elif pending is not None:
            pending.cancel()  # nothing to verify: drop the extraction if it has not started
        t5 = time.perf_counter()
        ids, scores, rows = ids[:top_k], scores[:top_k], rows[:top_k]
        positions = np.asarray(places.xyz[rows])
        cal = self.map.calibration
        decision = decide(scores, positions, cal)
        if inliers is not None:
            decision = decide_verified(decision, scores, positions, inliers[:top_k], cal, pose)
        matches = tuple(
            Match(
                int(i), places.name(r), float(s), loc, None if inliers is None or k >= len(inliers) else int(inliers[k])
            )
            for k, (i, r, s, loc) in enumerate(zip(ids, rows, scores, self.map.location_of_xyz(positions)))
        )
        location = self.map.to_location(decision.position) if decision.position is not None else None
        t6 = time.perf_counter()
        timings = {"decode": t1 - t0, "extract": t2 - t1, "search": t3 - t2}
        if inliers is not None:
            timings.update(local_features=t_local - t3, verify=t4 - t_local, pose=t5 - t4)
        timings.update(decide=t6 - t5, total=t6 - t0)
        pose_out = None
        if pose is not None and decision.status == "localized":
            pose_out = Pose(matrix_to_quaternion(pose.R), _vec3(pose.t), _vec3(pose.center))
        return Localization(
            status=decision.status,
            location=location,
            uncertainty_m=decision.uncertainty_m,
            confidence=decision.confidence,
            matches=matches,
            pose=pose_out,
            timings_ms={k: v * 1000.0 for k, v in timings.items()},
        )

    def _rerank_by_inliers(
        self, feats: LocalFeatures, ids: np.ndarray, scores: np.ndarray, rows: np.ndarray, verify_top: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Verification]:
        """Verify the first ``verify_top`` candidates. On maps where verification is decisive
        (``Calibration.verification_decisive``: the map's own correct matches verify, wrong ones
        do not) verified candidates (>= ``min_inliers``) move ahead, the most inliers first, and
        unverified ones follow in the global order; elsewhere the global order stays, inlier
        counts reported only. Returns (ids, scores, rows, the verification of the first
        verify_top' places in the new order)."""
        pointmap = self.map.pointmap
        if pointmap is None:  # a map without local features is never verified
            return ids, scores, rows, Verification(np.zeros(0, np.int64), [], [])
        cal = self.map.calibration
        decisive = None
        if self.options.verify_early_exit and cal.min_inliers > 0:
            decisive = DECISIVE_INLIER_FACTOR * cal.min_inliers
        verification = verify_places(feats.xy, feats.descriptors, pointmap, ids[:verify_top], decisive)
        inliers = verification.inliers
        head = len(inliers)
        if cal.verification_decisive:
            verified = inliers >= max(cal.min_inliers, 1)
            order = np.lexsort((np.arange(head), -np.where(verified, inliers, 0), ~verified))
        else:
            order = np.arange(head)
        ids, scores, rows = ids.copy(), scores.copy(), rows.copy()
        ids[:head], scores[:head], rows[:head] = ids[order], scores[order], rows[order]
        return ids, scores, rows, verification.reordered(order)

    def _pose(
        self,
        feats: LocalFeatures,
        shape: tuple[int, ...],
        verification: Verification,
        best_row: int,
        places: PlaceTable,
    ) -> PoseEstimate | None:
        """PnP from the verified matches of the places with at least ``MIN_INLIERS`` of them
        whose map keypoints observe 3D points (None without 3D points or enough matches)."""
        pointmap = self.map.pointmap
        if pointmap is None or not pointmap.has_points:
            return None
        query_rows, point_ids = verification.correspondences(np.flatnonzero(verification.inliers >= MIN_INLIERS))
        if len(query_rows) < MIN_INLIERS:
            return None
        K = camera_matrix(shape, places.intrinsics[best_row], self.options.intrinsics)
        if K is None:
            return None
        return estimate_pose(feats.xy[query_rows], np.asarray(pointmap.points)[point_ids], K)

    # ------------------------------------------------------------------ live map updates
    def add_place(self, image: Frame, location: Location, name: Optional[str] = None) -> int:
        """Add a place to the open map (its descriptor from ``image``); searches see it at
        once. The index's projection and quantizers are not retrained. Returns its id;
        ``save`` persists it."""
        self._check_open()
        if not isinstance(location, Location):
            raise LocationError(f"location must be a placekit.Location, got {type(location).__name__}")
        if name is not None:
            check_place_name(name)
        xyz = self.map.to_metric(location)
        descriptor = self.extractor.describe(image)
        with self._update_lock:
            return self.map.add_place(descriptor, xyz, name, location.rotation, location.intrinsics)

    def remove_place(self, place_id: int) -> bool:
        """Remove a place by id (searches skip it at once); False if it was not live."""
        self._check_open()
        if not is_integer(place_id) or not 0 <= int(place_id) < 2**63:
            raise OptionsError(f"place_id must be a non-negative int64 integer, got {place_id!r}")
        with self._update_lock:
            return self.map.remove_place(int(place_id))

    def compact(self) -> None:
        """Drop removed places from memory (index rows and the places table)."""
        self._check_open()
        with self._update_lock:
            self.map.compact()

    def save(self, path: str | os.PathLike[str] | None = None) -> None:
        """Write the map with its updates atomically (to ``path``, default the file it was
        opened from: the open map keeps reading its old, unlinked copy)."""
        self._check_open()
        target = path or self.source
        if target is None:
            raise BuildError("no path given and the map was not opened from a file")
        self._check_file()
        with self._update_lock:
            self.map.compact()
            self.map.save(target)

    def _check_file(self) -> None:
        """A memory-mapped map file modified in place since open raises ``MapFormatError``."""
        reader = self.map.reader
        if reader is not None:
            reader.check_unchanged()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this Localizer is closed")

    def _worker_pool(self) -> ThreadPoolExecutor:
        """The threads that extract local features while callers run the global model: one
        per concurrent ``localize`` call, up to ``MAX_OVERLAP_WORKERS``."""
        with self._close_lock:
            if self._closed:
                raise ClosedError("this Localizer is closed")
            if self._workers is None:
                self._workers = ThreadPoolExecutor(MAX_OVERLAP_WORKERS, thread_name_prefix="placekit-local")
            return self._workers

    # ------------------------------------------------------------------ map coordinates
    def to_metric(self, location: Location) -> np.ndarray:
        """A Location (of the map's kind: WGS84 or local) -> (3,) metres in the map's frame
        (east, north, up from the map's origin for WGS84 maps). Odometry for ``Tracker`` and
        distances between answers are in these metres."""
        self._check_open()
        if not isinstance(location, Location):
            raise LocationError(f"location must be a placekit.Location, got {type(location).__name__}")
        return self.map.to_metric(location)

    def distance_m(self, a: Location, b: Location) -> float:
        """Distance in metres between two Locations of the map's kind."""
        return float(np.linalg.norm(self.to_metric(a) - self.to_metric(b)))

    # ------------------------------------------------------------------ info / lifetime
    def info(self) -> MapInfo:
        """What the open map holds, and how this Localizer runs it (``runtime``)."""
        self._check_open()
        engine = getattr(self.extractor, "engine", None)
        if engine is None and self.local is not None and self.local.describer is not None:
            engine = self.local.describer.engine
        runtime = {
            "backend": getattr(engine, "backend", "opencv"),
            "threads": self.options.threads,
            "providers": list(getattr(engine, "providers", [])),
            "verification": self.local is not None,
        }
        return replace(self.map.info(), runtime=runtime)

    def close(self) -> None:
        with self._close_lock:
            if not self._closed:
                self._closed = True
                if self._workers is not None:
                    self._workers.shutdown(wait=True)
                self.map.close()

    def __enter__(self) -> Localizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _vec3(v: np.ndarray) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])
