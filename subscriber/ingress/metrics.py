"""The receiver's Prometheus metrics, in a registry of its own (one per process).

With several granian workers each process counts its own callbacks; a scrape of ``/metrics``
reaches one worker, so each series carries a ``worker`` label (its PID) and the dashboard sums
over it. See docs/receiver.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

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


class ReceiverMetrics:
    """Counters, a latency histogram and spool gauges for one receiver process.

    Args:
        registry: where the metrics live; a fresh one by default, so tests do not collide.
        worker: the ``worker`` label; the process id by default.
    """

    def __init__(self, registry: CollectorRegistry | None = None, worker: str | None = None):
        self.registry = registry or CollectorRegistry()
        label = worker or str(os.getpid())
        received = Counter(
            "subscriber_callbacks_received",
            "Callbacks received, by kind (amf, smf, nef).",
            ["worker", "kind"],
            registry=self.registry,
        )
        rejected = Counter(
            "subscriber_callbacks_rejected",
            "Callbacks answered with an error, by reason.",
            ["worker", "reason"],
            registry=self.registry,
        )
        self._events = Counter(
            "subscriber_events_published",
            "Normalized events accepted (Kafka ack or spool fsync).",
            ["worker"],
            registry=self.registry,
        ).labels(label)
        self._latency = Histogram(
            "subscriber_publish_latency_seconds",
            "Time from publish start until every event of a callback was acked or spooled.",
            ["worker"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        ).labels(label)
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
        self._received = {kind: received.labels(label, kind) for kind in KINDS}
        self._rejected = {reason: rejected.labels(label, reason) for reason in REJECT_REASONS}

    def received(self, kind: str) -> None:
        """Count one callback of ``kind``."""
        self._received[kind].inc()

    def rejected(self, reason: str) -> None:
        """Count one rejected callback; ``reason`` is one of ``REJECT_REASONS``."""
        self._rejected[reason].inc()

    def published(self, events: int, duration_s: float) -> None:
        """Record one successful publish of ``events`` events that took ``duration_s``."""
        self._events.inc(events)
        self._latency.observe(duration_s)

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
