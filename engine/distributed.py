"""Run a batch on a Dask cluster: the same per-record evaluation, a partition per task, order kept.

Each worker process compiles the ruleset once (a module-level evaluator per ruleset and
jurisdiction) and reuses it for every partition it is given.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from engine.evaluate import Evaluator
from engine.lines import evaluate_lines

PARTITION_SIZE = 2_000
_evaluators: dict[tuple[str | None, str | None], Evaluator] = {}


def evaluate_partition(
    items: list[tuple[int, Any]], ruleset_path: str | None, jurisdiction: str | None, output_format: str = "json"
) -> list[tuple[str, bytes, list[str]]]:
    """Evaluate one partition on a worker, with the worker's evaluator (compiled on first use)."""
    key = (ruleset_path, jurisdiction)
    if key not in _evaluators:
        _evaluators[key] = Evaluator(ruleset_path, jurisdiction)
    return evaluate_lines(_evaluators[key], items, output_format)


def results(
    items: Iterable[tuple[int, Any]],
    address: str,
    ruleset_path: str | None,
    jurisdiction: str | None,
    partition_size: int = PARTITION_SIZE,
    output_format: str = "json",
) -> Iterator[tuple[str, bytes, list[str]]]:
    """Results in input order; at most two partitions per worker in flight, so memory stays bounded.

    `address` is a scheduler address (tcp://host:8786), or "local" to start a local cluster.
    """
    from distributed import Client, LocalCluster

    cluster = LocalCluster(processes=True, threads_per_worker=1, dashboard_address=None) if address == "local" else None
    client = Client(cluster if cluster is not None else address)
    try:
        window = max(2, 2 * len(client.scheduler_info().get("workers", {})))
        source = iter(items)
        pending: deque[Any] = deque()
        while True:
            while len(pending) < window:
                chunk = list(islice(source, partition_size))
                if not chunk:
                    break
                pending.append(
                    client.submit(evaluate_partition, chunk, ruleset_path, jurisdiction, output_format, pure=False)
                )
            if not pending:
                return
            yield from pending.popleft().result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
