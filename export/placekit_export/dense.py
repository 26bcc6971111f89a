"""What the dense local-feature peers (``xfeat``, ``disk``) share: their placekit metadata and
their command line. Both take a grey image in 0..255 and return the dense layout
``placekit.inference.extractors.DenseDescriber`` reads."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from placekit.inference.modelinfo import ModelInfo

INPUT_SIZE = 640  # long side the runtime describes images at


def dense_model_info(name: str, output_dim: int, size_multiple: int, checkpoint_sha256: str) -> ModelInfo:
    return ModelInfo(
        name=name,
        kind="dense",
        output_dim=output_dim,
        input_size=INPUT_SIZE,
        size_multiple=size_multiple,
        color="GRAY",
        mean=(0.0,),
        std=(1.0,),  # each network scales or normalises its input itself
        version="1",
        precision="fp32",
        checkpoint_sha256=checkpoint_sha256,
    )


def export_main(
    doc: str | None, export: Callable[[str, str], Path], weights_help: str, argv: list[str] | None = None
) -> int:
    """``python -m placekit_export.<peer> --weights W -o OUT``."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help=weights_help)
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args(argv)
    print(export(args.weights, args.output))
    return 0
