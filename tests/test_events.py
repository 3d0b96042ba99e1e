"""Tests for the Kafka event contract: codec, partition key and the checked-in JSON Schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from subscriber.errors import UndecodableEvent
from subscriber.events import (
    EVENT_ID_MAX,
    SCHEMA_FILE,
    SCHEMA_VERSION,
    Cell,
    Delivery,
    DnaiChange,
    EventSource,
    LocationEvent,
    NfType,
    UeIdentity,
    decode_event,
    encode_event,
    event_json_schema,
    render_json_schema,
)

SCHEMAS = Path(__file__).parents[1] / "schemas"
T0 = datetime(2026, 7, 1, 8, 14, 2, 987654, tzinfo=UTC)
T1 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def make_event(ue: UeIdentity | None = None) -> LocationEvent:
    """A validated AMF location event."""
    return LocationEvent(
        event_id="e49edf528979360d559ab5321aee32a5",
        ue=ue or UeIdentity(supi="imsi-208930000000001"),
        source=EventSource(
            nf_type=NfType.AMF,
            subscription_id="1",
            correlation_id="loc-1",
            delivery=Delivery.POLLED,
            event_type="LOCATION_REPORT",
        ),
        location=Cell(rat="NR", plmn="20893", tac="000001", cell_id="000000010"),
        event_time=T0,
        event_time_field="ueLocationTimestamp",
        ingest_time=T1,
    )


def test_checked_in_schema_matches_the_model() -> None:
    """schemas/location-event.v1.json is what `python schemas/generate.py` writes today."""
    checked_in = (SCHEMAS / SCHEMA_FILE).read_text(encoding="utf-8")
    assert checked_in == render_json_schema(), "run: .venv/bin/python schemas/generate.py"


@pytest.mark.parametrize("length", [1, EVENT_ID_MAX, EVENT_ID_MAX + 1, 250])
def test_schema_and_decoder_agree_on_the_event_id_length(length: int) -> None:
    """The published schema accepts exactly the event ids the consumer decodes: a record valid
    against the schema is never dead-lettered for its id, and one it refuses never decodes."""
    record = json.loads(encode_event(make_event().model_copy(update={"event_id": "e" * length})))
    schema_ok = jsonschema.Draft202012Validator(event_json_schema()).is_valid(record)
    assert schema_ok == (length <= EVENT_ID_MAX)
    if schema_ok:
        decode_event(json.dumps(record).encode())
    else:
        with pytest.raises(UndecodableEvent, match="event_id"):
            decode_event(json.dumps(record).encode())


def test_schema_names_its_version_and_required_fields() -> None:
    """The schema file is versioned and requires what consumers rely on."""
    schema = event_json_schema()
    assert f"location-event.v{SCHEMA_VERSION}.json" == SCHEMA_FILE
    assert schema["$id"] == SCHEMA_FILE
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert set(schema["required"]) >= {"event_id", "ue", "source", "event_time", "ingest_time"}


def test_round_trip() -> None:
    """encode then decode gives the same event, and leaves unset fields out of the record."""
    event = make_event()
    data = encode_event(event)
    assert decode_event(data) == event
    record = json.loads(data)
    assert "gpsi" not in record["ue"]
    assert "dnai_change" not in record
    assert record["event_time"] == "2026-07-01T08:14:02.987654Z"


def test_round_trip_path_change() -> None:
    """A UP_PATH_CH event without location or SUPI survives the codec."""
    event = make_event(UeIdentity(session_ref="smf-notif:1")).model_copy(
        update={
            "location": None,
            "dnai_change": DnaiChange(change_type="EARLY", target_dnai="mec"),
        }
    )
    assert decode_event(encode_event(event)) == event


@pytest.mark.parametrize(
    ("ue", "key"),
    [
        (UeIdentity(supi="imsi-1", gpsi="msisdn-2", session_ref="s"), b"imsi-1"),
        (UeIdentity(gpsi="msisdn-2", session_ref="s"), b"msisdn-2"),
        (UeIdentity(session_ref="smf-notif:1"), b"smf-notif:1"),
    ],
)
def test_partition_key_is_the_ue(ue: UeIdentity, key: bytes) -> None:
    """Records are keyed by SUPI, else GPSI, else the session reference."""
    assert make_event(ue).partition_key() == key


def test_ue_identity_needs_a_field() -> None:
    """An identity with nothing set is refused, so every event has a partition key."""
    with pytest.raises(ValidationError):
        UeIdentity()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"{}",
        b'{"schema_version": 2}',
        encode_event(make_event()).replace(b'"schema_version":1', b'"schema_version":2'),
        encode_event(make_event()).replace(b'"supi":"imsi-208930000000001"', b'"supi":null'),
    ],
)
def test_undecodable(data: bytes) -> None:
    """Garbage, another schema version or an event without UE raise UndecodableEvent."""
    with pytest.raises(UndecodableEvent):
        decode_event(data)


def test_fields_added_later_are_ignored() -> None:
    """A record from a newer producer with extra fields still decodes (forward compatible)."""
    record = json.loads(encode_event(make_event()))
    record["new_top_level"] = 1
    record["source"]["new_nested"] = {"x": 1}
    assert decode_event(json.dumps(record).encode()) == make_event()
