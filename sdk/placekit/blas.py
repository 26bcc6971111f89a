"""numpy's BLAS threads inside ``Localizer.localize``.

numpy's matrix products (descriptor matching, the query's projection) run on its BLAS library,
usually OpenBLAS, whose worker threads busy-wait for a while after every multi-threaded call.
Inside ``localize`` that wait takes the cores ONNX Runtime and OpenCV need next: on 2 cores a
verified ``localize`` (GeM + SIFT + HardNet-C16) took 1.4-1.7x longer with numpy's default
threads than with one BLAS thread, and GeM in it 21-26 ms instead of 13 ms, its time without
verification (``benchmarks/results/localize_default.json``).

``blas_threads(n)`` limits the BLAS libraries numpy loaded to ``n`` threads for the duration of
a ``with`` block (threadpoolctl; the libraries are found on the first call, not at import). The
limit is process-wide while the block runs, as BLAS's thread count is.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, ContextManager

_controller: Any = None
_controller_lock = threading.Lock()


def blas_threads(n: int | None) -> ContextManager[Any]:
    """A context manager running numpy's BLAS on ``n`` threads; ``None``: as it is."""
    global _controller
    if n is None:
        return contextlib.nullcontext()
    with _controller_lock:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
    return _controller.limit(limits=int(n), user_api="blas")
