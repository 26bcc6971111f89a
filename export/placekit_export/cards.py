"""Model cards: ``card.json`` (machine-readable, read by ``placekit.list_models``) and
``CARD.md`` (the same facts for people), written side by side in a model folder."""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from pathlib import Path

import numpy as np


def measure_latency(path: Path, example: np.ndarray, threads: int, repeats: int = 30) -> dict:
    """p50 / p90 milliseconds of one forward pass on ONNX Runtime or LiteRT."""
    from placekit.inference.engine import open_engine

    engine = open_engine(path, threads=threads)
    for _ in range(5):
        engine.run(example)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        engine.run(example)
        times.append((time.perf_counter() - t) * 1000.0)
    return {"p50_ms": round(float(np.median(times)), 2), "p90_ms": round(float(np.percentile(times, 90)), 2)}


def _agreement_text(parity: dict) -> str:
    if "top1_agreement" not in parity:
        return "-"
    if "decisive_items" not in parity:
        return f"{parity['top1_agreement']:.3f} (all)"
    return (
        f"{parity['top1_agreement']:.3f} on {parity['decisive_items']} / {parity['top1_agreement_all']:.3f} "
        f"on {parity['n_items']} (margin {parity['tie_margin']})"
    )


def update_card(folder: Path, family: dict, file_entry: dict | None = None) -> dict:
    """Merge one exported file's entry (if given) into ``folder/card.json`` and re-render
    CARD.md. Entries of files no longer in ``folder`` (e.g. a rejected re-export) are dropped."""
    card_path = folder / "card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    card.update(family)
    replaced = file_entry["file"] if file_entry else None
    files = [f for f in card.get("files", []) if f["file"] != replaced and (folder / f["file"]).is_file()]
    files += [file_entry] if file_entry else []
    card["files"] = sorted(files, key=lambda f: f["file"])
    card["updated_utc"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    (folder / "CARD.md").write_text(render_markdown(card))
    return card


def write_card(folder: Path, card: dict) -> None:
    """Replace ``folder/card.json`` atomically with ``card`` and re-render CARD.md."""
    card_path = folder / "card.json"
    tmp = card_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, card_path)
    (folder / "CARD.md").write_text(render_markdown(card))


def render_markdown(card: dict) -> str:
    lines = [
        f"# Model card: {card['name']}",
        "",
        card.get("summary", ""),
        "",
        f"- kind: {card['kind']}",
        f"- architecture: {card.get('architecture', '')}",
        f"- output: {card.get('output', '')}",
        "",
        "## Training data and licences",
        "",
    ]
    for item in card.get("training_data", []):
        lines.append(f"- {item['what']} — licence: {item['licence']}; source: {item['source']}")
    if card.get("training_set"):
        lines += ["", f"Training set (as mined): {json.dumps(card['training_set'])}"]
    if card.get("held_out"):
        lines += ["", "Held out of training: " + "; ".join(card["held_out"]) + "."]
    if card.get("training_command"):
        lines += ["", f"Training command (seeded; its log sits beside the checkpoint): `{card['training_command']}`"]
    if card.get("training_note"):
        lines += ["", card["training_note"]]
    if card.get("training_seconds"):
        lines += ["", f"Training time: {card['training_seconds'] / 60:.0f} min on the machine named below."]
    lines += [
        "",
        "## Files",
        "",
        "| file | format | precision | bytes | sha256 | input | parity (min / mean cosine vs PyTorch) "
        "| top-1 agreement (decisive / all) | latency p50 1 thread | 2 threads | latency input |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in card.get("files", []):
        par = f.get("parity", {})
        lat = f.get("latency", {})
        lines.append(
            f"| {f['file']} | {f['format']} | {f['precision']} | {f['bytes']:,} | `{f['sha256'][:16]}…` "
            f"| {f.get('input', '')} | {par.get('min_cosine', float('nan')):.6f} / {par.get('mean_cosine', float('nan')):.6f} "
            f"| {_agreement_text(par)} "
            f"| {lat.get('threads_1', {}).get('p50_ms', '-')} ms | {lat.get('threads_2', {}).get('p50_ms', '-')} ms "
            f"| {'x'.join(str(v) for v in f.get('latency_input_shape', []))} |"
        )
    lines += [
        "",
        "Top-1 agreement: each held-out item's nearest other item, found with the exported descriptor, is "
        "PyTorch's; gated (int8) on the decisive items, whose two best PyTorch neighbours differ by at least "
        "the tie margin in cosine; the share over all items is beside it.",
        "",
        "Full sha256 values, parity details and the images they were measured on are in `card.json`.",
        "",
    ]
    for f in card.get("files", []):
        lines += [
            f"### {f['file']}",
            "",
            f"- produced by: `{f['command']}`",
            f"- calibration: {f.get('calibration') or 'none (not quantized)'}",
            f"- parity images: {f.get('parity', {}).get('images', '')}",
            f"- latency measured on: {f.get('machine', '')}",
            "",
        ]
    for v in card.get("vlad_vocabularies", []):
        lines += [
            f"### {v['file']} (VLAD vocabulary)",
            "",
            f"- {v['words']} words of `{v['local_model']}` descriptors, learned on {v['trained_on']}",
            f"- produced by: `{v['command']}`",
            f"- sha256: `{v['sha256']}`",
            "",
        ]
        w = v.get("whitening")
        if isinstance(w, dict):
            lines += [
                f"### {w['file']} (PCA-whitening of that VLAD, to {w['dim']} dims)",
                "",
                f"- learned on {w['trained_on']}",
                f"- produced by: `{w['command']}`",
                f"- sha256: `{w['sha256']}`",
                "",
            ]
    if card.get("metrics"):
        lines += ["## Metrics", ""] + [f"- {m}" for m in card["metrics"]] + [""]
    if card.get("limitations"):
        lines += ["## Limitations", ""] + [f"- {m}" for m in card["limitations"]] + [""]
    return "\n".join(lines)
