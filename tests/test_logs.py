"""No SUPI, GPSI or IP address ever reaches a log line in clear."""

from __future__ import annotations

import io
import json
import logging
import sys
import time

import pytest
import structlog

from subscriber import logs
from subscriber.logs import configure_logging, debug_enabled, flush_logs, pseudonym
from subscriber.settings import LogSettings


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def test_identities_are_replaced_by_stable_pseudonyms() -> None:
    """SUPIs, GPSIs, IMSIs and addresses in fields and messages become pseudonyms."""
    out = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=out)
    log = structlog.get_logger()
    log.info(
        "moved imsi-208930000000001",
        supi="imsi-208930000000001",
        gpsi="msisdn-33612345678",
        addr="10.60.0.103",
        v6="2001:db8::1",
        v6_full="2001:0db8:0000:0000:0000:ff00:0042:8329",
        nested={"ue": ["208930000000001"]},
        cell="000000010",
        tac="000001",
        event_time="2026-07-01T08:14:02.987654Z",
    )
    text = out.getvalue()
    for secret in (
        "208930000000001",
        "33612345678",
        "10.60.0.103",
        "2001:db8::1",
        "ff00:0042:8329",
    ):
        assert secret not in text
    (line,) = _lines(out)
    assert line["supi"] == pseudonym("imsi-208930000000001")
    assert line["cell"] == "000000010"
    assert line["tac"] == "000001"
    assert line["event_time"] == "2026-07-01T08:14:02.987654Z"


def test_stdlib_records_are_masked_too() -> None:
    """Libraries that log through the standard library are masked as well."""
    out = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=out)
    logging.getLogger("some.library").warning("peer %s closed", "192.0.2.7")
    assert "192.0.2.7" not in out.getvalue()
    assert "peer" in out.getvalue()


def test_pseudonym_depends_on_the_key() -> None:
    """A deployment key changes every pseudonym, so they cannot be precomputed elsewhere."""
    configure_logging(LogSettings(format="json"), stream=io.StringIO())
    plain = pseudonym("imsi-208930000000001")
    configure_logging(LogSettings(format="json", pseudonym_key="k"), stream=io.StringIO())
    assert pseudonym("imsi-208930000000001") != plain


def test_batched_lines_are_written_within_the_flush_interval() -> None:
    """With batching, an info line reaches the stream by itself, in well under a second."""
    out = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=out, batched=True)
    structlog.get_logger().info("callback", kind="amf", status=204)
    deadline = time.monotonic() + 5
    while not out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    (line,) = _lines(out)
    assert line["event"] == "callback"


def test_a_warning_goes_out_at_once_after_the_lines_before_it() -> None:
    """A warning is not held back, and the batched lines before it come first, in order."""
    out = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=out, batched=True)
    log = structlog.get_logger()
    for n in range(3):
        log.info("callback", n=n)
    log.warning("kafka_unavailable")
    logging.getLogger("some.library").warning("peer %s closed", "192.0.2.7")
    *structured, stdlib = out.getvalue().splitlines()
    assert [json.loads(line)["event"] for line in structured] == ["callback"] * 3 + [
        "kafka_unavailable"
    ]
    assert stdlib.endswith("peer " + pseudonym("192.0.2.7") + " closed")


def test_a_full_batch_is_written_by_the_caller_and_nothing_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the buffer's bound the logging call itself writes: back-pressure, never a lost line."""
    monkeypatch.setattr(logs, "_FLUSH_INTERVAL_S", 3600.0)
    monkeypatch.setattr(logs, "_BUFFER_MAX_CHARS", 2000)
    out = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=out, batched=True)
    log = structlog.get_logger()
    for n in range(100):
        log.info("callback", n=n)
    written = len(_lines(out))
    assert 90 <= written < 100
    flush_logs()
    assert [line["n"] for line in _lines(out)] == list(range(100))


def test_masked_strings_are_remembered_per_key() -> None:
    """The cache of masked strings never serves a pseudonym made with a previous key."""
    out = io.StringIO()
    configure_logging(LogSettings(format="json", pseudonym_key="a" * 32), stream=out)
    structlog.get_logger().info("x", supi="imsi-208930000000001")
    first = pseudonym("imsi-208930000000001")
    configure_logging(LogSettings(format="json", pseudonym_key="b" * 32), stream=out)
    structlog.get_logger().info("x", supi="imsi-208930000000001")
    second = pseudonym("imsi-208930000000001")
    assert first != second
    assert [line["supi"] for line in _lines(out)] == [first, second]


def test_a_logger_used_before_stderr_was_replaced_writes_to_the_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A module's logger, cached at its first use, follows ``sys.stderr`` when it is replaced
    (an in-process command, a captured test) instead of writing to the closed old one."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging(LogSettings(format="json"))
    log = structlog.get_logger("cached")
    log.warning("before")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    log.warning("after")
    assert [line["event"] for line in _lines(second)] == ["after"]


def test_debug_enabled_follows_the_configured_level() -> None:
    """The receiver skips building its per-callback debug line when debug is off, and only then."""
    assert debug_enabled()  # structlog's defaults write every level
    configure_logging(LogSettings(level="info"), stream=io.StringIO())
    assert not debug_enabled()
    configure_logging(LogSettings(level="debug"), stream=io.StringIO())
    assert debug_enabled()
    structlog.reset_defaults()
    assert debug_enabled()
