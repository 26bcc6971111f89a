"""``placekit-train``: train placekit's networks.

    placekit-train hardnet -o checkpoints/hardnet.pt [--steps 1200] [--batch 256] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="placekit-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="network", required=True)
    h = sub.add_parser("hardnet", help="HardNet on real patch pairs (needs ../shared/data)")
    h.add_argument("-o", "--output", type=Path, required=True, help="checkpoint to write (.pt)")
    h.add_argument("--steps", type=int, default=1200)
    h.add_argument("--batch", type=int, default=256, help="pairs per batch")
    h.add_argument("--lr", type=float, default=1e-3)
    h.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from .train_hardnet import train

    log = train(args.output, steps=args.steps, batch=args.batch, seed=args.seed, lr=args.lr)
    print(f"wrote {args.output}; held-out HPatches: {log['test_hpatches']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
