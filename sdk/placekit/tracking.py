"""Tracking over time: a discrete Bayes filter (an HMM) over map places, fed by ``localize``.

Each frame, the localizer's top candidates (by global-descriptor similarity) are the
observations. The hidden state is "which map place is the camera at", plus one extra state,
*elsewhere* (a place the map does not cover). One step:

1. predict: belief moves with a motion model. Without odometry, the camera moved by its recent
   velocity (an average over the last localized answers, decaying when it is not localized)
   give or take ``max_speed_mps * dt`` (a Gaussian of that sigma, at least
   ``min_motion_sigma_m``); with
   odometry (a displacement in map-frame metres since the last frame) it moved by that much,
   with ``odometry_sigma_m`` noise. Per step, ``kidnap_probability`` of the in-map mass jumps to
   the frame's best few candidates (relocalisation after a kidnap or a long gap), ``leave_probability``
   goes elsewhere, and ``enter_probability`` of the elsewhere mass comes back via the candidates.
2. update: a place's log-likelihood ratio against the elsewhere state is
   ``(score - t) / temperature``: ``t`` is the map's calibrated ``unknown_threshold`` (the score
   at which single frames are trusted, so tracking and single frames agree on what counts as
   evidence), and the temperature is ``1 / a`` for the slope ``a`` of the calibration's
   P(correct | score) = sigmoid(a * score + b), fitted on the map's own images (how fast
   evidence grows with score). Places not among the candidates score at most the lowest
   candidate. Maps whose calibration has no slope use ``fallback_temperature``.
3. decide: the answer is the place of highest belief, its position the belief-weighted mean of
   the places within the match radius of it; ``confidence`` is the belief mass there.
   ``localized`` when that mass is >= ``min_confidence``, ``unknown`` when the elsewhere state
   holds the most mass, else ``ambiguous``.

Belief is kept sparse: at most ``max_states`` places with the most mass (plus elsewhere).
Shapes: positions (N, 3) metres in the map frame.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np

from placekit.decision.calibration import Calibration
from placekit.errors import OptionsError
from placekit.geometry.fusion import weighted_position
from placekit.inference.imageio import Frame
from placekit.localizer import Localizer
from placekit.types import Localization, Prior, Status


@dataclass(frozen=True)
class TrackerOptions:
    """max_speed_mps: fastest plausible motion when no odometry is given. odometry_sigma_m:
    noise of a given odometry step. min_motion_sigma_m: motion noise floor per step.
    kidnap_probability: per-step chance the camera jumped anywhere in the map.
    leave_probability / enter_probability: per-step chances of leaving the mapped area and
    of coming back; that mass lands on the ``relocalize_candidates`` best candidates of the
    frame. fallback_temperature: observation softness (score units) for maps whose
    calibration has no confidence slope. min_confidence: belief mass needed for
    ``localized`` (0.5: more likely than not). candidates: places retrieved per frame. max_states: places tracked."""

    max_speed_mps: float = 15.0
    odometry_sigma_m: float = 2.0
    min_motion_sigma_m: float = 2.0
    kidnap_probability: float = 0.05
    leave_probability: float = 0.02
    enter_probability: float = 0.5
    relocalize_candidates: int = 5
    fallback_temperature: float = 0.05
    min_confidence: float = 0.5
    candidates: int = 20
    max_states: int = 200
    default_dt_s: float = 0.1

    def __post_init__(self) -> None:
        positive = ("max_speed_mps", "odometry_sigma_m", "min_motion_sigma_m", "fallback_temperature", "default_dt_s")
        for name in positive:
            if not getattr(self, name) > 0:
                raise OptionsError(f"{name} must be > 0")
        for name in ("kidnap_probability", "leave_probability", "enter_probability"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise OptionsError(f"{name} must be in [0, 1)")
        if self.kidnap_probability + self.leave_probability >= 1.0:
            raise OptionsError("kidnap_probability + leave_probability must be < 1")
        if not 0.0 < self.min_confidence <= 1.0:
            raise OptionsError("min_confidence must be in (0, 1]")
        if self.candidates < 1 or self.max_states < self.candidates:
            raise OptionsError("need candidates >= 1 and max_states >= candidates")
        if not 1 <= self.relocalize_candidates <= self.candidates:
            raise OptionsError("relocalize_candidates must be within 1..candidates")


class Tracker:
    """Wraps a ``Localizer``; ``track(frame, ...)`` returns the filtered ``Localization``.

    One Tracker follows one camera; calls are serialised by a lock. ``reset()`` forgets the
    history (e.g. after the robot was carried elsewhere, if it knows)."""

    def __init__(self, localizer: Localizer, options: TrackerOptions = TrackerOptions()):
        if not isinstance(options, TrackerOptions):
            raise OptionsError(f"options must be TrackerOptions, got {type(options).__name__}")
        self.localizer = localizer
        self.options = options
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self._ids = np.zeros(0, np.int64)  # tracked place ids
        self._xyz = np.zeros((0, 3))  # their positions
        self._belief = np.zeros(0)  # their belief
        self._elsewhere = 1.0  # belief of "not in the map"
        self._last_time: Optional[float] = None
        self._velocity = np.zeros(3)  # m/s, from successive localized answers
        self._last_position: Optional[np.ndarray] = None
        self._started = False

    def track(
        self,
        frame: Frame,
        timestamp: Optional[float] = None,
        odometry: Optional[Sequence[float]] = None,
        prior: Optional[Prior] = None,
    ) -> Localization:
        """Localize ``frame`` and fold it into the track. timestamp: seconds (monotonic);
        odometry: (3,) or (2,) map-frame displacement in metres since the previous frame."""
        top_k = self.localizer.options.top_k
        single = self.localizer.localize(frame, prior, top_k=max(top_k, self.options.candidates))
        t0 = time.perf_counter()
        with self._lock:
            result = self._step(single, timestamp, odometry)
        timings = dict(single.timings_ms)
        timings["track"] = (time.perf_counter() - t0) * 1000.0
        timings["total"] = timings.get("total", 0.0) + timings["track"]
        return replace(result, matches=single.matches[:top_k], timings_ms=timings)

    # ------------------------------------------------------------------ the filter
    def _step(
        self, single: Localization, timestamp: Optional[float], odometry: Optional[Sequence[float]]
    ) -> Localization:
        opts = self.options
        placemap = self.localizer.map
        cal = placemap.calibration
        dt = opts.default_dt_s
        if timestamp is not None:
            if self._last_time is not None:
                dt = float(timestamp) - self._last_time
                if dt < 0:
                    raise OptionsError("timestamps must not go backwards")
            self._last_time = float(timestamp)
        cand_ids = np.array([m.place_id for m in single.matches], np.int64)
        cand_scores = np.array([m.score for m in single.matches], float)
        rows, present = placemap.places.rows_present(cand_ids)
        cand_ids, cand_scores = cand_ids[present], cand_scores[present]
        cand_xyz = np.asarray(placemap.places.xyz[rows], float).reshape(-1, 3)
        # state space: tracked places + this frame's candidates
        new = ~np.isin(cand_ids, self._ids)
        ids = np.concatenate([self._ids, cand_ids[new]])
        xyz = np.concatenate([self._xyz, cand_xyz[new]])
        prior_mass = self._predict(xyz, dt, odometry, cand_ids, ids)
        # observation log-likelihood ratios against "elsewhere" (which has 0)
        floor = cand_scores.min() if len(cand_scores) else cal.unknown_threshold
        scores = np.full(len(ids), floor)
        pos = {int(i): k for k, i in enumerate(ids)}
        for i, s in zip(cand_ids, cand_scores):
            scores[pos[int(i)]] = s
        temperature = 1.0 / cal.confidence_slope if cal.confidence_slope > 0 else opts.fallback_temperature
        log_ratio = (scores - cal.unknown_threshold) / temperature
        top = max(float(log_ratio.max(initial=0.0)), 0.0)
        posterior = prior_mass[:-1] * np.exp(log_ratio - top)
        elsewhere = prior_mass[-1] * np.exp(-top)
        total = posterior.sum() + elsewhere
        posterior, elsewhere = posterior / total, elsewhere / total
        keep = np.argsort(-posterior, kind="stable")[: opts.max_states]
        keep = keep[posterior[keep] > 1e-9]
        self._ids, self._xyz, self._belief, self._elsewhere = ids[keep], xyz[keep], posterior[keep], elsewhere
        self._started = True
        answer = self._answer(single, cal)
        self._update_velocity(answer, dt)
        return answer

    def _update_velocity(self, answer: Localization, dt: float) -> None:
        """Constant-velocity motion prior: an average of the last localized steps."""
        if answer.status != "localized" or answer.location is None:
            self._velocity *= 0.5
            self._last_position = None
            return
        position = self.localizer.map.to_metric(answer.location)
        if self._last_position is not None and dt > 0:
            step = (position - self._last_position) / dt
            speed = float(np.linalg.norm(step[:2]))
            if speed <= self.options.max_speed_mps:
                self._velocity = 0.5 * self._velocity + 0.5 * step
        self._last_position = position

    def _predict(
        self, xyz: np.ndarray, dt: float, odometry: Optional[Sequence[float]], cand_ids: np.ndarray, ids: np.ndarray
    ) -> np.ndarray:
        """Prior mass over ``ids`` + elsewhere (last entry) after one motion step."""
        opts = self.options
        n = len(ids)
        mass = np.zeros(n + 1)
        is_cand = np.isin(ids, cand_ids[: opts.relocalize_candidates])
        n_cand = max(int(is_cand.sum()), 1)
        if not self._started:
            # first frame: half on the candidates, half elsewhere (no history yet)
            mass[:n][is_cand] = 0.5 / n_cand
            mass[-1] = 0.5 if is_cand.any() else 1.0
            return mass
        move = 1 - opts.kidnap_probability - opts.leave_probability
        if len(self._ids):
            shift = np.zeros(3)
            if odometry is not None:
                step = np.asarray(odometry, float).reshape(-1)
                if step.shape not in ((2,), (3,)) or not np.isfinite(step).all():
                    raise OptionsError("odometry must be 2 or 3 finite numbers (map-frame metres)")
                shift[: len(step)] = step
                sigma = opts.odometry_sigma_m
            else:
                shift = self._velocity * dt
                sigma = max(opts.max_speed_mps * dt, opts.min_motion_sigma_m)
            d2 = (((self._xyz + shift)[:, None, :2] - xyz[None, :, :2]) ** 2).sum(-1)  # (m, n)
            kernel = np.exp(-0.5 * d2 / sigma**2)
            kernel /= np.maximum(kernel.sum(1, keepdims=True), 1e-300)
            mass[:n] = move * (self._belief @ kernel)
        in_map = float(self._belief.sum())
        mass[-1] = opts.leave_probability * in_map + (1 - opts.enter_probability) * self._elsewhere
        jump = opts.kidnap_probability * in_map + opts.enter_probability * self._elsewhere
        mass[:n][is_cand] += jump / n_cand
        return mass

    def _answer(self, single: Localization, cal: Calibration) -> Localization:
        opts = self.options
        placemap = self.localizer.map
        if len(self._ids) == 0:
            return Localization("unknown", None, None, 0.0)
        best = int(np.argmax(self._belief))
        near = np.linalg.norm(self._xyz[:, :2] - self._xyz[best, :2], axis=1) <= cal.match_radius_m
        mass = float(self._belief[near].sum())
        if self._elsewhere >= mass:
            return Localization("unknown", None, None, mass)
        position, spread = weighted_position(self._belief[near], self._xyz[near])
        status: Status = "localized" if mass >= opts.min_confidence else "ambiguous"
        uncertainty = float(np.hypot(cal.base_uncertainty_m, spread))
        if status == "ambiguous":
            far = np.linalg.norm(self._xyz[:, :2] - position[:2], axis=1)
            uncertainty = max(uncertainty, float((self._belief @ far) / max(self._belief.sum(), 1e-12)))
        return Localization(status, placemap.to_location(position), uncertainty, mass)

    # ------------------------------------------------------------------ helpers
    def belief(self) -> dict[int, float]:
        """Current belief per tracked place id (and -1 for elsewhere)."""
        with self._lock:
            out = {int(i): float(b) for i, b in zip(self._ids, self._belief)}
            out[-1] = float(self._elsewhere)
            return out
