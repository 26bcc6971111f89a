"""Fuzz every input path but the map file (``fuzz_mapfile.py`` does that): only ``PlacekitError``
subclasses may escape, and live-map edits must leave exactly what a model of the map says.

    python benchmarks/fuzz_inputs.py --cases 4000 --out benchmarks/results/fuzz_inputs.json

Kinds of case, spread evenly over ``--cases``:

* ``image_file``: a real image encoded as JPEG / PNG / BMP / TIFF / WebP, then mutated (random
  bytes flipped, truncated, a header field overwritten, bytes inserted), decoded with
  ``imageio.read_image`` and localized from its path;
* ``array``: random arrays of every dtype and of random shapes, localized directly;
* ``csv``: a locations CSV with random rows (numbers, text, missing and extra fields, huge and
  non-finite values), read with ``datasets.read_locations_and_groups``;
* ``options``: ``BuildOptions`` / ``LocalizerOptions`` with a random field set to a random value;
* ``live_map``: random sequences of ``add_place`` / ``remove_place`` / ``compact`` / ``save`` /
  reopen, each checked against a dict of what the map must hold (ids, names, no id reused).

Any other exception is a failure and is recorded with its case; the script exits non-zero when
one occurs. ``run(cases, seed, model)`` is what the tests call with a few hundred cases.
"""
from __future__ import annotations

import argparse
import csv
import io
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

KINDS = ("image_file", "array", "csv", "options", "live_map")
FORMATS = (".jpg", ".png", ".bmp", ".tiff", ".webp")
DTYPES = (np.uint8, np.int8, np.uint16, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_,
          np.complex64)
ODD_VALUES = (None, True, -1, 0, 1, 2.5, 10 ** 9, 2 ** 70, float("nan"), float("inf"), "2", "", "auto", "x" * 300,
              [1, 2], (1.0, 2.0, 3.0, 4.0), {"a": 1}, b"bytes", np.int64(3), np.float32(0.5))


def _scene(rng: np.random.Generator) -> np.ndarray:
    """A textured 96 x 128 BGR image."""
    image = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    return cv2.resize(image, (128, 96), interpolation=cv2.INTER_NEAREST)


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    how = rng.integers(0, 4)
    if how == 0:                                            # flip random bytes
        for i in rng.integers(0, len(b), rng.integers(1, 20)):
            b[i] = int(rng.integers(0, 256))
    elif how == 1:                                          # truncate
        b = b[:int(rng.integers(0, len(b)))]
    elif how == 2:                                          # overwrite a header field
        start = int(rng.integers(0, min(len(b), 64)))
        b[start:start + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
    else:                                                   # insert bytes
        at = int(rng.integers(0, len(b)))
        b[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    return bytes(b)


def case_image_file(rng, ctx) -> None:
    from placekit.inference.imageio import read_image

    fmt = FORMATS[rng.integers(0, len(FORMATS))]
    ok, encoded = cv2.imencode(fmt, _scene(rng))
    path = ctx["tmp"] / f"fuzz{fmt}"
    path.write_bytes(_mutate(encoded.tobytes(), rng))
    read_image(path)
    ctx["localizer"].localize(path)


def case_array(rng, ctx) -> None:
    dtype = DTYPES[rng.integers(0, len(DTYPES))]
    ndim = int(rng.integers(0, 5))
    shape = tuple(int(v) for v in rng.choice([0, 1, 3, 4, 15, 16, 64, 97], ndim))
    if np.prod(shape, dtype=np.int64) > 5_000_000:
        shape = (64, 64, 3)
    x = rng.normal(0.5, 1.0, shape) if dtype not in (np.bool_,) else rng.integers(0, 2, shape)
    ctx["localizer"].localize(np.asarray(x).astype(dtype))


def case_csv(rng, ctx) -> None:
    from placekit.ingest import read_locations_and_groups

    headers = (["name", "x", "y"], ["name", "lat", "lon", "alt"], ["name", "x", "y", "z", "qw", "qx", "qy", "qz"],
               ["name", "lat", "lon", "group"], ["name", "x", "y", "fx", "fy", "cx", "cy"], ["x", "y"],
               ["name", "lat", "lon", "x", "y"])
    header = headers[rng.integers(0, len(headers))]
    cells = ("1.5", "-3", "1e300", "nan", "inf", "", "abc", "55.7", "13.2", "0", "1", "-200", "a.jpg", "b.jpg",
             "\udcff".encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(header)
    for _ in range(int(rng.integers(0, 6))):
        n = len(header) + int(rng.integers(-1, 2))
        w.writerow([cells[rng.integers(0, len(cells))] for _ in range(max(n, 0))])
    path = ctx["tmp"] / "fuzz.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    read_locations_and_groups(path)


def case_options(rng, ctx) -> None:
    import dataclasses

    import placekit as pk

    cls = (pk.BuildOptions, pk.LocalizerOptions)[rng.integers(0, 2)]
    field = [f.name for f in dataclasses.fields(cls)][rng.integers(0, len(dataclasses.fields(cls)))]
    cls(**{field: ODD_VALUES[rng.integers(0, len(ODD_VALUES))]})


def case_live_map(rng, ctx) -> None:
    """A random edit sequence on a copy of the map, checked against ``expected`` (id -> name)."""
    import placekit as pk

    path = ctx["tmp"] / "live.pkmap"
    shutil.copy(ctx["map"], path)
    options = pk.LocalizerOptions(model=ctx["model"])
    loc = pk.Localizer.open(path, options)
    expected = {int(i): loc.map.places.name(r) for r, i in enumerate(loc.map.places.ids)}
    issued = set(expected)
    try:
        for step in range(int(rng.integers(1, 12))):
            op = rng.integers(0, 5)
            if op == 0:
                pid = loc.add_place(_scene(rng), pk.Location(lat=55.7 + rng.uniform(-1e-3, 1e-3), lon=13.19),
                                    name=f"added-{step}-{rng.integers(0, 1 << 30)}")
                _require(pid not in issued, f"id {pid} handed out twice")
                issued.add(pid)
                expected[pid] = None
            elif op == 1 and expected:
                pid = list(expected)[rng.integers(0, len(expected))]
                _require(loc.remove_place(pid), f"remove_place({pid}) of a live place returned False")
                del expected[pid]
            elif op == 2:
                loc.compact()
            elif op == 3:
                loc.save()
            else:
                loc.save()
                loc.close()
                loc = pk.Localizer.open(path, options)
            live = {int(i) for i in loc.map.index.ids}
            _require(live == set(expected), f"map holds {sorted(live ^ set(expected))[:5]}... unlike the model")
    finally:
        loc.close()


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(what)


CASES = {"image_file": case_image_file, "array": case_array, "csv": case_csv, "options": case_options,
         "live_map": case_live_map}


def run(cases: int, seed: int, model: str, map_path: Path, tmp: Path) -> dict:
    """Run ``cases`` cases (kinds in turn). Returns counts per kind and the failures."""
    import placekit as pk

    rng = np.random.default_rng(seed)
    localizer = pk.Localizer.open(map_path, pk.LocalizerOptions(model=model))
    ctx = {"tmp": tmp, "localizer": localizer, "map": map_path, "model": model}
    counts = {k: {"cases": 0, "ok": 0, "placekit_error": 0} for k in KINDS}
    failures = []
    try:
        for i in range(cases):
            kind = KINDS[i % len(KINDS)]
            counts[kind]["cases"] += 1
            try:
                CASES[kind](rng, ctx)
                counts[kind]["ok"] += 1
            except pk.PlacekitError:
                counts[kind]["placekit_error"] += 1
            except Exception as exc:                     # noqa: BLE001 - what the fuzzer looks for
                failures.append({"case": i, "kind": kind, "error": f"{type(exc).__name__}: {exc}",
                                 "where": traceback.format_exc().splitlines()[-3:]})
    finally:
        localizer.close()
    return {"cases": cases, "seed": seed, "counts": counts, "failures": failures}


def _fixture_map(tmp: Path, model: str) -> Path:
    """A 24-place map of generated views, built with ``model``."""
    import placekit as pk

    rng = np.random.default_rng(1)
    builder = pk.MapBuilder(pk.BuildOptions(model=model))
    for i in range(24):
        builder.add(_scene(rng), pk.Location(lat=55.7 + 1e-4 * i, lon=13.19), f"p{i:02d}")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        builder.build(tmp / "fuzz.pkmap")
    return tmp / "fuzz.pkmap"


def main() -> None:
    from provenance import save

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="gem-imagenet-int8")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        result = run(args.cases, args.seed, args.model, _fixture_map(Path(tmp), args.model), Path(tmp))
        result["seconds"] = time.perf_counter() - t
    result["model"] = args.model
    save(args.out, result)
    for kind, c in result["counts"].items():
        print(f"{kind:<11} {c['cases']:>5} cases: {c['ok']} ok, {c['placekit_error']} PlacekitError")
    print(f"{len(result['failures'])} failures")
    for f in result["failures"][:10]:
        print(f)
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
