"""Where a map build's independent steps run: in this process, or as tasks on a Ray cluster.

A map build is image extraction over shards, one quantizer-training step and encoding over
chunks (``placekit.builder``, ``placekit.index.build``). Each step is a plain function of
picklable arguments, handed to an executor:

- ``LocalExecutor`` (the default) runs them here, one after the other.
- ``RayExecutor`` runs them as Ray tasks, on a local Ray instance it starts or on a running
  cluster it joins. Results come back through Ray's object store, in order; a task whose worker
  dies is retried by Ray (``max_retries``). Ray is imported only here and only when a
  ``RayExecutor`` is created (``pip install "placekit[distributed]"``); the runtime never
  imports it.

Both produce the same map for the same inputs and seed: the steps are the same functions.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from placekit.errors import ClusterError, PlacekitError

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_RETRIES = 3  # a task whose worker process dies is re-run this many times
CONNECT_TIMEOUT_S = 5.0  # how long a cluster address may take to accept a TCP connection
LOCAL = "local"  # --ray local: always start a new local Ray instance
AUTO = "auto"  # --ray auto: join the cluster RAY_ADDRESS or `ray start` names, else start a local one


class LocalExecutor:
    """Runs every step in this process, in order."""

    distributed = False

    def map(self, fn: Callable[[T], R], items: Sequence[T], desc: str = "", progress: bool = False) -> list[R]:
        """``[fn(item) for item in items]``, with an optional progress bar named ``desc``."""
        iterable: Any = items
        if progress:
            from tqdm import tqdm

            iterable = tqdm(items, desc=desc, unit="task")
        return [fn(item) for item in iterable]

    def call(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)``."""
        return fn(*args)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RayExecutor:
    """Runs steps as Ray tasks.

    address: ``"auto"`` joins the cluster that ``RAY_ADDRESS`` or a ``ray start`` on this machine
    names and otherwise starts a local Ray instance; ``"local"`` always starts a local instance;
    anything else is a cluster address to join (``"ray://head:10001"`` for Ray Client,
    ``"head:6379"`` for a node of the cluster). An address that does not accept a connection
    within ``CONNECT_TIMEOUT_S`` raises ``ClusterError`` here, before any work starts.
    num_cpus: CPUs of a local instance this executor starts (default: all).
    cpus_per_task: CPUs Ray reserves for each task (match the build's inference threads).
    max_retries: how often Ray re-runs a task whose worker process died.

    Workers must be able to import ``placekit`` (same environment on every node). A local
    instance this executor started is shut down by ``close()``; a joined cluster is only
    disconnected from.
    """

    distributed = True

    def __init__(
        self,
        address: str = AUTO,
        num_cpus: int | None = None,
        cpus_per_task: int = 1,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ):
        if not isinstance(address, str) or not address:
            raise ClusterError(f"Ray address must be a non-empty string, got {address!r}")
        if not isinstance(cpus_per_task, int) or cpus_per_task < 1:
            raise ClusterError(f"cpus_per_task must be an integer >= 1, got {cpus_per_task!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ClusterError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        try:
            import ray
        except ImportError as exc:
            raise ClusterError('Ray is not installed: pip install "placekit[distributed]"') from exc
        self._ray = ray
        self.address = address
        self.cpus_per_task = cpus_per_task
        self.max_retries = max_retries
        self.started_local = False  # whether this executor started a local Ray instance
        self._connected = False  # this executor called ray.init (and so may call ray.shutdown)
        self._connect(address, num_cpus)

    def _connect(self, address: str, num_cpus: int | None) -> None:
        ray = self._ray
        if address not in (AUTO, LOCAL):
            _check_reachable(address)
        if ray.is_initialized():
            return  # a caller already connected this process (ray.init); use that
        target = _running_cluster() if address == AUTO else (None if address == LOCAL else address)
        try:
            if target is None:
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
                self.started_local = True
            else:
                ray.init(address=target, log_to_driver=False, configure_logging=False)
            self._connected = True
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            raise ClusterError(f"cannot start or join a Ray cluster at {address!r}: {exc}") from exc

    @property
    def workers(self) -> int:
        """How many tasks the cluster can run at once."""
        cpus = int(self._ray.cluster_resources().get("CPU", 1))
        return max(1, cpus // self.cpus_per_task)

    def map(self, fn: Callable[[T], R], items: Sequence[T], desc: str = "", progress: bool = False) -> list[R]:
        """``[fn(item) for item in items]``, each call a Ray task; results in ``items``' order.
        A ``PlacekitError`` raised in a task is raised here as itself; a task that still fails
        after its retries raises ``ClusterError``."""
        ray = self._ray
        fn_ref = ray.put(fn)  # once in the object store, however large (a trained index), not once per task
        refs = [self._remote().remote(fn_ref, item) for item in items]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(refs), desc=desc, unit="task")
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                self._get(done)  # raise the first failure at once
                if bar is not None:
                    bar.update(len(done))
            return self._get(refs)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            if bar is not None:
                bar.close()

    def call(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)`` as one Ray task holding every CPU of the largest node, so that its
        BLAS calls use them all (quantizer training: one step, on one worker)."""
        return self._get(self._remote(self._node_cpus()).remote(fn, *args))

    def _remote(self, cpus: int | None = None) -> Any:
        return self._ray.remote(num_cpus=cpus or self.cpus_per_task, max_retries=self.max_retries)(_apply)

    def _node_cpus(self) -> int:
        nodes = [n for n in self._ray.nodes() if n.get("Alive")]
        return max([int(n.get("Resources", {}).get("CPU", 1)) for n in nodes] or [self.cpus_per_task])

    def _get(self, refs: Any) -> Any:
        ray = self._ray
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, PlacekitError):
                raise cause from None
            raise ClusterError(f"a build task failed: {cause or exc}") from exc
        except ray.exceptions.RayError as exc:
            raise ClusterError(f"a build task failed after {self.max_retries} retries: {exc}") from exc

    def close(self) -> None:
        """Shut down the local instance this executor started, or disconnect from the cluster it
        joined; a connection the caller made (``ray.init`` before this executor) is left open."""
        if self._connected and self._ray.is_initialized():
            self._ray.shutdown()
        self._connected = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Executor = LocalExecutor | RayExecutor


def _apply(fn: Callable[..., R], *args: Any) -> R:
    """The body of every Ray task: ``fn(*args)``."""
    return fn(*args)


def executor_for(ray_address: str | None, cpus_per_task: int = 1) -> Executor:
    """The executor a ``--ray`` option names: ``None`` -> this process, else a ``RayExecutor``."""
    return LocalExecutor() if ray_address is None else RayExecutor(ray_address, cpus_per_task=cpus_per_task)


def _running_cluster() -> str | None:
    """The address of the cluster ``auto`` would join: ``RAY_ADDRESS``, or the one a ``ray start``
    on this machine recorded; None when there is none."""
    env = os.environ.get("RAY_ADDRESS")
    if env:
        return env
    try:
        with open("/tmp/ray/ray_current_cluster", encoding="utf-8") as fh:
            recorded = fh.read().strip()
    except OSError:
        return None
    return recorded if recorded and _accepts(recorded) else None


def _check_reachable(address: str) -> None:
    """ClusterError unless ``address`` (``ray://host:port`` or ``host:port``) accepts TCP."""
    if not _accepts(address):
        raise ClusterError(
            f"cannot reach a Ray cluster at {address!r} (no connection within {CONNECT_TIMEOUT_S:g} s); start one "
            "with 'ray start --head' or use --ray local"
        )


def _accepts(address: str) -> bool:
    parsed = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        return False
    if not host or not port:
        return False
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False
