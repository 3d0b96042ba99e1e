"""The relocation contract between the decision and the workflow: its payload types.

The decide side (:mod:`subscriber.decide.step`) builds a :class:`RelocationRequest`; the act side
signals it to the workflow of the application instance (:func:`workflow_id`), which answers its
queries with :class:`RelocationState` and :class:`MoveOutcome`, and reports each request's outcome
back on the outcomes topic as an :class:`OutcomeReport` (:func:`encode_report`,
:func:`decode_report`), which the consumer reads as input. These models travel over Temporal with
the pydantic data converter, unchanged. This module imports no workflow engine and no I/O
library, so a module that needs a decision never has to import Temporal to get one.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from subscriber.errors import UndecodableEvent

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
"""RFC 1123 label, lowercase: what an app, instance or cluster name must be."""


def _dns_label(value: str) -> str:
    if not DNS_LABEL.match(value):
        raise ValueError("must be a lowercase DNS label: a-z, 0-9 and inner '-', 1-63 characters")
    return value


def _ipv4(value: str) -> str:
    ipaddress.IPv4Address(value)
    return value


Label = Annotated[str, AfterValidator(_dns_label)]
"""A name that is also a DNS label: it becomes part of workflow ids and of the app's DNS name."""

IPv4 = Annotated[str, AfterValidator(_ipv4)]


class Placement(BaseModel):
    """Where an application instance runs (or should run): a cluster and its service address.

    ``address`` and ``port`` are what clients reach the instance at on that cluster; the DNS record
    of the application points at ``address``. A Kubernetes cluster whose topology entry has no
    ``address`` is a target with ``address`` None: its API reports the address at deploy (the
    :class:`Endpoint` a deploy returns has one).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cluster: Label
    address: IPv4 | None
    port: int = Field(8080, ge=1, le=65535)


class Endpoint(BaseModel):
    """A deployed instance, as the orchestrator reports it after a deploy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    app: Label
    instance: Label
    placement: Placement

    @property
    def url(self) -> str:
        """The instance's base URL on its cluster."""
        return f"http://{self.placement.address}:{self.placement.port}"


class Readiness(StrEnum):
    """What a readiness check found."""

    READY = "ready"
    NOT_READY = "not_ready"
    FAILED = "failed"


def workflow_id(app: str, instance: str) -> str:
    """The one workflow id of an application instance.

    Dots cannot appear in ``app`` or ``instance`` (both are DNS labels), so two instances never
    share an id, as ``relocation-a-b-c`` could.
    """
    return f"relocation.{app}.{instance}"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OnTransferFailure(StrEnum):
    """What a move does when the application's context could not be transferred in time."""

    ABORT = "abort"
    """Compensate: the user stays served, with its context, by the instance it had."""
    MOVE_WITHOUT_CONTEXT = "move_without_context"
    """Move anyway; the new instance starts without the user's context."""


class ContextPolicy(_Model):
    """How a move treats the user context of an application registered with the AMS
    (ETSI GS MEC 021); the topology sets it per application (``applications[].context_transfer``).
    """

    deadline_s: float = Field(
        30.0, gt=0, le=3600, description="How long the application has to transfer the context."
    )
    on_failure: OnTransferFailure = Field(
        OnTransferFailure.ABORT,
        description="On a reported failure or the deadline: abort (the default for stateful "
        "apps) or move without the context. An app registered 'with confirmation' is never "
        "moved without its confirmation.",
    )


class Steering(StrEnum):
    """How traffic follows a moved application instance."""

    DNS = "dns"
    """The app's DNS record is switched to the new instance; clients follow on their next lookup."""
    TRAFFIC_INFLUENCE = "traffic_influence"
    """AF traffic influence through the NEF (TS 29.522): the UE's user plane is routed to the
    target cluster's DNAI, confirmed by the SMF's LATE UP_PATH_CH notification."""
    BOTH = "both"
    """Traffic influence, then DNS."""

    @property
    def uses_dns(self) -> bool:
        """Whether the move switches the DNS record."""
        return self is not Steering.TRAFFIC_INFLUENCE

    @property
    def uses_traffic_influence(self) -> bool:
        """Whether the move steers the user plane through the NEF."""
        return self is not Steering.DNS


class SteeringPolicy(_Model):
    """How a move steers traffic to the new instance; the topology sets it per application
    (``applications[].steering``)."""

    via: Steering = Steering.DNS
    confirm_deadline_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Traffic influence: how long the SMF has to confirm the new path (its LATE "
        "UP_PATH_CH notification) before the move is undone.",
    )
    source_dnai: str | None = Field(
        None, description="Set by the decision: the DNAI of the cluster the move leaves."
    )
    target_dnai: str | None = Field(
        None, description="Set by the decision: the DNAI of the cluster the move goes to."
    )


class RequestKind(StrEnum):
    """What a request asks of the workflow."""

    MOVE = "move"
    """Serve from ``target``: deploy (unless warm there), wait ready, steer, remove the source."""
    PREWARM = "prewarm"
    """Deploy on ``target`` and wait until it is ready, without steering; the source serves on."""
    COOL = "cool"
    """Remove the warm instance on ``target`` (a missed or expired prediction)."""


class RelocationRequest(_Model):
    """One decision to move an application instance; the payload of the ``relocate`` signal.

    ``request_id`` is derived from the event that caused the decision, so a redelivered event
    yields the same id and the workflow ignores it. ``ue_key`` must be a pseudonym
    (:func:`subscriber.logs.pseudonym`), never a SUPI or GPSI: it is stored in workflow history.
    """

    request_id: str = Field(min_length=1, max_length=200)
    app: Label
    instance: Label
    ue_key: str = ""
    source: Placement | None = Field(
        None, description="Where the decision believes the instance runs; used on first start."
    )
    target: Placement
    event_id: str = ""
    decided_at: datetime
    policy_version: str = ""
    reasons: tuple[str, ...] = ()
    partition: int | None = Field(
        None,
        ge=0,
        description="The UE's partition of the events topic: its outcome is reported on the "
        "same partition of the outcomes topic, where the consumer that owns the UE reads it.",
    )
    context_policy: ContextPolicy | None = Field(
        None, description="The app's context-transfer policy; the defaults when None."
    )
    steering: SteeringPolicy | None = Field(
        None, description="How traffic is steered to the target; DNS when None."
    )
    kind: RequestKind = Field(
        RequestKind.MOVE,
        description="A move, or pre-warming's start (prewarm) or end (cool) of a warm instance.",
    )


class Step(StrEnum):
    """The steps of one move, in order."""

    DEPLOY = "deploy"
    READINESS = "readiness"
    CONTEXT_TRANSFER = "context_transfer"
    TRAFFIC_INFLUENCE = "traffic_influence"
    TRAFFIC_CONFIRM = "traffic_confirm"
    DNS = "dns"
    DNS_CONFIRM = "dns_confirm"
    REMOVE_SOURCE = "remove_source"
    REMOVE_WARM = "remove_warm"


class Status(StrEnum):
    """How a request ended."""

    COMPLETED = "completed"
    NOOP = "noop"
    SUPERSEDED = "superseded"
    STALE = "stale"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"


class MoveOutcome(_Model):
    """What became of one request; kept in the workflow's (bounded) history."""

    request_id: str
    status: Status
    kind: RequestKind = Field(RequestKind.MOVE, description="The request's kind.")
    source_cluster: str | None = None
    target_cluster: str
    failed_step: Step | None = None
    error: str | None = None
    compensated: tuple[str, ...] = ()
    compensation_errors: tuple[str, ...] = ()
    received_at: datetime | None = None
    finished_at: datetime | None = None
    dns_switched_at: datetime | None = None
    context: str | None = Field(
        None,
        description="What became of the user context (ETSI GS MEC 021): transferred, "
        "unregistered, not_needed, without_context: <why>, source_lost; None before the step.",
    )
    step_ms: dict[str, int] = Field(
        default_factory=dict, description="How long each step took, in workflow time."
    )


class RelocationState(_Model):
    """The answer of the ``state`` query."""

    app: str
    instance: str
    placement: Placement | None
    pending: RelocationRequest | None
    in_flight: RelocationRequest | None
    step: Step | None
    moves_completed: int
    run: int
    warm: Placement | None = None


class OutcomeReport(_Model):
    """One request's outcome, reported by its workflow on the outcomes topic.

    The record key is ``ue_key`` (the UE's pseudonym); the partition is the request's
    ``partition``, the UE's own. A report is a pure function of the workflow's history, so a
    retried report activity or a replayed workflow writes the same bytes again, and the consumer
    applies a report it has already applied as a no-op.

    Attributes:
        app: the application.
        instance: the instance (with ``app``, the workflow).
        ue_key: the UE's pseudonym, copied from the request.
        partition: the request's partition.
        decided_at: the request's decision time.
        placement: the cluster the instance runs on once this outcome is in (None: never placed).
        settled: no request is pending or in flight after this one: ``placement`` is final
            until the next request.
        outcome: what became of the request (status, the step that failed, compensation).
    """

    app: Label
    instance: Label
    ue_key: str = ""
    partition: int | None = None
    decided_at: datetime
    placement: str | None
    settled: bool
    outcome: MoveOutcome


def encode_report(report: OutcomeReport) -> bytes:
    """The outcomes-topic value of a report."""
    return report.model_dump_json(exclude_defaults=True).encode()


def decode_report(data: bytes) -> OutcomeReport:
    """Parse an outcomes-topic value.

    Raises:
        UndecodableEvent: not an outcome report.
    """
    try:
        return OutcomeReport.model_validate_json(data)
    except ValidationError as exc:
        raise UndecodableEvent(f"not an outcome report: {exc.error_count()} errors") from exc
