"""The relocation workflow: one long-lived workflow per application instance.

It holds the instance's current placement and applies relocation requests in order: deploy on the
target, wait until the new instance is really ready, steer the app's DNS record to it and confirm
the authoritative answer, then drain and remove the old instance. A failure (or a cancel) at any
step compensates in reverse, so the app keeps serving from where it was. Requests are deduplicated
by ``request_id``; a request superseded before its move started is coalesced away. The workflow
continues-as-new after ``max_moves_per_run`` moves or when Temporal suggests it, carrying its state.

Every request's outcome is reported back on the outcomes topic
(:class:`~subscriber.relocation.OutcomeReport`, the ``report`` activity), in order, by a
reporter that runs beside the moves: the consumer learns where instances really run from there,
never by asking the workflow. A report is built from the workflow's own state, so a retried
activity or a replayed history writes the same report again.

Deterministic code only: time is ``workflow.now()``, every side effect is an activity (named in
:class:`Act`, implemented in :mod:`subscriber.act.activities`). The payloads it accepts and
answers with live in :mod:`subscriber.relocation`. See docs/relocation.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict, Field

    from subscriber.act.context import PATCH as CONTEXT_PATCH
    from subscriber.act.context import ContextTransfer
    from subscriber.act.steering import PATCH as STEERING_PATCH
    from subscriber.act.steering import (
        PATH_SIGNAL,
        PathChange,
        PathChanges,
        SteeringFailed,
        TrafficSteering,
    )
    from subscriber.relocation import (
        Endpoint,
        Label,
        MoveOutcome,
        OutcomeReport,
        Placement,
        Readiness,
        RelocationRequest,
        RelocationState,
        RequestKind,
        Status,
        SteeringPolicy,
        Step,
    )

WORKFLOW_NAME = "Relocation"
SIGNAL_NAME = "relocate"
OUTCOMES_METRIC = "subscriber_relocations"
"""Counter of request outcomes by status, failed step and compensation; exported by the
worker's Temporal runtime (``relocation.metrics_port``) with a ``_total`` suffix."""
STEPS_METRIC = "subscriber_relocation_step_seconds"
"""Histogram of each step's duration in workflow time, by step and the move's status."""
STEP_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Act:
    """Activity names, shared with :mod:`subscriber.act.activities`."""

    DEPLOY = "relocation.deploy"
    WAIT_READY = "relocation.wait_ready"
    PROBE = "relocation.probe"
    SET_DNS = "relocation.set_dns"
    CONFIRM_DNS = "relocation.confirm_dns"
    REMOVE = "relocation.remove"
    REPORT = "relocation.report"


OUTCOMES_PATCH = "outcomes-topic"
"""Workflows started before outcomes were reported replay without reporting."""
PREWARM_PATCH = "prewarm"
"""Workflows started before pre-warming replay with every move deploying its target."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RelocationInput(_Model):
    """Workflow input: empty but for the names on first start, the carried state after
    continue-as-new."""

    app: Label
    instance: Label
    placement: Placement | None = None
    warm: Endpoint | None = None
    pending: RelocationRequest | None = None
    pending_received_at: datetime | None = None
    pending_warm: RelocationRequest | None = None
    pending_warm_received_at: datetime | None = None
    pending_warm_first: bool = False
    seen_request_ids: tuple[str, ...] = ()
    last_decided_at: datetime | None = None
    history: tuple[MoveOutcome, ...] = ()
    unreported: tuple[OutcomeReport, ...] = ()
    moves_completed: int = 0
    run: int = 0
    max_moves_per_run: int = Field(100, ge=1)
    seen_limit: int = Field(1000, ge=1)
    history_limit: int = Field(50, ge=1)


class DeployInput(_Model):
    """Arguments of the deploy activity."""

    app: str
    instance: str
    placement: Placement


class DnsChange(_Model):
    """Arguments of the DNS activities: the app instance's record and what it must answer."""

    app: str
    instance: str
    addresses: tuple[str, ...]


class RemoveInput(_Model):
    """Arguments of the remove activity; ``drain`` waits the drain period first."""

    app: str
    instance: str
    placement: Placement
    drain: bool = True


_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=0.5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)
# Readiness and DNS confirmation poll inside the activity until their own deadline; a retry
# only covers a lost worker (heartbeat timeout), not "not ready yet".
_RETRY_POLL = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
_HEARTBEAT = timedelta(seconds=10)
# Kafka away for hours must not lose an outcome: reports are retried until they are written.
_RETRY_REPORT = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)


def _error_text(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError) and exc.cause is not None else exc
    if isinstance(cause, ApplicationError) and cause.type:
        return f"{cause.type}: {cause.message}"
    return str(cause) or type(cause).__name__


@dataclass
class _Move:
    """One move in hand: what it is, and how far it got (what compensation must undo)."""

    request: RelocationRequest
    source: Placement | None
    target: Placement
    reached: Placement
    endpoint: Endpoint | None = None
    warm: bool = False
    deployed: bool = False
    transfer: ContextTransfer | None = None
    context: str | None = None
    dns_changed: bool = False
    dns_set: bool = False
    dns_switched_at: datetime | None = None
    steer: TrafficSteering | None = None


_StepPlan = tuple[Step, Callable[[_Move], Awaitable[None]], Callable[[_Move], bool] | None]


def _not_warm(move: _Move) -> bool:
    return not move.warm


def _has_source(move: _Move) -> bool:
    return move.source is not None


def _influences_traffic(move: _Move) -> bool:
    return (move.request.steering or SteeringPolicy()).via.uses_traffic_influence and (
        workflow.patched(STEERING_PATCH)
    )


def _steered(move: _Move) -> bool:
    return move.steer is not None


def _uses_dns(move: _Move) -> bool:
    return move.steer is None or move.steer.with_dns


def _transfers_context(move: _Move) -> bool:
    # Asked after readiness, where the histories recorded since the step exists have its marker.
    return move.source is not None and workflow.patched(CONTEXT_PATCH)


@workflow.defn(name=WORKFLOW_NAME)
class RelocationWorkflow:
    """Moves one application instance between clusters, one move at a time; see the module."""

    @workflow.init
    def __init__(self, inp: RelocationInput) -> None:
        self._inp = inp
        self._placement = inp.placement
        self._warm = inp.warm
        self._pending = inp.pending
        self._pending_received_at = inp.pending_received_at
        # A prewarm or cool waits in a slot of its own: it never takes a move's place. Requests
        # run in the order they came; ``_warm_first`` says the pending one of each came first.
        self._pending_warm = inp.pending_warm
        self._pending_warm_received_at = inp.pending_warm_received_at
        self._warm_first = inp.pending_warm_first
        self._seen = list(inp.seen_request_ids)
        self._seen_set = set(self._seen)
        self._last_decided_at = inp.last_decided_at
        self._history = list(inp.history)
        self._moves_completed = inp.moves_completed
        self._moves_this_run = 0
        self._in_flight: RelocationRequest | None = None
        self._step: Step | None = None
        self._marks: list[tuple[Step, datetime]] = []
        self._unreported = list(inp.unreported)
        self._reporting = False
        self._paths = PathChanges()

    @workflow.run
    async def run(self, inp: RelocationInput) -> None:
        """Apply requests as they come; continue-as-new when the run has done enough."""
        reporter = asyncio.create_task(self._report_outcomes())
        while True:
            await workflow.wait_condition(
                lambda: (
                    self._pending is not None
                    or self._pending_warm is not None
                    or self._should_continue_as_new()
                )
            )
            if self._pending_warm is not None and (self._pending is None or self._warm_first):
                request, received_at = self._pending_warm, self._pending_warm_received_at
                self._pending_warm, self._pending_warm_received_at = None, None
                await self._move(request, received_at)
            elif self._pending is not None:
                request, received_at = self._pending, self._pending_received_at
                self._pending, self._pending_received_at = None, None
                await self._move(request, received_at)
            if self._should_continue_as_new():
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        # A report being written finishes first; the rest travels with the new run.
        await workflow.wait_condition(lambda: not self._reporting)
        reporter.cancel()
        workflow.continue_as_new(self._snapshot())

    async def _report_outcomes(self) -> None:
        """Write the outcomes to the outcomes topic, oldest first, one batch at a time."""
        while True:
            await workflow.wait_condition(lambda: bool(self._unreported))
            batch = list(self._unreported)
            self._reporting = True
            try:
                await workflow.execute_activity(
                    Act.REPORT,
                    batch,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=_RETRY_REPORT,
                )
            finally:
                self._reporting = False
            del self._unreported[: len(batch)]

    def _should_continue_as_new(self) -> bool:
        return (
            self._moves_this_run >= self._inp.max_moves_per_run
            or workflow.info().is_continue_as_new_suggested()
        )

    def _snapshot(self) -> RelocationInput:
        return self._inp.model_copy(
            update={
                "placement": self._placement,
                "warm": self._warm,
                "pending": self._pending,
                "pending_received_at": self._pending_received_at,
                "pending_warm": self._pending_warm,
                "pending_warm_received_at": self._pending_warm_received_at,
                "pending_warm_first": self._warm_first,
                "seen_request_ids": tuple(self._seen),
                "last_decided_at": self._last_decided_at,
                "history": tuple(self._history),
                "unreported": tuple(self._unreported),
                "moves_completed": self._moves_completed,
                "run": self._inp.run + 1,
            }
        )

    @workflow.signal(name=SIGNAL_NAME)
    def relocate(self, request: RelocationRequest) -> None:
        """Accept a request: ignore duplicates and stale ones, supersede a pending one."""
        if request.request_id in self._seen_set:
            return
        self._seen.append(request.request_id)
        self._seen_set.add(request.request_id)
        if len(self._seen) > self._inp.seen_limit:
            self._seen_set.discard(self._seen.pop(0))
        now = workflow.now()
        idle = self._pending is None and self._in_flight is None
        if (request.app, request.instance) != (self._inp.app, self._inp.instance):
            self._record(
                request, Status.REJECTED, received_at=now, settled=False, error="wrong workflow"
            )
            return
        if request.kind is RequestKind.COOL:
            # A cool is decided on the consumer's clock when a TTL runs out, not on its UE's
            # report times: it neither is stale nor makes a later-reported move stale. It
            # removes only the warm instance it names, so an old one does no harm.
            pass
        elif self._last_decided_at is not None and request.decided_at < self._last_decided_at:
            self._record(request, Status.STALE, received_at=now, settled=idle)
            return
        else:
            self._last_decided_at = request.decided_at
        if request.kind is not RequestKind.MOVE:
            self._supersede_warm()
            self._pending_warm, self._pending_warm_received_at = request, now
            self._warm_first = self._pending is None
            return
        if self._pending_warm is not None and self._pending_warm.kind is RequestKind.PREWARM:
            # The move settles the warm instance itself: it uses it or removes it. A pending cool
            # stays, and runs first: what was decided earlier happens earlier.
            self._supersede_warm()
        if self._pending is not None:
            self._record(
                self._pending,
                Status.SUPERSEDED,
                received_at=self._pending_received_at,
                settled=False,
            )
        self._pending, self._pending_received_at = request, now

    def _supersede_warm(self) -> None:
        if self._pending_warm is not None:
            self._record(
                self._pending_warm,
                Status.SUPERSEDED,
                received_at=self._pending_warm_received_at,
                settled=False,
            )
            self._pending_warm, self._pending_warm_received_at = None, None

    @workflow.signal(name=PATH_SIGNAL)
    def path_changed(self, change: PathChange) -> None:
        """Keep a UP_PATH_CH notification for this instance (the traffic-influence step)."""
        if (change.app, change.instance) == (self._inp.app, self._inp.instance):
            self._paths.add(change)

    @workflow.query(name="state")
    def state(self) -> RelocationState:
        """Current placement, the pending request, and the move in flight with its step."""
        return RelocationState(
            app=self._inp.app,
            instance=self._inp.instance,
            placement=self._placement,
            pending=self._pending,
            in_flight=self._in_flight,
            step=self._step,
            moves_completed=self._moves_completed,
            run=self._inp.run,
            warm=self._warm.placement if self._warm is not None else None,
        )

    @workflow.query(name="history")
    def history(self) -> list[MoveOutcome]:
        """The latest outcomes, oldest first (at most ``history_limit``)."""
        return list(self._history)

    def _record_noop(
        self, request: RelocationRequest, received_at: datetime | None, source: Placement | None
    ) -> None:
        """Nothing to do: the instance is already where (or as warm as) the request asks."""
        self._record(
            request,
            Status.NOOP,
            received_at=received_at,
            settled=self._pending is None,
            source=source,
        )

    def _record(
        self,
        request: RelocationRequest,
        status: Status,
        *,
        received_at: datetime | None,
        settled: bool,
        source: Placement | None = None,
        **fields: object,
    ) -> None:
        outcome = MoveOutcome.model_validate(
            {
                "request_id": request.request_id,
                "status": status,
                "kind": request.kind,
                "source_cluster": source.cluster if source else None,
                "target_cluster": request.target.cluster,
                "received_at": received_at,
                "finished_at": workflow.now(),
                **fields,
            }
        )
        self._history.append(outcome)
        del self._history[: -self._inp.history_limit]
        if workflow.patched(OUTCOMES_PATCH):
            ours = (request.app, request.instance) == (self._inp.app, self._inp.instance)
            where = self._placement or source
            self._unreported.append(
                OutcomeReport(
                    app=request.app,
                    instance=request.instance,
                    ue_key=request.ue_key,
                    partition=request.partition,
                    decided_at=request.decided_at,
                    placement=where.cluster if ours and where is not None else None,
                    settled=settled,
                    outcome=outcome,
                )
            )
        # Temporal's workflow meter records nothing while replaying, so each outcome counts once.
        workflow.metric_meter().create_counter(
            OUTCOMES_METRIC, "Relocation requests by outcome"
        ).add(
            1,
            {
                "status": status.value,
                "failed_step": outcome.failed_step.value if outcome.failed_step else "",
                "compensation": (
                    "errors"
                    if outcome.compensation_errors
                    else "done"
                    if outcome.compensated
                    else "none"
                ),
            },
        )
        steps = workflow.metric_meter().create_histogram_float(
            STEPS_METRIC, "Relocation step durations", "s"
        )
        for step, ms in outcome.step_ms.items():
            steps.record(ms / 1000, {"step": step, "status": status.value})
        workflow.logger.info(
            "relocation outcome %s", status.value, extra={"request_id": request.request_id}
        )

    def _plan(self, move: _Move) -> list[_StepPlan]:
        """The steps of ``move``, in order (:class:`Step` lists them all), each with, when it
        does not always apply, what says whether it does.

        A new step is a :class:`Step` member, a method here and, when a failure after it must
        undo what it did, a flag on :class:`_Move` and a line in :meth:`_compensate`. Its
        outcome's ``failed_step`` and ``step_ms`` then name it without more work. A step added to
        a running deployment asks :func:`workflow.patched` in its predicate, so the histories
        recorded before it still replay.
        """
        return [
            (Step.DEPLOY, self._deploy, _not_warm),
            (Step.READINESS, self._wait_ready, _not_warm),
            (Step.CONTEXT_TRANSFER, self._transfer_context, _transfers_context),
            (Step.TRAFFIC_INFLUENCE, self._route_traffic, _influences_traffic),
            (Step.TRAFFIC_CONFIRM, self._confirm_path, _steered),
            (Step.DNS, self._set_dns, _uses_dns),
            (Step.DNS_CONFIRM, self._confirm_dns, _uses_dns),
            (Step.REMOVE_SOURCE, self._remove_source, _has_source),
            (Step.REMOVE_WARM, self._remove_missed, self._missed),
        ]

    def _missed(self, move: _Move) -> bool:
        # Asked only when a warm instance exists: histories from before pre-warming never had one.
        return self._warm is not None and workflow.patched(PREWARM_PATCH)

    async def _remove_missed(self, move: _Move) -> None:
        """The move went elsewhere than the warm cluster: that instance will not be used."""
        assert self._warm is not None
        await self._remove(self._warm.placement, drain=False)
        self._warm = None

    async def _move(self, request: RelocationRequest, received_at: datetime | None) -> None:
        if request.kind is not RequestKind.MOVE:
            await self._tend_warm(request, received_at)
            return
        source = self._placement or request.source
        target = request.target
        if source is not None and source.cluster == target.cluster:
            self._placement = source
            self._record_noop(request, received_at, source)
            return
        self._in_flight = request
        self._marks = []
        move = _Move(request, source, target, target)
        # Asked only when a warm instance exists: histories from before pre-warming never had one.
        warm = self._warm
        if (
            warm is not None
            and warm.placement.cluster == target.cluster
            and workflow.patched(PREWARM_PATCH)
        ):
            # Deployed and ready already: the move is only steer and remove. Should it fail,
            # compensation removes the warm instance as it would a fresh target.
            self._warm = None
            move.warm, move.deployed, move.endpoint = True, True, warm
            move.reached = warm.placement
        try:
            for step, run, applies in self._plan(move):
                # Whether a step applies is asked when its turn comes, not before: a patch
                # check must stay where it was in the histories recorded so far.
                if applies is not None and not applies(move):
                    continue
                self._enter(step)
                await run(move)
        except (ActivityError, SteeringFailed, asyncio.CancelledError) as exc:
            cancelled = is_cancelled_exception(exc)
            failed_step = self._step
            step_ms = self._step_ms()
            transfer = move.transfer
            if transfer is not None and transfer.started:
                await transfer.failed()
            done, errors, kept_target = await self._compensate(move)
            if transfer is not None and transfer.started and source is not None:
                await transfer.forget(source.cluster if kept_target else target.cluster)
            if kept_target:
                self._placement = move.reached
            self._record(
                request,
                Status.CANCELLED if cancelled else Status.FAILED,
                received_at=received_at,
                settled=self._pending is None,
                source=source,
                failed_step=failed_step,
                error=_error_text(exc),
                compensated=tuple(done),
                compensation_errors=tuple(errors),
                dns_switched_at=move.dns_switched_at,
                step_ms=step_ms,
                context=move.context,
            )
            self._in_flight, self._step = None, None
            if cancelled:
                raise
            return
        step_ms = self._step_ms()
        self._placement = move.reached
        self._moves_completed += 1
        self._moves_this_run += 1
        self._in_flight, self._step = None, None
        self._record(
            request,
            Status.COMPLETED,
            received_at=received_at,
            settled=self._pending is None,
            source=source,
            dns_switched_at=move.dns_switched_at,
            step_ms=step_ms,
            context=move.context,
        )

    async def _tend_warm(self, request: RelocationRequest, received_at: datetime | None) -> None:
        """A prewarm deploys on its target and waits until it is ready, steering nothing; a cool
        removes the warm instance on its target. One warm instance per app instance: a prewarm
        elsewhere first removes the one there is."""
        workflow.patched(PREWARM_PATCH)
        source = self._placement or request.source
        target = request.target
        warm = self._warm
        warm_here = warm is not None and warm.placement.cluster == target.cluster
        prewarm = request.kind is RequestKind.PREWARM
        serving_here = source is not None and source.cluster == target.cluster
        if (warm_here or serving_here) if prewarm else not warm_here:
            self._record_noop(request, received_at, source)
            return
        self._in_flight = request
        self._marks = []
        move = _Move(request, source, target, target)
        try:
            if warm is not None:
                self._enter(Step.REMOVE_WARM)
                await self._remove(warm.placement, drain=False)
                self._warm = None
            if prewarm:
                self._enter(Step.DEPLOY)
                await self._deploy(move)
                self._enter(Step.READINESS)
                await self._wait_ready(move)
                self._warm = move.endpoint
        except (ActivityError, asyncio.CancelledError) as exc:
            await self._warm_failed(request, received_at, source, move, exc)
            return
        self._in_flight, self._step = None, None
        self._record(
            request,
            Status.COMPLETED,
            received_at=received_at,
            settled=self._pending is None,
            source=source,
            step_ms=self._step_ms(),
        )

    async def _warm_failed(
        self,
        request: RelocationRequest,
        received_at: datetime | None,
        source: Placement | None,
        move: _Move,
        exc: BaseException,
    ) -> None:
        """Record a failed prewarm or cool; a half-deployed warm instance is removed."""
        cancelled = is_cancelled_exception(exc)
        failed_step, step_ms = self._step, self._step_ms()
        done: list[str] = []
        errors: list[str] = []
        if move.deployed:
            try:
                await self._remove(move.target, drain=False)
                done.append("target_removed")
            except ActivityError as err:
                errors.append(f"remove_target: {_error_text(err)}")
        self._in_flight, self._step = None, None
        self._record(
            request,
            Status.CANCELLED if cancelled else Status.FAILED,
            received_at=received_at,
            settled=self._pending is None,
            source=source,
            failed_step=failed_step,
            error=_error_text(exc),
            compensated=tuple(done),
            compensation_errors=tuple(errors),
            step_ms=step_ms,
        )
        if cancelled:
            raise exc

    async def _remove(self, placement: Placement, *, drain: bool) -> None:
        await workflow.execute_activity(
            Act.REMOVE,
            RemoveInput(
                app=self._inp.app, instance=self._inp.instance, placement=placement, drain=drain
            ),
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=_HEARTBEAT,
            retry_policy=_RETRY,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )

    async def _deploy(self, move: _Move) -> None:
        move.deployed = True
        move.endpoint = await workflow.execute_activity(
            Act.DEPLOY,
            DeployInput(app=self._inp.app, instance=self._inp.instance, placement=move.target),
            result_type=Endpoint,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=_HEARTBEAT,
            retry_policy=_RETRY,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        # Where the instance really answers (a Kubernetes node port or load balancer address
        # may differ from the topology's): a later DNS restore must point there.
        if workflow.patched("placement-from-endpoint"):
            move.reached = move.endpoint.placement

    async def _wait_ready(self, move: _Move) -> None:
        await workflow.execute_activity(
            Act.WAIT_READY,
            move.endpoint,
            start_to_close_timeout=timedelta(minutes=15),
            heartbeat_timeout=_HEARTBEAT,
            retry_policy=_RETRY_POLL,
        )

    def _dns_change(self, move: _Move) -> DnsChange:
        assert move.endpoint is not None
        return DnsChange(
            app=self._inp.app,
            instance=self._inp.instance,
            addresses=(move.endpoint.placement.address,),
        )

    async def _transfer_context(self, move: _Move) -> None:
        assert move.source is not None
        assert move.endpoint is not None
        move.transfer = ContextTransfer(move.request, move.source, move.endpoint.placement)
        move.context = await move.transfer.run()

    async def _route_traffic(self, move: _Move) -> None:
        move.steer = TrafficSteering(move.request, self._paths)
        await move.steer.route()

    async def _confirm_path(self, move: _Move) -> None:
        assert move.steer is not None
        await move.steer.confirmed()
        if move.transfer is not None and not move.steer.with_dns:
            await move.transfer.completed()

    async def _set_dns(self, move: _Move) -> None:
        move.dns_changed = True
        await workflow.execute_activity(
            Act.SET_DNS,
            self._dns_change(move),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RETRY,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        move.dns_set = True

    async def _confirm_dns(self, move: _Move) -> None:
        await workflow.execute_activity(
            Act.CONFIRM_DNS,
            self._dns_change(move),
            start_to_close_timeout=timedelta(minutes=2),
            heartbeat_timeout=_HEARTBEAT,
            retry_policy=_RETRY_POLL,
        )
        move.dns_switched_at = workflow.now()
        if move.transfer is not None:
            await move.transfer.completed()

    async def _remove_source(self, move: _Move) -> None:
        assert move.source is not None
        await workflow.execute_activity(
            Act.REMOVE,
            RemoveInput(app=self._inp.app, instance=self._inp.instance, placement=move.source),
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=_HEARTBEAT,
            retry_policy=_RETRY,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        if move.transfer is not None:
            await move.transfer.forget(move.source.cluster)

    def _enter(self, step: Step) -> None:
        self._step = step
        self._marks.append((step, workflow.now()))

    def _step_ms(self) -> dict[str, int]:
        ends = [t for _, t in self._marks[1:]] + [workflow.now()]
        return {
            step.value: int((end - start).total_seconds() * 1000)
            for (step, start), end in zip(self._marks, ends, strict=True)
        }

    async def _compensate(self, move: _Move) -> tuple[list[str], list[str], bool]:
        """Undo a failed move in reverse; return what was undone, what failed, and whether the
        target had to be kept because the source no longer serves."""
        source, target = move.source, move.target
        deployed, dns_changed, dns_set = move.deployed, move.dns_changed, move.dns_set
        app, instance = self._inp.app, self._inp.instance
        done: list[str] = []
        errors: list[str] = []
        keep_target = False
        if dns_changed and source is not None and source.address is None:
            # A Kubernetes source known by its cluster only (no topology address, not deployed by
            # this workflow): DNS cannot be pointed back at it. A change the API accepted may
            # have DNS on the target, which then stays; one never accepted left DNS on the source.
            keep_target = dns_set
            if keep_target:
                done.append("kept_target_source_address_unknown")
        elif dns_changed:
            serving = source is not None and await self._serving(source)
            if source is None or serving:
                addresses = (source.address,) if source is not None else ()
                change = DnsChange(app=app, instance=instance, addresses=addresses)
                try:
                    await workflow.execute_activity(
                        Act.SET_DNS,
                        change,
                        start_to_close_timeout=timedelta(seconds=30),
                        retry_policy=_RETRY,
                    )
                    await workflow.execute_activity(
                        Act.CONFIRM_DNS,
                        change,
                        start_to_close_timeout=timedelta(minutes=2),
                        heartbeat_timeout=_HEARTBEAT,
                        retry_policy=_RETRY_POLL,
                    )
                    done.append("dns_restored")
                except ActivityError as exc:
                    errors.append(f"dns_restore: {_error_text(exc)}")
                    # Once the change was accepted, DNS may point at the target: removing it
                    # could leave nothing serving. A change the API never accepted left DNS on
                    # the source, so the target goes and the source stays the placement.
                    keep_target = dns_set or not workflow.patched("dns-never-set-keeps-source")
            else:
                keep_target = True
                done.append("kept_target_source_not_serving")
        if move.steer is not None and move.steer.started and not keep_target:
            try:
                done.append(await move.steer.undo())
            except ActivityError as exc:
                errors.append(f"traffic_restore: {_error_text(exc)}")
                # The user plane may already lead to the target: removing it could leave the
                # UE with nothing to reach.
                keep_target = True
        if deployed and not keep_target:
            try:
                await workflow.execute_activity(
                    Act.REMOVE,
                    RemoveInput(app=app, instance=instance, placement=target, drain=False),
                    start_to_close_timeout=timedelta(minutes=5),
                    heartbeat_timeout=_HEARTBEAT,
                    retry_policy=_RETRY,
                )
                done.append("target_removed")
            except ActivityError as exc:
                errors.append(f"remove_target: {_error_text(exc)}")
        # Asked only when a warm instance exists: histories from before pre-warming never had one.
        # The consumer counted the warm instance as missed when it decided this move elsewhere.
        warm = self._warm
        if warm is not None and workflow.patched(PREWARM_PATCH):
            try:
                await self._remove(warm.placement, drain=False)
                self._warm = None
                done.append("warm_removed")
            except ActivityError as exc:
                errors.append(f"remove_warm: {_error_text(exc)}")
        return done, errors, keep_target

    async def _serving(self, placement: Placement) -> bool:
        endpoint = Endpoint(app=self._inp.app, instance=self._inp.instance, placement=placement)
        try:
            readiness: Readiness = await workflow.execute_activity(
                Act.PROBE,
                endpoint,
                result_type=Readiness,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
        except ActivityError:
            return False
        return readiness == Readiness.READY
