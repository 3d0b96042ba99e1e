"""The context-transfer step of a move, from the workflow's side (deterministic code only).

After the target is ready and before traffic is steered to it, the source instance is told that
its devices move (ETSI GS MEC 021 INTERHOST_MOVEOUT_TRIGGERED, with the target's address, so the
application hands the context over itself: MEC 021's application self-controlled transfer) and
the step waits, until a deadline per application, for USER_CONTEXT_TRANSFER_COMPLETED. Once
traffic is steered the source hears INTERHOST_MOVEOUT_COMPLETED; a move that fails after the step
began tells it INTERHOST_MOVEOUT_FAILED before anything is undone, so it serves again.

The wait is an activity that watches the AMS store, not a signal: the store is where the
application's report lands first (durably, before the AMS answers it), the activity sees it the
moment it is written (same process), and after a worker restart the retried activity reads it
back, so nothing depends on a second delivery path from the AMS to Temporal. The deadline is a
point in workflow time, passed in, so a retry never restarts the clock.

The activities are in :mod:`subscriber.act.context_activities`; the decision rules in
:mod:`subscriber.ams.procedure`. See docs/relocation.md, "Stateful relocation".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict

    from subscriber.relocation import ContextPolicy, Placement, RelocationRequest

PATCH = "context-transfer"
"""Workflows that were running before the step existed replay without it."""


class ContextAct:
    """Activity names, shared with :mod:`subscriber.act.context_activities`."""

    BEGIN = "context.begin"
    AWAIT = "context.await"
    FINISH = "context.finish"
    FORGET = "context.forget"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TransferInput(_Model):
    """One procedure: whose devices, from where to where, by when, under which policy."""

    procedure_id: str
    app: str
    instance: str
    source: Placement
    target: Placement
    policy: ContextPolicy
    deadline: datetime


class TransferResult(_Model):
    """What became of the context (``MoveOutcome.context``); ``waiting`` from BEGIN only."""

    context: str
    waiting: bool = False


class FinishInput(_Model):
    """Tell the source how the move ended, and close the procedure."""

    transfer: TransferInput
    completed: bool


class ForgetInput(_Model):
    """An instance that was removed: the AMS drops its registrations and subscriptions."""

    app: str
    instance: str
    cluster: str


_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=0.5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)
# The wait enforces its own deadline; retries only cover a lost worker, for as long as the
# schedule-to-close allows.
_RETRY_WAIT = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=0)
_HEARTBEAT = timedelta(seconds=10)


class ContextTransfer:
    """The step for one move; :meth:`run` once, then :meth:`completed` or :meth:`failed`.

    Args:
        request: the move (its id names the procedure; its policy rules the outcome).
        source: where the instance runs now.
        target: where the new instance answers (the deploy's endpoint).
    """

    def __init__(self, request: RelocationRequest, source: Placement, target: Placement) -> None:
        self.started = False
        self._request = request
        self._source = source
        self._target = target
        self._input: TransferInput | None = None

    async def run(self) -> str:
        """Tell the source, wait for its transfer; the context's fate, or ActivityError when
        the move must stop (declined, not allowed, failed or late under an abort policy)."""
        policy = self._request.context_policy or ContextPolicy()
        inp = TransferInput(
            procedure_id=self._request.request_id,
            app=self._request.app,
            instance=self._request.instance,
            source=self._source,
            target=self._target,
            policy=policy,
            deadline=workflow.now() + timedelta(seconds=policy.deadline_s),
        )
        self._input = inp
        self.started = True
        begun: TransferResult = await workflow.execute_activity(
            ContextAct.BEGIN,
            inp,
            result_type=TransferResult,
            start_to_close_timeout=timedelta(minutes=2),
            heartbeat_timeout=_HEARTBEAT,
            retry_policy=_RETRY,
        )
        if not begun.waiting:
            return begun.context
        done: TransferResult = await workflow.execute_activity(
            ContextAct.AWAIT,
            inp,
            result_type=TransferResult,
            schedule_to_close_timeout=timedelta(seconds=policy.deadline_s + 120),
            heartbeat_timeout=_HEARTBEAT,
            retry_policy=_RETRY_WAIT,
        )
        return done.context

    async def completed(self) -> None:
        """Traffic is on the target: INTERHOST_MOVEOUT_COMPLETED to the source."""
        await self._finish(completed=True)

    async def failed(self) -> None:
        """The move is being undone: INTERHOST_MOVEOUT_FAILED, so the source serves again."""
        await self._finish(completed=False)

    async def forget(self, cluster: str) -> None:
        """The instance on ``cluster`` was removed: the AMS forgets it (best effort)."""
        try:
            await workflow.execute_activity(
                ContextAct.FORGET,
                ForgetInput(
                    app=self._request.app, instance=self._request.instance, cluster=cluster
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_RETRY,
            )
        except ActivityError:
            workflow.logger.warning("context: forgetting the removed instance failed")

    async def _finish(self, *, completed: bool) -> None:
        if self._input is None:
            return
        try:
            await workflow.execute_activity(
                ContextAct.FINISH,
                FinishInput(transfer=self._input, completed=completed),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=_RETRY,
            )
        except ActivityError:
            # A notification nobody takes must not undo a move, nor stop a compensation.
            workflow.logger.warning("context: the final notification failed")
