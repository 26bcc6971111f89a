"""Model metadata: what the runtime needs to feed a model, read from inside the model file.

ONNX models carry it in ``metadata_props``; every key starts with ``placekit.``. Values are
strings (JSON for lists). Keys:

==========================  ==============================================================
``placekit.name``           model name, e.g. ``gem-imagenet``
``placekit.version``        model version string
``placekit.kind``           ``global`` (image -> descriptor), ``local`` (patch -> descriptor) or
                            ``dense`` (image -> keypoints + descriptors on a grid)
``placekit.input_size``     long side in pixels the image is resized to (global models)
``placekit.fixed_size``     ``HxW`` when the model only accepts one size, else absent
``placekit.size_multiple``  H and W are rounded to a multiple of this (e.g. 32)
``placekit.color``          ``RGB``, ``BGR`` or ``GRAY``
``placekit.mean``           JSON list, per channel, in 0..255 pixel units
``placekit.std``            JSON list, per channel, in 0..255 pixel units
``placekit.layout``         ``NCHW`` or ``NHWC``
``placekit.output_dim``     descriptor dimension
``placekit.precision``      ``fp32``, ``fp16`` or ``int8``
``placekit.checkpoint_sha256``  sha256 of the checkpoint the model was exported from
``placekit.patch_extent``   local models: patch side / keypoint size used by the patch cutter
==========================  ==============================================================
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from placekit.errors import ModelFormatError

PREFIX = "placekit."
KINDS = ("global", "local", "dense")
COLORS = ("RGB", "BGR", "GRAY")
LAYOUTS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class ModelInfo:
    """Everything needed to preprocess for and interpret one model."""

    name: str
    kind: str
    output_dim: int
    input_size: int = 0
    fixed_size: tuple[int, int] | None = None
    size_multiple: int = 1
    color: str = "RGB"
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (255.0, 255.0, 255.0)
    layout: str = "NCHW"
    version: str = "0"
    precision: str = "fp32"
    checkpoint_sha256: str = ""
    patch_extent: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} not in {KINDS}")
        if self.color not in COLORS:
            problems.append(f"color {self.color!r} not in {COLORS}")
        if self.layout not in LAYOUTS:
            problems.append(f"layout {self.layout!r} not in {LAYOUTS}")
        if self.output_dim <= 0:
            problems.append("output_dim must be positive")
        channels = 1 if self.color == "GRAY" else 3
        if len(self.mean) != channels or len(self.std) != channels:
            problems.append(f"mean/std need {channels} values for color {self.color}")
        if any(s == 0 for s in self.std):
            problems.append("std has a zero")
        if self.kind in ("global", "dense") and self.input_size <= 0 and self.fixed_size is None:
            problems.append(f"a {self.kind} model needs input_size or fixed_size")
        if self.size_multiple <= 0:
            problems.append("size_multiple must be positive")
        if problems:
            raise ModelFormatError(f"invalid model metadata for {self.name!r}: " + "; ".join(problems))

    @property
    def channels(self) -> int:
        return 1 if self.color == "GRAY" else 3

    def to_metadata(self) -> dict[str, str]:
        """String key/value pairs to store inside a model file."""
        out = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            if key == "fixed_size":
                value = f"{value[0]}x{value[1]}"
            elif isinstance(value, (list, tuple)):
                value = json.dumps(list(value))
            out[PREFIX + key] = str(value)
        return out

    @classmethod
    def from_metadata(cls, meta: dict[str, str], source: str = "model") -> ModelInfo:
        """Parse the ``placekit.*`` keys of a model file; raises ModelFormatError naming ``source``."""
        fields = {k[len(PREFIX) :]: v for k, v in meta.items() if k.startswith(PREFIX)}
        missing = [k for k in ("name", "kind", "output_dim") if k not in fields]
        if missing:
            raise ModelFormatError(f"{source}: missing placekit metadata {missing}; export models with placekit-export")
        try:
            kwargs: dict[str, object] = {"name": fields["name"], "kind": fields["kind"]}
            for key in ("output_dim", "input_size", "size_multiple"):
                if key in fields:
                    kwargs[key] = int(fields[key])
            if "patch_extent" in fields:
                kwargs["patch_extent"] = float(fields["patch_extent"])
            for key in ("mean", "std"):
                if key in fields:
                    kwargs[key] = tuple(float(v) for v in json.loads(fields[key]))
            if "fixed_size" in fields:
                h, w = fields["fixed_size"].lower().split("x")
                kwargs["fixed_size"] = (int(h), int(w))
            for key in ("color", "layout", "version", "precision", "checkpoint_sha256"):
                if key in fields:
                    kwargs[key] = fields[key]
        except (ValueError, TypeError) as exc:
            raise ModelFormatError(f"{source}: malformed placekit metadata: {exc}") from exc
        return cls(**kwargs)  # type: ignore[arg-type]
