"""The context-transfer step's side effects: through the AMS, in the worker that hosts it.

``begin`` reads the source instance's registrations, records the procedure and sends
INTERHOST_MOVEOUT_TRIGGERED; ``await_transfer`` watches the store until the application's answer
(or the deadline, or the source's death) and applies the application's level and policy;
``finish`` sends COMPLETED or FAILED; ``forget`` drops a removed instance's resources. Every one
is idempotent: a retried begin finds its procedure and keeps its marks, a repeated notification
is one the application must (and the demo does) take twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from subscriber.act.context import (
    ContextAct,
    FinishInput,
    ForgetInput,
    TransferInput,
    TransferResult,
)
from subscriber.act.orchestrator import Orchestrator, OrchestratorError
from subscriber.ams import procedure as proc
from subscriber.ams.models import (
    CommunicationInterface,
    IpAddress,
    MobilityStatus,
    TargetAppInfo,
    app_instance_id,
)
from subscriber.ams.service import Ams
from subscriber.relocation import Endpoint, Readiness

log = structlog.get_logger()

_PROBE_EVERY_S = 1.0
_WAKE_EVERY_S = 0.5


def _ids(inp: TransferInput) -> tuple[str, str]:
    return (
        app_instance_id(inp.app, inp.instance, inp.source.cluster),
        app_instance_id(inp.app, inp.instance, inp.target.cluster),
    )


def _target_info(inp: TransferInput) -> TargetAppInfo:
    return TargetAppInfo(
        appInstanceId=_ids(inp)[1],
        commInterface=CommunicationInterface(
            ipAddresses=[IpAddress(host=inp.target.address, port=inp.target.port)]
        ),
    )


@contextlib.asynccontextmanager
async def _beating(detail: str) -> AsyncIterator[None]:
    """Heartbeat every second while the block runs: a worker lost mid-notification is noticed
    after the heartbeat timeout, not after the whole start-to-close timeout."""

    async def beat() -> None:
        while True:
            activity.heartbeat(detail)
            await asyncio.sleep(1.0)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


class ContextActivities:
    """The activities, bound to the AMS and the orchestrator (to see whether a source lives).

    Args:
        ams: the Application Mobility Service this worker serves.
        orchestrator: answers readiness of the source instance.
    """

    def __init__(self, *, ams: Ams, orchestrator: Orchestrator) -> None:
        self._ams = ams
        self._orch = orchestrator

    def all(self) -> list[Callable[..., Awaitable[object]]]:
        """Every activity, for the worker."""
        return [self.begin, self.await_transfer, self.finish, self.forget]

    async def _source_lost(self, inp: TransferInput) -> bool:
        endpoint = Endpoint(app=inp.app, instance=inp.instance, placement=inp.source)
        try:
            return await self._orch.readiness(endpoint) is Readiness.FAILED
        except OrchestratorError:
            return False

    @activity.defn(name=ContextAct.BEGIN)
    async def begin(self, inp: TransferInput) -> TransferResult:
        """Record the procedure and tell the source its devices move (or say why not)."""
        async with _beating("notifying"):
            return await self._begin(inp)

    async def _begin(self, inp: TransferInput) -> TransferResult:
        source_id, target_id = _ids(inp)
        # The target is where the deploy answered (an Endpoint's placement): it has an address.
        assert inp.target.address is not None
        await self._ams.learn_instance(
            target_id, inp.app, inp.target.cluster, inp.target.address, inp.target.port
        )
        plan, regs = await self._ams.plan(source_id)
        if not regs:
            return TransferResult(context="unregistered")
        if plan.not_allowed:
            raise ApplicationError(
                f"{len(plan.not_allowed)} device(s) registered APP_MOBILITY_NOT_ALLOWED",
                type="MobilityNotAllowed",
                non_retryable=True,
            )
        devices = {**plan.stateless, **plan.waited}
        if not devices:
            return TransferResult(context="not_needed")
        await self._ams.start(
            inp.procedure_id,
            source_id=source_id,
            target_id=target_id,
            waited=plan.waited,
            notify=devices,
            confirm=plan.confirm,
            deadline_s=inp.deadline.timestamp(),
            regs=regs,
        )
        told = await self._ams.notify_mobility(
            source_id,
            list(devices.values()),
            MobilityStatus.INTERHOST_MOVEOUT_TRIGGERED,
            _target_info(inp),
        )
        log.info("context.triggered", app=inp.app, devices=len(devices), told=told)
        if not plan.waited:
            return TransferResult(context="not_needed")
        if told == 0:
            if await self._source_lost(inp):
                return TransferResult(context="source_lost")
            c = proc.consequence(
                proc.Verdict.FAILED,
                confirm=plan.confirm,
                policy=inp.policy,
                why="no subscription took the notification",
            )
            if not c.proceed:
                raise ApplicationError(c.detail, type=c.error_type, non_retryable=True)
            return TransferResult(context=c.context)
        return TransferResult(context="", waiting=True)

    @activity.defn(name=ContextAct.AWAIT)
    async def await_transfer(self, inp: TransferInput) -> TransferResult:
        """Wait for the application's answer; apply its level and policy to it."""
        source_id, target_id = _ids(inp)
        deadline_s = inp.deadline.timestamp()
        next_probe = 0.0
        while True:
            record = await self._ams.procedure(source_id, inp.procedure_id)
            now = self._ams.now_s()
            if record is None:
                verdict, confirm, why = proc.Verdict.SOURCE_LOST, False, ""
            else:
                at_source, at_target = await self._ams.where_devices_are(source_id, target_id)
                marks = record["marks"]
                verdict = proc.verdict(
                    marks,
                    record["waited"],
                    at_source=at_source,
                    at_target=at_target,
                    now_s=now,
                    deadline_s=deadline_s,
                )
                confirm, why = record["confirm"], proc.failure_reason(marks)
            if verdict is proc.Verdict.WAIT and now >= next_probe:
                next_probe = now + _PROBE_EVERY_S
                if await self._source_lost(inp):
                    verdict = proc.Verdict.SOURCE_LOST
            if verdict is not proc.Verdict.WAIT:
                break
            activity.heartbeat(verdict.value)
            await self._ams.changed(min(_WAKE_EVERY_S, max(deadline_s - now, 0.01)))
        c = proc.consequence(verdict, confirm=confirm, policy=inp.policy, why=why)
        log.info("context.verdict", app=inp.app, verdict=verdict.value, proceed=c.proceed)
        if not c.proceed:
            raise ApplicationError(c.detail, type=c.error_type, non_retryable=True)
        return TransferResult(context=c.context)

    @activity.defn(name=ContextAct.FINISH)
    async def finish(self, inp: FinishInput) -> int:
        """INTERHOST_MOVEOUT_COMPLETED or _FAILED to the source; the procedure ends."""
        t = inp.transfer
        source_id, _ = _ids(t)
        record = await self._ams.procedure(source_id, t.procedure_id)
        if record is None:
            return 0
        status = (
            MobilityStatus.INTERHOST_MOVEOUT_COMPLETED
            if inp.completed
            else MobilityStatus.INTERHOST_MOVEOUT_FAILED
        )
        told = await self._ams.notify_mobility(
            source_id, list(record["notify"].values()), status, _target_info(t)
        )
        await self._ams.end(t.procedure_id)
        log.info("context.finished", app=t.app, status=status.name, told=told)
        return told

    @activity.defn(name=ContextAct.FORGET)
    async def forget(self, inp: ForgetInput) -> int:
        """Drop the registrations and subscriptions of a removed instance."""
        return await self._ams.forget(app_instance_id(inp.app, inp.instance, inp.cluster))
