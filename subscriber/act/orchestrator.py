"""The orchestrator port: deploy an application instance on a cluster, check it, remove it.

The relocation workflow drives every orchestrator through this one interface; the adapters are
:mod:`subscriber.fakes.local_orchestrator` (loopback services for the demo and the tests) and
:mod:`subscriber.act.emco` (the EMCO REST API). Adapters raise :class:`OrchestratorError`;
``permanent`` says whether trying again can help.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from subscriber.errors import SubscriberError

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _dns_label(value: str) -> str:
    if not _LABEL.match(value):
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
    of the application points at ``address``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    cluster: Label
    address: IPv4
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


class OrchestratorError(SubscriberError):
    """Raised by an orchestrator adapter when an operation did not succeed.

    ``permanent`` errors (a rejected request, a failed deployment) are not worth retrying.
    """

    def __init__(self, detail: str, *, permanent: bool) -> None:
        super().__init__(detail)
        self.permanent = permanent


class Orchestrator(Protocol):
    """Deploys, checks and removes application instances on clusters. Every method is idempotent."""

    async def deploy(self, app: str, instance: str, placement: Placement) -> Endpoint:
        """Make the instance run at ``placement``; reuse it when it already runs there."""
        ...

    async def readiness(self, endpoint: Endpoint) -> Readiness:
        """Whether the instance at ``endpoint`` can take traffic now (one check, no waiting)."""
        ...

    async def remove(self, app: str, instance: str, placement: Placement) -> None:
        """Stop the instance at ``placement``; succeed when it is already gone."""
        ...
