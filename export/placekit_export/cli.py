"""``placekit-export``: PyTorch network -> shipped model file, parity-checked, with its card.

    placekit-export gem --checkpoint imagenet --format onnx --precision fp32 -o models/gem-imagenet/gem-imagenet-fp32.onnx
    placekit-export hardnet --checkpoint checkpoints/hardnet.pt --format tflite --precision int8 \\
        --calibration CALIB_DIR -o models/hardnet/hardnet-int8.tflite

int8 needs ``--calibration DIR``: images from the deployment domain (there is no default set).
The shipped int8 models were calibrated on the folder ``python -m placekit_export.calibration_images
CALIB_DIR`` writes (outdoor pool photos + IE Tower frames outside the held-out floors).
Every export is checked against PyTorch on real images that are not in the calibration set
(``../shared/data`` when present) and fails when the check is missed; the figures go into
``card.json`` / ``CARD.md`` next to the output.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import tempfile
from pathlib import Path

NETWORKS = ("gem", "hardnet")
FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "fp16", "int8")
MAX_CALIBRATION_IMAGES = 64
PARITY_IMAGES_GEM = 128  # one descriptor per image: Strecha (outdoor) + IE Tower highrise (indoor)
PARITY_IMAGES_HARDNET = 32  # hundreds of patches per image


def export_model(
    network: str,
    checkpoint: str,
    fmt: str,
    precision: str,
    out: Path,
    calibration: Path | None = None,
    input_size: int = 480,
    card: bool = True,
    bias_correction: bool = True,
    tflite_int8_ops: tuple[tuple[str, str], ...] | None = None,
    keep_rejected: bool = False,
) -> dict:
    """Export, check parity, write the card entry; returns that entry. The output file is
    removed again when the parity check fails (unless ``keep_rejected``, for benchmarks).
    ``tflite_int8_ops``: TFLite ops to quantize (default ``tflite_export.INT8_OPS``)."""
    from placekit.inference.engine import sha256_file
    from placekit.inference.imageio import list_images, read_image

    from .cards import measure_latency, update_card
    from .networks import gem_spec, hardnet_spec
    from .onnx_export import ParityError, check_parity
    from .parity_images import parity_images

    if network not in NETWORKS or fmt not in FORMATS or precision not in PRECISIONS:
        raise SystemExit(f"choose network {NETWORKS}, format {FORMATS}, precision {PRECISIONS}")
    if precision == "int8" and calibration is None:
        raise SystemExit("int8 export needs --calibration DIR: images from the deployment domain")
    spec = gem_spec(checkpoint, input_size, precision) if network == "gem" else hardnet_spec(checkpoint, precision)
    calib_paths = list_images(calibration)[:MAX_CALIBRATION_IMAGES] if calibration else []
    if calibration is not None and not calib_paths:
        raise SystemExit(f"no images in calibration folder {calibration}")
    calib_hashes = {sha256_file(p) for p in calib_paths}
    if network == "gem":
        held_out, where = parity_images(n=PARITY_IMAGES_GEM, exclude=calib_hashes, sources=("strecha", "ie_tower"))
    else:
        held_out, where = parity_images(n=PARITY_IMAGES_HARDNET, exclude=calib_hashes, sources=("strecha",))
    parity_inputs = spec.to_inputs(held_out)
    calib_inputs = spec.to_traced_inputs([read_image(p) for p in calib_paths]) if calib_paths else []
    out.parent.mkdir(parents=True, exist_ok=True)
    net = spec.net
    if precision == "int8" and bias_correction:
        from .bias_correction import bias_correct

        net = bias_correct(spec.net, calib_inputs)
    if fmt == "onnx":
        _export_onnx(spec, net, precision, out, calib_inputs)
    else:
        _export_tflite(spec, net, precision, out, calib_inputs, tflite_int8_ops)
    try:
        parity = check_parity(spec.net, out, parity_inputs, precision)
    except ParityError:
        if not keep_rejected:
            out.unlink(missing_ok=True)
            if card and (out.parent / "card.json").is_file():
                update_card(out.parent, spec.card)  # drops the rejected file's old entry
        raise
    parity["images"] = where
    example = parity_inputs[0]
    entry = {
        "file": out.name,
        "format": fmt,
        "precision": precision,
        "bytes": out.stat().st_size,
        "sha256": sha256_file(out),
        "input": _input_text(spec.info),
        "parity": parity,
        "calibration": (
            f"{len(calib_paths)} images from {calibration} (their sha256 are in card.json)" if calib_paths else None
        ),
        "calibration_files_sha256": sorted(calib_hashes) if calib_paths else [],
        "bias_correction": bool(precision == "int8" and bias_correction),
        "latency": {f"threads_{t}": measure_latency(out, example, t) for t in (1, 2)},
        "latency_input_shape": list(example.shape),
        "machine": f"{platform.machine()} ({_cpu_name()})",
        "command": _command(network, checkpoint, fmt, precision, out, calibration, input_size, bias_correction),
    }
    if card:
        update_card(out.parent, spec.card, entry)
    return entry


def _export_onnx(spec, net, precision: str, out: Path, calib_inputs) -> None:
    from .onnx_export import export_onnx
    from .onnx_quantize import convert_onnx_fp16, quantize_onnx_int8

    if precision == "fp32":
        export_onnx(net, spec.info, out, tuple(spec.example.shape))
        return
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(net, spec.info, Path(tmp) / "fp32.onnx", tuple(spec.example.shape))
        if precision == "int8":
            quantize_onnx_int8(fp32, out, calib_inputs)
        else:
            convert_onnx_fp16(fp32, out)


def _export_tflite(spec, net, precision: str, out: Path, calib_inputs, int8_ops=None) -> None:
    from .tflite_export import INT8_OPS, add_tflite_metadata, convert_tflite, quantize_tflite, write_atomic

    model = convert_tflite(net, spec.example)
    if precision != "fp32":
        model = quantize_tflite(model, precision, calib_inputs, int8_ops or INT8_OPS)
    write_atomic(out, add_tflite_metadata(model, spec.info.to_metadata()))


def _input_text(info) -> str:
    if info.kind == "local":
        return f"grey {info.fixed_size[0]}x{info.fixed_size[1]} patches, pixels / 255"
    return f"RGB, long side {info.input_size} px, H and W multiples of {info.size_multiple}"


def _command(network, checkpoint, fmt, precision, out, calibration, input_size, bias_correction=True) -> str:
    parts = ["placekit-export", network, "--checkpoint", checkpoint, "--format", fmt, "--precision", precision]
    if network == "gem":
        parts += ["--input-size", str(input_size)]
    if calibration is not None:
        parts += ["--calibration", str(calibration)]
    if precision == "int8" and not bias_correction:
        parts += ["--no-bias-correction"]
    return " ".join(shlex.quote(p) for p in parts + ["-o", str(out)])


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="placekit-export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("network", choices=NETWORKS)
    p.add_argument("--checkpoint", required=True, help="'imagenet' (GeM) or a checkpoint file")
    p.add_argument("--format", default="onnx", choices=FORMATS)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--calibration", type=Path, default=None, help="folder of calibration images (int8)")
    p.add_argument("--input-size", type=int, default=480, help="GeM: long side in pixels (default 480)")
    p.add_argument("--no-card", action="store_true", help="do not write card.json / CARD.md")
    p.add_argument(
        "--no-bias-correction",
        action="store_true",
        help="int8: skip folding BatchNorm and correcting biases for weight rounding",
    )
    p.add_argument("-o", "--output", required=True, type=Path)
    args = p.parse_args(argv)
    entry = export_model(
        args.network,
        args.checkpoint,
        args.format,
        args.precision,
        args.output,
        args.calibration,
        args.input_size,
        card=not args.no_card,
        bias_correction=not args.no_bias_correction,
    )
    par = entry["parity"]
    print(
        f"wrote {args.output} ({entry['bytes']:,} bytes); parity on {par['n_items']} held-out items: "
        f"min cosine {par['min_cosine']:.5f}, mean {par['mean_cosine']:.5f}, top-1 agreement "
        f"{par['top1_agreement']:.3f} on {par['decisive_items']} decisive items ({par['top1_agreement_all']:.3f} on all)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
