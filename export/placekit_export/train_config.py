"""Training settings (no torch import, so the CLI can describe them cheaply)."""

from __future__ import annotations

from dataclasses import dataclass

# IE Tower labels -> tuples: "area": positives of the same area type on any floor, negatives other
# areas; "floor_area": positives on the same floor too, negatives other areas; "floor": positives
# on the same floor, negatives also the same area type on other floors (instance level)
IE_TOWER_POSITIVES = ("area", "floor_area", "floor")


@dataclass
class GemTrainConfig:
    epochs: int = 10
    queries_per_epoch: int = 240
    negatives: int = 5
    tuples_per_step: int = 4
    lr: float = 2e-5
    p_lr: float = 1e-3
    margin: float = 0.75
    loss: str = "contrastive"
    whiten_dim: int = 256
    whiten_shrinkage: float = (
        0.3  # of the intra-class covariance; chosen on a validation split (whitening_validation.py)
    )
    ie_tower_stride: int = 2
    ie_tower_positives: str = "area"  # one of IE_TOWER_POSITIVES
    adverse_prob: float = 0.5  # share of training views also seen in adverse conditions (0: the first model)
    seed: int = 0
    device: str = "auto"
