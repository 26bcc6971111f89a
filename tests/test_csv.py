"""Locations CSVs: each kind of bad row is a CSVFormatError naming the line."""
from __future__ import annotations

import pytest

import placekit as pk
from placekit.ingest import read_locations_csv, write_locations_csv


def _csv(tmp_path, text):
    p = tmp_path / "loc.csv"
    p.write_text(text)
    return p


def test_reads_local_wgs84_rotation_and_intrinsics(tmp_path):
    local = read_locations_csv(_csv(tmp_path, "name,x,y,z\na.jpg,1,2,3\nb.jpg,4,5,6\n"))
    assert local["b.jpg"] == pk.Location(x=4.0, y=5.0, z=6.0)
    geo = read_locations_csv(_csv(tmp_path, "name,lat,lon\na.jpg,55.7,13.19\n"))
    assert geo["a.jpg"].is_wgs84 and geo["a.jpg"].alt is None
    posed = read_locations_csv(_csv(tmp_path, "name,x,y,z,qw,qx,qy,qz,fx,fy,cx,cy\na,0,0,0,1,0,0,0,500,500,320,240\n"))
    assert posed["a"].rotation == (1.0, 0.0, 0.0, 0.0) and posed["a"].intrinsics[0] == 500.0


@pytest.mark.parametrize("text, where, what", [
    ("", "", "empty"),
    ("file,x,y\na,1,2\n", ":1", "name"),
    ("name,east,north\na,1,2\n", ":1", "x,y"),
    ("name,x,y\na,1,2\nb,one,2\n", ":3", "not a number"),
    ("name,x,y\na,1,2\nb,nan,2\n", ":3", "finite"),
    ("name,lat,lon\na,95,10\n", ":2", "lat"),
    ("name,lat,lon\na,50,190\n", ":2", "lon"),
    ("name,x,y\na,1,2\na,3,4\n", ":3", "duplicate"),
    ("name,x,y\n,1,2\n", ":2", "empty image name"),
    ("name,x,y\na,1\n", ":2", "fields"),
    ("name,x,y,qw,qx\na,1,2,1,0\n", ":1", "missing"),
    ("name,x,y,qw,qx,qy,qz\na,1,2,2,0,0,0\n", ":2", "unit quaternion"),
    ("name,x,y\n", "", "no data rows"),
])
def test_bad_csvs(tmp_path, text, where, what):
    with pytest.raises(pk.CSVFormatError, match=what) as info:
        read_locations_csv(_csv(tmp_path, text))
    assert f"loc.csv{where}" in str(info.value)


def test_write_read_round_trip(tmp_path):
    locs = {"a.jpg": pk.Location(lat=55.1, lon=13.2, alt=4.0), "b.jpg": pk.Location(lat=55.2, lon=13.3)}
    write_locations_csv(tmp_path / "o.csv", locs)
    back = read_locations_csv(tmp_path / "o.csv")
    assert back["a.jpg"] == locs["a.jpg"] and back["b.jpg"].lat == 55.2


@pytest.mark.parametrize("kwargs", [
    {}, {"lat": 1.0}, {"x": 1.0}, {"lat": 1.0, "lon": 2.0, "x": 3.0, "y": 4.0},
    {"lat": float("inf"), "lon": 0.0}, {"x": 0.0, "y": 0.0, "intrinsics": (0.0, 1.0, 0.0, 0.0)},
    {"x": 0.0, "y": 0.0, "rotation": (1.0, 0.0)}, {"lat": 1.0, "lon": 1.0, "z": 2.0},
])
def test_bad_locations(kwargs):
    with pytest.raises(pk.LocationError):
        pk.Location(**kwargs)


def test_write_locations_csv_round_trips_every_field(tmp_path):
    from placekit.ingest import read_locations_and_groups

    locations = {
        "a.jpg": pk.Location(x=1.5, y=-2.25, z=3.0, rotation=(1.0, 0.0, 0.0, 0.0), intrinsics=(500.0, 501.0, 320.0, 240.0)),
        "b.jpg": pk.Location(x=0.1, y=0.2),                              # no z, no camera
    }
    groups = {"a.jpg": "clip1", "b.jpg": None}
    write_locations_csv(tmp_path / "o.csv", locations, groups)
    back = read_locations_and_groups(tmp_path / "o.csv")
    assert {name: loc for name, (loc, _) in back.items()} == locations
    assert {name: group for name, (_, group) in back.items()} == groups
    wgs = {"c.jpg": pk.Location(lat=55.7, lon=13.19), "d.jpg": pk.Location(lat=55.8, lon=13.2, alt=12.5)}
    write_locations_csv(tmp_path / "w.csv", wgs)
    assert read_locations_csv(tmp_path / "w.csv") == wgs                # alt None stays None, not 0.0


def test_a_csv_with_both_lat_lon_and_x_y_is_refused(tmp_path):
    (tmp_path / "both.csv").write_text("name,lat,lon,x,y\na.jpg,55.7,13.19,1,2\n")
    with pytest.raises(pk.CSVFormatError, match="one kind"):
        read_locations_csv(tmp_path / "both.csv")
