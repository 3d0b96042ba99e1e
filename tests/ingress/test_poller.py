"""Tests for poll-and-diff against the fake free5GC core with OAuth on."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer

from subscriber.errors import CoreUnavailable
from subscriber.events import Delivery, EventRecord, LocationEvent, decode_event
from subscriber.fakes.core import ExternalNrf, FakeCoreServer
from subscriber.ingress import poller as poller_module
from subscriber.ingress.nrf import NrfClient
from subscriber.ingress.poller import Poller, location_key, scan_location_reports, sortable_time
from subscriber.ingress.publisher import Publisher
from subscriber.ingress.subscriptions import SubscriptionManager, owns
from subscriber.settings import CoreSettings, Settings
from subscriber.stack.free5gc import RealNrf

MOVER = "imsi-208930000000002"


class RecordingSink:
    """An EventSink that keeps every batch it is given."""

    def __init__(self) -> None:
        self.batches: list[list[LocationEvent]] = []

    async def publish(self, records: Sequence[EventRecord]) -> None:
        self.batches.append([decode_event(record.value) for record in records])

    @property
    def events(self) -> list[LocationEvent]:
        return [e for batch in self.batches for e in batch]


class Clock:
    """A monotonic clock the test moves by hand (token lifetimes)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake(real_nrf: RealNrf) -> AsyncIterator[FakeCoreServer]:
    """A free5GC-mode fake AMF with three UEs, registered in the real NRF (OAuth on)."""
    external = ExternalNrf(real_nrf.url, real_nrf.certificate)
    async with FakeCoreServer(ues=3, nrf=external) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The HTTP/1.1 session the daemon calls through."""
    async with aiohttp.ClientSession() as http:
        yield http


def _settings(tmp_path: Path, **values: object) -> CoreSettings:
    return CoreSettings.model_validate(
        {"state_dir": tmp_path, "retry_attempts": 1, "amf_tracking": "poll", **values}
    )


def _poller(
    fake: FakeCoreServer,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    sink: RecordingSink,
    clock: Clock | None = None,
    **values: object,
) -> Poller:
    settings = _settings(tmp_path, nrf_url=fake.nrf_url, **values)
    nrf = NrfClient(settings=settings, session=session, clock=clock or Clock())
    return Poller(settings=settings, nrf=nrf, sink=sink)


def _cells(events: Sequence[LocationEvent]) -> list[tuple[str | None, str | None]]:
    return [(e.ue.supi, e.location.cell_id if e.location else None) for e in events]


async def _poll(poller: Poller) -> list[LocationEvent]:
    """One poll cycle's events, as they were published."""
    return [decode_event(record.value) for record in await poller.poll_once()]


@pytest.mark.parametrize(
    ("text", "sortable"),
    [
        ("2026-07-01T08:15:30.1Z", "2026-07-01T08:15:30.100000000Z"),
        ("2026-07-01T08:15:30.123456789Z", "2026-07-01T08:15:30.123456789Z"),
        ("2026-07-01T08:15:30Z", "2026-07-01T08:15:30.000000000Z"),
    ],
)
def test_sortable_time_pads_go_fractions(text: str, sortable: str) -> None:
    """Go trims trailing zeros; padding makes string order equal time order."""
    assert sortable_time(text) == sortable


def test_location_key_reads_nr_then_eutra_and_ignores_empty() -> None:
    """The diff key is PLMN|TAC|cell, lowercased; "location":{} has none."""
    nr = {
        "nrLocation": {
            "tai": {"plmnId": {"mcc": "208", "mnc": "93"}, "tac": "0000AA"},
            "ncgi": {"plmnId": {"mcc": "208", "mnc": "93"}, "nrCellId": "00000000F"},
        }
    }
    eutra = {
        "eutraLocation": {
            "tai": {"plmnId": {"mcc": "208", "mnc": "93"}, "tac": "0001"},
            "ecgi": {"plmnId": {"mcc": "208", "mnc": "93"}, "eutraCellId": "000000A"},
        }
    }
    assert location_key(nr) == "20893|0000aa|00000000f"
    assert location_key(eutra) == "20893|0001|000000a"
    assert location_key({}) is None


async def test_moved_ue_appears_exactly_once(
    fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """First sight emits each UE once; later polls emit only the UE that changed cell, once."""
    sink = RecordingSink()
    async with _poller(fake, session, tmp_path, sink) as poller:
        first = await _poll(poller)
        assert sorted(e.ue.supi or "" for e in first) == sorted(fake.core.amf.ues)
        assert await poller.poll_once() == []
        fake.core.amf.move(MOVER, "000002", "0000000a1")
        moved = await _poll(poller)
        assert await poller.poll_once() == []
    assert _cells(moved) == [(MOVER, "0000000a1")]
    (event,) = moved
    assert event.source.delivery is Delivery.POLLED
    assert event.event_time_field == "ueLocationTimestamp"
    assert event.source.nf_instance_id == fake.core.amf.instance_id
    assert fake.core.amf.subscriptions == {}  # every one-shot deleted itself
    assert len(sink.events) == 4


async def test_changes_are_ordered_by_ue_location_timestamp(
    fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Two UEs that moved between polls are emitted in the order they moved."""
    sink = RecordingSink()
    async with _poller(fake, session, tmp_path, sink) as poller:
        await poller.poll_once()
        fake.core.amf.move("imsi-208930000000003", "000002", "000000003")
        await asyncio.sleep(0.001)
        fake.core.amf.move("imsi-208930000000001", "000002", "000000001")
        events = await _poll(poller)
    assert [e.ue.supi for e in events] == ["imsi-208930000000003", "imsi-208930000000001"]
    assert events[0].event_time < events[1].event_time


async def test_stale_report_is_ignored(
    fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A report older than the known state does not overwrite it."""
    sink = RecordingSink()
    async with _poller(fake, session, tmp_path, sink) as poller:
        await poller.poll_once()
        key, _ = poller.state[MOVER]
        poller.state[MOVER] = (key, "2999-01-01T00:00:00.000000000Z")
        fake.core.amf.move(MOVER, "000002", "000000002")
        assert await poller.poll_once() == []


async def test_zero_ues_deletes_the_leftover_subscription(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """With no UE the one-shot stays at the AMF, so the poller deletes it."""
    async with FakeCoreServer(ues=0) as fake:
        sink = RecordingSink()
        async with _poller(fake, session, tmp_path, sink) as poller:
            assert await poller.poll_once() == []
        assert fake.core.amf.subscriptions == {}


async def test_amf_restart_is_survived(
    fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """After an AMF restart (ids back to 1, new NF id) polling resumes with no duplicate events."""
    sink = RecordingSink()
    async with _poller(fake, session, tmp_path, sink) as poller:
        await poller.poll_once()
        await poller.poll_once()
        await fake.core.restart_amf()
        assert await poller.poll_once() == []  # id "1" again: restart noticed
        fake.core.amf.move(MOVER, "000003", "000000033")
        (event,) = await _poll(poller)
    assert event.source.nf_instance_id == fake.core.amf.instance_id
    assert _cells([event]) == [(MOVER, "000000033")]


async def test_nrf_restart_is_survived(
    real_nrf: RealNrf, fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """After an NRF restart the next token request re-registers and polling goes on."""
    sink = RecordingSink()
    clock = Clock()
    async with _poller(fake, session, tmp_path, sink, clock) as poller:
        await poller.poll_once()
        await real_nrf.restart()  # it forgets every profile
        await fake.core.register()
        clock.now += 2000  # every token is due for refresh
        fake.core.amf.move(MOVER, "000002", "000000002")
        assert _cells(await _poll(poller)) == [(MOVER, "000000002")]
        assert poller._nrf.registrations == 2


async def test_last_known_state_survives_a_daemon_restart(
    fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A restarted poller remembers every UE's location and emits nothing new."""
    sink = RecordingSink()
    async with _poller(fake, session, tmp_path, sink) as poller:
        await poller.poll_once()
    async with _poller(fake, session, tmp_path, sink) as restarted:
        assert len(restarted.state) == 3
        assert await restarted.poll_once() == []


async def test_provide_loc_info_adds_no_duplicates(
    fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """With provide-loc-info on too, a move still yields exactly one event."""
    sink = RecordingSink()
    async with _poller(fake, session, tmp_path, sink, poll_provide_loc_info=True) as poller:
        await poller.poll_once()
        fake.core.amf.move(MOVER, "000002", "000000002")
        assert _cells(await _poll(poller)) == [(MOVER, "000000002")]
        assert await poller.poll_once() == []


async def test_other_instance_amf_is_not_polled(
    fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Instance i of n skips the AMFs whose id hashes to another instance."""
    amf_id = fake.core.amf.instance_id
    mine = next(
        i for i in range(2) if owns(amf_id, CoreSettings(instance_index=i, instance_count=2))
    )
    sink = RecordingSink()
    async with _poller(
        fake, session, tmp_path, sink, instance_index=1 - mine, instance_count=2
    ) as poller:
        assert await poller.poll_once() == []
    assert fake.core.amf._next_id == 0  # no subscription was ever made


async def test_run_backs_off_and_keeps_going_while_the_amf_is_down(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Failures are counted and retried by the loop instead of ending it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    settings = _settings(
        tmp_path, amf_url=dead, oauth=False, poll_interval_s=0.01, poll_max_backoff_s=0.02
    )
    nrf = NrfClient(settings=settings, session=session)
    poller = Poller(settings=settings, nrf=nrf, sink=RecordingSink())
    with pytest.raises(CoreUnavailable):
        await poller.poll_once()
    task = asyncio.create_task(poller.run())
    while poller.failures < 3:  # noqa: ASYNC110 -- the poller exposes a counter, not an event
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_poller_feeds_restarts_to_the_subscription_manager(
    fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Poll ids reveal an AMF restart to the manager, which subscribes again at the new AMF."""
    settings = _settings(tmp_path, nrf_url=fake.nrf_url, amf_tracking="both")
    nrf = NrfClient(settings=settings, session=session)
    sink = RecordingSink()
    async with (
        SubscriptionManager(settings=settings, nrf=nrf, callback_base="http://cb") as manager,
        Poller(settings=settings, nrf=nrf, sink=sink, manager=manager) as poller,
    ):
        await manager.reconcile()
        await poller.poll_once()
        await fake.core.restart_amf()
        await poller.poll_once()
        assert manager.restarts_detected == 1
        await manager.reconcile()
        (record,) = [r for r in manager.records.values() if r.kind == "amf"]
        assert record.producer_id == fake.core.amf.instance_id
    assert fake.core.amf.subscriptions == {}


@pytest.mark.stack
async def test_moved_ue_reaches_kafka_exactly_once(
    fake: FakeCoreServer, session: aiohttp.ClientSession, stack_settings: Settings
) -> None:
    """Through the real publisher, the moved UE's new cell is on the events topic once."""
    core = _settings(stack_settings.receiver.spool_dir.parent / "core", nrf_url=fake.nrf_url)
    nrf = NrfClient(settings=core, session=session)
    async with (
        Publisher(kafka=stack_settings.kafka, receiver=stack_settings.receiver) as sink,
        Poller(settings=core, nrf=nrf, sink=sink) as poller,
    ):
        await poller.poll_once()
        fake.core.amf.move(MOVER, "000002", "0000000b2")
        await poller.poll_once()
        await poller.poll_once()
        emitted = poller.events_emitted
    consumer = AIOKafkaConsumer(
        stack_settings.kafka.events_topic,
        bootstrap_servers=stack_settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    events: list[LocationEvent] = []
    try:
        while len(events) < emitted:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                events += [decode_event(r.value) for r in batch if r.value is not None]
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            events += [decode_event(r.value) for r in batch if r.value is not None]
    finally:
        await consumer.stop()
    assert len(events) == emitted == 4
    assert _cells(events).count((MOVER, "0000000b2")) == 1


def test_scan_reads_free5gc_answers_and_refuses_other_shapes() -> None:
    """The scan reads the notes' D1 body exactly and gives up on anything it cannot place."""
    d1 = (Path(__file__).parents[1] / "vectors" / "d1-amf-created-location.json").read_bytes()
    scanned = scan_location_reports(d1)
    assert scanned is not None
    sub_id, [(supi, segment, located, stamp)] = scanned
    assert (sub_id, supi) == ("1", b"imsi-208930000000001")
    assert b'"nrCellId":"000000010"' in segment
    assert located == b"2026-07-01T08:14:02.987654Z"
    assert stamp == b"2026-07-01T08:15:30.123456789Z"
    reordered = d1.replace(
        b'"type":"LOCATION_REPORT","state":{"active":false},',
        b'"state":{"active":false},"type":"LOCATION_REPORT",',
    )
    assert scan_location_reports(reordered) is None
    escaped = d1.replace(b'"supi":"imsi-208930000000001"', b'"supi":"imsi-20893000000000\\u0031"')
    assert scan_location_reports(escaped) is None


async def test_general_path_gives_the_same_events_as_the_fast_scan(
    fake: FakeCoreServer,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When the scan gives up, full JSON decoding yields the very same events."""
    fast_sink, slow_sink = RecordingSink(), RecordingSink()
    async with _poller(fake, session, tmp_path / "fast", fast_sink) as fast:
        await fast.poll_once()
        fake.core.amf.move(MOVER, "000002", "00000000c")
        await fast.poll_once()
    monkeypatch.setattr(poller_module, "scan_location_reports", lambda body: None)
    fake.core.amf.move(MOVER, "000001", "000000002")
    async with _poller(fake, session, tmp_path / "slow", slow_sink) as slow:
        await slow.poll_once()
        fake.core.amf.move(MOVER, "000002", "00000000c")
        await slow.poll_once()
    assert _cells(fast_sink.batches[1]) == _cells(slow_sink.batches[1]) == [(MOVER, "00000000c")]
    assert len(fast_sink.batches[0]) == len(slow_sink.batches[0]) == 3


async def test_concurrent_creates_are_not_mistaken_for_a_restart(
    fake: FakeCoreServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Polls racing the manager's creates at one AMF never look like ids going back."""
    settings = _settings(tmp_path, nrf_url=fake.nrf_url, amf_tracking="both")
    nrf = NrfClient(settings=settings, session=session)
    async with (
        SubscriptionManager(settings=settings, nrf=nrf, callback_base="http://cb") as manager,
        Poller(settings=settings, nrf=nrf, sink=RecordingSink(), manager=manager) as poller,
    ):
        (amf,) = await nrf.discover("AMF")
        for n in range(10):
            await asyncio.gather(
                poller.poll_once(),
                manager.subscribe("amf", amf, f"extra-{n}"),
                poller.poll_once(),
            )
        assert manager.restarts_detected == 0


async def test_polling_a_spec_amf_works_too(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    """Against a spec AMF (Location header, 204 deletes) polling and leftover deletes work."""
    async with FakeCoreServer(ues=2, mode="notify") as fake:
        sink = RecordingSink()
        async with _poller(fake, session, tmp_path, sink) as poller:
            assert len(await poller.poll_once()) == 2
            fake.core.amf.move("imsi-208930000000001", "000002", "000000002")
            assert _cells(await _poll(poller)) == [("imsi-208930000000001", "000000002")]
            fake.core.amf.ues.clear()
            assert await poller.poll_once() == []
        assert fake.core.amf.subscriptions == {}
