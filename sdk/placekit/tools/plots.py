"""PNG plots of a ``placekit eval`` run (needs matplotlib: ``pip install placekit[plots]``).

Writes into a folder: ``recall_at_n.png`` (recall@N curve), ``position_error_cdf.png``,
``latency_by_stage.png`` (p50 / p99 per stage) and ``matches.png`` (query / best map image pairs,
correct and wrong ones, with the SIFT matches that survive a USAC fundamental-matrix check drawn
as lines: a display aid, not the localizer's own decision).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from placekit.errors import BackendUnavailableError
from placekit.inference.imageio import read_image
from placekit.local.matching import mutual_matches, sift_features, verified_inliers

PAIR_HEIGHT = 180
MAX_PAIRS = 4


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise BackendUnavailableError("plots need matplotlib: pip install 'placekit[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(folder: str | os.PathLike, report: dict, dataset, results, ranked, errors, q_xyz, db_xyz) -> list[str]:
    """Write the four plots; returns their paths."""
    plt = _pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [
        _recall_plot(plt, folder, report),
        _error_cdf(plt, folder, results, errors, report),
        _latency_plot(plt, folder, report),
        _pairs_plot(plt, folder, dataset, ranked, q_xyz, db_xyz, report["threshold_m"]),
    ]
    return [str(p) for p in paths]


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _recall_plot(plt, folder: Path, report: dict) -> Path:
    curve = report["recall_at_n"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.arange(1, len(curve) + 1), curve, marker="o")
    ax.set(
        xlabel="N (map images returned)",
        ylabel=f"recall@N (within {report['threshold_m']:g} m)",
        ylim=(0, 1.02),
        title=f"{report['n_queries']} queries, {report['n_database']} map images",
    )
    ax.grid(alpha=0.3)
    return _save(plt, fig, folder / "recall_at_n.png")


def _error_cdf(plt, folder: Path, results, errors, report: dict) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, keep in (
        ("all answers with a location", lambda r: r.location is not None),
        ("localized only", lambda r: r.status == "localized"),
    ):
        e = np.sort([err for r, err in zip(results, errors) if keep(r) and err is not None])
        if len(e):
            ax.step(e, np.arange(1, len(e) + 1) / len(results), where="post", label=f"{label} ({len(e)})")
    ax.axvline(report["threshold_m"], color="grey", linestyle=":", label="threshold")
    ax.set(xlabel="position error (m)", ylabel="share of all queries", ylim=(0, 1.02), xscale="symlog")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(plt, fig, folder / "position_error_cdf.png")


def _latency_plot(plt, folder: Path, report: dict) -> Path:
    stages = [s for s in report["latency_ms_by_stage"] if s != "total"] + ["total"]
    stages = [s for s in stages if s in report["latency_ms_by_stage"]]
    p50 = [report["latency_ms_by_stage"][s]["p50"] for s in stages]
    p99 = [report["latency_ms_by_stage"][s]["p99"] for s in stages]
    x = np.arange(len(stages))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(x - 0.2, p50, 0.4, label="p50")
    ax.bar(x + 0.2, p99, 0.4, label="p99")
    ax.set_xticks(x, stages)
    ax.set(ylabel="ms per query", title="localize() latency by stage")
    ax.legend()
    return _save(plt, fig, folder / "latency_by_stage.png")


def _pairs_plot(plt, folder: Path, dataset, ranked, q_xyz, db_xyz, threshold_m: float) -> Path:
    right: list[tuple[int, int, bool]] = []
    wrong: list[tuple[int, int, bool]] = []
    for i, rows in enumerate(ranked):
        if len(rows):
            ok = bool(np.linalg.norm(db_xyz[rows[0]] - q_xyz[i]) <= threshold_m)
            (right if ok else wrong).append((i, int(rows[0]), ok))
    chosen = right[: MAX_PAIRS // 2] + wrong[: MAX_PAIRS // 2]
    chosen += right[MAX_PAIRS // 2 : MAX_PAIRS - len(chosen)]
    fig, axes = plt.subplots(max(len(chosen), 1), 1, figsize=(8, 2.6 * max(len(chosen), 1)), squeeze=False)
    for ax, (qi, row, ok) in zip(axes[:, 0], chosen):
        canvas, n_inliers = _pair_canvas(dataset.queries[qi].path, dataset.database[row].path)
        ax.imshow(canvas[..., ::-1])
        ax.set_title(
            f"{dataset.queries[qi].path.name} -> {dataset.database[row].path.name}: "
            f"{'correct' if ok else 'WRONG'}, {n_inliers} inliers",
            fontsize=8,
            color="green" if ok else "red",
        )
    for ax in axes[:, 0]:
        ax.axis("off")
    return _save(plt, fig, folder / "matches.png")


def _pair_canvas(query_path: Path, match_path: Path) -> tuple[np.ndarray, int]:
    """Both images side by side at PAIR_HEIGHT with verified SIFT matches drawn as lines."""
    images, feats = [], []
    for path in (query_path, match_path):
        bgr = read_image(path)
        scale = PAIR_HEIGHT / bgr.shape[0]
        bgr = cv2.resize(bgr, (max(1, round(bgr.shape[1] * scale)), PAIR_HEIGHT), interpolation=cv2.INTER_AREA)
        images.append(bgr)
        feats.append(sift_features(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), 500))
    matches = mutual_matches(feats[0][1], feats[1][1])
    inliers = verified_inliers(feats[0][0], feats[1][0], matches)
    canvas = np.concatenate(images, axis=1)
    offset = images[0].shape[1]
    for a, b in matches[inliers]:
        p = tuple(int(v) for v in feats[0][0][a])
        q = (int(feats[1][0][b][0]) + offset, int(feats[1][0][b][1]))
        cv2.line(canvas, p, q, (0, 220, 0), 1, cv2.LINE_AA)
    return canvas, int(inliers.sum())
