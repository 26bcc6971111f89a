"""Global descriptor extraction: frame -> preprocess -> engine -> (D,) unit vector."""
from __future__ import annotations

import numpy as np

from .engine import Engine
from .errors import ModelFormatError
from .imageio import Frame, to_bgr
from .preprocess import preprocess
from .quantize import l2_normalize


class GlobalExtractor:
    """Wraps a ``global`` model engine. ``describe`` is thread-safe when the engine is."""

    def __init__(self, engine: Engine):
        if engine.info.kind != "global":
            raise ModelFormatError(f"model {engine.info.name!r} is a {engine.info.kind} model; need a global one")
        self.engine = engine
        self.info = engine.info

    @property
    def dim(self) -> int:
        return self.info.output_dim

    def describe_bgr(self, bgr: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 BGR -> (D,) float32 unit-norm descriptor."""
        out = self.engine.run(preprocess(bgr, self.info))
        out = np.asarray(out, np.float32).reshape(1, -1)
        if out.shape[1] != self.dim:
            raise ModelFormatError(
                f"model {self.info.name!r} returned {out.shape[1]} values; its metadata says {self.dim}"
            )
        if not np.isfinite(out).all():
            raise ModelFormatError(f"model {self.info.name!r} returned non-finite values")
        return l2_normalize(out)[0]

    def describe(self, frame: Frame) -> np.ndarray:
        """Any accepted frame (array or path) -> (D,) float32 unit-norm descriptor."""
        return self.describe_bgr(to_bgr(frame))
