"""Activity errors as Temporal sees them: each one must convert into a failure."""

from __future__ import annotations

import pytest
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from subscriber.act.activities import RelocationActivities
from subscriber.act.dns import DnsError
from subscriber.act.orchestrator import OrchestratorError
from subscriber.act.workflows import DnsChange, RemoveInput
from subscriber.relocation import Endpoint, Placement, Readiness
from subscriber.settings import RelocationSettings

HERE = Placement(cluster="b", address="127.0.0.1", port=8080)


class Failing:
    """An orchestrator and DNS server whose every call fails, permanently or not."""

    def __init__(self, *, permanent: bool) -> None:
        self.permanent = permanent
        self.zone = "z.test."

    async def deploy(self, app: str, instance: str, placement: Placement) -> Endpoint:
        """Fails."""
        raise OrchestratorError("API unreachable", permanent=self.permanent)

    async def readiness(self, endpoint: Endpoint) -> Readiness:
        """Fails."""
        raise OrchestratorError("API unreachable", permanent=self.permanent)

    async def remove(self, app: str, instance: str, placement: Placement) -> None:
        """Fails."""
        raise OrchestratorError("API unreachable", permanent=self.permanent)

    async def replace_a(self, name: str, addresses: list[str]) -> None:
        """Fails."""
        raise DnsError("PowerDNS unreachable", permanent=self.permanent)

    async def query_a(self, name: str) -> list[str]:
        """Fails."""
        raise DnsError("PowerDNS unreachable", permanent=self.permanent)


@pytest.mark.parametrize("permanent", [False, True])
@pytest.mark.parametrize("call", ["remove", "set_dns", "probe"])
async def test_failures_convert_without_a_cause_loop(call: str, permanent: bool) -> None:
    """A transient error goes up unchanged, a permanent one as non-retryable; neither is its own
    cause (which sent Temporal's failure converter into RecursionError)."""
    failing = Failing(permanent=permanent)
    acts = RelocationActivities(
        orchestrator=failing,
        dns=failing,
        settings=RelocationSettings(drain_s=0),
    )
    args = {
        "remove": RemoveInput(app="shop", instance="i1", placement=HERE, drain=False),
        "set_dns": DnsChange(app="shop", instance="i1", addresses=("127.0.0.1",)),
        "probe": Endpoint(app="shop", instance="i1", placement=HERE),
    }[call]
    with pytest.raises(Exception, match="unreachable") as err:
        await ActivityEnvironment().run(getattr(acts, call), args)
    exc = err.value
    assert exc.__cause__ is not exc
    assert isinstance(exc, ApplicationError) == permanent
    DataConverter.default.failure_converter.to_failure(
        exc, DataConverter.default.payload_converter, Failure()
    )
