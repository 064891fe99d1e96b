"""Prometheus metrics: requests, latencies, selection time and pool sizes, in a registry of
the app's own (so several apps in one process do not collide)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SELECTION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class _PoolSizes(Collector):
    """Reads the pool sizes from the store at scrape time."""

    def __init__(self) -> None:
        self.sizes: Callable[[], dict[str, int]] = dict

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("mmdshot_pool_examples", "Examples per pool", labels=["pool"])
        for pool, size in self.sizes().items():
            family.add_metric([pool], size)
        yield family


class _Batching(Collector):
    """Reads the batchers' counters (app/batching.py) at scrape time."""

    def __init__(self) -> None:
        self.counts: Callable[[], dict[str, int]] = dict

    def collect(self) -> Iterator[CounterMetricFamily]:
        counts = self.counts()
        described = {
            "forwards": "Embedding forwards run by the query batchers",
            "batches": "Batches of query embeddings and selections run",
            "jobs": "Requests answered through a batch",
        }
        for name, text in described.items():
            yield CounterMetricFamily(f"mmdshot_batch_{name}", text, value=counts.get(name, 0))


class Metrics:
    """The service's metrics; ``render()`` gives the Prometheus text format."""

    def __init__(self, pool_labels: bool = False) -> None:
        """``pool_labels``: report every pool's name and size (only behind the metrics key:
        pool names are the tenants' data)."""
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mmdshot_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mmdshot_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )
        self.selection = Histogram(
            "mmdshot_selection_seconds",
            "Selection time inside the service (embedding included)",
            ["endpoint"],
            buckets=SELECTION_BUCKETS,
            registry=self.registry,
        )
        self.stopped = Counter(
            "mmdshot_compute_stopped",
            "Requests whose compute was stopped: past the deadline (timeout) or the client "
            "closed the connection (disconnect)",
            ["reason"],
            registry=self.registry,
        )
        self._pool_sizes = _PoolSizes()
        self._batching = _Batching()
        self.registry.register(self._batching)
        if pool_labels:
            self.registry.register(self._pool_sizes)

    def bind_pool_sizes(self, sizes: Callable[[], dict[str, int]]) -> None:
        """Report ``sizes()`` (pool name -> examples) at every scrape."""
        self._pool_sizes.sizes = sizes

    def bind_batching(self, counts: Callable[[], dict[str, int]]) -> None:
        """Report ``counts()`` (forwards, batches, jobs of the batchers) at every scrape."""
        self._batching.counts = counts

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (``unmatched`` for none)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
