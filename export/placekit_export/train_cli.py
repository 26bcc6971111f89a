"""``placekit-train``: train placekit's networks.

    placekit-train gem -o checkpoints/gem.pt [--epochs 10] [--queries-per-epoch 240] [--seed 0]
    placekit-train whiten --checkpoint checkpoints/gem.pt -o checkpoints/gem-128.pt [--whiten-dim 128]
    placekit-train hardnet -o checkpoints/hardnet.pt [--steps 1200] [--batch 256] [--seed 0]

Both read ``../shared/data`` (or $PLACEKIT_SHARED_DATA), fix their seeds, and write the
checkpoint, ``CHECKPOINT.log.json`` (loss and held-out metrics per epoch) and a PNG of that log.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from .train_config import IE_TOWER_POSITIVES, GemTrainConfig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="placekit-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="network", required=True)
    g = sub.add_parser("gem", help="GeM on SfM-mined and place-labelled tuples, then learned whitening")
    g.add_argument("-o", "--output", type=Path, required=True, help="checkpoint to write (.pt)")
    g.add_argument(
        "--sfm-dir",
        type=Path,
        default=Path("work/sfm"),
        help="cache of pycolmap reconstructions (created when missing)",
    )
    defaults = GemTrainConfig()
    for field_name in (
        "epochs",
        "queries_per_epoch",
        "negatives",
        "tuples_per_step",
        "ie_tower_stride",
        "seed",
        "whiten_dim",
    ):
        g.add_argument("--" + field_name.replace("_", "-"), type=int, default=getattr(defaults, field_name))
    for field_name in ("lr", "p_lr", "margin", "adverse_prob", "whiten_shrinkage"):
        g.add_argument("--" + field_name.replace("_", "-"), type=float, default=getattr(defaults, field_name))
    g.add_argument("--loss", choices=("contrastive", "triplet"), default=defaults.loss)
    g.add_argument(
        "--ie-tower-positives",
        choices=IE_TOWER_POSITIVES,
        default=defaults.ie_tower_positives,
        help="IE Tower tuples: 'area' (default): positives of the same area type on any floor; 'floor_area': "
        "on the same floor; 'floor': on the same floor, and the same area type on other floors "
        "as negatives",
    )
    g.add_argument("--device", default=defaults.device, help="auto (GPU when present), cpu, cuda")
    w = sub.add_parser("whiten", help="refit a trained GeM's learned whitening, without retraining the network")
    w.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint written by placekit-train gem")
    w.add_argument("-o", "--output", type=Path, required=True, help="checkpoint to write (.pt)")
    w.add_argument("--whiten-dim", type=int, default=None, help="output dimension (default: the checkpoint's)")
    w.add_argument(
        "--whiten-shrinkage",
        type=float,
        default=None,
        help="shrinkage of the intra-class covariance (default: the checkpoint's)",
    )
    w.add_argument("--sfm-dir", type=Path, default=Path("work/sfm"), help="cache of pycolmap reconstructions")
    h = sub.add_parser("hardnet", help="HardNet on real patch pairs (needs ../shared/data)")
    h.add_argument("-o", "--output", type=Path, required=True, help="checkpoint to write (.pt)")
    h.add_argument("--steps", type=int, default=1200)
    h.add_argument("--batch", type=int, default=256, help="pairs per batch")
    h.add_argument("--lr", type=float, default=1e-3)
    h.add_argument("--seed", type=int, default=0)
    h.add_argument(
        "--sfm-dir",
        type=Path,
        default=Path("work/sfm"),
        help="cache of pycolmap reconstructions whose tracks give training pairs (created when missing)",
    )
    h.add_argument("--no-sfm", action="store_true", help="train without SfM tracks (the first model's recipe)")
    h.add_argument(
        "--channels", type=int, default=None, help="first-layer channels (default: HardNet's 32; 16: HardNet-C16)"
    )
    h.add_argument("--teacher", type=Path, default=None, help="a trained HardNet checkpoint to distil from")
    h.add_argument("--distill-weight", type=float, default=1.0, help="weight of the distillation term")
    args = p.parse_args(argv)
    return {"gem": _train_gem, "whiten": _rewhiten, "hardnet": _train_hardnet}[args.network](args)


def _rewhiten(args: argparse.Namespace) -> int:
    from .parity_images import shared_data_dir
    from .train_gem import rewhiten_from_shared
    from .training_plots import plot_log

    data = shared_data_dir()
    if data is None:
        raise SystemExit("refitting the whitening needs ../shared/data (or PLACEKIT_SHARED_DATA)")
    log = rewhiten_from_shared(args.checkpoint, args.output, data, args.sfm_dir, args.whiten_dim, args.whiten_shrinkage)
    if log.get("epochs"):
        plot_log(log, args.output.with_suffix(".png"))
    print(f"wrote {args.output}; whitening: {json.dumps(log['whitening'])}")
    return 0


def _train_hardnet(args: argparse.Namespace) -> int:
    from .hardnet import BASE_CHANNELS
    from .train_hardnet import train
    from .training_plots import plot_log

    log = train(
        args.output,
        steps=args.steps,
        batch=args.batch,
        seed=args.seed,
        lr=args.lr,
        sfm_dir=None if args.no_sfm else args.sfm_dir,
        channels=BASE_CHANNELS if args.channels is None else args.channels,
        teacher=args.teacher,
        distill_weight=args.distill_weight,
    )
    plot_log(log, args.output.with_suffix(".png"))
    print(f"wrote {args.output}; held-out HPatches: {log['test_hpatches']}")
    return 0


def _train_gem(args: argparse.Namespace) -> int:
    from .parity_images import shared_data_dir
    from .train_gem import train_from_shared
    from .training_plots import plot_log

    data = shared_data_dir()
    if data is None:
        raise SystemExit("GeM training needs ../shared/data (or PLACEKIT_SHARED_DATA)")
    config = GemTrainConfig(**{f.name: getattr(args, f.name) for f in fields(GemTrainConfig)})
    log = train_from_shared(args.output, config, data, args.sfm_dir)
    plot_log(log, args.output.with_suffix(".png"))
    print(f"wrote {args.output}; held-out after training: {json.dumps(log['epochs'][-1].get('heldout'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
