import numpy as np
import pytest

from placekit.geometry.frames import LocalFrame


def test_round_trip_is_sub_millimetre():
    frame = LocalFrame(55.7047, 13.1910, 20.0)
    rng = np.random.default_rng(0)
    lat = 55.7047 + rng.uniform(-0.05, 0.05, 100)
    lon = 13.1910 + rng.uniform(-0.05, 0.05, 100)
    alt = rng.uniform(0, 100, 100)
    xyz = frame.to_local(lat, lon, alt)
    lat2, lon2, alt2 = frame.to_wgs84(xyz)
    back = frame.to_local(lat2, lon2, alt2)
    assert np.abs(back - xyz).max() < 1e-3
    assert np.abs(alt2 - alt).max() < 1e-3


def test_axes_and_scale():
    frame = LocalFrame(0.0, 0.0)
    east = frame.to_local(0.0, 0.001)
    north = frame.to_local(0.001, 0.0)
    assert east[0] == pytest.approx(111.3195, rel=1e-4) and abs(east[1]) < 1e-6
    assert north[1] == pytest.approx(110.574, rel=1e-3) and abs(north[0]) < 1e-6
    assert frame.to_local(0.0, 0.0, 10.0)[2] == pytest.approx(10.0)
