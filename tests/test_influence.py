"""The traffic-influence records the worker writes and the receiver reads, and notifId pins."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from subscriber.influence import (
    PIN_DIR,
    STATE_FILE,
    InfluenceRecord,
    InfluenceRegistry,
    InfluenceStore,
    new_callback_key,
    pin_id,
    pin_notif_id,
    record_name,
)


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
    assert (tmp_path / "traffic-influence.damaged").read_bytes().startswith(b'{"records"')
    store.save(_record())
    assert [r.instance for r in store.all()] == ["ue1"]
