"""Tests for replay: scheduling, and round trips through the real Kafka and the real receiver."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from subscriber.app.receiver import serving_receiver
from subscriber.cli import main
from subscriber.decide.engine import read_bundle
from subscriber.errors import SubscriberError
from subscriber.events import decode_event
from subscriber.settings import Settings
from subscriber.sre.record import record_capture, record_kafka
from subscriber.sre.recording import Item, RawCallback, RecordingWriter, read_items
from subscriber.sre.replay import Selection, parse_speed, replay_file, schedule
from subscriber.sre.simulate import Mobility, simulate, to_recording
from tests.support.events import TOPOLOGY
from tests.support.kafka import create_topic, produce_events, read_all
from tests.support.registry import StaticRegistry
from tests.support.scenario import UE1, UE2, event


def _items(*spec: tuple[float, str]) -> list[Item]:
    return [Item(t, ue, event=b"{}") for t, ue in spec]


def test_schedule_offsets_from_the_first_kept_item() -> None:
    """Offsets are recorded time since the first item kept by the window and UE filter."""
    items = _items((10, "a"), (11, "b"), (12, "a"), (15, "b"), (20, "a"))
    window = Selection(start_s=11, end_s=15, ues=frozenset({"a", "b"}))
    plan = list(schedule(lambda: items, window))
    assert [(o, i.t) for o, i in plan] == [(0, 11), (1, 12), (4, 15)]
    only_a = list(schedule(lambda: items, Selection(ues=frozenset({"a"}))))
    assert [(o, i.t) for o, i in only_a] == [(0, 10), (2, 12), (10, 20)]


def test_loops_play_the_recording_again_one_span_later() -> None:
    """Each loop starts one recorded span plus a second after the previous one."""
    items = _items((0, "a"), (2, "a"))
    opened = []

    def open_items() -> list[Item]:
        opened.append(1)
        return items

    plan = list(schedule(open_items, Selection(loops=3)))
    assert [o for o, _ in plan] == [0, 2, 3, 5, 6, 8]
    assert len(opened) == 3  # streamed: read again for each loop, never held whole


def test_items_out_of_time_order_go_out_at_once_in_file_order() -> None:
    """An item older than the first one gets a past offset: no wait, no reordering."""
    items = _items((10, "a"), (8, "a"), (12, "a"))
    assert [(o, i.t) for o, i in schedule(lambda: items, Selection())] == [
        (0, 10),
        (-2, 8),
        (2, 12),
    ]


def test_speed_words() -> None:
    """'max' and 0 mean no wait; a negative speed is refused."""
    assert parse_speed("max") == parse_speed("0") == 0.0
    assert parse_speed("10") == 10.0
    with pytest.raises(SubscriberError):
        parse_speed("-1")


async def test_a_recording_goes_only_where_it_fits(tmp_path: Path) -> None:
    """Events go to Kafka only, raw callbacks to a receiver only."""
    events, callbacks = tmp_path / "e.jsonl.gz", tmp_path / "c.jsonl.gz"
    with RecordingWriter(events, kind="events", source={}) as w:
        w.write(Item(0, "u", event=b"{}"))
    with RecordingWriter(callbacks, kind="callbacks", source={}) as w:
        w.write(Item(0, "u", callback=RawCallback("/callbacks/amf/x", b"{}")))
    with pytest.raises(SubscriberError, match="only be replayed to Kafka"):
        await replay_file(events, to="receiver", selection=Selection(), speed=0, url="http://x")
    with pytest.raises(SubscriberError, match="only be replayed to a receiver"):
        await replay_file(callbacks, to="kafka", selection=Selection(), speed=0)


def _by_ue(values: list[bytes]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for value in values:
        ev = decode_event(value)
        out.setdefault(ev.ue.key(), []).append(ev.event_id)
    return out


@pytest.mark.stack
@pytest.mark.parametrize("speed", ["1", "max"])
async def test_record_then_replay_to_kafka_keeps_every_event_and_each_ues_order(
    stack_settings: Settings, tmp_path: Path, unique: str, speed: str
) -> None:
    """Kafka -> recording -> Kafka gives the same events, in the same order per UE."""
    bootstrap = stack_settings.kafka.bootstrap_servers
    source, target = stack_settings.kafka.events_topic, f"replayed-{unique}"
    await create_topic(bootstrap, source, 3)
    await create_topic(bootstrap, target, 3)
    ues = [f"imsi-2089300000000{n:02d}" for n in range(6)]
    events = [event(i, ues[i % 6], "za" if i % 4 else "zb") for i in range(30)]
    # Record timestamps 50 ms apart: the recording spans 1.45 s, so x1 takes that long.
    base_ms = int(datetime.now(UTC).timestamp() * 1000) - 60_000
    await produce_events(bootstrap, source, events, [base_ms + 50 * i for i in range(30)])

    path = tmp_path / "rec.jsonl.gz"
    header = await record_kafka(bootstrap, source, path)
    assert header.count == 30
    assert header.source == {"type": "kafka", "topic": source, "bootstrap": bootstrap}
    assert header.span_s == pytest.approx(1.45)

    summary = await replay_file(
        path,
        to="kafka",
        selection=Selection(),
        speed=parse_speed(speed),
        bootstrap=bootstrap,
        topic=target,
    )
    assert (summary.sent, summary.accepted, summary.rejected) == (30, 30, 0)
    if speed == "1":
        assert summary.elapsed_s >= 1.45  # paced: it sleeps at least the recorded gaps

    records = await read_all(bootstrap, target, 30)
    assert len(records) == 30
    expected = _by_ue([e.model_dump_json(exclude_none=True).encode() for e in events])
    assert _by_ue([r.value for r in records]) == expected
    assert all(r.key == decode_event(r.value).partition_key() for r in records)


@pytest.mark.stack
@pytest.mark.parametrize("http", ["2", "1.1"])
async def test_raw_callbacks_replayed_to_a_real_receiver_are_published_in_order(
    stack_settings: Settings, tmp_path: Path, http: str
) -> None:
    """Simulated callbacks replayed over h2c (or HTTP/1.1) are all accepted and published in
    per-UE order; the receiver's capture, recorded again, holds the same callbacks."""
    settings = stack_settings.model_copy(
        update={
            "receiver": stack_settings.receiver.model_copy(
                update={"capture_dir": tmp_path / "capture"}
            )
        }
    )
    bootstrap = settings.kafka.bootstrap_servers
    await create_topic(bootstrap, settings.kafka.events_topic, 3)
    params = Mobility(ues=5, duration_s=120, oscillation_p=0.5)
    moves = simulate(read_bundle(TOPOLOGY).topology, params, 21)
    path = tmp_path / "callbacks.jsonl.gz"
    start = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    to_recording(
        path, moves, params, start=start, correlation_id="sim-1", callbacks=True, source={}
    )
    _, items = read_items(path)

    async with serving_receiver(settings, registry=StaticRegistry([("amf", "sim-1")])) as served:
        url = served.url
        summary = await replay_file(
            path,
            to="receiver",
            selection=Selection(),
            speed=0,
            url=url,
            http2=http == "2",
            concurrency=4,
        )
    assert (summary.sent, summary.accepted, summary.rejected) == (len(moves), len(moves), 0)
    assert summary.statuses == {"204": len(moves)}

    records = await read_all(bootstrap, settings.kafka.events_topic, len(moves))
    published: dict[str, list[str]] = {}
    for r in records:
        ev = decode_event(r.value)
        assert ev.location is not None
        published.setdefault(ev.ue.key(), []).append(f"{ev.event_time} {ev.location.cell_id}")
    wanted: dict[str, list[str]] = {}
    for item in items:
        doc = orjson.loads(item.callback.body if item.callback else b"")
        report = doc["reportList"][0]
        at = datetime.fromisoformat(report["timeStamp"].replace("Z", "+00:00"))
        cell = report["location"]["nrLocation"]["ncgi"]["nrCellId"]
        wanted.setdefault(report["supi"], []).append(f"{at} {cell}")
    assert published == wanted

    again = tmp_path / "again.jsonl.gz"
    header = record_capture([tmp_path / "capture"], again)
    assert header.count == len(moves)
    _, captured = read_items(again)
    by_ue: dict[str, list[bytes]] = {}
    for item in captured:
        assert item.callback is not None
        assert item.callback.path == "/callbacks/amf/sim-1"
        by_ue.setdefault(item.ue, []).append(item.callback.body)
    assert by_ue == {
        ue: [i.callback.body for i in items if i.ue == ue and i.callback] for ue in by_ue
    }


@pytest.mark.stack
async def test_the_replay_command_prints_a_summary_and_exits_0(
    stack_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``subscriber replay --to kafka --ue`` sends one UE's events and says so."""
    path = tmp_path / "rec.jsonl.gz"
    with RecordingWriter(path, kind="events", source={}) as w:
        for i, ue in enumerate([UE1, UE2, UE1]):
            ev = event(i, ue, "za")
            w.write(Item(float(i), ue, event=ev.model_dump_json().encode()))
    summary_file = tmp_path / "summary.json"
    argv = ["replay", str(path), "--to", "kafka", "--speed", "max", "--ue", UE1]
    argv += ["--json", str(summary_file), "--no-progress"]
    import os

    env = {
        "SUBSCRIBER_KAFKA__BOOTSTRAP_SERVERS": stack_settings.kafka.bootstrap_servers,
        "SUBSCRIBER_KAFKA__EVENTS_TOPIC": stack_settings.kafka.events_topic,
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import asyncio

        code = await asyncio.to_thread(main, argv)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert code == 0
    assert "sent 2, accepted 2, rejected 0" in capsys.readouterr().out
    assert orjson.loads(summary_file.read_bytes())["accepted"] == 2


@pytest.mark.stack
async def test_simulated_notifications_reach_a_real_receiver(
    stack_settings: Settings, tmp_path: Path
) -> None:
    """``simulate --to receiver`` posts one accepted LOCATION_REPORT per move over h2c."""
    from subscriber.sre.simulate import to_receiver

    bootstrap = stack_settings.kafka.bootstrap_servers
    await create_topic(bootstrap, stack_settings.kafka.events_topic, 1)
    params = Mobility(ues=3, duration_s=60)
    moves = simulate(read_bundle(TOPOLOGY).topology, params, 2)
    async with serving_receiver(
        stack_settings, registry=StaticRegistry([("amf", "sim-9")])
    ) as served:
        url = served.url
        accepted = await to_receiver(url, moves, params, 0, "sim-9")
    assert accepted == len(moves)
    records = await read_all(bootstrap, stack_settings.kafka.events_topic, len(moves))
    cells = [decode_event(r.value).location for r in records]
    assert [c.cell_id for c in cells if c] == [m.cell.cell_id for m in moves]


@pytest.mark.parametrize("speed", ["abc", "-1", "inf", "nan"])
def test_a_bad_speed_is_one_clear_error(speed: str) -> None:
    """Anything but 0/max or a positive finite factor is refused with the value named."""
    with pytest.raises(SubscriberError, match="--speed"):
        parse_speed(speed)
