"""Train HardNet on real patch pairs (``placekit-train hardnet``).

Training pairs: GT-verified SIFT matches in the Strecha scenes fountain-P11, Herz-Jesus-P8 and
Herz-Jesus-P25, plus homography-warped photos of ``shared/data/pool``. Validation: the held-out
Strecha scene entry-P10. Test (never trained on): the HPatches sequences. Loss: hardest-in-batch
triplet margin (Mishchuk et al.). Seeds are fixed; the log has the loss and validation FPR95 per
epoch.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .hardnet import HardNet
from .patch_data import homography_pairs, hpatches_pairs, strecha_pairs
from .parity_images import shared_data_dir

TRAIN_SCENES = ("fountain-P11", "Herz-Jesus-P8", "Herz-Jesus-P25")
VALIDATION_SCENE = "entry-P10"


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
    return np.concatenate([net(to_tensor(patches[s:s + batch])).numpy() for s in range(0, len(patches), batch)])


def fpr95(desc_a: np.ndarray, desc_b: np.ndarray, seed: int = 0) -> float:
    """False-positive rate at 95% true-positive rate: positives are the given pairs, negatives
    the same anchors against shuffled partners."""
    rng = np.random.default_rng(seed)
    pos = np.linalg.norm(desc_a - desc_b, axis=1)
    perm = rng.permutation(len(desc_b))
    perm = np.where(perm == np.arange(len(perm)), (perm + 1) % len(perm), perm)
    neg = np.linalg.norm(desc_a - desc_b[perm], axis=1)
    threshold = np.percentile(pos, 95)
    return float((neg <= threshold).mean())


def matching_accuracy(desc_a: np.ndarray, desc_b: np.ndarray) -> float:
    """Share of side-A patches whose nearest side-B descriptor is their true partner."""
    sims = desc_a @ desc_b.T
    return float((sims.argmax(1) == np.arange(len(desc_a))).mean())


def load_pairs(data: Path, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    strecha = data / "strecha"
    train = [strecha_pairs(strecha / s) for s in TRAIN_SCENES]
    pool = sorted(p for folder in sorted((data / "pool").iterdir()) if folder.is_dir()
                  for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    train.append(homography_pairs(pool, seed=seed))
    a = np.concatenate([t[0] for t in train])
    b = np.concatenate([t[1] for t in train])
    return {"train": (a, b), "validation": strecha_pairs(strecha / VALIDATION_SCENE)}


def train(out: Path, steps: int = 1500, batch: int = 256, seed: int = 0, lr: float = 1e-3,
          log_every: int = 250) -> dict:
    data = shared_data_dir()
    if data is None:
        raise SystemExit("HardNet training needs ../shared/data (Strecha scenes and the photo pool)")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    pairs = load_pairs(data, seed)
    a, b = pairs["train"]
    net = HardNet()
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    log = {"train_pairs": int(len(a)), "validation_pairs": int(len(pairs["validation"][0])), "epochs": []}
    t0 = time.time()
    losses = []
    for step in range(1, steps + 1):
        net.train()
        idx = rng.choice(len(a), batch, replace=False)
        xa, xb = to_tensor(a[idx]), to_tensor(b[idx])
        k = int(rng.integers(4))  # the same rotation by 90 degrees for both sides keeps pairs aligned
        xa, xb = torch.rot90(xa, k, (2, 3)), torch.rot90(xb, k, (2, 3))
        loss = hardest_in_batch_loss(net(xa), net(xb))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss))
        if step % log_every == 0 or step == steps:
            va, vb = pairs["validation"]
            da, db = describe(net, va), describe(net, vb)
            entry = {"step": step, "loss": float(np.mean(losses[-log_every:])), "val_fpr95": fpr95(da, db),
                     "val_matching_accuracy": matching_accuracy(da, db), "seconds": time.time() - t0}
            log["epochs"].append(entry)
            print(json.dumps(entry), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "config": {"steps": steps, "batch": batch, "seed": seed, "lr": lr}},
               out)
    log["test_hpatches"] = evaluate_hpatches(net, data)
    (out.with_suffix(".log.json")).write_text(json.dumps(log, indent=1))
    return log


def evaluate_hpatches(net: torch.nn.Module, data: Path) -> dict:
    out = {}
    for seq in sorted((data / "hpatches").iterdir()):
        pa, pb = hpatches_pairs(seq)
        da, db = describe(net, pa), describe(net, pb)
        out[seq.name] = {"pairs": int(len(pa)), "fpr95": fpr95(da, db), "matching_accuracy": matching_accuracy(da, db)}
    return out


def load_checkpoint(path: Path) -> HardNet:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    net = HardNet()
    net.load_state_dict(ckpt["state_dict"])
    return net.eval()
