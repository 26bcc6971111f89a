"""Read-ahead of scattered rows of memory-mapped arrays (``placekit.index.prefetch``)."""

import mmap

import numpy as np

from placekit.index.prefetch import _mapping_of, prefetch_rows


def _mapped(tmp_path, rows=64, dim=256, header=4096):
    data = np.random.default_rng(0).normal(size=(rows, dim)).astype(np.float16)
    path = tmp_path / "rows.bin"
    path.write_bytes(b"\0" * header + data.tobytes())
    fh = path.open("rb")
    mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    view = np.frombuffer(mm, np.float16, count=data.size, offset=header).reshape(rows, dim)
    return fh, mm, view, data


def test_finds_the_mapping_and_the_offset_of_a_view(tmp_path):
    fh, mm, view, data = _mapped(tmp_path)
    found = _mapping_of(view[8:])
    assert found is not None and found[0] is mm
    assert found[1] == 4096 + 8 * view.strides[0]
    prefetch_rows(view, np.array([3, 40, 7, 63]))  # returns; the rows read back unchanged
    np.testing.assert_array_equal(view[[3, 40, 7, 63]], data[[3, 40, 7, 63]])
    del view, found
    fh.close()


def test_arrays_in_memory_are_left_alone():
    array = np.zeros((10, 4), np.float16)
    assert _mapping_of(array) is None
    prefetch_rows(array, np.arange(10))
    prefetch_rows(array, np.zeros(0, np.int64))
