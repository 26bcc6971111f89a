"""Train HardNet on real patch pairs (``placekit-train hardnet``).

Training pairs, all from real images:

* pycolmap SfM tracks (``sfm``) of every ``shared/data/pool`` collection and of the Strecha
  scenes fountain-P11, Herz-Jesus-P8 and Herz-Jesus-P25: two observations of one 3D point;
* SIFT matches in those Strecha scenes verified by their ground-truth cameras;
* homography + photometric warps of the pool photos.

Validation: the held-out Strecha scene entry-P10 (GT-verified matches). Test (never trained on):
the HPatches sequences. Loss: hardest-in-batch triplet margin (Mishchuk et al.). Seeds are fixed;
the log has the loss and the validation matching mAP / FPR95 per log interval.

A narrower network (``channels``, e.g. 16 for HardNet-C16) can also learn from a trained HardNet
(``teacher``): the loss adds ``distill_weight`` x the mean squared distance between the student's
and the teacher's descriptors of the same patches (knowledge distillation; the teacher's
weights are frozen).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from placekit.local.patches import cut_patches

from .hardnet import BASE_CHANNELS, HardNet
from .parity_images import shared_data_dir
from .patch_data import homography_pairs, hpatches_keypoints, sfm_track_pairs, strecha_pairs
from .patch_metrics import all_metrics, matching_accuracy
from .sfm import reconstruct

TRAIN_SCENES = ("fountain-P11", "Herz-Jesus-P8", "Herz-Jesus-P25")
VALIDATION_SCENE = "entry-P10"
TRACK_PAIRS_PER_SCENE = 8000


def to_tensor(patches: np.ndarray) -> torch.Tensor:
    """(N, 32, 32) uint8 -> (N, 1, 32, 32) float32 in [0, 1] (the runtime's scaling)."""
    return torch.from_numpy(patches.astype(np.float32) / 255.0)[:, None]


def hardest_in_batch_loss(a: torch.Tensor, p: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    d = torch.cdist(a, p) + 1e-8
    pos = d.diag()
    masked = d + torch.eye(len(d), device=d.device) * 10.0
    hardest = torch.minimum(masked.min(1).values, masked.min(0).values)
    return torch.clamp(margin + pos - hardest, min=0.0).mean()


@torch.no_grad()
def describe(net: torch.nn.Module, patches: np.ndarray, batch: int = 1024) -> np.ndarray:
    net.eval()
    return np.concatenate([net(to_tensor(patches[s : s + batch])).numpy() for s in range(0, len(patches), batch)])


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between (B, D) unit-norm descriptors of the same patches."""
    return (student - teacher).pow(2).sum(1).mean()


def load_pairs(data: Path, seed: int, sfm_dir: Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (A, B), "validation": (A, B)} uint8 patch pairs, and ``sources``: pairs per source."""
    strecha = data / "strecha"
    pool_folders = sorted(p for p in (data / "pool").iterdir() if p.is_dir())
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if sfm_dir is not None:
        scenes = [s for folder in pool_folders for s in reconstruct(folder, sfm_dir)]
        scenes += [s for name in TRAIN_SCENES for s in reconstruct(strecha / name / "images", sfm_dir, name=name)]
        track = [sfm_track_pairs(s, TRACK_PAIRS_PER_SCENE, seed) for s in scenes]
        parts["sfm_tracks"] = (np.concatenate([t[0] for t in track]), np.concatenate([t[1] for t in track]))
    gt = [strecha_pairs(strecha / s) for s in TRAIN_SCENES]
    parts["strecha_gt_matches"] = (np.concatenate([t[0] for t in gt]), np.concatenate([t[1] for t in gt]))
    pool = sorted(
        p for folder in pool_folders for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    parts["pool_warps"] = homography_pairs(pool, seed=seed)
    a = np.concatenate([p[0] for p in parts.values()])
    b = np.concatenate([p[1] for p in parts.values()])
    return {
        "train": (a, b),
        "validation": strecha_pairs(strecha / VALIDATION_SCENE),
        "sources": {k: int(len(v[0])) for k, v in parts.items()},
    }


def train(
    out: Path,
    steps: int = 1500,
    batch: int = 256,
    seed: int = 0,
    lr: float = 1e-3,
    log_every: int = 250,
    sfm_dir: Path | None = None,
    channels: int = BASE_CHANNELS,
    teacher: Path | None = None,
    distill_weight: float = 1.0,
) -> dict:
    """Train on the shared data's pairs (module docstring), test on HPatches, write ``out``."""
    if channels < 1:
        raise SystemExit(f"--channels must be a positive number of channels, got {channels}")
    if teacher is not None and not teacher.is_file():
        raise SystemExit(f"teacher checkpoint {teacher} not found")
    data = shared_data_dir()
    if data is None:
        raise SystemExit("HardNet training needs ../shared/data (Strecha scenes and the photo pool)")
    pairs = load_pairs(data, seed, sfm_dir)
    extra = {"sfm_tracks": sfm_dir is not None}
    if teacher is not None:
        extra.update(teacher=str(teacher), distill_weight=distill_weight)
    log = train_on_pairs(
        out,
        pairs,
        steps,
        batch,
        seed,
        lr,
        log_every,
        extra_config=extra,
        channels=channels,
        teacher=load_checkpoint(teacher) if teacher is not None else None,
        distill_weight=distill_weight,
    )
    log["test_hpatches"] = evaluate_hpatches(load_checkpoint(out), data)
    out.with_suffix(".log.json").write_text(json.dumps(log, indent=1))
    return log


def train_on_pairs(
    out: Path,
    pairs: dict,
    steps: int,
    batch: int,
    seed: int = 0,
    lr: float = 1e-3,
    log_every: int = 250,
    extra_config: dict | None = None,
    progress=print,
    channels: int = BASE_CHANNELS,
    teacher: HardNet | None = None,
    distill_weight: float = 1.0,
) -> dict:
    """pairs: {"train": (A, B), "validation": (A, B)} of (N, 32, 32) uint8 patches, row i of A
    matching row i of B; optional "sources". A ``teacher`` (eval mode, frozen) adds the
    distillation term. Writes the checkpoint and ``out.log.json``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    a, b = pairs["train"]
    if len(a) < batch:
        raise ValueError(f"{len(a)} training pairs are fewer than one batch of {batch}")
    net = HardNet(channels=channels)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    log = {
        "train_pairs": int(len(a)),
        "train_sources": pairs.get("sources", {}),
        "validation_pairs": int(len(pairs["validation"][0])),
        "epochs": [],
    }
    t0 = time.time()
    losses = []
    for step in range(1, steps + 1):
        net.train()
        idx = rng.choice(len(a), batch, replace=False)
        xa, xb = to_tensor(a[idx]), to_tensor(b[idx])
        k = int(rng.integers(4))  # the same rotation by 90 degrees for both sides keeps pairs aligned
        xa, xb = torch.rot90(xa, k, (2, 3)), torch.rot90(xb, k, (2, 3))
        da, db = net(xa), net(xb)
        loss = hardest_in_batch_loss(da, db)
        if teacher is not None:
            with torch.no_grad():
                ta, tb = teacher(xa), teacher(xb)
            loss = loss + distill_weight * 0.5 * (distillation_loss(da, ta) + distillation_loss(db, tb))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % log_every == 0 or step == steps:
            va, vb = pairs["validation"]
            da, db = describe(net, va), describe(net, vb)
            val = all_metrics(da, db)
            entry = {
                "step": step,
                "loss": float(np.mean(losses[-log_every:])),
                "val_fpr95": val["fpr95"],
                "val_mAP": val["matching_mAP"],
                "val_matching_accuracy": matching_accuracy(da, db),
                "seconds": time.time() - t0,
            }
            log["epochs"].append(entry)
            progress(json.dumps(entry))
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": net.state_dict(),
            "config": {
                "steps": steps,
                "batch": batch,
                "seed": seed,
                "lr": lr,
                "channels": channels,
                **(extra_config or {}),
            },
        },
        out,
    )
    out.with_suffix(".log.json").write_text(json.dumps(log, indent=1))
    return log


def evaluate_hpatches(net: torch.nn.Module, data: Path) -> dict:
    """Per sequence, metrics of each image pair 1 -> k (k = 2..6) averaged over the 5 pairs.
    (Pooling the pairs would put 5 true partners of one keypoint in one ranking.)"""
    out = {}
    for seq in sorted(p for p in (data / "hpatches").iterdir() if p.is_dir()):
        pairs = []
        for k in range(2, 7):
            g1, k1, gk, kk = hpatches_keypoints(seq, k)
            da, db = describe(net, cut_patches(g1, k1)), describe(net, cut_patches(gk, kk))
            pairs.append({**all_metrics(da, db), "matching_accuracy": matching_accuracy(da, db)})
        out[seq.name] = {key: float(np.mean([p[key] for p in pairs])) for key in pairs[0]}
        out[seq.name]["pairs"] = int(sum(p["pairs"] for p in pairs))
    return out


def load_checkpoint(path: Path) -> HardNet:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    net = HardNet(channels=int(ckpt["config"].get("channels", BASE_CHANNELS)))
    net.load_state_dict(ckpt["state_dict"])
    return net.eval()
