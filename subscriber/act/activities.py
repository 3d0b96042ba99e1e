"""The side effects of the relocation workflow: orchestrator calls, readiness, DNS, outcome reports.

Every activity is idempotent (deploy reuses a running instance, remove succeeds when it is gone,
a DNS REPLACE sets the same record again, a report written twice is the same report, which the
consumer applies once), heartbeats while it waits, and turns a permanent
failure into a non-retryable :class:`ApplicationError` whose ``type`` names it. Readiness and the
DNS confirmation poll until their own deadline and then fail: nothing passes silently.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn, Protocol, TypeVar

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from subscriber.act.dns import DnsError, record_name
from subscriber.act.orchestrator import Orchestrator, OrchestratorError
from subscriber.act.workflows import Act, DeployInput, DnsChange, RemoveInput
from subscriber.logs import pseudonym
from subscriber.relocation import Endpoint, OutcomeReport, Readiness
from subscriber.settings import RelocationSettings

log = structlog.get_logger()
T = TypeVar("T")

_HEARTBEAT_EVERY_S = 1.0


class OutcomesPort(Protocol):
    """Where outcome reports go (:class:`subscriber.act.outcomes.OutcomeWriter`)."""

    async def publish(self, reports: Sequence[OutcomeReport]) -> None:
        """Write ``reports`` durably, in order."""
        ...


class DnsPort(Protocol):
    """What the activities need from the DNS adapter (:class:`subscriber.act.dns.PowerDns`)."""

    @property
    def zone(self) -> str:
        """The zone, fully qualified."""
        ...

    async def replace_a(self, name: str, addresses: list[str]) -> None:
        """Make ``name`` answer exactly ``addresses``."""
        ...

    async def query_a(self, name: str) -> list[str]:
        """What the authoritative server answers for ``name``."""
        ...


async def _heartbeating(work: Awaitable[T], detail: str) -> T:
    """Await ``work`` while heartbeating, so a cancel reaches us and a lost worker is noticed."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=_HEARTBEAT_EVERY_S)
            if done:
                return task.result()
            activity.heartbeat(detail)
    finally:
        if not task.done():
            task.cancel()


def _orchestrator_failure(exc: OrchestratorError) -> NoReturn:
    # A transient error goes up as it is: "raise exc from exc" would make it its own cause, a
    # loop Temporal's failure converter follows until RecursionError.
    if exc.permanent:
        raise ApplicationError(str(exc), type="OrchestratorRejected", non_retryable=True) from exc
    raise exc


def _dns_failure(exc: DnsError) -> NoReturn:
    if exc.permanent:
        raise ApplicationError(str(exc), type="DnsRejected", non_retryable=True) from exc
    raise exc


class RelocationActivities:
    """The activities, bound to one orchestrator and one DNS server.

    Args:
        orchestrator: deploys, checks and removes instances.
        dns: the authoritative DNS server's API and listener.
        settings: deadlines, poll interval and drain period.
        outcomes: where outcome reports go; None drops them (a worker built without Kafka).
        clock: monotonic seconds; tests may pass their own.
    """

    def __init__(
        self,
        *,
        orchestrator: Orchestrator,
        dns: DnsPort,
        settings: RelocationSettings,
        outcomes: OutcomesPort | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._orch = orchestrator
        self._dns = dns
        self._outcomes = outcomes
        self._settings = settings
        self._clock = clock

    def all(self) -> list[Callable[..., Awaitable[object]]]:
        """Every activity, for the worker."""
        return [
            self.deploy,
            self.wait_ready,
            self.probe,
            self.set_dns,
            self.confirm_dns,
            self.remove,
            self.report,
        ]

    @activity.defn(name=Act.DEPLOY)
    async def deploy(self, inp: DeployInput) -> Endpoint:
        """Deploy the instance on the target cluster (reusing one that already runs there)."""
        try:
            endpoint = await _heartbeating(
                self._orch.deploy(inp.app, inp.instance, inp.placement), "deploying"
            )
        except OrchestratorError as exc:
            _orchestrator_failure(exc)
        log.info("relocation.deployed", app=inp.app, cluster=inp.placement.cluster)
        return endpoint

    @activity.defn(name=Act.WAIT_READY)
    async def wait_ready(self, endpoint: Endpoint) -> None:
        """Poll readiness until READY; fail on FAILED or when the deadline passes."""
        deadline = self._clock() + self._settings.readiness_timeout_s
        checks = 0
        while True:
            checks += 1
            try:
                state = await self._orch.readiness(endpoint)
            except OrchestratorError as exc:
                _orchestrator_failure(exc)
            activity.heartbeat(checks)
            if state is Readiness.READY:
                log.info("relocation.ready", app=endpoint.app, checks=checks)
                return
            if state is Readiness.FAILED:
                raise ApplicationError(
                    f"instance on {endpoint.placement.cluster} failed to start",
                    type="ReadinessFailed",
                    non_retryable=True,
                )
            if self._clock() >= deadline:
                raise ApplicationError(
                    f"instance on {endpoint.placement.cluster} not ready after "
                    f"{self._settings.readiness_timeout_s} s",
                    type="ReadinessTimeout",
                    non_retryable=True,
                )
            await asyncio.sleep(self._settings.readiness_poll_s)

    @activity.defn(name=Act.PROBE)
    async def probe(self, endpoint: Endpoint) -> Readiness:
        """One readiness check, no waiting: is the instance serving right now?"""
        try:
            return await self._orch.readiness(endpoint)
        except OrchestratorError as exc:
            _orchestrator_failure(exc)

    @activity.defn(name=Act.SET_DNS)
    async def set_dns(self, change: DnsChange) -> None:
        """Replace the instance's A record (short TTL) with ``change.addresses``."""
        name = record_name(change.app, change.instance, self._dns.zone)
        try:
            await self._dns.replace_a(name, list(change.addresses))
        except DnsError as exc:
            _dns_failure(exc)
        log.info(
            "relocation.dns_set", name=name, addresses=[pseudonym(a) for a in change.addresses]
        )

    @activity.defn(name=Act.CONFIRM_DNS)
    async def confirm_dns(self, change: DnsChange) -> None:
        """Query the authoritative server until it answers exactly ``change.addresses``."""
        name = record_name(change.app, change.instance, self._dns.zone)
        want = sorted(change.addresses)
        deadline = self._clock() + self._settings.dns_confirm_timeout_s
        while True:
            try:
                got = await self._dns.query_a(name)
            except DnsError as exc:
                got = [f"error: {exc}"]
            activity.heartbeat()
            if got == want:
                return
            if self._clock() >= deadline:
                raise ApplicationError(
                    f"{name} still answers something else after "
                    f"{self._settings.dns_confirm_timeout_s} s",
                    type="DnsNotConfirmed",
                    non_retryable=True,
                )
            await asyncio.sleep(self._settings.readiness_poll_s)

    @activity.defn(name=Act.REMOVE)
    async def remove(self, inp: RemoveInput) -> None:
        """Drain (wait for clients and DNS caches to move on), then remove the instance."""
        if inp.drain and self._settings.drain_s > 0:
            await _heartbeating(asyncio.sleep(self._settings.drain_s), "draining")
        try:
            await _heartbeating(self._orch.remove(inp.app, inp.instance, inp.placement), "removing")
        except OrchestratorError as exc:
            _orchestrator_failure(exc)
        log.info("relocation.removed", app=inp.app, cluster=inp.placement.cluster)

    @activity.defn(name=Act.REPORT)
    async def report(self, reports: list[OutcomeReport]) -> None:
        """Write the outcomes to the outcomes topic, where the consumer reads them."""
        if self._outcomes is None:
            log.warning("relocation.outcomes_dropped", count=len(reports))
            return
        await self._outcomes.publish(reports)
        log.info(
            "relocation.reported",
            request_ids=[r.outcome.request_id for r in reports],
            statuses=[r.outcome.status.value for r in reports],
        )
