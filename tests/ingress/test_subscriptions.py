"""Tests for the subscription lifecycle against the fake core (free5GC and notify modes)."""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from structlog.testing import capture_logs

from subscriber.app.receiver import serving_receiver
from subscriber.errors import CoreUnavailable
from subscriber.events import Delivery, decode_event
from subscriber.fakes.core import ExternalNrf, FakeCoreServer
from subscriber.fakes.core.amf import AmfMode
from subscriber.ingress.normalize import Binding
from subscriber.ingress.nrf import NrfClient, Producer
from subscriber.ingress.subscriptions import (
    STATE_FILE,
    SubscriptionManager,
    SubscriptionRecord,
    SubscriptionRegistry,
    iso_time,
    owns,
    registry_for,
)
from subscriber.settings import CoreSettings, Settings
from subscriber.stack.free5gc import RealNrf
from tests.support.kafka import read_all

T0 = 1_900_000_000.0
CALLBACKS = "http://127.0.0.1:9/receiver"


class WallClock:
    """Wall-clock seconds shared by the daemon and the fake core, moved by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def ns(self) -> int:
        return int(self.now * 1e9)


@pytest.fixture
def clock() -> WallClock:
    """A shared, hand-moved wall clock."""
    return WallClock()


@pytest.fixture
def core_nrf(real_nrf: RealNrf) -> ExternalNrf:
    """The real NRF the fake AMF, SMF and NEF register with."""
    return ExternalNrf(real_nrf.url, real_nrf.certificate)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The HTTP/1.1 session the daemon calls through."""
    async with aiohttp.ClientSession() as http:
        yield http


def _settings(fake: FakeCoreServer, tmp_path: Path, **values: object) -> CoreSettings:
    return CoreSettings.model_validate(
        {
            "nrf_url": fake.nrf_url,
            "state_dir": tmp_path,
            "amf_tracking": "notify",
            "subscription_ttl_s": 60,
            "renew_before_s": 20,
            "retry_attempts": 2,
            **values,
        }
    )


def _manager(
    fake: FakeCoreServer,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    clock: WallClock,
    **values: object,
) -> SubscriptionManager:
    settings = _settings(fake, tmp_path, **values)
    nrf = NrfClient(settings=settings, session=session)
    return SubscriptionManager(settings=settings, nrf=nrf, callback_base=CALLBACKS, clock=clock)


def _amf_record(manager: SubscriptionManager) -> SubscriptionRecord:
    (record,) = [r for r in manager.records.values() if r.kind == "amf"]
    return record


async def _serve(clock: WallClock, mode: AmfMode, nrf: ExternalNrf) -> FakeCoreServer:
    return FakeCoreServer(ues=2, mode=mode, clock_ns=clock.ns, nrf=nrf)


async def test_free5gc_subscription_takes_its_id_from_the_body(
    session: aiohttp.ClientSession, tmp_path: Path, clock: WallClock, core_nrf: ExternalNrf
) -> None:
    """No Location header: the id comes from the body, the dialect is free5GC's, and it is saved;
    the callback URI ends in a random key (never logged) that another process can look up."""
    async with (
        await _serve(clock, "free5gc", core_nrf) as fake,
        _manager(fake, session, tmp_path, clock) as manager,
    ):
        with capture_logs() as logs:
            await manager.reconcile()
        (record,) = manager.records.values()
        assert (record.subscription_id, record.dialect) == ("1", "free5gc")
        sub = fake.core.amf.subscriptions["1"]
        key = record.callback_key
        assert len(base64.urlsafe_b64decode(key + "==")) * 8 >= 128
        assert key not in record.key
        assert sub.echo["eventNotifyUri"] == f"{CALLBACKS}/callbacks/amf/{key}"
        assert sub.echo["notifyCorrelationId"] == record.key
        assert key not in repr(logs)
        stored = orjson.loads((tmp_path / STATE_FILE).read_bytes())
        assert [(r["key"], r["callback_key"]) for r in stored["records"]] == [(record.key, key)]
        other_process = registry_for(Settings(core=CoreSettings(state_dir=tmp_path)))
        assert other_process.binding("amf", key) == Binding(
            record.key, correlation_id=record.key, subscription_id="1"
        )
        assert other_process.binding("amf", record.key) is None
        assert other_process.binding("smf", key) is None
        assert other_process.binding("amf", "poll") is None


async def test_free5gc_renewal_uses_option_item_before_expiry(
    session: aiohttp.ClientSession, tmp_path: Path, clock: WallClock, core_nrf: ExternalNrf
) -> None:
    """Within renew_before_s of expiry the manager PATCHes {"optionItem": ...} (free5GC)."""
    async with (
        await _serve(clock, "free5gc", core_nrf) as fake,
        _manager(fake, session, tmp_path, clock) as manager,
    ):
        await manager.reconcile()
        (record,) = manager.records.values()
        assert record.expiry_s == T0 + 60
        clock.now += 30
        await manager.reconcile()
        assert record.expiry_s == T0 + 60
        clock.now += 15
        await manager.reconcile()
        assert record.expiry_s == T0 + 45 + 60
        assert record.dialect == "free5gc"
        assert fake.core.amf.subscriptions["1"].expiry_ns == int((T0 + 105) * 1e9)


async def test_shutdown_deletes_accepting_200_null(
    session: aiohttp.ClientSession, tmp_path: Path, clock: WallClock, core_nrf: ExternalNrf
) -> None:
    """Leaving the manager deletes its free5GC subscription (200 null) and clears the file."""
    async with await _serve(clock, "free5gc", core_nrf) as fake:
        async with _manager(fake, session, tmp_path, clock) as manager:
            await manager.reconcile()
            assert len(fake.core.amf.subscriptions) == 1
            (record,) = manager.records.values()
        assert fake.core.amf.subscriptions == {}
        assert orjson.loads((tmp_path / STATE_FILE).read_bytes())["records"] == []
        assert SubscriptionRegistry(tmp_path).binding("amf", record.callback_key) is None


async def test_restarted_daemon_reuses_its_subscription(
    session: aiohttp.ClientSession, tmp_path: Path, clock: WallClock, core_nrf: ExternalNrf
) -> None:
    """A daemon that died without cleanup adopts the recorded subscription instead of leaking it."""
    async with await _serve(clock, "free5gc", core_nrf) as fake:
        crashed = _manager(fake, session, tmp_path, clock)
        await crashed.__aenter__()
        await crashed.reconcile()
        clock.now += 50
        async with _manager(fake, session, tmp_path, clock) as restarted:
            await restarted.reconcile()
            (record,) = restarted.records.values()
            assert record.subscription_id == "1"
            assert record.expiry_s == T0 + 50 + 60
            assert list(fake.core.amf.subscriptions) == ["1"]
        assert fake.core.amf.subscriptions == {}


async def test_amf_restart_is_detected_by_ids_and_resubscribed(
    session: aiohttp.ClientSession, tmp_path: Path, clock: WallClock, core_nrf: ExternalNrf
) -> None:
    """Counter ids going back to 1 drop the lost subscription; the next pass subscribes anew."""
    async with (
        await _serve(clock, "free5gc", core_nrf) as fake,
        _manager(fake, session, tmp_path, clock) as manager,
    ):
        await manager.reconcile()
        (old,) = manager.records.values()
        assert manager.observe_id(old.producer_id, "2") is False
        await fake.core.restart_amf()
        assert manager.observe_id(old.producer_id, "1") is True
        assert manager.records == {}
        manager._nrf.forget_discovery("AMF")
        await manager.reconcile()
        (new,) = manager.records.values()
        assert new.producer_id == fake.core.amf.instance_id != old.producer_id
        assert new.subscription_id == "1"


async def test_vanished_producer_is_dropped_without_delete(
    session: aiohttp.ClientSession, tmp_path: Path, clock: WallClock, core_nrf: ExternalNrf
) -> None:
    """An AMF that re-registered under a new id loses our old record with no DELETE sent."""
    async with (
        await _serve(clock, "free5gc", core_nrf) as fake,
        _manager(fake, session, tmp_path, clock) as manager,
    ):
        await manager.reconcile()
        (old,) = manager.records.values()
        await fake.core.restart_amf()
        other = {"subscription": {"eventList": [{"type": "LOCATION_REPORT"}], "anyUE": True}}
        async with session.post(
            f"{fake.url}/namf-evts/v1/subscriptions",
            json=other,
            headers=await manager._nrf.auth_headers("AMF", "namf-evts"),
        ) as response:
            assert (await response.json())["subscriptionId"] == old.subscription_id
        manager._nrf.forget_discovery("AMF")
        await manager.reconcile()
        (record,) = manager.records.values()
        assert record.producer_id == fake.core.amf.instance_id
        assert record.subscription_id == "2"
        assert old.subscription_id in fake.core.amf.subscriptions  # someone else's, left alone


async def test_free5gc_smf_is_marked_unsupported(
    session: aiohttp.ClientSession, tmp_path: Path, clock: WallClock, core_nrf: ExternalNrf
) -> None:
    """The SMF answers 501 on free5GC's underscore path: no record, and no retry."""
    async with (
        await _serve(clock, "free5gc", core_nrf) as fake,
        _manager(fake, session, tmp_path, clock, smf_url=fake.url) as manager,
    ):
        smf = Producer("SMF", "static-smf", fake.url)
        assert await manager.subscribe("smf", smf, "up-path") is None
        assert manager.records == {}
        await manager.reconcile()
        assert [r.kind for r in manager.records.values()] == ["amf"]


async def test_notify_mode_subscription_is_renewed_before_it_expires(
    session: aiohttp.ClientSession, tmp_path: Path, clock: WallClock, core_nrf: ExternalNrf
) -> None:
    """Against a spec AMF that enforces expiry, JSON-Patch renewals keep the subscription."""
    async with await _serve(clock, "notify", core_nrf) as fake:
        async with _manager(fake, session, tmp_path, clock) as manager:
            await manager.reconcile()
            record = _amf_record(manager)
            assert record.dialect == "spec"
            assert record.resource_uri is not None
            assert record.resource_uri.startswith(fake.url)
            for _ in range(4):
                clock.now += 45
                await manager.reconcile()
            assert record.expiry_s == clock.now + 60
            assert list(fake.core.amf.subscriptions) == [record.subscription_id]
            assert len(fake.core.smf.subscriptions) == 1  # the spec SMF took UP_PATH_CH too
            fake.core.amf.move("imsi-208930000000001", "000002", "000000002")
            await fake.core.amf.drain()
            assert fake.core.amf.notification_failures == 1  # sent: nobody listens on port 9
        assert fake.core.amf.subscriptions == {}
        assert fake.core.smf.subscriptions == {}


async def test_notify_mode_lost_subscription_is_recreated_on_404(
    session: aiohttp.ClientSession, tmp_path: Path, clock: WallClock, core_nrf: ExternalNrf
) -> None:
    """A renewal answered 404 (the producer forgot it) subscribes again under the same key."""
    async with (
        await _serve(clock, "notify", core_nrf) as fake,
        _manager(fake, session, tmp_path, clock) as manager,
    ):
        await manager.reconcile()
        old = _amf_record(manager)
        fake.core.amf.subscriptions.clear()
        clock.now += 45
        await manager.reconcile()
        new = _amf_record(manager)
        assert new.key == old.key
        assert new.subscription_id != old.subscription_id
        assert list(fake.core.amf.subscriptions) == [new.subscription_id]


async def test_wrong_dialect_falls_back_on_400(
    session: aiohttp.ClientSession, tmp_path: Path, clock: WallClock, core_nrf: ExternalNrf
) -> None:
    """A 400 to one PATCH dialect makes the manager retry in the other."""
    async with (
        await _serve(clock, "notify", core_nrf) as fake,
        _manager(fake, session, tmp_path, clock) as manager,
    ):
        await manager.reconcile()
        record = _amf_record(manager)
        record.dialect = "free5gc"
        await manager.renew(record)
        assert record.dialect == "spec"


def test_owns_splits_producers_between_instances() -> None:
    """Each producer id belongs to exactly one of n instances."""
    ids = [f"amf-{n}" for n in range(50)]
    for count in (1, 2, 3):
        owners = [
            [
                i
                for i in range(count)
                if owns(pid, CoreSettings(instance_index=i, instance_count=count))
            ]
            for pid in ids
        ]
        assert all(len(o) == 1 for o in owners)
    spread = {
        i
        for pid in ids
        for i in range(3)
        if owns(pid, CoreSettings(instance_index=i, instance_count=3))
    }
    assert spread == {0, 1, 2}


@pytest.mark.stack
async def test_notify_mode_callbacks_flow_through_the_receiver_to_kafka(
    session: aiohttp.ClientSession,
    stack_settings: Settings,
    clock: WallClock,
    core_nrf: ExternalNrf,
) -> None:
    """Spec AMF and SMF notifications reach the receiver over h2c, pass its registry, hit Kafka."""
    settings_dir = stack_settings.receiver.spool_dir.parent / "core"
    registry = SubscriptionRegistry(settings_dir)
    # The fake closes its h2c connections when it exits, before granian stops.
    async with (
        serving_receiver(stack_settings, registry=registry) as served,
        await _serve(clock, "notify", core_nrf) as fake,
    ):
        settings = _settings(fake, settings_dir)
        nrf = NrfClient(settings=settings, session=session)
        async with SubscriptionManager(
            settings=settings, nrf=nrf, callback_base=served.url, registry=registry, clock=clock
        ) as manager:
            await manager.reconcile()
            fake.core.amf.move("imsi-208930000000001", "000002", "0000000c1")
            await fake.core.amf.drain()
            statuses = await fake.core.smf.send_up_path_change(
                *fake.core.smf.spec_targets()[0], target_dnai="mec"
            )
    assert fake.core.amf.notifications_sent == 1
    assert statuses == [204, 204]
    events = [
        decode_event(r.value)
        for r in await read_all(
            stack_settings.kafka.bootstrap_servers, stack_settings.kafka.events_topic, 3
        )
        if r.value
    ]
    amf_event = next(e for e in events if e.source.nf_type == "AMF")
    assert amf_event.source.delivery is Delivery.NOTIFIED
    assert amf_event.location is not None
    assert amf_event.location.cell_id == "0000000c1"
    assert sorted(e.dnai_change.change_type for e in events if e.dnai_change) == ["EARLY", "LATE"]


async def test_nef_monitoring_subscriptions_per_target(
    session: aiohttp.ClientSession, tmp_path: Path, clock: WallClock, core_nrf: ExternalNrf
) -> None:
    """Each configured UE gets a NEF monitoring subscription, renewed by PUT, deleted on exit."""
    targets = ["msisdn-33611223344", "group-7"]
    async with await _serve(clock, "free5gc", core_nrf) as fake:
        async with _manager(fake, session, tmp_path, clock, nef_targets=targets) as manager:
            await manager.reconcile()
            nef = [r for r in manager.records.values() if r.kind == "nef"]
            assert len(nef) == 2
            stored = list(fake.core.nef.subscriptions.values())
            assert {s.get("msisdn") or s.get("externalGroupId") for s in stored} == {
                "33611223344",
                "group-7",
            }
            assert {s["notificationDestination"] for s in stored} == {
                f"{CALLBACKS}/callbacks/nef/{r.callback_key}" for r in nef
            }
            clock.now += 45
            await manager.reconcile()
            assert {s["monitorExpireTime"] for s in fake.core.nef.subscriptions.values()} == {
                iso_time(T0 + 45 + 60)
            }
        assert fake.core.nef.subscriptions == {}


async def test_a_failing_smf_does_not_stop_amf_renewal(
    session: aiohttp.ClientSession, tmp_path: Path, clock: WallClock, core_nrf: ExternalNrf
) -> None:
    """Each reconcile step runs even when an earlier one fails; the failure is still raised."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    async with await _serve(clock, "free5gc", core_nrf) as fake:
        manager = _manager(fake, session, tmp_path, clock, smf_url=dead)
        async with manager:
            with pytest.raises(CoreUnavailable):
                await manager.reconcile()
            record = _amf_record(manager)
            clock.now += 45
            with pytest.raises(CoreUnavailable):
                await manager.reconcile()
            assert record.expiry_s == T0 + 45 + 60


@pytest.mark.parametrize(
    "content",
    [b'{"records": {"amf": 1}}', b'{"records": [{"kind": "amf"}]}', b"[]", b'{"records": [7]}'],
)
async def test_a_state_file_of_the_wrong_shape_is_set_aside_not_a_crash_loop(
    session: aiohttp.ClientSession,
    tmp_path: Path,
    clock: WallClock,
    content: bytes,
    core_nrf: ExternalNrf,
) -> None:
    """Valid JSON of the wrong shape: the receiver's registry turns not ready (no 500s), and the
    manager moves the file aside, starts fresh and subscribes again."""
    (tmp_path / STATE_FILE).write_bytes(content)
    registry = SubscriptionRegistry(tmp_path)
    assert not registry.is_ready()
    assert registry.binding("amf", "anything") is None
    async with (
        await _serve(clock, "free5gc", core_nrf) as fake,
        _manager(fake, session, tmp_path, clock) as manager,
    ):
        (aside,) = list(tmp_path.glob(f"{STATE_FILE}.invalid-*"))  # noqa: ASYNC240
        assert aside.read_bytes() == content
        await manager.reconcile()
        record = _amf_record(manager)
        assert registry.is_ready()
        assert registry.binding("amf", record.callback_key) is not None


async def test_subscriptions_with_guessable_keys_are_replaced(
    session: aiohttp.ClientSession, tmp_path: Path, clock: WallClock, core_nrf: ExternalNrf
) -> None:
    """A record from before random callback keys is deleted at the AMF and created again with
    a random key; its old, guessable URI is never accepted."""
    async with await _serve(clock, "free5gc", core_nrf) as fake:
        async with _manager(fake, session, tmp_path, clock) as manager:
            await manager.reconcile()
            old = _amf_record(manager)
            doc = orjson.loads((tmp_path / STATE_FILE).read_bytes())
            # Leave the state of an older version behind: no callback_key, no clean shutdown.
            for stored in doc["records"]:
                del stored["callback_key"]
            manager.records.clear()
        (tmp_path / STATE_FILE).write_bytes(orjson.dumps(doc))
        assert SubscriptionRegistry(tmp_path).binding("amf", old.key) is None
        async with _manager(fake, session, tmp_path, clock) as manager:
            await manager.reconcile()
            new = _amf_record(manager)
            assert new.key == old.key
            assert new.callback_key
            assert new.callback_key != old.callback_key
            assert list(fake.core.amf.subscriptions) == [new.subscription_id]
