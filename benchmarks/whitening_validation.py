"""Choose the trained GeM's whitening shrinkage on a validation split, not on the held-out sets.

    python benchmarks/whitening_validation.py --sfm-dir SFM_CACHE --out benchmarks/results/whitening_validation.json

For each shrinkage of the intra-class covariance, the learned whitening of the checkpoint
(``train_gem.whitening_inputs``, adverse-conditions scatter included) is scored on
``retrieval_eval.ie_tower_validation``: the training floors' frames that training skipped
(same clips as training frames, so it is optimistic, but no held-out image is used), clean and
with its queries through ``dusk_lens``. The rule, fixed before looking: the shrinkage with the
highest mean of the two mAPs is chosen; ``placekit-train whiten --whiten-shrinkage`` applies it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from placekit_export import train_gem
from placekit_export.parity_images import shared_data_or_skip
from placekit_export.retrieval_eval import degraded_sets, ie_tower_validation, retrieval_metrics
from placekit_export.whitening import apply, learned_whitening

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402

SHRINKAGES = (0.1, 0.3, 0.5, 0.8, 0.95)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=Path("models/gem/training/gem.pt"))
    p.add_argument("--sfm-dir", type=Path, default=Path("work/sfm"))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if (data := shared_data_or_skip()) is None:
        return
    torch.set_num_threads(2)
    device = torch.device("cpu")
    config = train_gem.checkpoint_config(args.checkpoint)
    net = train_gem.load_checkpoint(args.checkpoint)
    training = train_gem.training_set(data, args.sfm_dir, config.ie_tower_stride, config.ie_tower_positives)
    desc, pairs, extra, _ = train_gem.whitening_inputs(net, training, train_gem.ImageCache(training.images).images,
                                                       config, device)
    clean = ie_tower_validation(data, config.ie_tower_stride)
    sets = [clean, *degraded_sets([clean])]
    held = train_gem.heldout_descriptors(net, sets, train_gem.heldout_caches(sets), device)
    rows = []
    for s in SHRINKAGES:
        w, b = learned_whitening(desc, pairs, config.whiten_dim, shrinkage=s, extra_intra=extra)
        scores = {rs.name: retrieval_metrics(apply(w, b, held[rs.name][0]), apply(w, b, held[rs.name][1]),
                                             rs.relevant, rs.exclude) for rs in sets}
        rows.append({"shrinkage": s, "validation": scores, "mean_mAP": float(np.mean([m["mAP"] for m in scores.values()]))})
        print(rows[-1], flush=True)
    chosen = max(rows, key=lambda r: r["mean_mAP"])["shrinkage"]
    print(f"chosen shrinkage: {chosen}")
    save(args.out, {"checkpoint": str(args.checkpoint), "rows": rows, "chosen_shrinkage": chosen,
                    "queries": {rs.name: int(held[rs.name][1].shape[0]) for rs in sets}})


if __name__ == "__main__":
    main()
