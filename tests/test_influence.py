"""The traffic-influence records the worker writes and the receiver reads, and notifId pins."""

from __future__ import annotations

import multiprocessing
import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from subscriber.app.receiver import serving_receiver
from subscriber.errors import ForeignCallback
from subscriber.events import decode_event
from subscriber.influence import (
    PIN_DIR,
    STATE_FILE,
    CallbackRegistry,
    InfluenceRecord,
    InfluenceRegistry,
    InfluenceStore,
    new_callback_key,
    normalize_influence_callback,
    pin_id,
    pin_notif_id,
    record_name,
)
from subscriber.ingress.subscriptions import SubscriptionRegistry, registry_for
from subscriber.settings import Settings
from tests.support.callbacks import VECTORS
from tests.support.kafka import read_all


def _record(instance: str = "ue1", key: str | None = None) -> InfluenceRecord:
    return InfluenceRecord(
        name=record_name("video-analytics", instance),
        callback_key=key or new_callback_key(),
        ue="imsi-208930000000001",
        app="video-analytics",
        instance=instance,
        api_root="http://nef",
        resource_uri="http://nef/3gpp-traffic-influence/v1/af/subscriptions/7",
    )


def test_keys_are_long_random_and_url_safe() -> None:
    """Callback keys carry 192 random bits in 32 URL-safe characters, never twice the same."""
    keys = {new_callback_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(len(k) == 32 and k.replace("-", "").replace("_", "").isalnum() for k in keys)


def test_the_registry_binds_a_key_to_its_ue_and_app(tmp_path: Path) -> None:
    """The receiver finds a record by its key, with the UE, the app and the NEF subscription."""
    store, registry = InfluenceStore(tmp_path), InfluenceRegistry(tmp_path)
    record = _record()
    store.save(record)
    binding = registry.binding(record.callback_key)
    assert binding is not None
    assert (binding.ue, binding.app, binding.instance) == (
        "imsi-208930000000001",
        "video-analytics",
        "ue1",
    )
    assert binding.subscription_id == "7"
    assert binding.af_trans_id == binding.name == "ti.video-analytics.ue1"
    assert registry.binding("guessed") is None
    assert registry.binding(record.name) is None  # the name is no key


def test_a_new_key_retires_the_old_one_and_its_pin(tmp_path: Path) -> None:
    """Saving a record under a new key makes the old key unknown and drops its pin."""
    store, registry = InfluenceStore(tmp_path), InfluenceRegistry(tmp_path)
    old = _record()
    store.save(old)
    assert pin_notif_id(tmp_path / PIN_DIR, pin_id(old.callback_key), "3") == "3"
    new = _record(key=new_callback_key())
    store.save(new)
    assert registry.binding(old.callback_key) is None
    assert registry.binding(new.callback_key) is not None
    assert not (tmp_path / PIN_DIR / pin_id(old.callback_key)).exists()
    store.remove(new.name)
    assert registry.binding(new.callback_key) is None
    assert store.get("video-analytics", "ue1") is None


def test_an_unreadable_file_keeps_the_keys_and_is_not_ready(tmp_path: Path) -> None:
    """A damaged file leaves the known keys in place and says so through is_ready."""
    store, registry = InfluenceStore(tmp_path), InfluenceRegistry(tmp_path)
    record = _record()
    store.save(record)
    assert registry.binding(record.callback_key) is not None
    (tmp_path / STATE_FILE).write_bytes(b'{"records": [{"name": 1')
    os.utime(tmp_path / STATE_FILE, ns=(1, 1))
    assert not registry.is_ready()
    assert registry.binding(record.callback_key) is not None
    store.save(record)  # the worker writes it again
    assert registry.is_ready()


def test_the_first_notif_id_wins(tmp_path: Path) -> None:
    """A pin keeps the first notifId; an over-long one is never pinned."""
    pins = tmp_path / PIN_DIR
    assert pin_notif_id(pins, "p", "1") == "1"
    assert pin_notif_id(pins, "p", "2") == "1"
    assert pin_notif_id(pins, "q", "x" * 257) == ""
    assert not (pins / "q").exists()
    assert [p.name for p in pins.iterdir()] == ["p"]  # no temporary file left behind


def _pin(args: tuple[str, str]) -> str:
    pins, value = args
    return pin_notif_id(Path(pins), "race", value)


def _save(args: tuple[str, str]) -> None:
    state, instance = args
    InfluenceStore(Path(state)).save(_record(instance))


def test_racing_processes_agree_on_one_pin(tmp_path: Path) -> None:
    """Receiver processes pinning at once all read back the same single notifId."""
    with multiprocessing.get_context("fork").Pool(4) as pool:
        got = pool.map(_pin, [(str(tmp_path), str(n)) for n in range(16)])
    assert len(set(got)) == 1


def test_concurrent_writers_lose_no_record(tmp_path: Path) -> None:
    """Worker processes saving at once, under the lock, all keep their record."""
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_save, [(str(tmp_path), f"ue{n}") for n in range(24)])
    assert sorted(r.instance for r in InfluenceStore(tmp_path).all()) == sorted(
        f"ue{n}" for n in range(24)
    )


def test_the_store_sets_a_damaged_file_aside(tmp_path: Path) -> None:
    """The worker keeps working past a damaged file, which it keeps for a person to read."""
    (tmp_path / STATE_FILE).write_bytes(b'{"records": [{"name": 1')
    store = InfluenceStore(tmp_path)
    assert store.get("video-analytics", "ue1") is None
    assert (
        next(tmp_path.glob("traffic-influence.json.invalid-*"))
        .read_bytes()
        .startswith(b'{"records"')
    )
    store.save(_record())
    assert [r.instance for r in store.all()] == ["ue1"]


LATE = (VECTORS / "d3-smf-up-path-ch-late.json").read_bytes()
NOW = datetime(2026, 7, 1, 8, 15, tzinfo=UTC)


def _registry(tmp_path: Path) -> tuple[CallbackRegistry, InfluenceRecord]:
    record = _record()
    InfluenceStore(tmp_path).save(record)
    subscriptions = SubscriptionRegistry(tmp_path)
    return CallbackRegistry(subscriptions, InfluenceRegistry(tmp_path)), record


def test_a_forwarded_smf_notification_carries_the_ue_and_the_app(tmp_path: Path) -> None:
    """free5GC's body names no UE; the event has the record's SUPI and app instance."""
    registry, record = _registry(tmp_path)
    binding = registry.binding("ti", record.callback_key)
    assert binding is not None
    (written,) = normalize_influence_callback(LATE, binding, NOW)
    event = decode_event(written.value)
    assert event.ue.supi == "imsi-208930000000001"
    assert event.ue.session_ref is None
    assert event.dnai_change is not None
    assert (event.dnai_change.app, event.dnai_change.instance) == ("video-analytics", "ue1")
    assert (event.dnai_change.change_type, event.dnai_change.target_dnai) == ("LATE", "mec")
    assert event.source.subscription_id == "7"


def test_a_second_notif_id_on_a_key_is_foreign(tmp_path: Path) -> None:
    """The first notifId on a key is pinned; a body with another is refused whole."""
    registry, record = _registry(tmp_path)
    binding = registry.binding("ti", record.callback_key)
    assert binding is not None
    normalize_influence_callback(LATE, binding, NOW)
    normalize_influence_callback(LATE, binding, NOW)  # the same notifId again: fine
    other = LATE.replace(b'"notifId":"1"', b'"notifId":"2"')
    with pytest.raises(ForeignCallback) as caught:
        normalize_influence_callback(other, binding, NOW)
    assert [p.param for p in caught.value.invalid_params] == ["/notifId"]


def test_a_spec_notification_must_echo_our_transaction(tmp_path: Path) -> None:
    """The specification's shape with our afTransId is taken; with another, refused."""
    registry, record = _registry(tmp_path)
    binding = registry.binding("ti", record.callback_key)
    assert binding is not None
    spec = {
        "afTransId": record.name,
        "subscribedEvent": "UP_PATH_CHANGE",
        "dnaiChgType": "LATE",
        "targetTrafficRoute": {"dnai": "mec-tower-2"},
    }
    (written,) = normalize_influence_callback(orjson.dumps(spec), binding, NOW)
    event = decode_event(written.value)
    assert event.dnai_change is not None
    assert event.dnai_change.target_dnai == "mec-tower-2"
    assert event.event_time == NOW
    with pytest.raises(ForeignCallback):
        normalize_influence_callback(
            orjson.dumps({**spec, "afTransId": "ti.other.x"}), binding, NOW
        )


def test_keys_are_bound_per_kind_and_die_with_their_record(tmp_path: Path) -> None:
    """A ti key is unknown under another kind, a guessed key is unknown, a removed one too."""
    registry, record = _registry(tmp_path)
    assert registry.binding("smf", record.callback_key) is None
    assert registry.binding("ti", new_callback_key()) is None
    assert registry.is_ready()
    InfluenceStore(tmp_path).remove(record.name)
    assert registry.binding("ti", record.callback_key) is None


@pytest.mark.stack
async def test_the_receiver_takes_ours_and_refuses_the_rest(stack_settings: Settings) -> None:
    """Through the real receiver over h2c: 204 and an event with the UE on Kafka for our key,
    404 for a key we do not hold, 400 for another subscription's notifId."""
    settings = stack_settings.model_copy(
        update={"receiver": stack_settings.receiver.model_copy(update={"port": 0})}
    )
    record = _record()
    InfluenceStore(settings.core.state_dir).save(record)
    async with (
        serving_receiver(settings, registry=registry_for(settings)) as served,
        httpx.AsyncClient(http2=True, http1=False, timeout=30) as http,
    ):
        base = f"{served.url}/callbacks/ti"
        headers = {"content-type": "application/json"}
        ours = await http.post(f"{base}/{record.callback_key}", content=LATE, headers=headers)
        guessed = await http.post(f"{base}/{new_callback_key()}", content=LATE, headers=headers)
        foreign = await http.post(
            f"{base}/{record.callback_key}",
            content=LATE.replace(b'"notifId":"1"', b'"notifId":"9"'),
            headers=headers,
        )
    assert (ours.status_code, guessed.status_code, foreign.status_code) == (204, 404, 400)
    assert guessed.headers["content-type"] == "application/problem+json"
    assert foreign.json()["invalidParams"][0]["param"] == "/notifId"
    kafka = settings.kafka
    (record_,) = await read_all(kafka.bootstrap_servers, kafka.events_topic, 1)
    event = decode_event(record_.value)
    assert event.ue.supi == record.ue
    assert event.dnai_change is not None
    assert event.dnai_change.instance == "ue1"
