"""Tests for the receiver's metrics: the per-callback series kept as plain numbers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from subscriber.ingress.metrics import ReceiverMetrics

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def _samples(text: bytes, prefix: str) -> list[str]:
    """The exposition lines of the series starting with ``prefix``, without creation times."""
    return sorted(
        line
        for line in text.decode().splitlines()
        if line.startswith(prefix) and "_created" not in line
    )


def test_the_exposition_is_the_clients_own() -> None:
    """What a scrape shows for received callbacks, published events and publish latency is what
    prometheus_client's Counter and Histogram show for the same updates: names, labels, bucket
    bounds (a value on a bound counts in that bucket), count and sum."""
    ours = ReceiverMetrics(worker="7")
    registry = CollectorRegistry()
    received = Counter("subscriber_callbacks_received", "x", ["worker", "kind"], registry=registry)
    events = Counter("subscriber_events_published", "x", ["worker"], registry=registry)
    latency = Histogram(
        "subscriber_publish_latency_seconds", "x", ["worker"], buckets=BUCKETS, registry=registry
    )
    for kind in ("amf", "smf", "nef", "ti"):
        received.labels("7", kind)
    for kind, count, duration_s in [
        ("amf", 2, 0.0004),
        ("amf", 1, 0.005),
        ("smf", 3, 0.0051),
        ("ti", 1, 7.0),
    ]:
        ours.received(kind)
        ours.published(count, duration_s)
        received.labels("7", kind).inc()
        events.labels("7").inc(count)
        latency.labels("7").observe(duration_s)
    text, _ = ours.render()
    reference = generate_latest(registry)
    for name in (
        "subscriber_callbacks_received",
        "subscriber_events_published",
        "subscriber_publish_latency_seconds",
    ):
        assert _samples(text, name) == _samples(reference, name)
    created = [line for line in text.decode().splitlines() if "_created{" in line]
    assert any(line.startswith("subscriber_publish_latency_seconds_created") for line in created)
