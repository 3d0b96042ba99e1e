"""The few error types the subscriber raises.

Adapters catch library exceptions at the edge and re-raise one of these from them, so callers
handle a small, stable set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class SubscriberError(Exception):
    """Base of every error the subscriber raises on purpose."""


@dataclass(frozen=True)
class InvalidParam:
    """One invalid field of a callback body, as TS 29.571 InvalidParam names it."""

    param: str
    reason: str


class InvalidCallback(SubscriberError):
    """Raised when a callback body is malformed or violates its 3GPP schema.

    The receiver maps it to a 400 ProblemDetails that lists ``invalid_params``.
    """

    def __init__(self, detail: str, invalid_params: Sequence[InvalidParam] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.invalid_params = tuple(invalid_params)


class ForeignCallback(InvalidCallback):
    """Raised when a well-formed callback body names another subscription than its URI.

    The receiver answers 400 (``invalidParams`` names the field) and publishes nothing.
    """


class UndecodableEvent(SubscriberError):
    """Raised when a Kafka record cannot be decoded into a known event."""


class PolicyUnavailable(SubscriberError):
    """Raised when no valid policy or topology is loaded."""


class SignalFailed(SubscriberError):
    """Raised when a Temporal signal could not be delivered.

    ``retryable`` tells the consumer whether to try again or to dead-letter the record.
    """

    def __init__(self, detail: str, *, retryable: bool) -> None:
        super().__init__(detail)
        self.retryable = retryable


class SpoolFull(SubscriberError):
    """Raised when Kafka is unreachable and the local spool has no room left for more events.

    The receiver answers 503 with ``Retry-After: retry_after_s``: nothing was accepted.
    """

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class CoreUnavailable(SubscriberError):
    """Raised when the 5G core (NRF, AMF, SMF, NEF) cannot be reached or answers unusably.

    ``status`` is the HTTP status when there was an answer; the poller and the subscription
    manager back off and try again.
    """

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail)
        self.status = status


class InfluenceRefused(SubscriberError):
    """Raised when the NEF refuses a traffic-influence request for good (asking again as it is
    cannot succeed): a 4xx, or a 5xx whose cause says so (free5GC's PCF answers 500
    PDU_SESSION_NOT_AVAILABLE for a UE without a PDU session).

    ``status`` and ``cause`` are the NEF's answer.
    """

    def __init__(self, detail: str, *, status: int, cause: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.cause = cause


class StackError(SubscriberError):
    """Raised when the local stack cannot be installed, started or reached.

    The message says how to fix it; the CLI prints it without a traceback.
    """


class RequestRejected(SubscriberError):
    """Raised when a request to one of our HTTP APIs (the MEC 021 AMS) cannot be carried out.

    ``status`` is the HTTP status of the ProblemDetails answer; ``title`` its short summary.
    """

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
