"""``stack up`` reuses what runs, ``status`` calls each service, ``down`` leaves nothing."""

from __future__ import annotations

import asyncio

import pytest

from subscriber.settings import Settings
from subscriber.stack import down, status, up
from subscriber.stack.procs import is_running
from subscriber.stack.state import read_state

pytestmark = pytest.mark.stack


def test_up_is_idempotent_and_down_stops_everything(private_stack: Settings) -> None:
    """A second ``up`` reuses every service; ``down`` stops every recorded process."""
    _, how = asyncio.run(up(private_stack))
    assert how == {"kafka": "reused", "temporal": "reused", "powerdns": "reused"}
    assert asyncio.run(status(private_stack)) == dict.fromkeys(
        ("kafka", "temporal", "powerdns"), "healthy"
    )
    services = read_state(private_stack.stack.dir).services.values()

    assert sorted(down(private_stack)) == ["kafka", "powerdns", "temporal"]

    assert not any(is_running(s.pid, s.start_ticks) for s in services)
    assert asyncio.run(status(private_stack)) == dict.fromkeys(
        ("kafka", "temporal", "powerdns"), "stopped"
    )
