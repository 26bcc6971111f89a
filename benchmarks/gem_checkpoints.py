"""GeM checkpoints side by side on every held-out retrieval set (PyTorch, 320 px).

    python benchmarks/gem_checkpoints.py --checkpoint "first model (no adverse views)=PATH" \
        --checkpoint "shipped=models/gem/training/gem.pt" --out benchmarks/results/gem_checkpoints.json

Each checkpoint's full network (whitening included, as exported) and the off-the-shelf ImageNet
GeM (1280-D) describe the database and the queries of ``retrieval_eval.heldout_sets``: IE Tower
highrise (area type, and floor + area), held-out Strecha, KITTI, and the ``-dusk`` variants whose
queries pass through ``dusk_lens``. None of these images is in any GeM training set. The training
logs report the same sets for the unwhitened 1280-D descriptor after each epoch; this script
compares finished models, including ones trained before a set existed.

Each trained checkpoint is also compared with the ImageNet GeM query by query: the mean
difference of recall@1 and of AP on the same queries, with a 95% paired bootstrap interval
(``retrieval_eval.paired_bootstrap``). A gain is "clear" when the interval's low end is above 0.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from placekit_export import train_gem
from placekit_export.parity_images import shared_data_or_skip
from placekit_export.retrieval_eval import heldout_sets, paired_bootstrap, per_query_scores, summarize_scores

sys.path.insert(0, str(Path(__file__).parent))
from provenance import save  # noqa: E402


@torch.no_grad()
def full_descriptors(net, images, device=None) -> np.ndarray:
    """(N, D) descriptors of the whole network (whitening included) at the training log's size."""
    net.eval()
    return np.stack([net(train_gem.normalise(train_gem.resize_for_describe(rgb))[None])[0].numpy() for rgb in images])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", action="append", default=[], metavar="LABEL=PATH")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if (data := shared_data_or_skip()) is None:
        return
    torch.set_num_threads(args.threads)
    nets = {"ImageNet GeM 1280-D": train_gem.build_net().eval()}
    for spec in args.checkpoint:
        label, _, path = spec.rpartition("=")
        nets[label or path] = train_gem.load_checkpoint(Path(path))
    sets = heldout_sets(data)
    caches = train_gem.heldout_caches(sets)
    results: dict[str, dict] = {label: {} for label in nets}
    baseline: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for label, net in nets.items():
        held = train_gem.heldout_descriptors(net, sets, caches, None, describe=full_descriptors)
        for rs in sets:
            hit1, ap = per_query_scores(*held[rs.name], rs.relevant, rs.exclude)
            m = summarize_scores(hit1, ap)
            if rs.name not in baseline:        # the first network: ImageNet GeM
                baseline[rs.name] = (hit1, ap)
            else:
                m["vs_imagenet"] = {"recall_at_1": paired_bootstrap(baseline[rs.name][0], hit1),
                                    "mAP": paired_bootstrap(baseline[rs.name][1], ap)}
            results[label][rs.name] = m
            print(f"{label:<40} {rs.name:<26} r@1 {m['recall_at_1']:.3f} mAP {m['mAP']:.3f}", flush=True)
    save(args.out, {"checkpoints": dict(spec.rpartition("=")[::2] for spec in args.checkpoint), "results": results})


if __name__ == "__main__":
    main()
