"""Signalling: hand a relocation request to the workflow of its application instance.

One workflow per application instance, id ``relocation.{app}.{instance}``
(:func:`subscriber.relocation.workflow_id`). :func:`request_relocation` signals-with-start:
it starts the workflow when none runs and otherwise only signals the running one
(``WorkflowIDConflictPolicy.USE_EXISTING``), in one atomic call. The request id travels in the
payload; the workflow drops ids it has seen, so a redelivered event changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from subscriber.act.steering import PATH_SIGNAL, PathChange
from subscriber.act.workflows import SIGNAL_NAME, RelocationInput, RelocationWorkflow
from subscriber.errors import SignalFailed
from subscriber.relocation import RelocationRequest, workflow_id
from subscriber.settings import TemporalSettings
from subscriber.tracing import temporal_interceptors

# Worth another try later: the server is away, busy, or timed out.
_RETRYABLE = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
        RPCStatusCode.INTERNAL,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.CANCELLED,
    }
)


@dataclass(frozen=True)
class SignalReceipt:
    """Which workflow run took the request."""

    workflow_id: str
    run_id: str | None


async def connect(
    settings: TemporalSettings, *, runtime: Runtime | None = None, lazy: bool = False
) -> Client:
    """A Temporal client with the pydantic data converter, as the worker uses.

    It carries the OpenTelemetry interceptor (:mod:`subscriber.tracing`): a signal sent inside a
    span continues that trace into the workflow and its activities, and a worker built on this
    client inherits the interceptor.

    Args:
        settings: address and namespace.
        runtime: a Temporal runtime of its own (the worker's, to export its metrics).
        lazy: connect on the first call instead of now (the consumer: Temporal away at start
            must delay only the signals, not the decisions).

    Raises:
        SignalFailed: the server cannot be reached (retryable).
    """
    try:
        return await Client.connect(
            settings.address,
            namespace=settings.namespace,
            data_converter=pydantic_data_converter,
            interceptors=temporal_interceptors(),
            runtime=runtime,
            lazy=lazy,
        )
    except RuntimeError as exc:
        raise SignalFailed(f"cannot connect to Temporal: {exc}", retryable=True) from exc


async def request_relocation(
    client: Client,
    task_queue: str,
    req: RelocationRequest,
    *,
    rpc_timeout_s: float = 10.0,
) -> SignalReceipt:
    """Signal-with-start the relocation workflow of ``req.app``/``req.instance``.

    Returns once Temporal has durably recorded the signal.

    Raises:
        SignalFailed: with ``retryable`` True when the server was unavailable or timed out,
            False when it rejected the call.
    """
    wf_id = workflow_id(req.app, req.instance)
    try:
        handle = await client.start_workflow(
            RelocationWorkflow.run,
            RelocationInput(app=req.app, instance=req.instance, placement=req.source),
            id=wf_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=SIGNAL_NAME,
            start_signal_args=[req],
            rpc_timeout=timedelta(seconds=rpc_timeout_s),
        )
    except RPCError as exc:
        raise SignalFailed(
            f"signal-with-start {wf_id}: {exc.status.name}: {exc.message}",
            retryable=exc.status in _RETRYABLE,
        ) from exc
    except RuntimeError as exc:  # the client's connection itself failed
        raise SignalFailed(f"signal-with-start {wf_id}: {exc}", retryable=True) from exc
    return SignalReceipt(workflow_id=wf_id, run_id=handle.run_id)


async def report_path_change(
    client: Client, change: PathChange, *, rpc_timeout_s: float = 10.0
) -> bool:
    """Signal a UP_PATH_CH notification to the workflow of its application instance.

    Returns:
        False when no such workflow runs (nothing waits for the change), True once recorded.

    Raises:
        SignalFailed: with ``retryable`` as for :func:`request_relocation`.
    """
    wf_id = workflow_id(change.app, change.instance)
    try:
        await client.get_workflow_handle(wf_id).signal(
            PATH_SIGNAL, change, rpc_timeout=timedelta(seconds=rpc_timeout_s)
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise SignalFailed(
            f"signal {wf_id}: {exc.status.name}: {exc.message}",
            retryable=exc.status in _RETRYABLE,
        ) from exc
    except RuntimeError as exc:
        raise SignalFailed(f"signal {wf_id}: {exc}", retryable=True) from exc
    return True
