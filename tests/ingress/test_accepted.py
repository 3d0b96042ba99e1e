"""Tests for the per-subscription record of accepted callbacks."""

from __future__ import annotations

from structlog.testing import capture_logs

from subscriber.ingress.accepted import AcceptedLog


def test_each_subscription_gets_one_line_with_its_counts() -> None:
    """Callbacks of two subscriptions and two kinds: one line each, with count, events, mean
    and max duration; a second flush starts from zero and says nothing for an idle interval."""
    accepted = AcceptedLog()
    accepted.add("amf", "amf-a", 1, 0.002)
    accepted.add("amf", "amf-a", 2, 0.004)
    accepted.add("smf", "smf-b", 0, 0.001)
    accepted.add("amf", None, 1, 0.003)
    with capture_logs() as logs:
        accepted.flush()
        accepted.flush()
    by_name = {(line["kind"], line["subscription"]): line for line in logs}
    assert len(logs) == 3
    a = by_name[("amf", "amf-a")]
    assert (a["callbacks"], a["events"], a["duration_ms_mean"], a["duration_ms_max"]) == (
        2,
        3,
        3.0,
        4.0,
    )
    assert by_name[("smf", "smf-b")]["events"] == 0
    assert by_name[("amf", None)]["callbacks"] == 1
    assert all(line["event"] == "callbacks_accepted" for line in logs)
