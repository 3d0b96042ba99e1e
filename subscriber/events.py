"""The normalized event: the contract of the Kafka events topic.

Every AMF report, SMF event and NEF notification, received or polled, becomes one
:class:`LocationEvent`. Consumers rely on:

* ``event_id`` is deterministic: the same input gives the same id, so redelivery dedupes;
* the record key is :meth:`LocationEvent.partition_key`, so one UE's events stay in order;
* ``schema_version`` changes only on an incompatible change; fields are only ever added.

``schemas/location-event.v1.json`` is generated from this module by :func:`render_json_schema`
(``python schemas/generate.py``); a test keeps it in sync.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from subscriber.errors import UndecodableEvent

SCHEMA_VERSION: Literal[1] = 1
SCHEMA_FILE = f"location-event.v{SCHEMA_VERSION}.json"
EVENT_ID_MAX = 48
"""Longest event id: a request id (at most 200) is the id, a recheck suffix and two labels."""


class NfType(StrEnum):
    """The core network function the event came from."""

    AMF = "AMF"
    SMF = "SMF"
    NEF = "NEF"


class Delivery(StrEnum):
    """How the event reached us: a callback the core sent, or a poll we made."""

    NOTIFIED = "notified"
    POLLED = "polled"


class _Frozen(BaseModel):
    # extra="ignore", not "forbid": fields are only ever added within a schema version, so a
    # consumer must still decode a record written by a newer producer during a rolling upgrade.
    model_config = ConfigDict(frozen=True, extra="ignore")


class EventSource(_Frozen):
    """Which producer, subscription and 3GPP event type produced the event."""

    nf_type: NfType
    nf_instance_id: str | None = None
    subscription_id: str | None = None
    correlation_id: str | None = Field(
        None, description="notifyCorrelationId (AMF), notifId (SMF, NEF) of the subscription."
    )
    delivery: Delivery
    event_type: str = Field(description="3GPP event name: LOCATION_REPORT, UP_PATH_CH, ...")


class UeIdentity(_Frozen):
    """Who moved. At least one field is set."""

    supi: str | None = None
    gpsi: str | None = None
    session_ref: str | None = Field(
        None,
        description="For events without SUPI/GPSI (free5GC UP_PATH_CH): what identifies the "
        "PDU session, e.g. 'smf-notif:<notifId>'.",
    )

    @model_validator(mode="after")
    def _has_a_field(self) -> UeIdentity:
        if not (self.supi or self.gpsi or self.session_ref):
            raise ValueError("one of supi, gpsi or session_ref must be set")
        return self

    def key(self) -> str:
        """The UE's stable key: SUPI, else GPSI, else the session reference."""
        for value in (self.supi, self.gpsi, self.session_ref):
            if value:
                return value
        raise ValueError("UE identity has no field set")


class Cell(_Frozen):
    """Where the UE is: PLMN, tracking area and cell, lowercase hex as free5GC writes them."""

    rat: Literal["NR", "EUTRA", "N3GA"]
    plmn: str = Field(description="MCC followed by MNC, e.g. '20893'.")
    tac: str = Field(description="4 or 6 lowercase hex digits.")
    cell_id: str | None = Field(
        None, description="NR: 9 hex digits (36 bits); E-UTRA: 7 hex digits (28 bits)."
    )


class DnaiChange(_Frozen):
    """A user-plane path change (SMF UP_PATH_CH)."""

    change_type: str = Field(description="EARLY, LATE or EARLY_LATE (unknown values kept).")
    source_dnai: str | None = None
    target_dnai: str | None = None
    app: str | None = Field(
        None,
        description="The application whose traffic-influence subscription reported the change "
        "(absent for a plain SMF notification).",
    )
    instance: str | None = Field(None, description="That application's instance.")


class LocationEvent(_Frozen):
    """One UE location or user-plane change, normalized across cores and delivery modes."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str = Field(
        min_length=1,
        max_length=EVENT_ID_MAX,
        description="Deterministic: a hash of the event's content (32 hex digits from our "
        "ingress). It becomes part of relocation request ids, which have a bounded length.",
    )
    ue: UeIdentity
    source: EventSource
    location: Cell | None = None
    dnai_change: DnaiChange | None = None
    event_time: datetime
    event_time_field: str = Field(
        description="Where event_time came from, e.g. 'ueLocationTimestamp', 'timeStamp', "
        "'ingest' when the core sent no usable time."
    )
    ingest_time: datetime

    def partition_key(self) -> bytes:
        """The Kafka record key: the UE, so each UE's events stay in one partition, in order."""
        return self.ue.key().encode()


def encode_event(event: LocationEvent) -> bytes:
    """Serialize an event to the bytes of a Kafka record value."""
    return event.model_dump_json(exclude_none=True).encode()


class EventRecord(NamedTuple):
    """One event as the events topic holds it: what producers publish."""

    event_id: str
    key: bytes
    """:meth:`LocationEvent.partition_key`."""
    value: bytes
    """:func:`encode_event` of the event, byte for byte."""


def decode_event(data: bytes) -> LocationEvent:
    """Parse a Kafka record value.

    Raises:
        UndecodableEvent: the bytes are not a valid event of a known schema version.
    """
    try:
        return LocationEvent.model_validate_json(data)
    except ValidationError as exc:
        # Where and what, never the offending value: it may be an identity.
        errors = exc.errors(include_url=False)
        where = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in errors[:5]
        )
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise UndecodableEvent(f"not a LocationEvent v{SCHEMA_VERSION}: {where}{more}") from exc


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a Kafka record value, for consumers in any language."""
    schema = LocationEvent.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_FILE,
        **schema,
    }


def render_json_schema() -> str:
    """The exact text of ``schemas/location-event.v<N>.json``."""
    return json.dumps(event_json_schema(), indent=2, ensure_ascii=False) + "\n"
