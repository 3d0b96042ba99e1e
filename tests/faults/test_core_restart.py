"""AMF and NRF restarts while ``subscriber track`` runs (poller and subscription manager loops)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from subscriber.app.lifecycle import run_until_stopped
from subscriber.app.tracker import open_tracker
from subscriber.events import EventRecord, LocationEvent, decode_event
from subscriber.fakes.core import FakeCoreServer
from subscriber.fakes.core import nrf as fake_nrf
from subscriber.settings import CoreSettings, ReceiverSettings, Settings

MOVER = "imsi-208930000000001"
CALLBACK_BASE = "http://127.0.0.1:8800"


class Sink:
    """Keeps every event the tracker publishes."""

    def __init__(self) -> None:
        self.events: list[LocationEvent] = []

    async def publish(self, records: Sequence[EventRecord]) -> None:
        self.events.extend(decode_event(record.value) for record in records)

    def cells(self, supi: str) -> list[str | None]:
        return [
            e.location.cell_id if e.location else None for e in self.events if e.ue.supi == supi
        ]


def _af_registered(fake: FakeCoreServer) -> bool:
    return any(p.get("nfType") == "AF" for p in fake.core.nrf.profiles.values())


def _notify_subscribed(fake: FakeCoreServer) -> bool:
    return any(
        "/callbacks/amf/" in str(sub.echo.get("eventNotifyUri", ""))
        and not str(sub.echo.get("eventNotifyUri", "")).endswith("/poll")
        for sub in fake.core.amf.subscriptions.values()
    )


async def until(predicate: Callable[[], bool], timeout_s: float = 60) -> float:
    """Wait until ``predicate()`` holds; return how long that took."""
    started = time.monotonic()
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 -- the fake exposes state, not events
            await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_amf_and_nrf_restarts_are_recovered_by_the_running_loops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the AMF restarts (ids back at 1, new NF id) the tracker subscribes again and keeps
    reporting moves; after the NRF restarts (forgetting us) it registers again at its next token
    refresh. Nobody calls reconcile or poll by hand."""
    # Short tokens, so the running client asks the NRF again within seconds (free5GC's is 1000 s).
    monkeypatch.setattr(fake_nrf, "TOKEN_TTL_S", 2)
    settings = Settings(
        core=CoreSettings(
            amf_tracking="both",
            poll_interval_s=0.2,
            poll_max_backoff_s=1.0,
            subscription_ttl_s=60,
            renew_before_s=10,
            state_dir=tmp_path / "core",
        ),
        receiver=ReceiverSettings(public_url=CALLBACK_BASE, spool_dir=tmp_path / "spool"),
    )
    sink = Sink()
    async with FakeCoreServer(oauth=True) as fake:
        fake.core.amf.add_ue(MOVER, "000001", "000000010")
        settings.core.nrf_url = fake.url
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_until_stopped(open_tracker(settings, sink=sink), stop=stop, handle_signals=False)
        )
        try:
            await until(
                lambda: (
                    "000000010" in sink.cells(MOVER)
                    and _af_registered(fake)
                    and _notify_subscribed(fake)
                )
            )
            old_amf = fake.core.amf.instance_id
            await fake.core.restart_amf()
            fake.core.amf.move(MOVER, "000002", "000000020")
            amf_s = await until(
                lambda: "000000020" in sink.cells(MOVER) and _notify_subscribed(fake)
            )
            fake.core.nrf.restart()
            nrf_s = await until(lambda: _af_registered(fake))
            fake.core.amf.move(MOVER, "000003", "000000030")
            await until(lambda: "000000030" in sink.cells(MOVER))
        finally:
            stop.set()
            await task
    print(
        f"\nfault figures (core restarts): AMF recovered in {amf_s:.1f} s, "
        f"NRF re-registration in {nrf_s:.1f} s"
    )
    assert fake.core.amf.instance_id != old_amf
    assert sink.cells(MOVER) == ["000000010", "000000020", "000000030"]
