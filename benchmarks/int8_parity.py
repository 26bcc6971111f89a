"""int8 parity of the GeM exports: ONNX with / without bias correction, TFLite with the shipped
recipe (``body``: convolutions and residual additions in int8, GeM head float) with / without
bias correction and with every supported op in int8 (``full``), recorded even when the export
gate rejects them (rejected files are never shipped), with their latency.

    python -m placekit_export.calibration_images CALIB_DIR      # the calibration folder of the shipped models
    python benchmarks/int8_parity.py --calibration CALIB_DIR --out benchmarks/results/int8_parity.json
    python benchmarks/int8_parity.py --checkpoint models/gem/training/gem.pt --calibration CALIB_DIR \\
        --out benchmarks/results/int8_parity_trained.json

Parity images are those of ``placekit-export`` (Strecha + IE Tower highrise, disjoint from the
calibration folder).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from placekit_export.cards import measure_latency
from placekit_export.cli import export_model
from placekit_export.onnx_export import ParityError
from placekit_export.tflite_export import ALL_OPS_INT8

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

VARIANTS = [("onnx", "-", False, None), ("onnx", "-", True, None),
            ("tflite", "body", False, None), ("tflite", "body", True, None),
            ("tflite", "full", True, ALL_OPS_INT8)]


def latency_shape(input_size: int) -> tuple[int, int, int, int]:
    """A 640x480 frame resized as the runtime does: long side ``input_size``, sides multiples of 32."""
    return (1, 3, int(round(input_size * 0.75 / 32)) * 32, input_size)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calibration", type=Path, required=True)
    p.add_argument("--checkpoint", default="imagenet", help="'imagenet' or a placekit-train gem checkpoint")
    p.add_argument("--input-size", type=int, default=480, help="long side, as the shipped file")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    name = "gem-imagenet" if args.checkpoint == "imagenet" else "gem"
    shape = latency_shape(args.input_size)
    example = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    rows, where = [], ""
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, variant, bc, ops in VARIANTS:
            out = Path(tmp) / f"{name}-int8.{fmt}"
            try:
                entry = export_model("gem", args.checkpoint, fmt, "int8", out, args.calibration,
                                     input_size=args.input_size, card=False,
                                     bias_correction=bc, tflite_int8_ops=ops, keep_rejected=True)
                result, accepted = entry["parity"], True
            except ParityError as exc:
                result, accepted = exc.result, False
            where = result.get("images", where)
            rows.append({"format": fmt, "variant": variant, "bias_correction": bc, "accepted": accepted,
                         "bytes": out.stat().st_size,
                         "p50_ms_2_threads": measure_latency(out, example, 2)["p50_ms"],
                         **{k: result.get(k) for k in ("n_items", "min_cosine", "mean_cosine", "top1_agreement",
                                                       "top1_agreement_all", "decisive_items")}})
            out.unlink(missing_ok=True)
            print(rows[-1], flush=True)
    save(args.out, {"model": name, "rows": rows, "calibration": f"{args.calibration.name}/ "
                    "(python -m placekit_export.calibration_images: 32 pool photos + 32 IE Tower frames of the training "
                    "floors)", "parity_images": where or "the placekit-export parity set",
                    "latency_input": list(shape)})


if __name__ == "__main__":
    main()
