"""int8 parity of the GeM exports, with and without bias correction, recorded even when the
export gate rejects them (rejected files are deleted by the exporter and never shipped).

    python benchmarks/int8_parity.py --calibration CALIB_DIR --out benchmarks/results/int8_parity.json
    python benchmarks/int8_parity.py --checkpoint models/gem/training/gem.pt --calibration CALIB_DIR \
        --out benchmarks/results/int8_parity_trained.json

CALIB_DIR used for RESULTS.md: the 62 photos of shared/data/pool (the parity images are
Strecha photos, so the two sets are disjoint).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from placekit_export.cli import export_model
from placekit_export.onnx_export import ParityError

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calibration", type=Path, required=True)
    p.add_argument("--checkpoint", default="imagenet", help="'imagenet' or a placekit-train gem checkpoint")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    name = "gem-imagenet" if args.checkpoint == "imagenet" else "gem"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("onnx", "tflite"):
            for bc in (False, True):
                out = Path(tmp) / f"{name}-int8.{fmt}"
                try:
                    entry = export_model("gem", args.checkpoint, fmt, "int8", out, args.calibration, card=False,
                                         bias_correction=bc)
                    result, accepted = entry["parity"], True
                except ParityError as exc:
                    result, accepted = exc.result, False
                rows.append({"format": fmt, "bias_correction": bc, "accepted": accepted,
                             **{k: result.get(k) for k in ("n_items", "min_cosine", "mean_cosine", "top1_agreement")}})
                print(rows[-1], flush=True)
    save(args.out, {"model": name, "rows": rows})


if __name__ == "__main__":
    main()
