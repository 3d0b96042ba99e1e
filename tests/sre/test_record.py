"""Tests for recording from Kafka (windows, offsets, filters) and from capture files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from subscriber.errors import SubscriberError
from subscriber.events import decode_event
from subscriber.settings import Settings
from subscriber.sre.record import EventFilter, record_kafka
from subscriber.sre.recording import read_items
from tests.support.kafka import create_topic, produce_events
from tests.support.scenario import UE1, UE2, event


def test_the_ue_filter_matches_supi_gpsi_or_key() -> None:
    """An event is kept when any of its identities is listed."""
    ev = event(0, UE1, "za")
    assert EventFilter(ues=frozenset({UE1})).keeps(ev)
    assert not EventFilter(ues=frozenset({UE2})).keeps(ev)
    assert EventFilter().keeps(ev)


@pytest.mark.parametrize(
    ("cells", "kept"),
    [
        ({"000000010"}, True),
        ({"000001:000000010"}, True),
        ({"000001:"}, True),
        ({"000002:"}, False),
        ({"000000020"}, False),
    ],
)
def test_the_cell_filter_takes_a_cell_a_tac_and_cell_or_a_whole_area(
    cells: set[str], kept: bool
) -> None:
    """``CELL``, ``TAC:CELL`` and ``TAC:`` all select the za cell (TAC 000001)."""
    assert EventFilter(cells=frozenset(cells)).keeps(event(0, UE1, "za")) is kept


def test_an_event_without_a_location_never_passes_a_cell_filter() -> None:
    """A cell filter drops events that carry no cell."""
    ev = event(0, UE1, "za").model_copy(update={"location": None})
    assert not EventFilter(cells=frozenset({"000001:"})).keeps(ev)


@pytest.mark.stack
async def test_windows_offsets_and_filters_select_what_is_recorded(
    stack_settings: Settings, tmp_path: Path
) -> None:
    """--since/--until use record timestamps, --offsets are per partition, filters combine."""
    bootstrap, topic = stack_settings.kafka.bootstrap_servers, stack_settings.kafka.events_topic
    await create_topic(bootstrap, topic, 1)
    events = [event(i, UE1 if i % 2 else UE2, "za" if i < 6 else "zb") for i in range(10)]
    # Recent timestamps: time-based retention would delete a segment of old ones.
    base_ms = int(datetime.now(UTC).timestamp() * 1000) - 60_000
    await produce_events(bootstrap, topic, events, [base_ms + 1000 * i for i in range(10)])

    async def ids(**kwargs: object) -> list[str]:
        path = tmp_path / "r.jsonl.gz"
        await record_kafka(bootstrap, topic, path, **kwargs)  # type: ignore[arg-type]
        _, items = read_items(path)
        return [decode_event(i.event or b"").event_id for i in items]

    everything = [e.event_id for e in events]
    assert await ids() == everything
    assert (
        await ids(since_s=(base_ms + 3000) / 1000, until_s=(base_ms + 5000) / 1000)
        == (everything[3:6])
    )
    assert await ids(start_offset=2, end_offset=4) == everything[2:4]
    assert await ids(keep=EventFilter(ues=frozenset({UE1}))) == everything[1::2]
    both = EventFilter(ues=frozenset({UE1}), cells=frozenset({"000002:"}))
    assert await ids(keep=both) == [everything[7], everything[9]]
    header, _ = read_items(tmp_path / "r.jsonl.gz")
    assert header.start == datetime.fromtimestamp((base_ms + 7000) / 1000, UTC)


@pytest.mark.stack
async def test_a_missing_topic_is_an_error(
    stack_settings: Settings, tmp_path: Path, unique: str
) -> None:
    """Recording a topic that does not exist says so and writes nothing."""
    with pytest.raises(SubscriberError, match="does not exist"):
        await record_kafka(
            stack_settings.kafka.bootstrap_servers, f"missing-{unique}", tmp_path / "r.jsonl.gz"
        )
    assert _recordings(tmp_path) == []


def _recordings(directory: Path) -> list[Path]:
    return list(directory.glob("*.jsonl.gz"))


def test_the_command_turns_capture_files_into_a_recording(tmp_path: Path) -> None:
    """``subscriber record --from-capture DIR --ue`` keeps one UE's callbacks in receive order."""
    import orjson

    from subscriber.cli import main
    from subscriber.ingress.receiver import CaptureWriter
    from subscriber.sre.simulate import RadioCell, location_report

    capture = CaptureWriter(tmp_path / "capture")
    cell = RadioCell("20893", "000001", "000000010", "za")
    request = {
        "method": "POST",
        "path": "/callbacks/amf/c1",
        "http_version": "2",
        "headers": [("content-type", "application/json")],
    }
    for i, ue in enumerate([UE1, UE2, UE1]):
        at = datetime(2026, 7, 1, 8, 0, i, tzinfo=UTC)
        capture.write(**request, body=location_report(ue, cell, at, "c1"), received_at=at)
    capture.close()
    out = tmp_path / "core.jsonl.gz"
    argv = ["record", "-o", str(out), "--from-capture", str(tmp_path / "capture"), "--ue", UE1]
    assert main(argv) == 0
    header, items = read_items(out)
    assert header.kind == "callbacks"
    assert header.count == 2
    assert [i.ue for i in items] == [UE1, UE1]
    assert [
        orjson.loads(i.callback.body)["reportList"][0]["timeStamp"] for i in items if i.callback
    ] == [
        "2026-07-01T08:00:00Z",
        "2026-07-01T08:00:02Z",
    ]
