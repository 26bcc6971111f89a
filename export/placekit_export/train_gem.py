"""Fine-tune GeM on mined tuples, then learn whitening (``placekit-train gem``).

Data (no manual labels; ``mining`` builds the tuples):

* SfM reconstructions (``sfm``) of every ``shared/data/pool`` collection and of Strecha
  fountain-P11; positives share 3D points, negatives come from other collections;
* IE Tower floor ranges basement, lowrise and midrise (place-labelled: positives from the same
  area in another clip, negatives from other areas).

Held out (``retrieval_eval``): IE Tower highrise, Strecha entry-P10 / Herz-Jesus-P8 / -P25,
KITTI, each also with its queries at dusk through a dirty lens (``-dusk``). They are evaluated
after every epoch for the log; the shipped model is the last epoch of a fixed schedule, not
chosen by those figures.

Each epoch: descriptors of the training images with the current network -> hard negatives
re-mined (``mining.mine_tuples``) -> ``queries_per_epoch`` tuples (query, positive, n negatives)
with augmentations that model real change (``augmentations``: crops, rotation, light; a share
``adverse_prob`` of the views also in adverse capture conditions) -> contrastive (or triplet)
loss. The stem and the first ``FROZEN_BLOCKS`` blocks stay at their ImageNet weights, batch-norm
statistics are frozen and p is learned. After training, learned whitening (``whitening``) from
the training pairs and adverse views (``fit_whitening``) is folded into the final linear layer
(``whiten_dim`` outputs); ``rewhiten`` refits it on a finished checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from placekit.inference.imageio import read_image

from .augmentations import adverse_conditions, augment
from .gem import GEM_MEAN, GEM_STD, GeMNet
from .mining import TrainingSet, from_places, from_sfm, mine_tuples
from .retrieval_eval import (
    DUSK_SEED,
    EXCLUDED_STRECHA,
    HELDOUT_FLOOR_RANGE,
    clip_of,
    dusk_lens,
    heldout_sets,
    ie_tower_rows,
    retrieval_metrics,
)
from .sfm import reconstruct
from .train_config import IE_TOWER_POSITIVES, GemTrainConfig
from .whitening import apply, learned_whitening, pca_whitening

FROZEN_BLOCKS = 8  # stem + stages 1-3 keep their ImageNet weights
DESCRIBE_SIZE = 320  # long side for mining and validation descriptors
PAIRS_PER_QUERY = 10  # positive pairs per image for learned whitening
WHITENING_SEED_OFFSET = 1  # the whitening's generator: seed + this


# ---------------------------------------------------------------- data


def training_set(data: Path, sfm_dir: Path, ie_tower_stride: int = 2, ie_tower_positives: str = "area") -> TrainingSet:
    """The mined training set (see the module docstring for what is in and what is held out)."""
    collections = {}
    for folder in sorted(p for p in (data / "pool").iterdir() if p.is_dir()):
        collections[f"pool/{folder.name}"] = reconstruct(folder, sfm_dir)
    for scene in sorted(p.name for p in (data / "strecha").iterdir() if p.is_dir()):
        if scene not in EXCLUDED_STRECHA:
            collections[f"strecha/{scene}"] = reconstruct(data / "strecha" / scene / "images", sfm_dir, name=scene)
    out = from_sfm(collections)
    rows = [r for r in ie_tower_rows(data) if r["floor_range"] != HELDOUT_FLOOR_RANGE][::ie_tower_stride]
    if ie_tower_positives not in IE_TOWER_POSITIVES:
        raise ValueError(f"ie_tower_positives must be one of {IE_TOWER_POSITIVES}, got {ie_tower_positives!r}")
    places = [r["area"] if ie_tower_positives == "area" else f"{r['label']}/{r['area']}" for r in rows]
    out.extend(
        from_places(
            [data / "ie_tower" / r["image_path"] for r in rows],
            [r["area"] for r in rows],
            [clip_of(r["image_path"]) for r in rows],
            label="ie_tower",
            places=places,
            negatives_by_place=ie_tower_positives == "floor",
        )
    )
    return out


class ImageCache:
    """RGB uint8 images resized once so their long side is ``long_side``; with ``dusk``, each
    first passes through ``retrieval_eval.dusk_lens`` at full size (seeded by their order)."""

    def __init__(self, paths: list[Path], long_side: int = 400, dusk: bool = False):
        self.images = []
        rng = np.random.default_rng(DUSK_SEED)
        for p in paths:
            bgr = read_image(p)
            rgb = cv2.cvtColor(dusk_lens(bgr, rng) if dusk else bgr, cv2.COLOR_BGR2RGB)
            s = long_side / max(rgb.shape[:2])
            self.images.append(cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else rgb)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.images[i]


def normalise(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 with the runtime's mean / std."""
    x = (rgb.astype(np.float32) - np.float32(GEM_MEAN)) / np.float32(GEM_STD)
    return torch.from_numpy(x.transpose(2, 0, 1).copy())


def training_view(rgb: np.ndarray, rng: np.random.Generator, adverse_prob: float) -> np.ndarray:
    """One augmented view; with probability ``adverse_prob`` also seen in adverse conditions."""
    out = augment(rgb, rng)
    return adverse_conditions(out, rng) if rng.random() < adverse_prob else out


def resize_for_describe(rgb: np.ndarray, long_side: int = DESCRIBE_SIZE) -> np.ndarray:
    """Long side ``long_side``, both sides multiples of 32 (the runtime's rule)."""
    h, w = rgb.shape[:2]
    s = long_side / max(h, w)
    nh, nw = max(32, int(round(h * s / 32)) * 32), max(32, int(round(w * s / 32)) * 32)
    return cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------- network


def build_net(whiten_dim: int | None = None) -> GeMNet:
    from .efficientnet_lite import load_imagenet_backbone

    return GeMNet(load_imagenet_backbone(), p=3.0, whiten_dim=whiten_dim)


def frozen_features(net: GeMNet, x: torch.Tensor) -> torch.Tensor:
    b = net.backbone
    with torch.no_grad():
        x = F.relu6(b._bn0(b._conv_stem(x)))
        for block in b._blocks[:FROZEN_BLOCKS]:
            x = block(x)
    return x


def trainable_forward(net: GeMNet, frozen: torch.Tensor) -> torch.Tensor:
    """Unwhitened unit GeM descriptors (B, 1280) from the frozen part's output."""
    b = net.backbone
    x = frozen
    for block in b._blocks[FROZEN_BLOCKS:]:
        x = block(x)
    x = F.relu6(b._bn1(b._conv_head(x)))
    return F.normalize(net.pool(x), dim=1)


def trainable_parameters(net: GeMNet) -> tuple[list, list]:
    b = net.backbone
    body = [p for m in (*b._blocks[FROZEN_BLOCKS:], b._conv_head, b._bn1) for p in m.parameters()]
    for p in net.parameters():
        p.requires_grad_(False)
    for p in body + [net.pool.p]:
        p.requires_grad_(True)
    return body, [net.pool.p]


@torch.no_grad()
def describe_images(net: GeMNet, images, device: torch.device, long_side: int = DESCRIBE_SIZE) -> np.ndarray:
    """Unwhitened unit descriptors (N, 1280) of RGB images at ``long_side``."""
    net.eval()
    out = []
    for rgb in images:
        x = normalise(resize_for_describe(rgb, long_side))[None].to(device)
        out.append(trainable_forward(net, frozen_features(net, x)).cpu().numpy()[0])
    return np.stack(out).astype(np.float32)


# ---------------------------------------------------------------- losses


def contrastive_loss(q: torch.Tensor, others: torch.Tensor, margin: float) -> torch.Tensor:
    """q (D,), others (1 + n, D): the positive first, then the negatives."""
    d = torch.linalg.vector_norm(others - q[None], dim=1)
    return 0.5 * d[0] ** 2 + 0.5 * torch.clamp(margin - d[1:], min=0).pow(2).sum()


def triplet_loss(q: torch.Tensor, others: torch.Tensor, margin: float) -> torch.Tensor:
    d2 = (others - q[None]).pow(2).sum(1)
    return torch.clamp(d2[0] - d2[1:] + margin, min=0).sum()


LOSSES = {"contrastive": contrastive_loss, "triplet": triplet_loss}


# ---------------------------------------------------------------- training


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def heldout_caches(sets) -> dict[str, tuple[ImageCache, ImageCache]]:
    """{set name: (database, queries)} images, each list loaded once: a ``-dusk`` set shares its
    clean set's database, and a set whose queries are its database shares that too."""
    loaded: dict[tuple, ImageCache] = {}

    def cache(paths, dusk: bool = False) -> ImageCache:
        key = (tuple(paths), dusk)
        if key not in loaded:
            loaded[key] = ImageCache(paths, dusk=dusk)
        return loaded[key]

    return {rs.name: (cache(rs.database), cache(rs.queries, rs.degraded_queries)) for rs in sets}


def heldout_descriptors(net: GeMNet, sets, caches, device, describe=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{set name: (database (Nd, D), queries (Nq, D))}, each shared image list described once.
    ``describe(net, images, device)``: default ``describe_images`` (unwhitened 1280-D)."""
    describe = describe or describe_images
    described: dict[int, np.ndarray] = {}

    def of(c: ImageCache) -> np.ndarray:
        if id(c) not in described:
            described[id(c)] = describe(net, c.images, device)
        return described[id(c)]

    return {rs.name: (of(caches[rs.name][0]), of(caches[rs.name][1])) for rs in sets}


def evaluate_heldout(sets, descriptors: dict) -> dict:
    return {rs.name: retrieval_metrics(*descriptors[rs.name], rs.relevant, rs.exclude) for rs in sets}


def whitening_pairs(data: TrainingSet, rng: np.random.Generator) -> np.ndarray:
    pairs = []
    for i in data.queries():
        for j in rng.permutation(data.positives[i])[:PAIRS_PER_QUERY]:
            pairs.append((i, j))
    return np.array(pairs, np.int64)


def train(out: Path, data: TrainingSet, config: GemTrainConfig, heldout=None, progress=print) -> dict:
    """Train, whiten, write ``out`` (checkpoint) and ``out.log.json``; returns the log.
    ``heldout``: list of ``RetrievalSet`` evaluated after every epoch (None: skip)."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = pick_device(config.device)
    net = build_net().to(device)
    body, p_params = trainable_parameters(net)
    opt = torch.optim.Adam(
        [{"params": body, "lr": config.lr}, {"params": p_params, "lr": config.p_lr}], weight_decay=1e-6
    )
    loss_fn = LOSSES[config.loss]
    t0 = time.time()
    cache = ImageCache(data.images)
    heldout = heldout or []
    held_caches = heldout_caches(heldout)
    log = {"config": asdict(config), "data": data.summary(), "epochs": []}
    if heldout:
        held = heldout_descriptors(net, heldout, held_caches, device)
        log["heldout_before"] = evaluate_heldout(heldout, held)
        progress(json.dumps({"epoch": 0, "heldout": log["heldout_before"]}))
    queries = data.queries()
    for epoch in range(1, config.epochs + 1):
        descriptors = describe_images(net, cache.images, device)
        chosen = rng.choice(queries, min(config.queries_per_epoch, len(queries)), replace=False)
        tuples = mine_tuples(data, descriptors, chosen, config.negatives, rng)
        net.eval()  # batch-norm statistics stay frozen; gradients still flow
        losses = []
        for s in range(0, len(tuples), config.tuples_per_step):
            opt.zero_grad()
            step_loss = 0.0
            for q, pos, negs in tuples[s : s + config.tuples_per_step]:
                batch = torch.stack(
                    [normalise(training_view(cache[i], rng, config.adverse_prob)) for i in (q, pos, *negs)]
                ).to(device)
                d = trainable_forward(net, frozen_features(net, batch))
                loss = loss_fn(d[0], d[1:], config.margin) / config.tuples_per_step
                loss.backward()
                step_loss += float(loss.detach())
            opt.step()
            with torch.no_grad():
                net.pool.p.clamp_(1.0, 8.0)
            losses.append(step_loss)
        entry = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            "tuples": len(tuples),
            "p": float(net.pool.p.detach()),
            "seconds": round(time.time() - t0, 1),
        }
        if heldout:
            held = heldout_descriptors(net, heldout, held_caches, device)
            entry["heldout"] = evaluate_heldout(heldout, held)
        log["epochs"].append(entry)
        progress(json.dumps(entry))
    weight, bias, descriptors, log["whitening"] = fit_whitening(net, data, cache.images, config, device)
    set_whitening(net, weight, bias)
    if heldout:
        # the last epoch's held-out descriptors: the whitening layer does not change them
        log["whitening_comparison"] = compare_whitening(descriptors, heldout, held, config.whiten_dim, weight, bias)
        progress(json.dumps({"whitening_comparison": log["whitening_comparison"]}))
    log["seconds"] = round(time.time() - t0, 1)
    save_checkpoint(net, config, log, out)
    return log


def whitening_inputs(
    net: GeMNet, data: TrainingSet, images: list[np.ndarray], config: GemTrainConfig, device: torch.device
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """What learned whitening is fit on -> (the training images' unwhitened descriptors (N, 1280),
    matching pairs (P, 2), extra intra-class covariance (1280, 1280) or None, a summary for the log).

    Pairs: ``PAIRS_PER_QUERY`` per training image. Extra covariance, when ``config.adverse_prob`` >
    0: the difference between each training image and one view of it in adverse conditions,
    weighted by ``adverse_prob``, so the directions in which bad captures move a descriptor are
    damped like those in which a second visit moves it. Draws come from their own generator (seed
    + ``WHITENING_SEED_OFFSET``), so refitting a checkpoint reproduces the matrix."""
    rng = np.random.default_rng(config.seed + WHITENING_SEED_OFFSET)
    descriptors = describe_images(net, images, device)
    pairs = whitening_pairs(data, rng)
    info = {"kind": "learned (Lw)", "pairs": int(len(pairs)), "dim": config.whiten_dim}
    extra = None
    if config.adverse_prob > 0:
        adverse = describe_images(net, [adverse_conditions(rgb, rng) for rgb in images], device)
        diff = (descriptors - adverse).astype(np.float64)
        extra = config.adverse_prob * diff.T @ diff / len(diff)
        info.update(adverse_views=len(images), adverse_weight=config.adverse_prob)
    return descriptors, pairs, extra, info


def fit_whitening(
    net: GeMNet, data: TrainingSet, images: list[np.ndarray], config: GemTrainConfig, device: torch.device
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Learned whitening of the trained network (``whitening_inputs``, shrinkage
    ``config.whiten_shrinkage``) -> (weight (dim, 1280), bias (dim,), the training images'
    unwhitened descriptors (N, 1280), a summary for the log)."""
    descriptors, pairs, extra, info = whitening_inputs(net, data, images, config, device)
    weight, bias = learned_whitening(
        descriptors, pairs, config.whiten_dim, shrinkage=config.whiten_shrinkage, extra_intra=extra
    )
    return weight, bias, descriptors, {**info, "shrinkage": config.whiten_shrinkage}


def set_whitening(net: GeMNet, weight: np.ndarray, bias: np.ndarray) -> None:
    """Fold (weight (dim, 1280), bias (dim,)) into the network's final linear layer."""
    device = next(net.parameters()).device
    net.whiten = torch.nn.Linear(weight.shape[1], weight.shape[0]).to(device)
    with torch.no_grad():
        net.whiten.weight.copy_(torch.from_numpy(weight))
        net.whiten.bias.copy_(torch.from_numpy(bias))


def save_checkpoint(net: GeMNet, config: GemTrainConfig, log: dict, out: Path) -> None:
    """``out`` (state dict + config) and ``out.log.json``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": {k: v.cpu() for k, v in net.state_dict().items()},
            "config": asdict(config),
            "whiten_dim": config.whiten_dim,
        },
        out,
    )
    out.with_suffix(".log.json").write_text(json.dumps(log, indent=1))


def compare_whitening(train_descriptors, heldout, held: dict, dim, lw_weight, lw_bias) -> dict:
    """Held-out metrics of the trained network: raw 1280-D, PCA-whitened and Lw, both at ``dim``.
    ``held``: ``heldout_descriptors`` of the trained network."""
    pw_weight, pw_bias = pca_whitening(train_descriptors, dim)
    out = {}
    for rs in heldout:
        db, q = held[rs.name]
        out[rs.name] = {
            "raw_1280": retrieval_metrics(db, q, rs.relevant, rs.exclude),
            f"pca_whitened_{dim}": retrieval_metrics(
                apply(pw_weight, pw_bias, db), apply(pw_weight, pw_bias, q), rs.relevant, rs.exclude
            ),
            f"learned_whitening_{dim}": retrieval_metrics(
                apply(lw_weight, lw_bias, db), apply(lw_weight, lw_bias, q), rs.relevant, rs.exclude
            ),
        }
    return out


def load_checkpoint(path: Path) -> GeMNet:
    from .efficientnet_lite import EfficientNetLite0

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    net = GeMNet(EfficientNetLite0(), whiten_dim=ckpt.get("whiten_dim"))
    net.load_state_dict(ckpt["state_dict"])
    return net.eval()


def train_from_shared(out: Path, config: GemTrainConfig, data_dir: Path, sfm_dir: Path) -> dict:
    data = training_set(data_dir, sfm_dir, config.ie_tower_stride, config.ie_tower_positives)
    print(json.dumps({"training_set": data.summary()}), flush=True)
    return train(out, data, config, heldout_sets(data_dir), progress=lambda s: print(s, flush=True))


def checkpoint_config(checkpoint: Path, **overrides) -> GemTrainConfig:
    """The ``GemTrainConfig`` a checkpoint was trained with, with ``overrides`` applied. Fields it
    predates take the values of that time (no adverse views, whitening shrinkage 0.1), others
    their defaults."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True).get("config", {})
    known = set(GemTrainConfig.__dataclass_fields__)
    before_fields = {"adverse_prob": 0.0, "whiten_shrinkage": 0.1}
    return GemTrainConfig(**{**before_fields, **{k: v for k, v in saved.items() if k in known}, **overrides})


def rewhiten(
    checkpoint: Path,
    out: Path,
    data: TrainingSet,
    heldout=None,
    whiten_dim: int | None = None,
    shrinkage: float | None = None,
    progress=print,
) -> dict:
    """Refit the learned whitening of a trained checkpoint without retraining the network (the
    same ``fit_whitening`` that ``train`` ends with), e.g. to another ``whiten_dim``. Writes ``out``
    and ``out.log.json``: the input's log with its whitening entries replaced and a
    ``rewhitened_from`` note. ``data``: the training set the checkpoint was trained on."""
    overrides = {k: v for k, v in (("whiten_dim", whiten_dim), ("whiten_shrinkage", shrinkage)) if v is not None}
    config = checkpoint_config(checkpoint, **overrides)
    log_path = checkpoint.with_suffix(".log.json")
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    log["config"] = asdict(config)
    net = load_checkpoint(checkpoint)
    device = torch.device("cpu")
    weight, bias, descriptors, log["whitening"] = fit_whitening(
        net, data, ImageCache(data.images).images, config, device
    )
    set_whitening(net, weight, bias)
    if heldout:
        held = heldout_descriptors(net, heldout, heldout_caches(heldout), device)
        log["whitening_comparison"] = compare_whitening(descriptors, heldout, held, config.whiten_dim, weight, bias)
        progress(json.dumps({"whitening_comparison": log["whitening_comparison"]}))
    log["rewhitened_from"] = {"checkpoint": checkpoint.name, **overrides}
    save_checkpoint(net, config, log, out)
    return log


def rewhiten_from_shared(
    checkpoint: Path,
    out: Path,
    data_dir: Path,
    sfm_dir: Path,
    whiten_dim: int | None = None,
    shrinkage: float | None = None,
) -> dict:
    config = checkpoint_config(checkpoint)
    data = training_set(data_dir, sfm_dir, config.ie_tower_stride, config.ie_tower_positives)
    return rewhiten(
        checkpoint, out, data, heldout_sets(data_dir), whiten_dim, shrinkage, progress=lambda s: print(s, flush=True)
    )
