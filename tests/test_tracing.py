"""One relocation, one trace: callback -> Kafka headers -> consumer span -> Temporal workflow.

Also the worker's metrics endpoint, which counts each workflow outcome.

The spans are recorded by an in-memory exporter on the process's tracer provider (installed
once here, and shut down when the module is done, so other tests do not keep recording).
Everything else is real: the receiver (served by granian) and its publisher, Kafka, the
consumer, Temporal, the worker with the local orchestrator and PowerDNS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from subscriber import tracing
from subscriber.act.signals import connect, request_relocation
from subscriber.act.workflows import RelocationWorkflow
from subscriber.app.consumer import open_consumer
from subscriber.app.lifecycle import running
from subscriber.app.receiver import serving_receiver
from subscriber.app.worker import build_worker, metrics_runtime
from subscriber.events import EventRecord, decode_event
from subscriber.ingress.normalize import BodyKind, normalize_body
from subscriber.ingress.publisher import Publisher
from subscriber.ingress.spool import SpoolRecord
from subscriber.relocation import Placement, Status, workflow_id
from subscriber.settings import LogSettings, PolicySettings, Settings
from tests.support.events import POLICY, T0, TOPOLOGY, TOWER
from tests.support.kafka import create_topic, read_all
from tests.support.ports import EDGE_ADDRESSES, edge_port, listening_on_a_free_port
from tests.support.registry import StaticRegistry
from tests.support.relocation import (
    make_request,
    relocation_clients,
    running_worker,
    serve_from,
    wait_history,
)
from tests.support.settings import tuned
from tests.support.waiting import until

VECTORS = Path(__file__).parent / "vectors"
UE = "imsi-208930000000001"
EDGE = EDGE_ADDRESSES
APP = "video-analytics"


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """Every span this module's tests end, in memory."""
    spans = InMemorySpanExporter()
    provider = tracing.configure_tracing(
        LogSettings(), service="subscriber-test", processor=SimpleSpanProcessor(spans)
    )
    assert trace.get_tracer_provider() is provider, "another tracer provider was installed"
    yield spans
    tracing.shutdown_tracing(provider)


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    """The exporter, emptied for this test."""
    exporter.clear()
    return exporter


def traceparent(n: int) -> tuple[str, str]:
    """A W3C traceparent as a core's client would send it: its own trace id per callback."""
    trace_id = f"{0x5EB5C1 << 80 | n:032x}"
    return trace_id, f"00-{trace_id}-{n + 1:016x}-01"


def amf_body(n: int, tower: int) -> bytes:
    """The D1 report of :data:`UE`, the ``n``-th second after T0, in the cell of ``tower``."""
    doc = orjson.loads((VECTORS / "d1-amf-notification-location.json").read_bytes())
    nr = doc["reportList"][0]["location"]["nrLocation"]
    nr["tai"]["tac"], nr["ncgi"]["nrCellId"] = TOWER[tower]
    nr["ueLocationTimestamp"] = (T0 + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
    return orjson.dumps(doc)


def _hex(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


def test_spool_records_keep_headers_and_old_records_still_decode() -> None:
    """A spooled record keeps its trace headers; one framed before headers existed decodes."""
    record = SpoolRecord("events", b"ue", b"{}", (("traceparent", b"00-ab-cd-01"),))
    assert SpoolRecord.decode(record.encode()) == record
    old = SpoolRecord("events", None, b"{}")
    assert old.encode()[:2] == b"\x00\x06", "no headers: the frame is the old one"
    assert SpoolRecord.decode(old.encode()) == old


def test_http_context_is_continued_into_kafka_headers(spans: InMemorySpanExporter) -> None:
    """A span under an incoming traceparent hands the same trace id to the record headers."""
    trace_id, parent = traceparent(7)
    with tracing.span("callback", parent=tracing.context_from_http({"traceparent": parent})):
        headers = dict(tracing.kafka_headers())
    assert headers["traceparent"].decode().split("-")[1] == trace_id
    (span,) = spans.get_finished_spans()
    assert _hex(span) == trace_id


def test_tracing_off_passes_an_incoming_trace_on_and_records_nothing(
    monkeypatch: pytest.MonkeyPatch, spans: InMemorySpanExporter
) -> None:
    """With log.traces off, a core's traceparent still reaches the headers; nothing else does."""
    monkeypatch.setattr(tracing, "_recording", False)
    _, parent = traceparent(3)
    with tracing.continue_trace("callback", tracing.context_from_http({"traceparent": parent})):
        headers = dict(tracing.kafka_headers())
    with tracing.continue_trace("callback", tracing.context_from_http({})):
        assert tracing.kafka_headers() == ()
    assert headers["traceparent"] == parent.encode()
    assert spans.get_finished_spans() == ()


@pytest.mark.stack
async def test_spooled_events_keep_their_trace(
    stack_settings: Settings, spans: InMemorySpanExporter
) -> None:
    """Events spooled while Kafka is away reach the topic later with their traceparent."""
    settings = stack_settings
    away = settings.kafka.model_copy(
        update={"bootstrap_servers": "127.0.0.1:1", "publish_timeout_ms": 300}
    )
    events = _events(amf_body(1, 1))
    trace_id, parent = traceparent(11)
    async with Publisher(kafka=away, receiver=settings.receiver) as publisher:
        with tracing.span("callback", parent=tracing.context_from_http({"traceparent": parent})):
            await publisher.publish(events)
        assert publisher.spool_records == 1
    await create_topic(settings.kafka.bootstrap_servers, settings.kafka.events_topic)
    async with Publisher(kafka=settings.kafka, receiver=settings.receiver) as publisher:
        async with asyncio.timeout(30):
            await publisher.wait_drained()
    (record,) = await read_all(settings.kafka.bootstrap_servers, settings.kafka.events_topic, 1)
    assert dict(record.headers)["traceparent"].decode().split("-")[1] == trace_id


@pytest.mark.stack
async def test_events_published_outside_a_trace_start_their_own(
    stack_settings: Settings, spans: InMemorySpanExporter
) -> None:
    """A publish with no current span (the poller's) starts one trace for its events."""
    kafka = stack_settings.kafka
    await create_topic(kafka.bootstrap_servers, kafka.events_topic)
    async with Publisher(kafka=kafka, receiver=stack_settings.receiver) as publisher:
        await publisher.publish(_events(amf_body(1, 1)) + _events(amf_body(2, 2)))
    (span,) = spans.get_finished_spans()
    assert span.name == "publish events"
    assert span.parent is None
    records = await read_all(kafka.bootstrap_servers, kafka.events_topic, 2)
    assert {dict(r.headers)["traceparent"].decode().split("-")[1] for r in records} == {_hex(span)}


def _events(body: bytes) -> list[EventRecord]:
    return normalize_body(
        BodyKind.AMF_NOTIFICATION, body, ingest_time=datetime(2026, 7, 1, tzinfo=UTC)
    ).records


async def _post_crossing(settings: Settings) -> dict[str, int]:
    """The core: 32 reports of a UE crossing to tower 2, each callback with its own trace,
    over h2c prior knowledge to the receiver served by granian in this process."""
    sent: dict[str, int] = {}
    settings = settings.model_copy(
        update={"receiver": settings.receiver.model_copy(update={"port": 0})}
    )
    async with (
        serving_receiver(settings, registry=StaticRegistry([("amf", "loc-1")])) as served,
        httpx.AsyncClient(http2=True, http1=False, timeout=30) as http,
    ):
        for n in range(32):
            trace_id, parent = traceparent(n)
            sent[trace_id] = n
            answer = await http.post(
                f"{served.url}/callbacks/amf/loc-1",
                content=amf_body(n, 1 if n < 2 else 2),
                headers={"content-type": "application/json", "traceparent": parent},
            )
            assert answer.status_code == 204
    return sent


@pytest.mark.stack
async def test_one_trace_from_callback_to_workflow_activities(
    stack_settings: Settings,
    spans: InMemorySpanExporter,
    tmp_path: Path,
) -> None:
    """The callback that tips the move, its Kafka record, the consumer, workflow and activities
    all carry the trace id the core sent in that callback's traceparent."""
    port = edge_port()
    settings = tuned(stack_settings, tmp_path)
    instance = settings.temporal.task_queue
    instances = tmp_path / "instances.yaml"
    instances.write_text(
        f"instances:\n  - {{ue: {UE}, app: {APP}, instance: {instance}, cluster: edge-1}}\n"
    )
    settings = settings.model_copy(
        update={
            "policy": PolicySettings(topology_file=TOPOLOGY, policy_file=POLICY),
            "act": settings.act.model_copy(update={"instances_file": instances, "app_port": port}),
        }
    )
    kafka = settings.kafka
    await create_topic(kafka.bootstrap_servers, kafka.events_topic)

    source = Placement(cluster="edge-1", address=EDGE["edge-1"], port=port)
    async with relocation_clients(settings) as (client, pdns, local):

        class _Req:
            app, instance = APP, settings.temporal.task_queue

        await serve_from(local, pdns, _Req(), source)  # type: ignore[arg-type]
        async with (
            running_worker(client, settings, local, pdns),
            running(open_consumer(settings, temporal=client)) as consumer,
        ):
            # Events only once the consumer owns its partition and has restored it, so the
            # group's first join (slow on a busy broker) is out of the way.
            await until(lambda: 0 in consumer.records, timeout_s=60)
            sent = await _post_crossing(settings)
            handle = client.get_workflow_handle_for(
                RelocationWorkflow.run, workflow_id(APP, instance)
            )

            async def completed() -> bool:
                try:
                    history = await handle.query(RelocationWorkflow.history)
                except Exception:  # not started yet
                    return False
                return any(h.status is Status.COMPLETED for h in history)

            await until(completed, timeout_s=60)

    finished = spans.get_finished_spans()
    signalling = [
        s
        for s in finished
        if s.name == "consume event" and s.attributes and s.attributes.get("subscriber.requests")
    ]
    assert len(signalling) == 1, "one event tipped the move"
    (consumer_span,) = signalling
    trace_id = _hex(consumer_span)
    assert trace_id in sent, "the consumer continued a trace the core started"

    # The receiver's span for that callback: a child of the core's span, same trace.
    (callback_span,) = [
        s for s in finished if s.name == "POST /callbacks/amf" and _hex(s) == trace_id
    ]
    assert callback_span.parent is not None
    assert callback_span.parent.span_id == sent[trace_id] + 1
    assert callback_span.attributes is not None
    assert callback_span.attributes["http.response.status_code"] == 204

    # The Kafka record of that event carries the trace in its headers.
    event_id = consumer_span.attributes["subscriber.event_id"] if consumer_span.attributes else None
    records = await read_all(kafka.bootstrap_servers, kafka.events_topic, 32)
    (record,) = [r for r in records if decode_event(r.value).event_id == event_id]
    assert dict(record.headers)["traceparent"].decode().split("-")[1] == trace_id

    # Temporal: the signal-with-start, the workflow and its activities, in the same trace.
    in_trace = {s.name for s in finished if _hex(s) == trace_id}
    print(f"\ntrace {trace_id}: {len(in_trace)} span names: {sorted(in_trace)}")
    assert {
        "SignalWithStartWorkflow:Relocation",
        "RunWorkflow:Relocation",
        "StartActivity:relocation.deploy",
        "RunActivity:relocation.deploy",
        "RunActivity:relocation.set_dns",
        "RunActivity:relocation.remove",
    } <= in_trace, in_trace

    # Decisions as attributes, pseudonyms only.
    attributes = consumer_span.attributes or {}
    assert attributes["subscriber.decision.actions"] == ("relocate",)
    assert attributes["subscriber.decision.apps"] == (APP,)
    for span in finished:
        for value in (span.attributes or {}).values():
            assert UE[5:] not in str(value)


@pytest.mark.stack
async def test_worker_metrics_count_each_outcome(stack_settings: Settings, unique: str) -> None:
    """The worker's endpoint (relocation.metrics_port) counts a workflow's outcome by status."""

    def with_port(port: int) -> Settings:
        reloc = stack_settings.relocation.model_copy(update={"metrics_port": port})
        return stack_settings.model_copy(update={"relocation": reloc})

    # The runtime binds the port (on every address) as it is made.
    runtime, port = listening_on_a_free_port(lambda p: metrics_runtime(with_port(p)))
    settings = with_port(port)
    client = await connect(settings.temporal, runtime=runtime)
    here = Placement(cluster="edge1", address="127.0.1.1", port=8080)
    request = make_request(unique, here, here)  # already there: a noop, no activity needed
    worker = build_worker(client, settings, orchestrator=None, dns=None, ams=None)  # type: ignore[arg-type]
    async with worker:
        await request_relocation(client, settings.temporal.task_queue, request)
        await wait_history(client, request, 1)

        async def scraped() -> str:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            text = (await reader.read()).decode()
            writer.close()
            await writer.wait_closed()
            return text

        async def counted() -> bool:
            return any(
                line.startswith("subscriber_relocations_total{")
                and 'status="noop"' in line
                and f'task_queue="{settings.temporal.task_queue}"' in line
                and line.endswith(" 1")
                for line in (await scraped()).splitlines()
            )

        await until(counted, timeout_s=10)
    await client.get_workflow_handle(workflow_id(request.app, request.instance)).terminate()
