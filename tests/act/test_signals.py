"""Signal-with-start against the real Temporal dev server, and how its errors are reported."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

from subscriber.act.signals import connect, request_relocation
from subscriber.act.workflows import RelocationWorkflow
from subscriber.errors import SignalFailed
from subscriber.relocation import Placement, RelocationRequest, workflow_id
from subscriber.settings import Settings

A = Placement(cluster="edge1", address="192.0.2.1")
B = Placement(cluster="edge2", address="192.0.2.2")


def request(unique: str, n: int = 1) -> RelocationRequest:
    """A request for this test's app instance."""
    return RelocationRequest(
        request_id=f"evt-{unique}-{n}",
        app="shop",
        instance=f"i{unique}",
        source=A,
        target=B,
        decided_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_workflow_ids_never_collide() -> None:
    """Hyphens in names cannot make two app instances share a workflow id."""
    assert workflow_id("a-b", "c") != workflow_id("a", "b-c")
    assert workflow_id("shop", "eu1") == "relocation.shop.eu1"


def test_request_rejects_names_that_are_not_dns_labels() -> None:
    """App and instance names must be DNS labels: they end up in ids and record names."""
    with pytest.raises(ValueError, match="DNS label"):
        RelocationRequest(
            request_id="r", app="Shop.eu", instance="i", target=B, decided_at=datetime.now(UTC)
        )


@pytest.mark.stack
async def test_signal_with_start_reuses_the_running_workflow(
    stack_settings: Settings, unique: str
) -> None:
    """Two requests start one workflow; the second only signals it (no worker needed)."""
    client = await connect(stack_settings.temporal)
    queue = stack_settings.temporal.task_queue
    first = await request_relocation(client, queue, request(unique, 1))
    second = await request_relocation(client, queue, request(unique, 2))
    assert first == second
    handle = client.get_workflow_handle_for(RelocationWorkflow.run, first.workflow_id)
    description = await handle.describe()
    assert description.status is WorkflowExecutionStatus.RUNNING
    await handle.terminate("test over")


@pytest.mark.stack
async def test_unknown_namespace_is_not_retryable(stack_settings: Settings, unique: str) -> None:
    """A call the server rejects for good says so: the consumer dead-letters instead."""
    client = await Client.connect(
        stack_settings.temporal.address,
        namespace=f"missing-{unique}",
        data_converter=pydantic_data_converter,
    )
    with pytest.raises(SignalFailed) as info:
        await request_relocation(client, "q", request(unique))
    assert info.value.retryable is False


async def test_unreachable_server_is_retryable(unique: str) -> None:
    """A server that does not answer is worth retrying later."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = await Client.connect(
        f"127.0.0.1:{port}", lazy=True, data_converter=pydantic_data_converter
    )
    with pytest.raises(SignalFailed) as info:
        await request_relocation(client, "q", request(unique), rpc_timeout_s=1)
    assert info.value.retryable is True
