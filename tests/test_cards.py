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
