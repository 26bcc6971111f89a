"""The CLI in a subprocess, as a user runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def run(*args, check=True):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "sdk"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "placekit.tools.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.mark.parametrize("cmd", [[], ["map"], ["map", "build"], ["map", "info"], ["localize"], ["models"], ["demo"],
                                 ["eval"]])
def test_help_everywhere(cmd):
    proc = run(*cmd, "--help")
    assert "usage: placekit" in proc.stdout


def test_build_info_localize(tmp_path, street, tiny_model):
    out = tmp_path / "s.pkmap"
    proc = run("map", "build", street / "database", "--locations", street / "database.csv", "-o", out,
               "--model", tiny_model, "--radius", "10", "-q")
    assert "40 places" in proc.stdout and out.is_file()
    info = run("map", "info", out).stdout
    assert "places       40" in info and "tiny-thumb" in info
    js = json.loads(run("map", "info", out, "--json").stdout)
    assert js["places"] == 40 and js["frame"]["kind"] == "wgs84"
    images = sorted((street / "queries").iterdir())[:3]
    lines = run("localize", out, *images, "--json").stdout.strip().splitlines()
    assert len(lines) == 3
    for line, image in zip(lines, images):
        obj = json.loads(line)
        assert {"status", "location", "uncertainty_m", "confidence", "matches", "timings_ms"} <= set(obj)
        assert obj["image"] == str(image)
    text = run("localize", out, images[0]).stdout
    assert str(images[0]) in text and "ms)" in text


def test_bad_inputs_give_exit_1_and_no_map(tmp_path, street, tiny_model):
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("name,lat,lon\nd0000.jpg,55.7,13.19\nd0001.jpg,north,13.19\n")
    out = tmp_path / "never.pkmap"
    proc = run("map", "build", street / "database", "--locations", bad_csv, "-o", out, "--model", tiny_model,
               check=False)
    assert proc.returncode == 1 and "bad.csv:3" in proc.stderr and not out.exists()
    missing = tmp_path / "missing.csv"
    missing.write_text("name,lat,lon\nd0000.jpg,55.7,13.19\nnope.jpg,55.7,13.19\n")
    proc = run("map", "build", street / "database", "--locations", missing, "-o", out, "--model", tiny_model,
               check=False)
    assert proc.returncode == 1 and "missing.csv:3" in proc.stderr and not out.exists()
    assert list(tmp_path.glob("*.tmp")) == [] and list(tmp_path.glob(".*")) == []
    (tmp_path / "junk.pkmap").write_bytes(b"junk")
    proc = run("map", "info", tmp_path / "junk.pkmap", check=False)
    assert proc.returncode == 1 and "junk.pkmap" in proc.stderr
    proc = run("map", "build", street / "database", "--locations", street / "database.csv", "-o", out,
               "--model", "no-such-model", check=False)
    assert proc.returncode == 1 and "no model named" in proc.stderr


def test_localize_reports_bad_images_and_continues(tmp_path, street_map, street):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8broken")
    proc = run("localize", street_map, tmp_path / "broken.jpg", street / "queries" / "q0001.jpg", "--json",
               check=False)
    lines = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert proc.returncode == 1 and lines[0]["error"] == "ImageReadError" and "status" in lines[1]


def test_build_from_exif_gps(tmp_path, street, tiny_model):
    folder = tmp_path / "phone"
    folder.mkdir()
    for i, src in enumerate(sorted((street / "database").iterdir())[:12]):
        im = Image.open(src)
        exif = im.getexif()
        gps = exif.get_ifd(0x8825)
        lon_seconds = 30.0 + 0.4 * i
        gps.update({1: "N", 2: (55.0, 42.0, 17.0), 3: "E", 4: (13.0, 11.0, lon_seconds)})
        im.save(folder / f"IMG_{i:04d}.jpg", exif=exif)
    out = tmp_path / "exif.pkmap"
    proc = run("map", "build", folder, "--locations", "exif", "-o", out, "--model", tiny_model, "--json", "-q")
    info = json.loads(proc.stdout)
    assert info["places"] == 12 and info["frame"]["origin"]["lat"] == pytest.approx(55 + 42 / 60 + 17 / 3600)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / "no_gps.jpg")
    proc = run("map", "build", folder, "--locations", "exif", "-o", tmp_path / "x.pkmap", "--model", tiny_model,
               check=False)
    assert proc.returncode == 1 and "no_gps.jpg has no EXIF GPS" in proc.stderr


def test_eval_command_writes_the_report(tmp_path, street, tiny_model):
    out = tmp_path / "report.json"
    proc = run("eval", street, "--model", tiny_model, "--threshold", "10", "--json", out, "-q")
    assert "recall@1" in proc.stdout
    report = json.loads(out.read_text())
    assert report["n_queries"] == 12 and "recall_at_10" in report


def test_doctor_reports_backends_and_a_recommendation():
    proc = run("doctor", "--json")
    r = json.loads(proc.stdout)
    assert r["onnxruntime"]["available"] and "CPUExecutionProvider" in r["onnxruntime"]["providers"]
    assert r["recommended"]["backend"] == "onnx" and r["recommended"]["threads"] >= 1
    assert r["cpu"]["usable_cpus"] >= 1
    text = run("doctor").stdout
    assert "recommended" in text and "onnxruntime" in text


@pytest.mark.parametrize("descriptor", ["gem", "vlad"])
def test_posed_map_from_the_command_line_gives_poses(tmp_path, descriptor):
    import cv2

    from placekit.geometry.rotation import matrix_to_quaternion
    from posed_scene import K, views

    folder = tmp_path / "photos"
    folder.mkdir()
    lines = ["name,x,y,z,qw,qx,qy,qz,fx,fy,cx,cy"]
    for i, (R, c, img) in enumerate(views(6, seed=0)):
        cv2.imwrite(str(folder / f"{i}.png"), img)
        lines.append(",".join(map(str, [f"{i}.png", *c, *matrix_to_quaternion(R), K[0, 0], K[1, 1], K[0, 2], K[1, 2]])))
    (tmp_path / "posed.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "site.pkmap"
    run("map", "build", folder, "--locations", tmp_path / "posed.csv", "-o", out, "--descriptor", descriptor,
        "--local-features", "rootsift", "--max-keypoints", "512", "--radius", "1", "--local-max-side", "600",
        "--local-detector", "sift", "-q")
    info = json.loads(run("map", "info", out, "--json").stdout)
    assert info["descriptor"]["kind"] == descriptor and info["local"]["triangulation"]["points"] > 100
    assert info["local"]["max_side"] == 600 and info["local"]["detector"] == "sift"
    query = tmp_path / "query.png"
    cv2.imwrite(str(query), views(4, seed=0, offset=0.2)[1][2])
    result = json.loads(run("localize", out, query, "--json").stdout)
    assert result["status"] == "localized" and result["pose"] is not None
    assert result["matches"][0]["inliers"] >= 25
    assert "pose centre" in run("localize", out, query).stdout
    every = json.loads(run("localize", out, query, "--json", "--query-keypoints", "all").stdout)
    assert every["status"] == "localized" and every["pose"] is not None
    for bad in ("many", "-5"):
        proc = run("localize", out, query, "--query-keypoints", bad, check=False)
        assert proc.returncode == 2 and "query-keypoints" in proc.stderr
    proc = run("localize", out, query, "--query-keypoints", "3", check=False)      # below the allowed range
    assert proc.returncode != 0 and "query_keypoints" in proc.stderr and "Traceback" not in proc.stderr
    assert "3D points" in run("map", "info", out).stdout


def test_build_with_negatives_records_them_in_the_calibration(tmp_path, street, tiny_model):
    negatives = tmp_path / "elsewhere"
    negatives.mkdir()
    for p in sorted((street / "queries").glob("foreign_*"))[:3]:
        (negatives / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "neg.pkmap"
    proc = run("map", "build", street / "database", "--locations", street / "database.csv", "-o", out,
               "--model", tiny_model, "--negatives", negatives, "--json", "-q")
    info = json.loads(proc.stdout)
    assert info["calibration"]["stats"]["negatives"] == 3 and info["places"] == 40
    assert "3 photos of other places" in run("map", "info", out).stdout


def test_map_info_reads_the_structure_and_verify_reads_every_byte(street_map, tmp_path):
    """``map info`` answers from the structure (fast on a 10M-place map); ``--verify`` also checks
    every member's sha256 and so catches a flipped byte inside the stored vectors."""
    import zipfile

    with zipfile.ZipFile(street_map) as z:
        member = z.getinfo("index/vectors.npy")
    data = bytearray(street_map.read_bytes())
    data[member.header_offset + 30 + len(member.filename) + member.file_size // 2 + 256] ^= 0x01
    bad = tmp_path / "flipped.pkmap"
    bad.write_bytes(bytes(data))
    assert "places" in run("map", "info", bad).stdout
    proc = run("map", "info", bad, "--verify", check=False)
    assert proc.returncode == 1 and "sha256" in proc.stderr
