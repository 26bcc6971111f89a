"""Model cards: entries follow the files in the folder (a rejected re-export leaves no stale entry)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="export tests need torch (pip install 'placekit[train]')")

from placekit_export.cards import update_card  # noqa: E402

FAMILY = {"name": "demo", "kind": "global", "summary": "test family"}


def _entry(name: str) -> dict:
    return {"file": name, "format": "onnx", "precision": "int8", "bytes": 1, "sha256": "0" * 64, "command": "x",
            "parity": {"n_items": 4, "min_cosine": 0.99, "mean_cosine": 0.995, "top1_agreement": 1.0,
                       "top1_agreement_all": 0.75, "decisive_items": 3, "tie_margin": 0.005, "images": "4 test"}}


def test_card_lists_only_files_that_exist_and_drops_a_rejected_one(tmp_path):
    for name in ("a-fp32.onnx", "a-int8.onnx"):
        (tmp_path / name).write_bytes(b"x")
        update_card(tmp_path, FAMILY, _entry(name))
    assert [f["file"] for f in json.loads((tmp_path / "card.json").read_text())["files"]] == ["a-fp32.onnx",
                                                                                             "a-int8.onnx"]
    (tmp_path / "a-int8.onnx").unlink()   # what a rejected re-export does
    card = update_card(tmp_path, FAMILY)
    assert [f["file"] for f in card["files"]] == ["a-fp32.onnx"]
    text = (tmp_path / "CARD.md").read_text()
    assert "a-int8.onnx" not in text and "1.000 on 3 / 0.750 on 4" in text


def test_trained_gem_card_names_held_out_losses_and_a_refit_whitening(tmp_path):
    from placekit_export.networks import trained_gem_card

    m = lambda r, a: {"recall_at_1": r, "mAP": a, "queries": 10}  # noqa: E731
    log = {"config": {"adverse_prob": 0.5, "seed": 0},
           "heldout_before": {"kitti": m(1.0, 0.90), "ie": m(0.80, 0.50)},
           "epochs": [{"heldout": {"kitti": m(1.0, 0.95), "ie": m(0.70, 0.55)}}],
           "whitening_comparison": {"kitti": {"learned_whitening_256": m(1.0, 0.94)},
                                    "ie": {"learned_whitening_256": m(0.75, 0.52)}},
           "rewhitened_from": {"checkpoint": "gem.pt", "whiten_dim": 256}}
    (tmp_path / "gem.log.json").write_text(json.dumps(log))
    card = trained_gem_card(tmp_path / "gem.pt", "0" * 64, 256)
    losses = [x for x in card["limitations"] if x.startswith("Held-out")]
    assert len(losses) == 1 and "ie:" in losses[0] and "0.750 / 0.520 vs 0.800 / 0.500" in losses[0]
    assert any("paired bootstrap" in x for x in card["limitations"])   # where to read whether it is noise
    assert "placekit-train whiten" in card["training_note"] and "--adverse-prob 0.5" in card["training_command"]
    assert "adverse capture conditions" in card["summary"]
    del log["rewhitened_from"]
    log["config"] = {"seed": 0}   # a log from before adverse views
    (tmp_path / "gem.log.json").write_text(json.dumps(log))
    card = trained_gem_card(tmp_path / "gem.pt", "0" * 64, 256)
    assert "training_note" not in card and "adverse" not in card["summary"]
    assert "IE Tower" in card["training_data"][-1]["what"] and "other floors" not in card["training_data"][-1]["what"]
    assert "--adverse-prob 0.0" in card["training_command"]


def test_trained_gem_card_says_which_ie_tower_tuples_trained_it(tmp_path):
    from placekit_export.networks import trained_gem_card

    for mode, says in (("area", "area type (any floor)"), ("floor_area", "floor and area"), ("floor", "other floors")):
        (tmp_path / "gem.log.json").write_text(json.dumps({"config": {"ie_tower_positives": mode}}))
        ie_tower = trained_gem_card(tmp_path / "gem.pt", "0" * 64, 256)["training_data"][-1]["what"]
        assert says in ie_tower
