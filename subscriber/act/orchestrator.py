"""The orchestrator port: deploy an application instance on a cluster, check it, remove it.

The relocation workflow drives every orchestrator through this one interface; the adapters are
:mod:`subscriber.fakes.local_orchestrator` (loopback services for the demo and the tests) and
:mod:`subscriber.act.emco` (the EMCO REST API). Adapters raise :class:`OrchestratorError`;
``permanent`` says whether trying again can help. The types it speaks (:class:`Placement`,
:class:`Endpoint`, :class:`Readiness`) are the relocation contract, :mod:`subscriber.relocation`.
"""

from __future__ import annotations

from typing import Protocol

from subscriber.errors import SubscriberError
from subscriber.relocation import Endpoint, Placement, Readiness


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
