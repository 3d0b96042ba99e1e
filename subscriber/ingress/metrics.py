"""The receiver's Prometheus metrics, in a registry of its own (one per process).

With several granian workers each process counts its own callbacks; a scrape of ``/metrics``
reaches one worker, so each series carries a ``worker`` label (its PID) and the dashboard sums
over it. See docs/receiver.md.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

KINDS = ("amf", "smf", "nef", "ti")
REJECT_REASONS = (
    "unknown_subscription",
    "invalid_body",
    "foreign_body",
    "unauthorized",
    "unsupported_media_type",
    "body_too_large",
    "body_timeout",
    "spool_full",
    "internal_error",
)
# Kafka acks on loopback take about a millisecond; an outage shows up at the publish timeout.
_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# Each bucket's `le` label as the client writes it ("1.0", "+Inf").
_LATENCY_LE = tuple(
    floatToGoString(bound)  # type: ignore[no-untyped-call]
    for bound in (*_LATENCY_BUCKETS_S, float("inf"))
)


class _PerCallback:
    """The series every accepted callback moves, kept as plain numbers and read at scrape time.

    prometheus_client's counters and histograms take a lock per update: 1.4 µs of each
    callback's CPU (docs/performance.md). The receiver's worker updates these from its event
    loop thread only, and serves ``/metrics`` from the same thread, so no lock is needed.
    The exposition is the same as the client's own series.
    """

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.created = time.time()
        self.received = dict.fromkeys(KINDS, 0)
        self.events = 0
        self.latency_buckets = [0] * (len(_LATENCY_BUCKETS_S) + 1)  # the last is +Inf
        self.latency_sum_s = 0.0

    def collect(self) -> Iterator[Metric]:
        """The families, as a ``prometheus_client`` collector gives them at scrape time."""
        received = CounterMetricFamily(
            "subscriber_callbacks_received",
            "Callbacks received, by kind (amf, smf, nef).",
            labels=["worker", "kind"],
        )
        for kind, count in self.received.items():
            received.add_metric([self.worker, kind], count, created=self.created)
        yield received
        events = CounterMetricFamily(
            "subscriber_events_published",
            "Normalized events accepted (Kafka ack or spool fsync).",
            labels=["worker"],
        )
        events.add_metric([self.worker], self.events, created=self.created)
        yield events
        latency = HistogramMetricFamily(
            "subscriber_publish_latency_seconds",
            "Time from publish start until every event of a callback was acked or spooled.",
            labels=["worker"],
        )
        cumulative, total = [], 0
        for le, count in zip(_LATENCY_LE, self.latency_buckets, strict=True):
            total += count
            cumulative.append((le, total))
        latency.add_metric([self.worker], cumulative, sum_value=self.latency_sum_s)
        # HistogramMetricFamily takes no creation time; the client's own histogram shows one.
        latency.samples.append(
            Sample(latency.name + "_created", {"worker": self.worker}, self.created)
        )
        yield latency


class ReceiverMetrics:
    """Counters, a latency histogram and spool gauges for one receiver process.

    Args:
        registry: where the metrics live; a fresh one by default, so tests do not collide.
        worker: the ``worker`` label; the process id by default.
    """

    def __init__(self, registry: CollectorRegistry | None = None, worker: str | None = None):
        self.registry = registry or CollectorRegistry()
        label = worker or str(os.getpid())
        self._counts = _PerCallback(label)
        self.registry.register(self._counts)
        rejected = Counter(
            "subscriber_callbacks_rejected",
            "Callbacks answered with an error, by reason.",
            ["worker", "reason"],
            registry=self.registry,
        )
        self._spool_bytes = Gauge(
            "subscriber_spool_bytes",
            "Bytes waiting in the local spool for Kafka.",
            ["worker"],
            registry=self.registry,
        ).labels(label)
        self._spool_records = Gauge(
            "subscriber_spool_depth",
            "Records waiting in the local spool for Kafka.",
            ["worker"],
            registry=self.registry,
        ).labels(label)
        self._damaged = Counter(
            "subscriber_spool_damaged_bytes",
            "Spool bytes found damaged on disk and set aside (never delivered).",
            ["worker"],
            registry=self.registry,
        ).labels(label)
        self._dropped = Counter(
            "subscriber_dead_letters_dropped",
            "Dead letters dropped: Kafka away and their own spool budget used up.",
            ["worker"],
            registry=self.registry,
        ).labels(label)
        self._totals: list[tuple[Callable[[], float], Any, list[float]]] = []
        # Children looked up once: labels() takes a lock and builds a key on every call.
        self._rejected = {reason: rejected.labels(label, reason) for reason in REJECT_REASONS}

    def received(self, kind: str) -> None:
        """Count one callback of ``kind``."""
        self._counts.received[kind] += 1

    def rejected(self, reason: str) -> None:
        """Count one rejected callback; ``reason`` is one of ``REJECT_REASONS``."""
        self._rejected[reason].inc()

    def published(self, events: int, duration_s: float) -> None:
        """Record one successful publish of ``events`` events that took ``duration_s``."""
        counts = self._counts
        counts.events += events
        # Prometheus buckets hold what is less than or equal to their bound.
        counts.latency_buckets[bisect_left(_LATENCY_BUCKETS_S, duration_s)] += 1
        counts.latency_sum_s += duration_s

    def watch_spool(
        self,
        records: Callable[[], float],
        size_bytes: Callable[[], float],
        damaged_bytes: Callable[[], float] = lambda: 0,
        dead_letters_dropped: Callable[[], float] = lambda: 0,
    ) -> None:
        """Read the spool's gauges and running totals at scrape time from these callables."""
        self._spool_records.set_function(records)
        self._spool_bytes.set_function(size_bytes)
        self._totals = [
            (damaged_bytes, self._damaged, [0.0]),
            (dead_letters_dropped, self._dropped, [0.0]),
        ]

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        for read, counter, seen in self._totals:
            total = read()
            if total > seen[0]:
                counter.inc(total - seen[0])
                seen[0] = total
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
