"""The real Temporal dev server runs, signals and queries a workflow."""

from __future__ import annotations

import asyncio

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from subscriber.stack import StackInfo

pytestmark = pytest.mark.stack


@workflow.defn(sandboxed=False)
class Collector:
    """Collects signalled words until told to finish."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.done = False

    @workflow.run
    async def run(self, first: str) -> list[str]:
        self.words.append(first)
        await workflow.wait_condition(lambda: self.done)
        return self.words

    @workflow.signal
    def add(self, word: str) -> None:
        if word == "stop":
            self.done = True
        else:
            self.words.append(word)

    @workflow.query
    def seen(self) -> list[str]:
        return list(self.words)


async def test_workflow_started_signalled_queried(stack: StackInfo, unique: str) -> None:
    """A workflow on the dev server takes signals and answers queries."""
    client = await Client.connect(stack.temporal_address)
    async with Worker(
        client,
        task_queue=f"tq-{unique}",
        workflows=[Collector],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            Collector.run, "edge", id=f"wf-{unique}", task_queue=f"tq-{unique}"
        )
        # Signals that arrive before the first workflow task run before the run method does.
        for _ in range(50):
            if await handle.query(Collector.seen) == ["edge"]:
                break
            await asyncio.sleep(0.1)
        await handle.signal(Collector.add, "relocation")
        for _ in range(50):
            if await handle.query(Collector.seen) == ["edge", "relocation"]:
                break
            await asyncio.sleep(0.1)
        assert await handle.query(Collector.seen) == ["edge", "relocation"]
        await handle.signal(Collector.add, "stop")
        assert await handle.result() == ["edge", "relocation"]
