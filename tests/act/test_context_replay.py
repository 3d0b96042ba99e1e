"""The context-transfer step is replay-safe: a history recorded before it existed replays."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from subscriber.act.workflows import RelocationWorkflow

VECTORS = Path(__file__).parent.parent / "vectors"


async def test_a_move_recorded_before_the_step_existed_replays() -> None:
    """A completed move recorded with the workflow as it was before the context-transfer step
    (deploy, readiness, DNS, confirm, remove) replays against today's code without a
    non-determinism error: the step is behind workflow.patched."""
    text = (VECTORS / "relocation-history-before-context-transfer.json").read_text()
    history = WorkflowHistory.from_json("relocation.shop.recorded", text)
    replayer = Replayer(workflows=[RelocationWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
