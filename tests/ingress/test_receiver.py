"""Tests for the callback receiver, served by real granian, publishing to the real Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import signal
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from structlog.testing import capture_logs

from subscriber.app.receiver import serving_receiver
from subscriber.events import LocationEvent, NfType, decode_event
from subscriber.ingress.normalize import Binding
from subscriber.ingress.publisher import Publisher
from subscriber.ingress.receiver import (
    BodyDeadlines,
    Callback,
    Normalizer,
    Receiver,
    default_normalizers,
)
from subscriber.settings import Settings
from subscriber.stack.state import read_state
from subscriber.stack.supervisor import start_service, stop_service
from tests.support.kafka import read_all
from tests.support.processes import serving as serving_process
from tests.support.registry import KNOWN, StaticRegistry

VECTORS = Path(__file__).parent.parent / "vectors"
JSON = {"content-type": "application/json"}
NEF_LINK = "http://nef.example/3gpp-monitoring-event/v1/af-1/subscriptions/sub-7"


def amf_body(ue: int = 1, seq: int = 16, tac: str = "000001") -> bytes:
    """free5GC's D1 report wrapped as a notification, for UE ``ue``, its ``seq``-th cell."""
    doc = orjson.loads((VECTORS / "d1-amf-notification-location.json").read_bytes())
    report = doc["reportList"][0]
    report["supi"] = f"imsi-20893{ue:010d}"
    nr = report["location"]["nrLocation"]
    nr["ncgi"]["nrCellId"] = f"{seq:09x}"
    nr["tai"]["tac"] = tac
    nr["ueLocationTimestamp"] = f"2026-07-01T08:14:{seq % 60:02d}.{seq:06d}Z"
    return orjson.dumps(doc)


SMF_BODY = (VECTORS / "d3-smf-up-path-ch-early.json").read_bytes()
NEF_BODY = orjson.dumps(
    {
        "subscription": NEF_LINK,
        "monitoringEventReports": [
            {
                "monitoringType": "LOCATION_REPORTING",
                "externalId": "ue1@example.com",
                "eventTime": "2026-07-01T08:15:30.123456789Z",
                "locationInfo": {
                    "plmnId": "208-93",
                    "trackingAreaId": "00000A",
                    "cellId": "00000001F",
                },
            }
        ],
    }
)


@contextlib.asynccontextmanager
async def serving(
    settings: Settings,
    *,
    normalizers: Mapping[str, Normalizer] | None = None,
    tls: tuple[Path, Path] | None = None,
) -> AsyncIterator[tuple[str, Receiver, Publisher]]:
    """Our app in-process (the composition root's receiver) on a free port, with its publisher."""
    tls_files = {"tls_cert": tls[0], "tls_key": tls[1]} if tls is not None else {}
    receiver = settings.receiver.model_copy(update={"port": 0, **tls_files})
    settings = settings.model_copy(update={"receiver": receiver})
    registry = StaticRegistry(KNOWN)
    async with serving_receiver(settings, registry=registry, normalizers=normalizers) as served:
        yield served.url, served.app, served.app.publisher  # type: ignore[misc]


def client(transport: str) -> httpx.AsyncClient:
    """h2c with prior knowledge (what free5GC sends) or plain HTTP/1.1."""
    if transport == "h2c":
        return httpx.AsyncClient(http2=True, http1=False, timeout=30)
    return httpx.AsyncClient(timeout=30)


def _offline(settings: Settings, tmp_path: Path, spool_max_bytes: int) -> Settings:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"bootstrap_servers": closed, "publish_timeout_ms": 500}
            ),
            "receiver": settings.receiver.model_copy(
                update={"spool_dir": tmp_path / "spool", "spool_max_bytes": spool_max_bytes}
            ),
        }
    )


@pytest.mark.stack
@pytest.mark.parametrize("transport", ["h2c", "http1"])
async def test_each_kind_is_accepted_and_its_event_is_on_kafka(
    stack_settings: Settings, transport: str
) -> None:
    """AMF, SMF and NEF callbacks get 204 and their normalized events are on the topic."""
    async with serving(stack_settings) as (base, _, _), client(transport) as http:
        answers = [
            await http.post(f"{base}/callbacks/amf/loc-1", content=amf_body(), headers=JSON),
            await http.post(f"{base}/callbacks/smf/1", content=SMF_BODY, headers=JSON),
            await http.post(f"{base}/callbacks/nef/sub-7", content=NEF_BODY, headers=JSON),
        ]
    assert [a.status_code for a in answers] == [204, 204, 204]
    assert {a.http_version for a in answers} == {"HTTP/2" if transport == "h2c" else "HTTP/1.1"}
    records = await read_all(
        stack_settings.kafka.bootstrap_servers, stack_settings.kafka.events_topic, 3
    )
    events = [decode_event(r.value) for r in records]
    assert [e.source.nf_type for e in events] == [NfType.AMF, NfType.SMF, NfType.NEF]
    assert [r.key for r in records] == [
        b"imsi-208930000000001",
        b"smf-notif:1",
        b"extid-ue1@example.com",
    ]
    assert events[0].location is not None
    assert events[0].location.cell_id == "000000010"
    assert events[1].dnai_change is not None
    assert events[1].dnai_change.target_dnai == "mec"


@pytest.mark.stack
async def test_serve_runs_two_workers_on_one_port(stack_settings: Settings, tmp_path: Path) -> None:
    """'subscriber serve' with two workers takes h2c and HTTP/1.1 on one port and publishes."""
    async with serving_process(stack_settings, tmp_path / "serve.log", workers=2) as served:
        async with client("h2c") as h2c, client("http1") as http1:
            base = served.base
            first = await h2c.post(f"{base}/callbacks/amf/loc-1", content=amf_body(), headers=JSON)
            second = await http1.post(f"{base}/callbacks/smf/1", content=SMF_BODY, headers=JSON)
        served.proc.send_signal(signal.SIGTERM)
        returncode = await asyncio.to_thread(served.proc.wait, 60)
    assert (first.status_code, first.http_version) == (204, "HTTP/2")
    assert (second.status_code, second.http_version) == (204, "HTTP/1.1")
    assert returncode == 0
    records = await read_all(
        stack_settings.kafka.bootstrap_servers, stack_settings.kafka.events_topic, 2
    )
    assert sorted(r.key or b"" for r in records) == [b"imsi-208930000000001", b"smf-notif:1"]
    assert len(list((tmp_path / "spool").glob("slot-*"))) == 2


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_offers_h2_and_http11_by_alpn(
    tmp_path: Path, tls_files: tuple[Path, Path]
) -> None:
    """With a certificate, one port negotiates h2 or http/1.1 by ALPN, as the client offers."""
    cert, key = tls_files
    trust = ssl.create_default_context(cafile=str(cert))
    settings = _offline(Settings(), tmp_path, spool_max_bytes=1_048_576)
    async with (
        serving(settings, tls=(cert, key)) as (base, _, _),
        httpx.AsyncClient(http2=True, verify=trust) as h2,
        httpx.AsyncClient(verify=trust) as h1,
    ):
        answers = [
            await client.post(f"{base}/callbacks/amf/loc-1", content=amf_body(), headers=JSON)
            for client in (h2, h1)
        ]
    assert base.startswith("https://")
    assert [(a.status_code, a.http_version) for a in answers] == [
        (204, "HTTP/2"),
        (204, "HTTP/1.1"),
    ]


def _boom(_callback: Callback) -> list[LocationEvent]:
    raise RuntimeError("secret internal state at /srv/subscriber/normalize.py line 42")


@pytest.mark.stack
async def test_bad_input_gets_problem_details_and_a_dead_letter(
    stack_settings: Settings,
) -> None:
    """400, 404, 413, 415 and 500 answers are ProblemDetails and each body is dead-lettered."""
    settings = stack_settings.model_copy(
        update={"receiver": stack_settings.receiver.model_copy(update={"max_body_bytes": 4096})}
    )
    normalizers = {**default_normalizers(), "nef": _boom}
    async with (
        serving(settings, normalizers=normalizers) as (base, _, _),
        client("h2c") as http,
    ):
        schema = await http.post(
            f"{base}/callbacks/amf/loc-1", content=amf_body(tac="xyz"), headers=JSON
        )
        syntax = await http.post(f"{base}/callbacks/amf/loc-1", content=b'{"x":', headers=JSON)
        unknown = await http.post(f"{base}/callbacks/amf/other", content=amf_body(), headers=JSON)
        large = await http.post(
            f"{base}/callbacks/smf/1", content=b"[" + b"1," * 4000 + b"1]", headers=JSON
        )
        media = await http.post(
            f"{base}/callbacks/smf/1", content=SMF_BODY, headers={"content-type": "text/plain"}
        )
        crash = await http.post(f"{base}/callbacks/nef/sub-7", content=NEF_BODY, headers=JSON)
    answers = [schema, syntax, unknown, large, media, crash]
    assert [a.status_code for a in answers] == [400, 400, 404, 413, 415, 500]
    for answer in answers:
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["status"] == answer.status_code
        assert problem["title"]
        assert "Traceback" not in answer.text
        assert "secret" not in answer.text
    assert {"param": "/reportList/0/location/nrLocation/tai/tac"}.items() <= (
        schema.json()["invalidParams"][0].items()
    )
    assert schema.json()["cause"] == "MANDATORY_IE_INCORRECT"
    assert syntax.json()["invalidParams"]
    records = await read_all(
        stack_settings.kafka.bootstrap_servers, stack_settings.kafka.dead_letter_topic, 6
    )
    letters = {orjson.loads(r.value)["reason"]: orjson.loads(r.value) for r in records}
    assert set(letters) == {
        "invalid_body",
        "unknown_subscription",
        "body_too_large",
        "unsupported_media_type",
        "internal_error",
    }
    assert letters["body_too_large"]["body_bytes"] > 4096
    assert len(letters["body_too_large"]["body"]) <= settings.receiver.dead_letter_max_bytes
    assert letters["unsupported_media_type"]["body"] == SMF_BODY.decode()


async def test_oversized_body_is_refused_before_it_is_all_sent(tmp_path: Path) -> None:
    """A Content-Length over the cap is answered 413 while most of the body is still unsent."""
    settings = _offline(Settings(), tmp_path, spool_max_bytes=1_048_576)
    async with serving(settings) as (base, _, _):
        port = int(base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /callbacks/amf/loc-1 HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 52428800\r\n\r\n" + b" " * 1024
        )
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413")


async def test_full_spool_answers_503_with_retry_after(tmp_path: Path) -> None:
    """With Kafka unreachable and the spool full, callbacks get 503 and a Retry-After."""
    settings = _offline(Settings(), tmp_path, spool_max_bytes=2_000)
    async with serving(settings) as (base, _, publisher), client("h2c") as http:
        statuses = []
        for seq in range(10):
            answer = await http.post(
                f"{base}/callbacks/amf/loc-1", content=amf_body(seq=seq), headers=JSON
            )
            statuses.append(answer.status_code)
            if answer.status_code == 503:
                break
        ready = await http.get(f"{base}/readyz")
    assert statuses[0] == 204
    assert statuses[-1] == 503
    assert int(answer.headers["retry-after"]) > 0
    assert answer.json()["cause"] == "NF_CONGESTION"
    assert ready.status_code == 503
    assert publisher.spool_records == len(statuses) - 1


async def test_health_readiness_and_metrics(tmp_path: Path) -> None:
    """healthz is up, readyz is ready with spool room, and metrics count callbacks by kind."""
    settings = _offline(Settings(), tmp_path, spool_max_bytes=1_048_576)
    async with serving(settings) as (base, app, _), client("http1") as http:
        await http.post(f"{base}/callbacks/amf/loc-1", content=amf_body(), headers=JSON)
        await http.post(f"{base}/callbacks/amf/loc-1", content=b"{", headers=JSON)
        await app.flush_background()
        health = await http.get(f"{base}/healthz")
        ready = await http.get(f"{base}/readyz")
        metrics = (await http.get(f"{base}/metrics")).text
    assert (health.status_code, ready.status_code) == (200, 200)
    lines = metrics.splitlines()

    def value(prefix: str) -> float:
        (line,) = [x for x in lines if x.startswith(prefix)]
        return float(line.rsplit(" ", 1)[1])

    assert value('subscriber_callbacks_received_total{kind="amf"') == 2
    assert value('subscriber_callbacks_rejected_total{reason="invalid_body"') == 1
    assert value("subscriber_spool_depth{") == 2  # the event and the dead letter
    assert value("subscriber_publish_latency_seconds_count{") == 1


async def test_capture_keeps_raw_callbacks_without_authorization(tmp_path: Path) -> None:
    """With capture on, each callback is a gzip'ed JSON line with body and headers, no token."""
    settings = _offline(Settings(), tmp_path, spool_max_bytes=1_048_576)
    settings.receiver.capture_dir = tmp_path / "capture"
    body = amf_body()
    async with serving(settings) as (base, _, _), client("h2c") as http:
        await http.post(
            f"{base}/callbacks/amf/loc-1",
            content=body,
            headers={**JSON, "authorization": "Bearer secret-token"},
        )
    (path,) = (tmp_path / "capture").glob("*.jsonl.gz")
    (line,) = gzip.decompress(path.read_bytes()).splitlines()
    doc = orjson.loads(line)
    assert doc["path"] == "/callbacks/amf/loc-1"
    assert doc["body"] == body.decode()
    assert doc["http_version"] == "2"
    names = [name for name, _ in doc["headers"]]
    assert "content-type" in names
    assert "authorization" not in names


async def test_callbacks_are_logged_without_identity_in_clear(tmp_path: Path) -> None:
    """Accepted callbacks are counted in one line per subscription (on shutdown at the latest),
    each refused one has its own line; all name the subscription, never a SUPI or the secret
    callback key."""
    settings = _offline(Settings(), tmp_path, spool_max_bytes=1_048_576)
    key = "s3cret-Callback-Key-imsi-208930000000001"
    with capture_logs() as logs:
        async with serving(settings) as (base, app, _), client("h2c") as http:
            app.registry = StaticRegistry(
                {("amf", key): Binding("amf-sub", correlation_id="loc-1")}
            )
            for _ in range(3):
                await http.post(f"{base}/callbacks/amf/{key}", content=amf_body(), headers=JSON)
            await http.post(f"{base}/callbacks/amf/{key}", content=b"{", headers=JSON)
    (accepted,) = [entry for entry in logs if entry["event"] == "callbacks_accepted"]
    assert accepted["subscription"] == "amf-sub"
    assert (accepted["kind"], accepted["callbacks"], accepted["events"]) == ("amf", 3, 3)
    assert 0 < accepted["duration_ms_mean"] <= accepted["duration_ms_max"]
    lines = [entry for entry in logs if entry["event"] == "callback"]
    assert [e["status"] for e in lines if e["log_level"] == "debug"] == [204] * 3
    (refused,) = [e for e in lines if e["log_level"] == "info"]
    assert (refused["status"], refused["outcome"]) == (400, "invalid_body")
    assert refused["subscription"] == "amf-sub"
    assert "duration_ms" in refused
    assert "imsi-" not in repr(logs)
    assert "s3cret" not in repr(logs)


async def _outage_round_trip(
    settings: Settings,
    unique: str,
    tmp_path: Path,
    outage: Callable[[], Awaitable[None]],
    recover: Callable[[], Awaitable[None]],
) -> None:
    """Post per-UE streams; break Kafka mid-stream, keep posting, recover; check the topic."""
    settings = settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(
                update={"events_topic": f"events-{unique}", "dead_letter_topic": f"dl-{unique}"}
            ),
            "receiver": settings.receiver.model_copy(update={"spool_dir": tmp_path / "spool"}),
        }
    )
    ues = range(4)
    rounds = 18

    async def post_round(http: httpx.AsyncClient, base: str, seq: int) -> None:
        # The UEs post concurrently over one h2c connection; each UE's own posts are sequential.
        answers = await asyncio.gather(
            *(
                http.post(f"{base}/callbacks/amf/ue-{ue}", content=amf_body(ue, seq), headers=JSON)
                for ue in ues
            )
        )
        assert [a.status_code for a in answers] == [204] * len(ues)

    async with serving(settings) as (base, app, publisher), client("h2c") as http:
        app.registry = StaticRegistry(
            {("amf", f"ue-{ue}"): Binding(f"ue-{ue}", correlation_id="loc-1") for ue in ues}
        )
        for seq in range(5):
            await post_round(http, base, seq)
        assert publisher.kafka_connected
        await outage()
        for seq in range(5, 15):
            await post_round(http, base, seq)
        assert publisher.spool_records > 0
        await recover()
        for seq in range(15, rounds):
            await post_round(http, base, seq)
        await publisher.wait_drained()
    total = len(ues) * rounds
    seen: set[str] = set()
    order: dict[bytes, list[str]] = {}
    consumer = AIOKafkaConsumer(
        settings.kafka.events_topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        while len(seen) < total:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                for record in batch:
                    event = decode_event(record.value)
                    if event.event_id in seen:  # at least once: a timed-out ack landed too
                        continue
                    seen.add(event.event_id)
                    cell = event.location.cell_id if event.location else ""
                    order.setdefault(record.key or b"", []).append(cell or "")
    finally:
        await consumer.stop()
    for ue in ues:
        expected = [f"{seq:09x}" for seq in range(rounds)]
        assert order[f"imsi-20893{ue:010d}".encode()] == expected


@pytest.mark.stack
@pytest.mark.slow
async def test_kafka_restart_loses_nothing_and_keeps_per_ue_order(
    private_stack: Settings, unique: str, tmp_path: Path
) -> None:
    """Broker stopped mid-stream and restarted: every 204 answer's event is there, in order."""

    async def outage() -> None:
        await asyncio.to_thread(stop_service, private_stack, "kafka")

    async def recover() -> None:
        await start_service(private_stack, "kafka")

    await _outage_round_trip(private_stack, unique, tmp_path, outage, recover)


@pytest.mark.stack
@pytest.mark.slow
async def test_kafka_freeze_loses_nothing_and_keeps_per_ue_order(
    private_stack: Settings, unique: str, tmp_path: Path
) -> None:
    """Broker frozen (SIGSTOP) mid-stream, then resumed: every 204'd event is there, in order."""
    pid = read_state(private_stack.stack.dir).services["kafka"].pid

    async def outage() -> None:
        os.kill(pid, signal.SIGSTOP)

    async def recover() -> None:
        os.kill(pid, signal.SIGCONT)

    try:
        await _outage_round_trip(private_stack, unique, tmp_path, outage, recover)
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_a_body_read_past_its_deadline_is_cancelled_and_reported_as_expired() -> None:
    """The sweep cancels a read past its deadline, and says the cancellation was the deadline's."""
    deadlines = BodyDeadlines(0.05)
    sweeper = asyncio.create_task(deadlines.sweep_forever())

    async def read() -> str:
        task = deadlines.start()
        try:
            await asyncio.Event().wait()  # a body that never comes
        except asyncio.CancelledError:
            return "expired" if deadlines.expired(task) else "cancelled"
        finally:
            deadlines.stop(task)
        return "read"

    try:
        assert await asyncio.wait_for(read(), 5) == "expired"
    finally:
        sweeper.cancel()


async def test_a_shutdown_cancel_is_not_taken_for_the_deadline() -> None:
    """A read cancelled from outside before its deadline stays cancelled (no 408 at shutdown)."""
    deadlines = BodyDeadlines(60)
    started = asyncio.Event()

    async def read() -> None:
        task = deadlines.start()
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            assert not deadlines.expired(task)
            raise
        finally:
            deadlines.stop(task)

    reading = asyncio.create_task(read())
    await started.wait()
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
