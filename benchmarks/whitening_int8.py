"""int8 fidelity of the trained GeM under each whitening: how much the learned whitening magnifies
int8 rounding of the network body (why its ONNX int8 export misses the parity gate), and whether
another whitening would avoid it.

    python -m placekit_export.calibration_images CALIB_DIR
    python benchmarks/whitening_int8.py --calibration CALIB_DIR --out benchmarks/results/whitening_int8.json

The trained checkpoint's body (whitening removed) is exported to ONNX, bias-corrected and int8
quantized on CALIB_DIR exactly as ``placekit-export`` does. On the ``placekit-export`` parity set
(Strecha + IE Tower highrise, disjoint from CALIB_DIR) its 1280-D descriptors are compared with
PyTorch's, raw and after each whitening applied in float: the learned whitening (Lw) at several
shrinkage values, Lw whose intra-class covariance also holds the int8 noise covariance measured
on CALIB_DIR ("noise-aware"), and none. Each whitening is also scored on the training run's
held-out retrieval sets (PyTorch, 320 px), so a fidelity gain is weighed against accuracy.
Whitening pairs are drawn as ``train_gem.whitening_inputs`` draws them. For a checkpoint trained
with adverse views, more rows add the adverse-conditions scatter at each shrinkage; the one at
the checkpoint's ``whiten_shrinkage`` is the shipped matrix. The shrinkage is chosen on a
validation split of the training floors (``whitening_validation.py``), not by these held-out
figures.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from placekit.inference.engine import sha256_file
from placekit.inference.imageio import list_images, read_image
from placekit_export import train_gem
from placekit_export.bias_correction import bias_correct
from placekit_export.networks import gem_spec
from placekit_export.onnx_export import export_onnx, model_descriptors, retrieval_agreement, torch_descriptors
from placekit_export.onnx_quantize import quantize_onnx_int8
from placekit_export.parity_images import parity_images, shared_data_or_skip
from placekit_export.retrieval_eval import heldout_sets, retrieval_metrics
from placekit_export.whitening import apply, learned_whitening

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

SHRINKAGES = (0.1, 0.3, 0.5, 0.8)
NOISE_WEIGHTS = (1.0, 4.0)


def unwhitened_int8(checkpoint: Path, calibration: list[Path], tmp: Path, input_size: int):
    """(PyTorch net without whitening, its int8 ONNX file, ModelSpec)."""
    spec = gem_spec(str(checkpoint), input_size, "int8")
    calib_inputs = spec.to_traced_inputs([read_image(p) for p in calibration])
    body = bias_correct(spec.net, calib_inputs)
    body.whiten = None
    reference = train_gem.load_checkpoint(checkpoint)
    reference.whiten = None
    fp32 = export_onnx(body, spec.info, tmp / "body-fp32.onnx", tuple(spec.example.shape))
    quantize_onnx_int8(fp32, tmp / "body-int8.onnx", calib_inputs)
    return reference, tmp / "body-int8.onnx", spec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calibration", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, default=Path("models/gem/training/gem.pt"))
    p.add_argument("--sfm-dir", type=Path, default=Path("work/sfm"))
    p.add_argument("--input-size", type=int, default=480, help="long side, as the shipped file")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if (data := shared_data_or_skip()) is None:
        return
    calibration = list_images(args.calibration)[:64]
    device = torch.device("cpu")
    net = train_gem.load_checkpoint(args.checkpoint)
    training = train_gem.training_set(data, args.sfm_dir)
    train_images = train_gem.ImageCache(training.images).images
    train_desc = train_gem.describe_images(net, train_images, device)
    pairs = train_gem.whitening_pairs(training, np.random.default_rng(1))
    sets = heldout_sets(data)
    caches = train_gem.heldout_caches(sets)
    held = train_gem.heldout_descriptors(net, sets, caches, device)
    with tempfile.TemporaryDirectory() as tmp:
        reference, int8_file, spec = unwhitened_int8(args.checkpoint, calibration, Path(tmp), args.input_size)
        calib_inputs = spec.to_inputs([read_image(p) for p in calibration])
        noise = model_descriptors(int8_file, calib_inputs) - torch_descriptors(reference, calib_inputs)
        images, where = parity_images(n=128, exclude={sha256_file(p) for p in calibration},
                                      sources=("strecha", "ie_tower"))
        inputs = spec.to_inputs(images)
        ref, q = torch_descriptors(reference, inputs), model_descriptors(int8_file, inputs)

    def row(name: str, weight: np.ndarray, bias: np.ndarray) -> dict:
        a, b = apply(weight, bias, ref), apply(weight, bias, q)
        cos = (a * b).sum(1)
        held_out = {rs.name: retrieval_metrics(apply(weight, bias, held[rs.name][0]), apply(weight, bias, held[rs.name][1]),
                                               rs.relevant, rs.exclude) for rs in sets}
        r = {"whitening": name, "dim": int(weight.shape[0]), "min_cosine": float(cos.min()),
             "mean_cosine": float(cos.mean()), **retrieval_agreement(a, b), "held_out": held_out}
        print({k: v for k, v in r.items() if k != "held_out"}, flush=True)
        return r

    rows = [row("none (1280-D, L2 only)", np.eye(ref.shape[1], dtype=np.float32), np.zeros(ref.shape[1], np.float32))]
    rows += [row(f"Lw, shrinkage {s}", *learned_whitening(train_desc, pairs, 256, shrinkage=s)) for s in SHRINKAGES]
    noise_cov = noise.T.astype(np.float64) @ noise / len(noise)
    rows += [row(f"Lw, shrinkage 0.1, noise-aware x{k:g}",
                 *learned_whitening(train_desc, pairs, 256, shrinkage=0.1, extra_intra=k * noise_cov))
             for k in NOISE_WEIGHTS]
    config = train_gem.checkpoint_config(args.checkpoint)
    if config.adverse_prob > 0:
        _, adv_pairs, adverse, _ = train_gem.whitening_inputs(net, training, train_images, config, device)
        for s in SHRINKAGES:
            label = " (the shipped recipe)" if s == config.whiten_shrinkage else ""
            rows.append(row(f"Lw + adverse scatter, shrinkage {s}{label}",
                            *learned_whitening(train_desc, adv_pairs, 256, shrinkage=s, extra_intra=adverse)))
    save(args.out, {"checkpoint": str(args.checkpoint), "checkpoint_sha256": sha256_file(args.checkpoint),
                    "parity_images": where, "calibration": f"{len(calibration)} images of {args.calibration.name}/",
                    "rows": rows})


if __name__ == "__main__":
    main()
