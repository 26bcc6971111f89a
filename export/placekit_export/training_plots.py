"""PNG of a training log: loss and held-out metrics per epoch (matplotlib, optional)."""

from __future__ import annotations

from pathlib import Path


def plot_log(log: dict, out: Path) -> Path | None:
    """Loss per epoch and every held-out metric per epoch; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = log.get("epochs", [])
    x = [e.get("epoch", e.get("step")) for e in epochs]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(x, [e["loss"] for e in epochs], marker="o")
    ax_loss.set_xlabel("epoch" if "epoch" in (epochs or [{}])[0] else "step")
    ax_loss.set_ylabel("training loss")
    series: dict[str, list[float]] = {}
    for e in epochs:
        for name, value in _flatten(e).items():
            series.setdefault(name, []).append(value)
    for name, values in series.items():
        if len(values) == len(x):
            ax_metric.plot(x, values, marker="o", label=name)
    ax_metric.set_xlabel(ax_loss.get_xlabel())
    ax_metric.set_ylabel("held-out metric")
    if series:
        ax_metric.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _flatten(entry: dict) -> dict[str, float]:
    """Metric series of one log entry: held-out recall@1 / mAP per set, or validation figures."""
    out = {}
    for set_name, metrics in entry.get("heldout", {}).items():
        for key in ("recall_at_1", "mAP"):
            if key in metrics:
                out[f"{set_name} {key}"] = metrics[key]
    for key in ("val_fpr95", "val_matching_accuracy", "val_mAP"):
        if key in entry:
            out[key] = entry[key]
    return out
