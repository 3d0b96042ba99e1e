"""Tests for the recording file format and for reading the receiver's capture files."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from subscriber.ingress.receiver import CaptureWriter
from subscriber.sre.recording import (
    BadRecording,
    Item,
    RawCallback,
    RecordingWriter,
    callback_ue_key,
    open_recording,
    read_items,
)
from tests.support.scenario import UE1, script_events


def test_events_round_trip_with_a_header_written_last(tmp_path: Path) -> None:
    """Items come back as written; the header counts them and spans their times."""
    path = tmp_path / "r.jsonl.gz"
    events = script_events()
    with RecordingWriter(path, kind="events", source={"type": "kafka", "topic": "t"}) as w:
        for ev in events:
            w.write(
                Item(ev.event_time.timestamp(), ev.ue.key(), event=ev.model_dump_json().encode())
            )
    header, items = read_items(path)
    assert header.kind == "events"
    assert header.count == len(events)
    assert header.source == {"type": "kafka", "topic": "t"}
    assert header.start == events[0].event_time
    assert header.end == events[-1].event_time
    assert header.schema_version == 1
    assert [orjson.loads(i.event or b"")["event_id"] for i in items] == [e.event_id for e in events]
    assert not list(tmp_path.glob(".*.body"))


def test_the_file_is_plain_gzip_with_the_header_first(tmp_path: Path) -> None:
    """Any gzip reader sees the header line first, then one JSON object per line."""
    path = tmp_path / "r.jsonl.gz"
    with RecordingWriter(path, kind="callbacks", source={}) as w:
        w.write(Item(1.5, "u", callback=RawCallback("/callbacks/amf/k", b'{"a":1}')))
    lines = gzip.decompress(path.read_bytes()).splitlines()
    assert orjson.loads(lines[0])["format"] == "subscriber-recording"
    assert orjson.loads(lines[1]) == {
        "t": 1.5,
        "ue": "u",
        "callback": {
            "method": "POST",
            "path": "/callbacks/amf/k",
            "content_type": "application/json",
            "body": '{"a":1}',
        },
    }


def test_binary_bodies_survive_as_base64(tmp_path: Path) -> None:
    """A body that is not UTF-8 is kept byte for byte."""
    path = tmp_path / "r.jsonl.gz"
    with RecordingWriter(path, kind="callbacks", source={}) as w:
        w.write(Item(0.0, "u", callback=RawCallback("/callbacks/amf/k", b"\xff\xfe", None)))
    _, (item,) = read_items(path)
    assert item.callback == RawCallback("/callbacks/amf/k", b"\xff\xfe", None)


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    """An exception inside the writer's block removes the partial body and writes no file."""
    path = tmp_path / "r.jsonl.gz"

    def fail() -> None:
        with RecordingWriter(path, kind="events", source={}) as w:
            w.write(Item(0.0, "u", event=b"{}"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    assert list(tmp_path.iterdir()) == []


def test_items_of_the_wrong_kind_are_refused(tmp_path: Path) -> None:
    """An events recording does not take a callback."""
    writer = RecordingWriter(tmp_path / "r.jsonl.gz", kind="events", source={})
    with pytest.raises(ValueError, match="events recording"):
        writer.write(Item(0.0, "u", callback=RawCallback("/p", b"")))
    writer.abort()


def test_receiver_capture_files_read_as_callback_recordings(tmp_path: Path) -> None:
    """The receiver's own capture writer produces files replay reads directly, UE-keyed."""
    capture = CaptureWriter(tmp_path)
    body = orjson.dumps({"notifyCorrelationId": "k", "reportList": [{"supi": UE1}]})
    request = {
        "method": "POST",
        "path": "/callbacks/amf/k",
        "http_version": "2",
        "headers": [("content-type", "application/json"), ("authorization", "Bearer x")],
    }
    at = datetime(2026, 7, 1, 8, 0, 1, 500000, tzinfo=UTC)
    capture.write(**request, body=body, received_at=at)
    capture.close()
    with open_recording(capture.path) as rec:
        assert rec.header.kind == "callbacks"
        assert rec.header.source == {"type": "receiver capture"}
        (item,) = list(rec)
    assert item.ue == UE1
    assert item.t == at.timestamp()
    assert item.callback is not None
    assert item.callback.body == body
    assert item.callback.content_type == "application/json"
    assert ("authorization", "Bearer x") not in item.callback.headers


def test_the_ue_key_of_a_callback_falls_back_to_its_path() -> None:
    """SUPI, else GPSI or external id, else the callback path keeps order."""
    assert callback_ue_key(b'{"reportList":[{"gpsi":"msisdn-1"}]}', "/p") == "msisdn-1"
    nef = b'{"monitoringEventReports":[{"externalId":"ue1@x"}]}'
    assert callback_ue_key(nef, "/p") == "ue1@x"
    assert callback_ue_key(b"not json", "/callbacks/smf/1") == "/callbacks/smf/1"


def test_other_files_are_refused(tmp_path: Path) -> None:
    """A JSON file that is neither a recording nor a capture, or a newer format, is refused."""
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}\n')
    with pytest.raises(BadRecording, match="neither"):
        open_recording(other)
    newer = tmp_path / "newer.jsonl"
    newer.write_text('{"format": "subscriber-recording", "version": 99, "kind": "events"}\n')
    with pytest.raises(BadRecording, match="v99"):
        open_recording(newer)
    with pytest.raises(BadRecording, match="cannot read"):
        open_recording(tmp_path / "missing.jsonl.gz")


def _write_lines(path: Path, lines: list[bytes]) -> None:
    import gzip

    header = b'{"format": "subscriber-recording", "version": 1, "kind": "events", "count": 2}'
    path.write_bytes(gzip.compress(b"\n".join([header, *lines]) + b"\n"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json", r"rec\.jsonl\.gz:3: not JSON"),
        (b"[1, 2]", r"rec\.jsonl\.gz:3: not an item: expected a JSON object"),
        (b'{"t": 1, "ue": "u"}', r"rec\.jsonl\.gz:3: callback: missing"),
        (b'{"ue": "u", "event": {}}', r"rec\.jsonl\.gz:3: t: missing"),
    ],
)
def test_a_broken_line_is_named_by_file_and_line(tmp_path: Path, line: bytes, message: str) -> None:
    """Each way a line can be broken gives one message with the file, the line and the field."""
    path = tmp_path / "rec.jsonl.gz"
    good = b'{"t": 1, "ue": "u", "event": {}}'
    _write_lines(path, [good, line])
    with pytest.raises(BadRecording, match=message):
        read_items(path)


def test_shadow_names_the_line_and_field_of_an_event_that_does_not_decode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An event with a broken field stops shadow with one line naming file:line and the field."""
    from subscriber.cli import main
    from tests.support.scenario import write_files

    files = write_files(tmp_path)
    path = tmp_path / "rec.jsonl.gz"
    _write_lines(path, [b'{"t": 1, "ue": "u", "event": {"event_id": "x"}}'])
    argv = ["shadow", str(path), "--policy", str(files["guarded"]), "--topology"]
    assert main([*argv, str(files["topology"]), "--workers", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"{path}:2: event: not a LocationEvent v1: " in err[0]
    assert "ue: Field required" in err[0]


def test_a_truncated_recording_says_so(tmp_path: Path) -> None:
    """A gzip cut short is reported as truncated after the last whole line, not a traceback."""
    path = tmp_path / "rec.jsonl.gz"
    _write_lines(path, [b'{"t": 1, "ue": "u", "event": {}}'] * 200)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(BadRecording, match="ends or breaks after line"):
        read_items(path)
