"""Mutations of a map file's bytes for the fuzz test and benchmarks/fuzz_mapfile.py."""
from __future__ import annotations

import numpy as np


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random corruption: flipped bytes, truncation, a removed / duplicated / zeroed span,
    or garbage appended."""
    buf = bytearray(data)
    kind = int(rng.integers(0, 6))
    n = len(buf)
    if kind == 0:
        for pos in rng.integers(0, n, int(rng.integers(1, 8))):
            buf[pos] ^= int(rng.integers(1, 256))
    elif kind == 1:
        buf = buf[:int(rng.integers(0, n))]
    elif kind == 2:
        a = int(rng.integers(0, n))
        del buf[a:a + int(rng.integers(1, 256))]
    elif kind == 3:
        a = int(rng.integers(0, n))
        buf[a:a] = buf[a:a + int(rng.integers(1, 256))]
    elif kind == 4:
        a = int(rng.integers(0, n))
        buf[a:a + int(rng.integers(1, 64))] = bytes(64)[:min(64, n - a)]
    else:
        buf += rng.integers(0, 256, int(rng.integers(1, 512)), dtype=np.uint8).tobytes()
    return bytes(buf)


def open_and_search(path) -> None:
    """Open a (possibly corrupt) map and run one search; raises what the library raises."""
    import numpy as np

    from placekit.mapfile.placemap import PlaceMap

    m = PlaceMap.load(path)
    try:
        m.index.search(np.ones(m.index.dim_in, np.float32), k=3)
    finally:
        m.close()


def run_cases(data: bytes, cases: int, rng: np.random.Generator, workdir) -> tuple[dict, list[str]]:
    """Write ``cases`` mutations of ``data`` under ``workdir`` and open each. Returns outcome
    counts ("opened", "MapFormatError" or the name of any other exception) and descriptions of
    the cases where another exception escaped."""
    from pathlib import Path

    from placekit.errors import MapFormatError

    outcomes: dict[str, int] = {}
    escaped: list[str] = []
    path = Path(workdir) / "fuzz.pkmap"
    for i in range(cases):
        path.write_bytes(mutate(data, rng))
        try:
            open_and_search(path)
            key = "opened"
        except MapFormatError:
            key = "MapFormatError"
        except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
            key = type(exc).__name__
            escaped.append(f"case {i}: {key}: {exc}")
        outcomes[key] = outcomes.get(key, 0) + 1
    return outcomes, escaped
