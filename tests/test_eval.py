"""placekit eval on generated datasets (the docs/data.md layout and the VPR @east@north@ layout)."""
from __future__ import annotations

import json
import shutil

import pytest

import placekit as pk
from placekit.tools.evaluation import evaluate, load_dataset

KEYS = {"recall_at_1", "recall_at_5", "recall_at_10", "median_position_error_m", "p90_position_error_m",
        "median_rotation_error_deg", "localized_precision", "latency_ms_p50", "latency_ms_p99",
        "map_bytes_per_place", "n_queries", "n_database"}


def test_eval_report_on_a_design_layout_dataset(street, tiny_model):
    report = evaluate(load_dataset(street), model=str(tiny_model), threshold_m=10.0)
    assert KEYS <= set(report)
    assert report["n_database"] == 40 and report["n_queries"] == 12  # foreign views have no truth row
    assert 0 <= report["recall_at_1"] <= report["recall_at_5"] <= report["recall_at_10"] <= 1
    assert report["recall_at_10"] > 0.5
    assert report["median_rotation_error_deg"] is None
    assert abs(sum(report["status_shares"].values()) - 1) < 1e-9
    assert report["latency_ms_p50"] > 0 and report["map_bytes_per_place"] > 0
    json.dumps(report)


def test_vpr_layout_positions_come_from_file_names(tmp_path, street, tiny_model):
    for split in ("database", "queries"):
        (tmp_path / split).mkdir()
    for i in range(20):
        shutil.copy(street / "database" / f"d{i:04d}.jpg", tmp_path / "database" / f"@{500000 + 5 * i}@6170000@.jpg")
    for i in (3, 11):
        shutil.copy(street / "database" / f"d{i:04d}.jpg", tmp_path / "queries" / f"@{500000 + 5 * i + 1}@6170000@q.jpg")
    ds = load_dataset(tmp_path)
    assert ds.database[0][1] == pk.Location(x=500000.0, y=6170000.0)
    report = evaluate(ds, model=str(tiny_model), threshold_m=5.0)
    assert report["recall_at_1"] == 1.0 and report["median_position_error_m"] < 5.0


def test_bad_dataset_folders(tmp_path):
    (tmp_path / "database").mkdir()
    (tmp_path / "queries").mkdir()
    with pytest.raises(pk.CSVFormatError, match="no database images"):
        load_dataset(tmp_path)
    (tmp_path / "database" / "plain.jpg").write_bytes(b"x")
    with pytest.raises(pk.CSVFormatError, match="@east@north@"):
        load_dataset(tmp_path)
    (tmp_path / "database.csv").write_text("name,x,y\nmissing.jpg,1,2\n")
    with pytest.raises(pk.CSVFormatError, match="not in"):
        load_dataset(tmp_path)


def test_eval_writes_plots(tmp_path, street, tiny_model):
    pytest.importorskip("matplotlib", reason="plots need the 'plots' extra")
    report = evaluate(load_dataset(street), model=str(tiny_model), threshold_m=10.0, plots_dir=tmp_path / "plots")
    names = sorted(p.rsplit("/", 1)[-1] for p in report["plots"])
    assert names == ["latency_by_stage.png", "matches.png", "position_error_cdf.png", "recall_at_n.png"]
    for p in report["plots"]:
        data = open(p, "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    curve = report["recall_at_n"]
    assert len(curve) == 10 and all(a <= b for a, b in zip(curve, curve[1:]))
    assert curve[0] == report["recall_at_1"] and curve[9] == report["recall_at_10"]


def test_group_column_reaches_the_map(tmp_path, street, tiny_model):
    shutil.copytree(street, tmp_path / "ds")
    csv_path = tmp_path / "ds" / "database.csv"
    lines = csv_path.read_text().splitlines()
    lines = [lines[0] + ",group"] + [f"{line},clip{i % 2}" for i, line in enumerate(lines[1:])]
    csv_path.write_text("\n".join(lines) + "\n")
    ds = load_dataset(tmp_path / "ds")
    assert {s.group for s in ds.database} == {"clip0", "clip1"} and ds.queries[0].group is None
    keep = tmp_path / "keep"
    keep.mkdir()
    evaluate(ds, model=str(tiny_model), threshold_m=10.0, workdir=keep)
    with pk.Localizer.open(keep / "eval.pkmap", pk.LocalizerOptions(model=str(tiny_model))) as loc:
        assert loc.info().calibration["stats"]["groups"] in ("other groups only",) or \
            loc.info().calibration["stats"]["groups"].startswith("fell back")


def test_eval_negatives_calibrate_the_map(street, tiny_model):
    foreign = sorted((street / "queries").glob("foreign_*"))[:2]
    report = evaluate(load_dataset(street), model=str(tiny_model), threshold_m=10.0, negatives=foreign)
    assert report["calibration"]["stats"]["negatives"] == 2
    assert "negatives" not in evaluate(load_dataset(street), model=str(tiny_model),
                                       threshold_m=10.0)["calibration"]["stats"]
