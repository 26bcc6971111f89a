"""MapBuilder: images + locations -> one map file."""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from placekit.decision.calibration import Calibration, calibrate, calibrate_inliers, refitter
from placekit.errors import BuildError, CalibrationWarning, ClusterError, LocationError, PlacekitError
from placekit.executors import Executor, LocalExecutor, RayExecutor
from placekit.extraction import (
    Described,
    ExtractionSpec,
    Failed,
    LocalSpec,
    ShardItem,
    describe_image,
    describe_shard,
    extract_shard,
    shards,
)
from placekit.geometry.frames import MIXED_KINDS, frame_for, locations_to_metric
from placekit.geometry.triangulation import Camera, triangulate_map
from placekit.index.build import build_index
from placekit.index.ivf import PlaceIndex, Recipe, SearchParams, auto_recipe, default_nprobe
from placekit.inference.catalog import ModelRef, resolve_model, shipped_vlad
from placekit.inference.engine import open_engine
from placekit.inference.extractors import GlobalExtractor
from placekit.inference.imageio import Frame
from placekit.inference.loading import local_extractor
from placekit.ingest import FolderImages, folder_images
from placekit.local.extractor import LocalFeatureExtractor
from placekit.local.vlad import VladModel, map_vlad
from placekit.mapfile.placemap import PlaceMap
from placekit.mapfile.places import PlaceTable
from placekit.mapfile.pointmap import PointMap, dequantize_descriptors
from placekit.options import DEFAULT_LOCAL_MODEL, DEFAULT_VLAD_LOCAL_MODEL, BuildOptions
from placekit.types import Location, MapInfo, check_place_name

MIN_IMAGES = 2
CALIBRATION_TOP_K = 5
MAX_LISTED_FAILURES = 20  # failed images a BuildError names one by one


class MapBuilder:
    """Collects (image, location) pairs, then writes a map.

    Descriptors are extracted in ``add`` (the image is not kept), so memory grows with the
    number of places, not with image sizes. ``build`` trains the index on the collected
    descriptors, calibrates the decision thresholds on them and writes the file atomically.

    executor: where ``add_many`` / ``add_folder`` describe images and ``build`` trains and fills
    the index: this process (``LocalExecutor``, the default) or a Ray cluster
    (``RayExecutor``); the map is the same either way (``placekit.executors``).
    """

    def __init__(self, options: BuildOptions = BuildOptions(), executor: Executor | None = None):
        if not isinstance(options, BuildOptions):
            raise BuildError(f"options must be BuildOptions, got {type(options).__name__}")
        if executor is not None and not isinstance(executor, (LocalExecutor, RayExecutor)):
            raise BuildError(f"executor must be a LocalExecutor or RayExecutor, got {type(executor).__name__}")
        self.options = options
        self.executor: Executor = executor if executor is not None else LocalExecutor()
        self.vlad = options.descriptor == "vlad"
        self._auto_local = False
        self.extractor: GlobalExtractor | None = None
        self.local: LocalFeatureExtractor | None = None
        self._local_ref: ModelRef | None = None
        self._vocabulary_source = "learned on the map"
        if self.vlad:
            named = options.local_features not in ("none", "auto")
            local_name = options.local_features if named else DEFAULT_VLAD_LOCAL_MODEL
            self._open_local(local_name)
        else:
            self._model_path = resolve_model(options.model)
            self.extractor = GlobalExtractor(open_engine(self._model_path, **options.engine_kwargs()))
            self._auto_local = options.local_features == "auto"
            if options.local_features not in ("none", "auto"):
                self._open_local(options.local_features)
        self._local: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._descriptors: list[np.ndarray | None] = []  # None for VLAD maps (computed at build)
        self._locations: list[Location] = []
        self._names: list[str] = []
        self._groups: list[str] = []
        self._name_set: set[str] = set()
        self._negatives: list[tuple[np.ndarray | None, np.ndarray | None]] = []

    def __len__(self) -> int:
        return len(self._names)

    def add(self, image: Frame, location: Location, name: Optional[str] = None, group: Optional[str] = None) -> None:
        """Add one map image (array or path) taken at ``location``. Raises on bad input and
        leaves the builder unchanged.

        group: the capture session the image belongs to (a video clip, a drive, a survey day).
        Calibration then judges each image only against images of other groups, as a later
        visit would be; without groups, neighbouring frames of one video look like revisits
        and make the thresholds too strict."""
        name = self._name_for(image, name, len(self))
        self._check_new(location, name)
        wants_local = self._wants_local(location)
        described = describe_image(image, self.extractor, self.local, wants_local)
        self._append_described(described, location, name, group)

    def _name_for(self, image: Frame, name: Optional[str], position: int) -> str:
        if name is not None:
            return name
        return Path(image).name if isinstance(image, (str, os.PathLike)) else f"image_{position:06d}"

    def _wants_local(self, location: Location) -> bool:
        """Whether an image at ``location`` gets local features (opens them under ``auto``)."""
        has_camera = bool(location.rotation and location.intrinsics)
        if self.local is None and self._auto_local and has_camera:
            # auto: images that come with a camera get local features (and so 3D points, poses)
            self._open_local(DEFAULT_LOCAL_MODEL)
        return self.local is not None and (not self._auto_local or has_camera)

    def _append_described(self, described: Described, location: Location, name: str, group: Optional[str]) -> None:
        if described.keypoints is not None and described.descriptors is not None:
            self._local[len(self)] = (described.keypoints, described.descriptors)
        self._append(described.global_descriptor, location, name, group)

    def add_negative(self, image: Frame) -> None:
        """Add an image of a place that is *not* in the map (another street, another building,
        ideally from the same kind of camera). It is not stored; calibration counts its best
        score as an out-of-map answer, so the ``unknown`` threshold rises above what unrelated
        places score on this map. Local features are kept for a VLAD map only when the builder
        already has a local extractor (add negatives after the map images)."""
        described = describe_image(image, self.extractor, self.local, wants_local=True)
        local = None if described.descriptors is None else dequantize_descriptors(described.descriptors)
        self._negatives.append((described.global_descriptor, local))  # local features as map images store them

    def add_descriptor(
        self, descriptor: np.ndarray, location: Location, name: str, group: Optional[str] = None
    ) -> None:
        """Add a place from a descriptor computed elsewhere with this builder's model:
        (D,) finite floats, D = the model's output dimension (it is L2-normalised here)."""
        if self.vlad:
            raise BuildError("a VLAD map computes its descriptors from images; add images, not descriptors")
        self._check_new(location, name)
        d = np.asarray(descriptor)
        if d.shape != (self._global().dim,) or not np.issubdtype(d.dtype, np.floating) or not np.isfinite(d).all():
            raise BuildError(f"descriptor must be ({self._global().dim},) finite floats, got {d.shape} {d.dtype}")
        norm = float(np.linalg.norm(d))
        if norm == 0.0:
            raise BuildError("descriptor is all zeros")
        self._append((d / norm).astype(np.float32), location, name, group)

    def _check_new(self, location: Location, name: str) -> None:
        if not isinstance(location, Location):
            raise LocationError(f"location must be a placekit.Location, got {type(location).__name__}")
        if self._locations and location.is_wgs84 != self._locations[0].is_wgs84:
            raise LocationError(MIXED_KINDS)
        check_place_name(name)
        if name in self._name_set:
            raise BuildError(f"duplicate image name {name!r}")

    def _append(self, descriptor: np.ndarray | None, location: Location, name: str, group: Optional[str]) -> None:
        self._descriptors.append(descriptor)
        self._locations.append(location)
        self._names.append(name)
        self._name_set.add(name)
        self._groups.append("" if group is None else str(group))

    def add_many(self, items: Iterable[tuple[Any, ...]], progress: bool = False) -> None:
        """Add (image, location[, name[, group]]) tuples, described in shards of
        ``SHARD_IMAGES`` by the builder's executor (in this process, or as Ray tasks), with an
        optional progress bar over the shards. Every name and location is checked before any
        image is read; when images fail, ``BuildError`` names each of them (and why) and the
        builder is left unchanged."""
        rows: list[tuple[Frame, Location, str, Optional[str]]] = []
        batch_names: set[str] = set()
        for position, item in enumerate(items):
            if not isinstance(item, tuple) or not 2 <= len(item) <= 4:
                raise BuildError(f"item {position}: expected (image, location[, name[, group]]), got {item!r:.80}")
            image, location, name, group = (*item, None, None)[:4]
            name = self._name_for(image, name, len(self) + position)
            self._check_new(location, name)
            if name in batch_names:
                raise BuildError(f"duplicate image name {name!r}")
            batch_names.add(name)
            rows.append((image, location, name, group))
        wanted = [ShardItem(image, name, self._wants_local(location)) for image, location, name, _ in rows]
        results = [r for shard in self._describe_shards(shards(wanted), progress) for r in shard]
        failed = [r for r in results if isinstance(r, Failed)]
        if failed:
            listed = "; ".join(f"{f.name}: {f.message}" for f in failed[:MAX_LISTED_FAILURES])
            more = f" (and {len(failed) - MAX_LISTED_FAILURES} more)" if len(failed) > MAX_LISTED_FAILURES else ""
            raise BuildError(f"{len(failed)} of {len(rows)} images could not be read or described: {listed}{more}")
        for (_, location, name, group), described in zip(rows, results):
            assert isinstance(described, Described)
            self._append_described(described, location, name, group)

    def _describe_shards(self, batches: list[list[ShardItem]], progress: bool) -> list[list[Described | Failed]]:
        """Each shard described by the executor: with this builder's open models in this
        process, or on workers that open the models ``_extraction_spec`` names."""
        if not self.executor.distributed:
            return self.executor.map(
                functools.partial(describe_shard, (self.extractor, self.local)), batches, "extracting", progress
            )
        spec = self._extraction_spec()
        return self.executor.map(functools.partial(extract_shard, spec), batches, "extracting", progress)

    def _extraction_spec(self) -> ExtractionSpec:
        opts = self.options
        local = None
        if self.local is not None:
            name = self._local_ref.path_hint if self._local_ref and self._local_ref.path_hint else self.local.name
            local = LocalSpec(name, opts.max_keypoints, opts.local_max_side, opts.local_detector)
        global_model = str(self._model_path) if self.extractor is not None else None
        return ExtractionSpec(global_model, local, opts.runtime)

    def add_folder(
        self, folder: str | os.PathLike[str], locations: str | os.PathLike[str], progress: bool = False
    ) -> FolderImages:
        """Add every image of ``folder`` listed in the locations CSV ``locations`` (with its
        group column, if any), or, with ``locations="exif"``, every image at its EXIF GPS
        position (``placekit map build DIR --locations CSV|exif``). Returns what was found;
        ``.unlisted`` names the images the CSV skipped."""
        found = folder_images(folder, locations)
        self.add_many(found.items, progress=progress)
        return found

    def build(self, path: str | os.PathLike[str], user: Optional[dict[str, Any]] = None) -> MapInfo:
        """Train, calibrate and write the map to ``path``; returns ``map info`` of the result.
        When the calibration cannot promise the target precision, ``info.warnings`` says why
        and a ``CalibrationWarning`` is issued (the map is written all the same)."""
        n = len(self)
        if n < MIN_IMAGES:
            raise BuildError(f"a map needs at least {MIN_IMAGES} images, got {n}")
        vlad_model: VladModel | None = None
        use_vlad = self.vlad  # 'auto' is GeM: VLAD lost on the generalization suite
        if use_vlad:
            vlad_model, x = self._vlad_descriptors()
        else:
            x = np.stack([d for d in self._descriptors if d is not None])
        frame = frame_for(self._locations)
        xyz = locations_to_metric(self._locations, frame)
        ids = np.arange(n, dtype=np.int64)
        index = self._index(x, ids)
        pointmap = self._point_map(xyz) if self.local is not None else None
        cal = self._calibration(index, x, ids, xyz, pointmap, vlad_model)
        rotation = np.array([loc.rotation or (np.nan,) * 4 for loc in self._locations], np.float32)
        intrinsics = np.array([loc.intrinsics or (np.nan,) * 4 for loc in self._locations], np.float32)
        descriptor = {"kind": "vlad" if use_vlad else "gem", "dim": int(x.shape[1])}
        if vlad_model is not None:
            descriptor["words"] = int(len(vlad_model.vocabulary))
            descriptor["vocabulary"] = self._vocabulary_source
            if vlad_model.whitening is not None:
                descriptor["whitening"] = f"{self._vocabulary_source}, PCA-whitened to {vlad_model.dim}-D"
            ref = self._local_parts()[1]
            model = dict(replace(ref, sha256=ref.sha256 or "rootsift").to_global_section(), info={})
            model_path = Path(ref.path_hint) if ref.path_hint else None
        else:
            engine = self._global().engine
            model = dict(
                ModelRef.of_file(engine.info.name, self._model_path, engine.sha256).to_global_section(),
                info=engine.info.to_metadata(),
            )
            model_path = self._model_path
        placemap = PlaceMap(
            model=model,
            descriptor=descriptor,
            index=index,
            places=PlaceTable.create(ids, xyz, self._names, rotation, intrinsics),
            frame=frame,
            calibration=cal,
            user=dict(user or {}),
            model_bytes=model_path.read_bytes() if (self.options.embed_model and model_path) else None,
            pointmap=pointmap,
            vlad=vlad_model,
        )
        placemap.save(path)
        loaded = PlaceMap.load(path)
        try:
            info = loaded.info()
        finally:
            loaded.close()
        for message in info.warnings:
            warnings.warn(f"{path}: {message}", CalibrationWarning, stacklevel=2)
        return info

    def _negative_descriptors(self, vlad_model: VladModel | None) -> np.ndarray | None:
        """(M, d) descriptors of the negatives in the map's descriptor space, or None."""
        if vlad_model is None:
            rows = [g for g, _ in self._negatives if g is not None]
        else:
            rows = [vlad_model.describe(local) for _, local in self._negatives if local is not None]
        return np.stack(rows) if rows else None

    def _vlad_descriptors(self) -> tuple[VladModel, np.ndarray]:
        """The VLAD model (shipped with the local model, or a vocabulary learned on the map's
        local descriptors); VLAD of every image."""
        local = [dequantize_descriptors(self._local[i][1]) for i in range(len(self))]
        extractor, ref = self._local_parts()
        shipped = None
        if self.options.vlad_vocabulary == "shipped" and ref.path_hint:
            shipped = shipped_vlad(Path(ref.path_hint), self.options.vlad_words, extractor.dim)
        self._vocabulary_source = f"shipped: {shipped[1]}" if shipped else "learned on the map"
        model = VladModel(shipped[0], shipped[2] if self.options.vlad_whitening else None) if shipped else None
        return map_vlad(local, self.options.vlad_words, seed=self.options.seed, shipped=model)

    def _global(self) -> GlobalExtractor:
        if self.extractor is None:
            raise BuildError("a VLAD map describes images by their local features; it has no global model")
        return self.extractor

    def _local_parts(self) -> tuple[LocalFeatureExtractor, ModelRef]:
        if self.local is None or self._local_ref is None:
            raise BuildError("this builder extracts no local features")
        return self.local, self._local_ref

    def _open_local(self, name: str) -> None:
        opts = self.options
        self.local, self._local_ref = local_extractor(
            name, opts.max_keypoints, opts.local_max_side, opts.runtime, detector=opts.local_detector
        )

    def _index(self, x: np.ndarray, ids: np.ndarray) -> PlaceIndex:
        """The map's index (recipe ``auto`` chosen by size), trained on and holding ``x`` (N, d)."""
        opts = self.options
        recipe = auto_recipe(len(x), x.shape[1]) if opts.recipe == "auto" else opts.recipe
        nprobe = opts.nprobe if opts.nprobe is not None else default_nprobe(Recipe.parse(recipe))
        params = SearchParams(nprobe=nprobe, rerank=opts.rerank)
        try:
            index = build_index(recipe, x, ids, params, opts.seed, self.executor)
        except ClusterError:
            raise
        except PlacekitError as exc:
            raise BuildError(f"cannot build index {recipe!r} from {len(x)} images: {exc}") from exc
        return index

    def _calibration(
        self,
        index: PlaceIndex,
        x: np.ndarray,
        ids: np.ndarray,
        xyz: np.ndarray,
        pointmap: PointMap | None,
        vlad_model: VladModel | None,
    ) -> Calibration:
        """Decision thresholds fitted on the map's own images (and the negatives); the
        verification threshold too when the map has local features."""
        opts = self.options
        groups = None
        if any(self._groups):  # an image without a group is a group of its own
            groups = np.array([g or f"\0{i}" for i, g in enumerate(self._groups)])
        cal = calibrate(
            index,
            x,
            ids,
            xyz,
            opts.match_radius_m,
            opts.target_precision,
            top_k=CALIBRATION_TOP_K,
            seed=opts.seed,
            groups=groups,
            negatives=self._negative_descriptors(vlad_model),
            refit=refitter(index, x, ids, opts.seed),
        )
        if pointmap is None:
            return cal
        used_groups = groups if cal.stats.get("groups") == "other groups only" else None
        min_inliers, stats = calibrate_inliers(
            index, x, ids, xyz, pointmap, opts.match_radius_m, opts.target_precision, used_groups, seed=opts.seed
        )
        return replace(cal, min_inliers=min_inliers, stats=dict(cal.stats, verification=stats))

    def _point_map(self, xyz: np.ndarray) -> PointMap:
        """Stored local features of every image added with one, and 3D points triangulated
        from the images that came with rotation and intrinsics."""
        features = {i: (k, dequantize_descriptors(d)) for i, (k, d) in self._local.items()}
        cameras = {
            i: Camera.from_location(loc.rotation, xyz[i], loc.intrinsics)
            for i, loc in enumerate(self._locations)
            if loc.rotation and loc.intrinsics and i in features
        }
        point_ids, points, stats = (
            triangulate_map(features, cameras) if len(cameras) >= 2 else ({}, np.zeros((0, 3)), {})
        )
        local, ref = self._local_parts()
        section = {
            "extractor": local.name,
            "dim": local.dim,
            "max_keypoints": local.max_keypoints,
            "detector": local.detector,
            "max_side": local.max_side,
            "triangulation": stats,
            **ref.to_local_section(),
        }
        return PointMap.create(
            section,
            {i: (k, d, point_ids.get(i, np.full(len(k), -1, np.int32))) for i, (k, d) in features.items()},
            points,
        )
