"""The traffic-influence step of a move, from the workflow's side (deterministic code only).

For an application whose steering is ``traffic_influence`` or ``both``, once the target is ready
the step asks the NEF (TS 29.522, through :mod:`subscriber.act.steering_activities`) to route
the UE's traffic of the app to the target cluster's DNAI, then waits for the SMF's LATE
UP_PATH_CH notification naming that DNAI: it comes back through the receiver, Kafka and the
consumer, which signals it to the workflow (:data:`PATH_SIGNAL`). No LATE notification within
``confirm_deadline_s``, or a LATE one naming another DNAI, fails the move; undoing it routes the
UE back to the source DNAI (or drops the subscription, when the source had none), before the
target is removed. The source is removed only after the step confirmed. See docs/relocation.md.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict, Field

    from subscriber.relocation import RelocationRequest, SteeringPolicy

PATCH = "traffic-influence"
"""Workflows that were running before the step existed replay without it."""
PATH_SIGNAL = "path_changed"
"""The signal carrying a UP_PATH_CH notification for the workflow's instance."""
LATE = "LATE"
NOT_APPLIED = frozenset({"InfluenceRefused", "NefUnreachable"})
"""Activity error types after which the NEF certainly routes nothing new."""


class SteerAct:
    """Activity names, shared with :mod:`subscriber.act.steering_activities`."""

    ROUTE = "steering.route"
    RELEASE = "steering.release"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PathChange(_Model):
    """A user-plane path change the SMF reported for the instance's UE; the payload of
    :data:`PATH_SIGNAL`."""

    app: str
    instance: str
    change_type: str = Field(description="EARLY, LATE or EARLY_LATE.")
    target_dnai: str | None = None
    event_id: str = ""


class RouteInput(_Model):
    """Route the instance's UE traffic to ``dnai`` (create or re-route its subscription)."""

    app: str
    instance: str
    dnai: str


class ReleaseInput(_Model):
    """Drop the instance's subscription: its traffic goes back to the default route."""

    app: str
    instance: str


class SteeringFailed(Exception):
    """The path change was not confirmed: no LATE notification in time, or one naming another
    DNAI. Raised inside the workflow only, caught by its compensation."""


_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=0.5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=4,
)
_KEEP = 100


class PathChanges:
    """The notifications signalled to one workflow, newest last (at most 100 kept)."""

    def __init__(self) -> None:
        self.items: list[PathChange] = []
        self.received = 0

    def add(self, change: PathChange) -> None:
        """Keep ``change``."""
        self.items.append(change)
        self.received += 1
        del self.items[:-_KEEP]

    def since(self, mark: int) -> list[PathChange]:
        """The changes received after ``mark`` (a value of :attr:`received`)."""
        return self.items[len(self.items) - min(self.received - mark, len(self.items)) :]


class TrafficSteering:
    """The step for one move: :meth:`route`, then :meth:`confirmed`; :meth:`undo` on failure.

    Args:
        request: the move (its steering carries the DNAIs).
        changes: the workflow's received path changes.
    """

    def __init__(self, request: RelocationRequest, changes: PathChanges) -> None:
        self.started = False
        self._request = request
        self._policy = request.steering or SteeringPolicy()
        self._changes = changes
        self._mark = 0
        self.with_dns = self._policy.via.uses_dns
        """Whether the move also switches DNS (steering ``both``)."""

    async def route(self) -> None:
        """Ask the NEF to route the UE to the target's DNAI (ActivityError when it cannot)."""
        target = self._policy.target_dnai
        if not target:
            raise SteeringFailed(f"cluster '{self._request.target.cluster}' names no DNAI")
        self._mark = self._changes.received
        self.started = True
        try:
            await workflow.execute_activity(
                SteerAct.ROUTE,
                RouteInput(app=self._request.app, instance=self._request.instance, dnai=target),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_RETRY,
            )
        except ActivityError as exc:
            # A refusal, or a NEF nobody could connect to, changed nothing: nothing to undo.
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type in NOT_APPLIED:
                self.started = False
            raise

    async def confirmed(self) -> None:
        """Wait for the SMF's LATE notification naming the target DNAI.

        Raises:
            SteeringFailed: none within the deadline, or a LATE one naming another DNAI.
        """
        target, source = self._policy.target_dnai, self._policy.source_dnai
        found: list[PathChange] = []

        def late() -> bool:
            # A LATE naming the source is an earlier change arriving late (EARLY and LATE are
            # fire-and-forget and unordered in free5GC), not an answer to this one.
            found[:] = [
                c
                for c in self._changes.since(self._mark)
                if c.change_type == LATE and c.target_dnai != source
            ]
            return bool(found)

        try:
            await workflow.wait_condition(
                late, timeout=timedelta(seconds=self._policy.confirm_deadline_s)
            )
        except TimeoutError:
            raise SteeringFailed(
                f"no LATE UP_PATH_CH within {self._policy.confirm_deadline_s:g} s"
            ) from None
        if found[0].target_dnai != target:
            raise SteeringFailed(
                f"the SMF moved the path to '{found[0].target_dnai}', not '{target}'"
            )

    async def undo(self) -> str:
        """Route the UE back to the source DNAI (drop the subscription when it has none).

        Returns:
            What was done, for the outcome's ``compensated``.

        Raises:
            ActivityError: the NEF could not be made to route back.
        """
        app, instance = self._request.app, self._request.instance
        source = self._policy.source_dnai
        if source:
            await workflow.execute_activity(
                SteerAct.ROUTE,
                RouteInput(app=app, instance=instance, dnai=source),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_RETRY,
            )
            return "traffic_restored"
        await workflow.execute_activity(
            SteerAct.RELEASE,
            ReleaseInput(app=app, instance=instance),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RETRY,
        )
        return "traffic_released"
