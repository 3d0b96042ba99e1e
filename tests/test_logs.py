"""No SUPI, GPSI or IP address ever reaches a log line in clear."""

from __future__ import annotations

import io
import json
import logging

import structlog

from subscriber.logs import configure_logging, pseudonym
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
