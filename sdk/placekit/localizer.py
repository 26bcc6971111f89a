"""Localizer: open a map, then ``localize(frame)`` -> ``Localization``."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from placekit.decision.rule import decide, decide_verified
from placekit.inference.engine import open_engine, sha256_file
from placekit.errors import (BuildError, ClosedError, LocationError, MapFormatError, ModelMismatchError, ModelNotFoundError,
                     OptionsError)
from placekit.inference.extractors import GlobalExtractor, LocalDescriber
from placekit.local.extractor import LocalFeatureExtractor
from placekit.geometry.pose import MIN_INLIERS, estimate_pose
from placekit.geometry.rotation import matrix_to_quaternion
from placekit.local.verification import verify
from placekit.local.vlad import VladExtractor
from placekit.inference.imageio import Frame, to_bgr
from placekit.inference.catalog import find_model_by_sha256, resolve_model
from placekit.options import LOCAL_MAX_SIDE_RANGE, MAX_KEYPOINTS_RANGE, LocalizerOptions, is_integer
from placekit.mapfile.placemap import PlaceMap
from placekit.types import Localization, Location, Match, Pose, Prior, check_place_name


WIDE_PRIOR_SHARE = 0.25   # a prior whose x-strip holds more of the map searches it all, then filters


class Localizer:
    """Answers where a frame was taken, from one map file.

    ``localize`` never raises for "no match" (the status says so); it raises typed errors for
    bad frames. It is safe to call from several threads on one Localizer, also while another
    thread adds or removes places (``add_place``, ``remove_place``, ``compact``, ``save``).
    """

    def __init__(self, placemap: PlaceMap, extractor: GlobalExtractor, options: LocalizerOptions,
                 source: str | None = None, local: LocalFeatureExtractor | None = None):
        self.map = placemap
        self.extractor = extractor
        self.local = local
        self.options = options
        self.source = source
        self._closed = False
        self._close_lock = threading.Lock()
        self._update_lock = threading.Lock()

    @classmethod
    def open(cls, path: str | os.PathLike, options: LocalizerOptions = LocalizerOptions()) -> "Localizer":
        """Open a map file; finds its model (embedded, ``options.model``, or shipped by sha256)."""
        if not isinstance(options, LocalizerOptions):
            raise OptionsError(f"options must be LocalizerOptions (LocalizerOptions.from_dict for a dict), "
                               f"got {type(options).__name__}")
        placemap = PlaceMap.load(path, verify=options.verify_map)
        try:
            # two models and NumPy matching per frame: ORT threads must not spin between them
            spin = not (placemap.pointmap is not None and options.verify)
            if placemap.descriptor.get("kind") == "vlad":
                local = _open_local(placemap, options, str(path), spin)
                extractor = VladExtractor(local, placemap.vocabulary)
                local = local if options.verify else None
            else:
                extractor = GlobalExtractor(_open_model(placemap, options, str(path), spin))
                local = _open_local(placemap, options, str(path), spin) if not spin else None
            return cls(placemap, extractor, options, str(path), local)
        except BaseException:
            placemap.close()
            raise

    # ------------------------------------------------------------------ the action
    def localize(self, frame: Frame, prior: Optional[Prior] = None) -> Localization:
        """Where was ``frame`` taken? frame: (H, W, 3) uint8 BGR, (H, W) grey, or a path.
        prior: search only the places within ``prior.radius_m`` of ``prior.location``."""
        return self._localize(frame, prior, self.options.top_k)

    def _localize(self, frame: Frame, prior: Optional[Prior], top_k: int) -> Localization:
        if self._closed:
            raise ClosedError("this Localizer is closed")
        self._check_file()
        t0 = time.perf_counter()
        bgr = to_bgr(frame)
        t1 = time.perf_counter()
        feats = None
        if isinstance(self.extractor, VladExtractor):      # local features once, for VLAD and verification
            descriptor, feats = self.extractor.describe_with_features(bgr)
        else:
            descriptor = self.extractor.describe_bgr(bgr)
        t2 = time.perf_counter()
        verify_top = self.options.verify_top if self.local is not None else 0
        ids, scores = self._search(descriptor, prior, max(top_k, verify_top))
        t3 = time.perf_counter()
        places = self.map.places           # read after the search: an added place is in it
        rows, present = places.rows_present(ids)
        ids, scores = ids[present], scores[present]
        inliers, pose, t_local, t4 = None, None, t3, t3
        if verify_top and len(ids):
            if feats is None:
                feats = self.local.extract(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
            t_local = time.perf_counter()
            ids, scores, rows, inliers = self._rerank_by_inliers(feats, ids, scores, rows, verify_top)
            t4 = time.perf_counter()
            pose = self._pose(feats, bgr.shape, ids[:len(inliers)][inliers >= MIN_INLIERS], rows[0], places)
        t5 = time.perf_counter()
        ids, scores, rows = ids[:top_k], scores[:top_k], rows[:top_k]
        positions = np.asarray(places.xyz[rows])
        cal = self.map.calibration
        decision = decide(scores, positions, cal)
        if inliers is not None:
            decision = decide_verified(decision, scores, positions, inliers[:top_k], cal, pose)
        matches = tuple(
            Match(int(i), places.name(r), float(s), loc, None if inliers is None or k >= len(inliers) else int(inliers[k]))
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
            pose_out = Pose(matrix_to_quaternion(pose.R), tuple(float(v) for v in pose.t),
                            tuple(float(v) for v in pose.center))
        return Localization(
            status=decision.status, location=location, uncertainty_m=decision.uncertainty_m,
            confidence=decision.confidence, matches=matches, pose=pose_out,
            timings_ms={k: v * 1000.0 for k, v in timings.items()},
        )

    def _rerank_by_inliers(self, feats, ids, scores, rows, verify_top: int):
        """Verify the first ``verify_top`` candidates. On maps where verification is decisive
        (``Calibration.verification_decisive``: the map's own correct matches verify, wrong ones
        do not) verified candidates (>= ``min_inliers``) move ahead, the most inliers first, and
        unverified ones follow in the global order; elsewhere the global order stays, inlier
        counts reported only. Returns (ids, scores, rows, inliers (verify_top',))."""
        inliers = verify(feats.xy, feats.descriptors, self.map.pointmap, ids[:verify_top])
        cal = self.map.calibration
        head = len(inliers)
        if cal.verification_decisive:
            verified = inliers >= max(cal.min_inliers, 1)
            order = np.lexsort((np.arange(head), -np.where(verified, inliers, 0), ~verified))
        else:
            order = np.arange(head)
        ids, scores, rows = ids.copy(), scores.copy(), rows.copy()
        ids[:head], scores[:head], rows[:head] = ids[order], scores[order], rows[order]
        return ids, scores, rows, inliers[order]

    def _pose(self, feats, shape, verified_ids: np.ndarray, best_row: int, places):
        """PnP against the 3D points seen by the verified places (None without 3D points or
        enough verified matches)."""
        pointmap = self.map.pointmap
        if not pointmap.has_points or len(verified_ids) == 0:
            return None
        parts = [pointmap.features_of(int(i)) for i in verified_ids]
        desc = np.concatenate([p[1] for p in parts])
        point_ids = np.concatenate([p[2] for p in parts])
        K = self._query_intrinsics(shape, places.intrinsics[best_row])
        if K is None:
            return None
        return estimate_pose(feats.xy, feats.descriptors, desc, point_ids, np.asarray(pointmap.points), K)

    def _query_intrinsics(self, shape, map_intrinsics) -> np.ndarray | None:
        if self.options.intrinsics is not None:
            fx, fy, cx, cy = self.options.intrinsics
        else:
            if not np.isfinite(map_intrinsics).all():
                return None
            fx, fy, cx, cy = (float(v) for v in map_intrinsics)
            s = shape[1] / (2.0 * cx)       # the map camera, scaled to this frame's width
            fx, fy, cx, cy = fx * s, fy * s, shape[1] / 2.0, shape[0] / 2.0
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], float)

    def _search(self, descriptor: np.ndarray, prior: Optional[Prior], top_k: int) -> tuple[np.ndarray, np.ndarray]:
        opts = self.options
        if prior is None:
            return self.map.index.search(descriptor, k=top_k, nprobe=opts.nprobe, rerank=opts.rerank)
        if not isinstance(prior, Prior):
            raise LocationError(f"prior must be a placekit.Prior, got {type(prior).__name__}")
        places = self.map.places
        centre = self.map.to_metric(prior.location)
        if places.strip_size(centre, prior.radius_m) > WIDE_PRIOR_SHARE * max(len(places), 1):
            # a loose prior: the usual search, deeper, keeping what lies inside the radius
            ids, scores = self.map.index.search(descriptor, k=min(4 * top_k, 100), nprobe=opts.nprobe, rerank=opts.rerank)
            rows, present = places.rows_present(ids)
            ids, scores = ids[present], scores[present]
            inside = np.linalg.norm(np.asarray(places.xyz[rows])[:, :2] - centre[:2], axis=1) <= prior.radius_m
            if inside.sum() >= min(top_k, len(ids)) and inside.any():
                return ids[inside][:top_k], scores[inside][:top_k]
        nearby = places.within(centre, prior.radius_m)
        return self.map.index.search_among(descriptor, nearby, k=top_k)

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
            place_id = self.map.next_place_id()
            name = name or f"place_{place_id:08d}"
            places = self.map.places
            if places.has_name(name):
                raise BuildError(f"the map already has a place named {name!r}")
            self.map.places = places.append(place_id, xyz, name, location.rotation, location.intrinsics)
            self.map.index.add(descriptor[None], np.array([place_id]))
            self.map.issued_ids = place_id + 1
        return place_id

    def remove_place(self, place_id: int) -> bool:
        """Remove a place by id (searches skip it at once); False if it was not live."""
        self._check_open()
        if not is_integer(place_id) or not 0 <= int(place_id) < 2 ** 63:
            raise OptionsError(f"place_id must be a non-negative int64 integer, got {place_id!r}")
        with self._update_lock:
            return self.map.index.remove(np.array([int(place_id)], np.int64)) > 0

    def compact(self) -> None:
        """Drop removed places from memory (index rows and the places table)."""
        self._check_open()
        with self._update_lock:
            self.map.index.compact()
            live = np.sort(self.map.index.ids)
            places = self.map.places
            if len(live) != len(places):
                rows, _ = places.rows_present(live)
                self.map.places = places.take(rows)

    def save(self, path: str | os.PathLike | None = None) -> None:
        """Write the map with its updates atomically (to ``path``, default the file it was
        opened from: the open map keeps reading its old, unlinked copy)."""
        self._check_open()
        target = path or self.source
        if target is None:
            raise BuildError("no path given and the map was not opened from a file")
        self._check_file()
        with self._update_lock:
            self.map.index.compact()
            live = np.sort(self.map.index.ids)
            rows, _ = self.map.places.rows_present(live)
            self.map.places = self.map.places.take(rows)
            self.map.save(target)

    def _check_file(self) -> None:
        """A memory-mapped map file modified in place since open raises ``MapFormatError``."""
        reader = self.map.reader
        if reader is not None:
            reader.check_unchanged()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this Localizer is closed")

    # ------------------------------------------------------------------ info / lifetime
    def info(self) -> dict:
        out = self.map.info()
        engine = getattr(self.extractor, "engine", None)
        if engine is None and self.local is not None and self.local.describer is not None:
            engine = self.local.describer.engine
        out["runtime"] = {"backend": getattr(engine, "backend", "opencv"), "threads": self.options.threads,
                          "providers": list(getattr(engine, "providers", [])),
                          "verification": self.local is not None}
        return out

    def close(self) -> None:
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self.map.close()

    def __enter__(self) -> "Localizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_model(placemap: PlaceMap, options: LocalizerOptions, source: str, spin: bool = True):
    want = placemap.model["sha256"]
    kwargs = dict(backend=options.backend, threads=options.threads, spin=spin,
                  providers=options.providers or None, delegates=options.delegates or None)
    if options.model:
        engine = open_engine(resolve_model(options.model), **kwargs)
    elif placemap.model_bytes is not None:
        engine = open_engine(bytes(placemap.model_bytes), **kwargs)
    else:
        path = find_model_by_sha256(want) or _model_beside(placemap, source, want)
        if path is None:
            try:
                path = resolve_model(placemap.model["name"])
            except ModelNotFoundError:
                raise ModelNotFoundError(
                    f"{source} was built with model {placemap.model['name']!r} (sha256 {want[:12]}...), "
                    "which is not installed; pass LocalizerOptions(model=PATH) or rebuild with embed_model=True"
                ) from None
        engine = open_engine(path, **kwargs)
    if engine.sha256 != want and not _same_model_other_format(placemap, engine):
        raise ModelMismatchError(
            f"{source} was built with model {placemap.model['name']!r} (sha256 {want[:12]}...) but the model "
            f"given is {engine.info.name!r} (sha256 {engine.sha256[:12]}...): descriptors would not be comparable"
        )
    if engine.info.output_dim != int(placemap.descriptor["dim"]):
        raise ModelMismatchError(
            f"{source} holds {placemap.descriptor['dim']}-D descriptors; model {engine.info.name!r} gives "
            f"{engine.info.output_dim}-D"
        )
    return engine


def _open_local(placemap: PlaceMap, options: LocalizerOptions, source: str, spin: bool = True) -> LocalFeatureExtractor:
    """The local-feature extractor the map was built with (by sha256: shipped, beside the map,
    or where it was at build time)."""
    section = placemap.pointmap.section
    max_keypoints, max_side = section.get("max_keypoints"), section.get("max_side")
    if not (isinstance(max_keypoints, int) and MAX_KEYPOINTS_RANGE[0] <= max_keypoints <= MAX_KEYPOINTS_RANGE[1]
            and isinstance(max_side, int) and LOCAL_MAX_SIDE_RANGE[0] <= max_side <= LOCAL_MAX_SIDE_RANGE[1]):
        raise MapFormatError(f"{source}: local.max_keypoints / max_side out of range ({max_keypoints!r}, {max_side!r})")
    make = lambda describer: LocalFeatureExtractor(describer, max_keypoints, max_side)  # noqa: E731
    if section.get("extractor") == "rootsift":
        return make(None)
    want = section.get("model_sha256")
    path = find_model_by_sha256(want) if want else None
    if path is None:
        for candidate in (Path(source).parent / str(section.get("model_file", "")), Path(str(section.get("model_path_hint", "")))):
            if candidate.is_file() and sha256_file(candidate) == want:
                path = candidate
                break
    if path is None:
        raise ModelNotFoundError(f"{source} was built with local model {section.get('extractor')!r} (sha256 "
                                 f"{str(want)[:12]}...), which is not installed; open with LocalizerOptions(verify=False) "
                                 "to localize without verification")
    engine = open_engine(path, backend=options.backend, threads=options.threads, spin=spin)
    return make(LocalDescriber(engine))


def _model_beside(placemap: PlaceMap, source: str, sha256: str) -> Path | None:
    """The model file next to the map, or where it was at build time, if its sha256 matches."""
    candidates = []
    if placemap.model.get("file"):
        candidates.append(Path(source).parent / Path(str(placemap.model["file"])).name)
    if placemap.model.get("path_hint"):
        candidates.append(Path(str(placemap.model["path_hint"])))
    for path in candidates:
        if path.is_file() and sha256_file(path) == sha256:
            return path
    return None


def _same_model_other_format(placemap: PlaceMap, engine) -> bool:
    """A map built with one export of a model may run on another export (LiteRT, int8) of the
    same checkpoint: same name and checkpoint sha256 in the metadata."""
    info = placemap.model.get("info", {})
    ckpt = info.get("placekit.checkpoint_sha256")
    return bool(ckpt) and ckpt == engine.info.checkpoint_sha256 and info.get("placekit.name") == engine.info.name
