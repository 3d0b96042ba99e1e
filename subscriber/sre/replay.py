"""Send a recording again: to a receiver over h2c or HTTP/1.1, or straight onto a Kafka topic.

Pacing follows each item's ``t``: at speed 1 the gaps are the recorded ones, at speed N they are
N times shorter, at speed 0 (``max``) there is no wait. Order is kept per UE at any speed:

* to a receiver, each UE has at most one request in flight: its next callback goes out only
  once the previous one is answered, while up to ``concurrency`` UEs are in flight at once,
  multiplexed over a few h2c connections (:mod:`subscriber.sre.client`); one UE's callbacks
  never overtake each other;
* to Kafka, items are handed to one idempotent producer (``acks=all``) in file order, keyed by
  UE, so each UE's records land in one partition in order; acknowledgements are awaited in bulk.

Raw callbacks can only go to a receiver (it is the receiver they exercise); events only to Kafka.
Like arq's burst mode, a replay ends when the recording does, and prints a summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from subscriber.errors import SubscriberError
from subscriber.options import ReplayOptions
from subscriber.settings import Settings
from subscriber.sre.client import Pool
from subscriber.sre.recording import Header, Item, open_recording

log = structlog.get_logger()

# What free5GC's generated Go clients send with a notification (free5gc/openapi client.go,
# free5gc/openapi ``client.go``, docs/free5gc.md "h2c callbacks"): no Authorization, no
# 3gpp-Sbi-Callback.
FREE5GC_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, application/problem+json",
    "User-Agent": "OpenAPI-Generator/1.0.0/go",
}


@dataclass
class Summary:
    """What a replay did."""

    target: str
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    span_s: float = 0.0

    @property
    def rate(self) -> float:
        """Items sent per second of wall time."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "target": self.target,
            "sent": self.sent,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "statuses": dict(sorted(self.statuses.items())),
            "elapsed_s": round(self.elapsed_s, 3),
            "recorded_span_s": round(self.span_s, 3),
            "rate_per_s": round(self.rate, 1),
        }

    def line(self) -> str:
        """One human line."""
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (
            f"replay to {self.target}: sent {self.sent}, accepted {self.accepted}, "
            f"rejected {self.rejected} ({statuses or 'none'}) in {self.elapsed_s:.2f} s, "
            f"{self.rate:.0f}/s (recording spans {self.span_s:.1f} s)"
        )


@dataclass(frozen=True, slots=True)
class Selection:
    """Which items to replay, and how many times."""

    start_s: float | None = None
    end_s: float | None = None
    ues: frozenset[str] = frozenset()
    loops: int = 1

    def keeps(self, item: Item) -> bool:
        """Whether ``item`` is in the time window and of a selected UE."""
        if self.start_s is not None and item.t < self.start_s:
            return False
        if self.end_s is not None and item.t > self.end_s:
            return False
        return not self.ues or item.ue in self.ues


def schedule(
    open_items: Callable[[], Iterable[Item]], selection: Selection
) -> Iterator[tuple[float, Item]]:
    """``(offset_s, item)`` in file order: recorded time since the first kept item.

    Streams: ``open_items`` is called once per loop and iterated once, so a recording of any
    size replays in constant memory. Each loop starts one recorded span (plus one second) after
    the previous one, so a looped replay keeps the recorded pacing. Items recorded out of time
    order get offsets in the past: they go out at once, in file order.
    """
    t0: float | None = None
    last = float("-inf")
    period = 0.0
    for loop in range(selection.loops):
        base = loop * period
        for item in open_items():
            if not selection.keeps(item):
                continue
            if t0 is None:
                t0 = item.t
            if item.t > last:
                last = item.t
            yield base + (item.t - t0), item
        if t0 is None:
            return
        period = last - t0 + 1.0


class Pace:
    """Wall-clock pacing of recorded offsets at a speed factor (0: no wait)."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.started = time.monotonic()

    async def until(self, offset_s: float) -> None:
        """Sleep until ``offset_s`` recorded seconds have elapsed, scaled by the speed."""
        if self.speed <= 0:
            return
        delay = self.started + offset_s / self.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


Progress = Callable[[int], None]


class _Sender:
    """Keeps each UE's callbacks in order over a pool: one request in flight per UE.

    Items wait in their UE's queue; a UE with a queued item and no request in flight waits in
    ``ready`` for room on a connection. Answers arrive as callbacks (no task per request), and
    each answer sends the next ready UE's item at once.
    """

    def __init__(
        self,
        base_path: bytes,
        summary: Summary,
        *,
        max_in_flight: int,
        progress: Progress | None,
    ) -> None:
        self.pool: Pool | None = None
        self._base_path = base_path
        self._summary = summary
        self._max_in_flight = max(1, max_in_flight)
        self._progress = progress
        self._queues: dict[str, deque[Item]] = {}
        self._busy: set[str] = set()
        self._ready: deque[str] = deque()
        self.buffered = 0
        self.in_flight = 0
        self.drained = asyncio.Event()
        self.drained.set()
        self.space = asyncio.Event()
        self.space.set()
        self.high_water = max(4096, 8 * self._max_in_flight)

    def put(self, item: Item) -> None:
        """Queue one item behind its UE's earlier ones and send what can be sent."""
        ue = item.ue
        queue = self._queues.get(ue)
        if queue is None:
            queue = self._queues[ue] = deque()
        queue.append(item)
        self.buffered += 1
        self.drained.clear()
        if self.buffered >= self.high_water:
            self.space.clear()
        if len(queue) == 1 and ue not in self._busy:
            self._ready.append(ue)
        self.pump()

    def pump(self) -> None:
        """Send the next item of each ready UE while there is room."""
        ready, pool = self._ready, self.pool
        assert pool is not None
        while ready and self.in_flight < self._max_in_flight:
            conn = pool.pick()
            if conn is None:
                return
            ue = ready.popleft()
            item = self._queues[ue].popleft()
            self._busy.add(ue)
            self.in_flight += 1
            callback = item.callback
            assert callback is not None
            headers = _HEADERS
            if callback.content_type != "application/json":
                headers = _headers(callback.content_type)
            conn.request(
                callback.method.encode(),
                self._base_path + callback.path.encode(),
                headers,
                callback.body,
                functools.partial(self._answered, ue),
                functools.partial(self._again, ue, item),
            )

    def _done_with(self, ue: str) -> None:
        self._busy.discard(ue)
        self.in_flight -= 1
        if self._queues[ue]:
            self._ready.append(ue)
        else:
            del self._queues[ue]

    def _count(self, status: str) -> None:
        summary = self._summary
        summary.statuses[status] += 1
        if len(status) == 3 and status[0] == "2":
            summary.accepted += 1
        else:
            summary.rejected += 1
        if self._progress is not None:
            self._progress(1)
        self.buffered -= 1
        if self.buffered < self.high_water // 2:
            self.space.set()
        if not self.buffered:
            self.drained.set()

    def _answered(self, ue: str, status: str) -> None:
        self._count(status)
        self._done_with(ue)
        self.pump()

    def _again(self, ue: str, item: Item) -> None:
        """The server never processed it (GOAWAY, REFUSED_STREAM): first in line again."""
        self._queues[ue].appendleft(item)
        self._busy.discard(ue)
        self.in_flight -= 1
        self._ready.appendleft(ue)
        asyncio.get_running_loop().call_soon(self.pump)

    def unreachable(self, why: str) -> None:
        """No connection can be opened: answer ``why`` for every item waiting for one."""
        while self._ready:
            for _ in self._queues.pop(self._ready.popleft()):
                self._count(why)


def _headers(content_type: str | None) -> tuple[tuple[bytes, bytes], ...]:
    out = [(k.lower().encode(), v.encode()) for k, v in FREE5GC_HEADERS.items()]
    if content_type is None:
        return tuple(h for h in out if h[0] != b"content-type")
    return tuple((k, content_type.encode() if k == b"content-type" else v) for k, v in out)


_HEADERS = _headers("application/json")

MAX_HTTP11_CONNECTIONS = 64
"""HTTP/1.1 needs a connection per request in flight; servers cap connections (granian serves
128 per worker by default and leaves the rest waiting), so replay stays well under that."""


async def to_receiver(
    base_url: str,
    plan: Iterable[tuple[float, Item]],
    *,
    speed: float,
    http2: bool = True,
    concurrency: int = 256,
    connections: int | None = None,
    timeout_s: float = 10.0,
    progress: Progress | None = None,
) -> Summary:
    """POST raw callbacks to ``base_url`` + each recorded path, as free5GC does.

    Args:
        base_url: ``http://host:port`` of a receiver (h2c prior knowledge when ``http2``).
        plan: the scheduled items (:func:`schedule`).
        speed: the speed factor (0: as fast as possible).
        http2: h2c prior knowledge (free5GC's client) or HTTP/1.1.
        concurrency: at most this many requests (so UEs) in flight at once.
        connections: h2c connections to spread the streams over (default 4); HTTP/1.1 opens
            one per request in flight, at most :data:`MAX_HTTP11_CONNECTIONS`.
        timeout_s: per request.
        progress: called with the number of items just answered.

    Raises:
        SubscriberError: the URL is not ``http://host:port``, or nothing answers there.
    """
    url = urllib.parse.urlsplit(base_url)
    if url.scheme != "http" or not url.hostname:
        raise SubscriberError(f"--url {base_url!r}: give http://host:port (h2c has no TLS)")
    summary = Summary(target=f"{base_url} ({'h2c' if http2 else 'HTTP/1.1'})")
    sender = _Sender(
        url.path.rstrip("/").encode(), summary, max_in_flight=concurrency, progress=progress
    )
    pool = Pool(
        url.hostname,
        url.port or 80,
        http2=http2,
        connections=(connections or 4) if http2 else min(concurrency, MAX_HTTP11_CONNECTIONS),
        on_room=sender.pump,
        on_unreachable=sender.unreachable,
    )
    sender.pool = pool
    started = time.monotonic()
    try:
        await pool.__aenter__()
    except OSError as exc:
        raise SubscriberError(f"{base_url}: cannot connect: {exc.strerror or exc}") from exc
    sweeper = asyncio.create_task(_sweep(pool, timeout_s))
    try:
        pace = Pace(speed)
        for offset, item in plan:
            if item.callback is None:
                raise SubscriberError("an events recording can only be replayed to Kafka")
            if not sender.space.is_set():
                await sender.space.wait()
            await pace.until(offset)
            sender.put(item)
            summary.sent += 1
        await sender.drained.wait()
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await pool.__aexit__()
    summary.elapsed_s = time.monotonic() - started
    return summary


async def _sweep(pool: Pool, timeout_s: float) -> None:
    """Answer ``Timeout`` for requests unanswered after ``timeout_s``."""
    while True:
        await asyncio.sleep(min(1.0, timeout_s / 4))
        pool.expire(time.monotonic() - timeout_s)


async def to_kafka(
    bootstrap: str,
    topic: str,
    plan: Iterable[tuple[float, Item]],
    *,
    speed: float,
    compression: str | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Produce each event's recorded bytes to ``topic``, keyed by UE, idempotently.

    Raises:
        SubscriberError: the recording holds callbacks, or Kafka cannot be reached.
    """
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    summary = Summary(target=f"kafka topic {topic}")
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        compression_type=compression,
        max_batch_size=256 * 1024,
    )
    started = time.monotonic()
    try:
        await producer.start()
    except KafkaError as exc:
        raise SubscriberError(f"Kafka at {bootstrap} cannot be reached: {exc}") from exc
    pending: list[asyncio.Future[Any]] = []

    def settle(futures: Sequence[asyncio.Future[Any]]) -> None:
        for fut in futures:
            exc = fut.exception()
            if exc is None:
                summary.accepted += 1
                summary.statuses["acked"] += 1
            else:
                summary.rejected += 1
                summary.statuses[type(exc).__name__] += 1
        if progress is not None:
            progress(len(futures))

    try:
        pace = Pace(speed)
        for offset, item in plan:
            if item.event is None:
                raise SubscriberError("a callbacks recording can only be replayed to a receiver")
            await pace.until(offset)
            pending.append(await producer.send(topic, item.event, key=item.ue.encode()))
            summary.sent += 1
            if len(pending) >= 2000:
                await asyncio.wait(pending)
                settle(pending)
                pending = []
            elif speed > 0:
                # Paced: count acknowledgements as they come, for the progress bar.
                settle([f for f in pending if f.done()])
                pending = [f for f in pending if not f.done()]
        if pending:
            await asyncio.wait(pending)
            settle(pending)
        await producer.flush()
    finally:
        await producer.stop()
    summary.elapsed_s = time.monotonic() - started
    return summary


def _when(text: str | None, header_start: datetime | None) -> float | None:
    """An ISO time, or ``+S`` seconds after the recording's start."""
    if not text:
        return None
    try:
        if text.startswith("+"):
            base = header_start.timestamp() if header_start else 0.0
            return base + float(text[1:])
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SubscriberError(
            f"{text!r} is neither an ISO time nor +SECONDS after the recording's start"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def parse_speed(text: str) -> float:
    """``1`` real time, ``N`` N× faster, ``0`` or ``max`` as fast as possible."""
    if text.lower() in ("max", "0"):
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0 or math.isinf(value):
        raise SubscriberError(f"--speed {text!r}: give 0/max or a positive factor such as 2")
    return value


@dataclass
class _Bar:
    """A rich progress bar on stderr when it is a terminal (nothing otherwise)."""

    total: int | None
    enabled: bool
    _progress: Any = None
    _task: Any = None

    def __enter__(self) -> _Bar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("replay"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("replay", total=self.total)
        return self

    def advance(self, n: int) -> None:
        """Count ``n`` more items done."""
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


async def replay_file(
    path: Path,
    *,
    to: str,
    selection: Selection,
    speed: float,
    url: str | None = None,
    http2: bool = True,
    bootstrap: str = "",
    topic: str = "",
    concurrency: int = 256,
    connections: int | None = None,
    compression: str | None = None,
    show_progress: bool = False,
) -> Summary:
    """Replay a recording (or receiver capture) file; the whole command minus argument parsing.

    Raises:
        SubscriberError: the recording's kind does not fit the target, or the target is missing.
    """
    with open_recording(path) as rec:
        header: Header = rec.header
    if to == "receiver" and header.kind != "callbacks":
        raise SubscriberError("an events recording can only be replayed to Kafka (--to kafka)")
    if to == "kafka" and header.kind != "events":
        raise SubscriberError("a callbacks recording can only be replayed to a receiver")
    if to == "receiver" and not url:
        raise SubscriberError("--to receiver needs --url http://host:port")

    def items() -> Iterator[Item]:
        with open_recording(path) as rec:
            yield from rec

    offsets: list[float] = []

    def plan() -> Iterator[tuple[float, Item]]:
        for offset, item in schedule(items, selection):
            if not offsets:
                offsets[:] = [offset, offset]
            elif offset > offsets[1]:
                offsets[1] = offset
            yield offset, item

    # The header's count is the total unless a filter leaves items out (captures have none).
    total = header.count * selection.loops or None
    with _Bar(total, show_progress) as bar:
        if to == "receiver":
            assert url is not None
            summary = await to_receiver(
                url,
                plan(),
                speed=speed,
                http2=http2,
                concurrency=concurrency,
                connections=connections,
                progress=bar.advance,
            )
        else:
            summary = await to_kafka(
                bootstrap, topic, plan(), speed=speed, compression=compression, progress=bar.advance
            )
    summary.span_s = offsets[1] - offsets[0] if offsets else 0.0
    return summary


async def run(settings: Settings, options: ReplayOptions) -> int:
    """``subscriber replay FILE``."""
    import sys

    import orjson

    with open_recording(options.file) as rec:
        start = rec.header.start
    selection = Selection(
        start_s=_when(options.start, start),
        end_s=_when(options.end, start),
        ues=frozenset(options.ue or ()),
        loops=options.loop,
    )
    to = options.to
    summary = await replay_file(
        options.file,
        to=to,
        selection=selection,
        speed=parse_speed(options.speed),
        url=options.url
        or settings.receiver.public_url
        or f"http://{settings.receiver.host}:{settings.receiver.port}",
        http2=options.http != "1.1",
        bootstrap=settings.kafka.bootstrap_servers,
        topic=options.topic or settings.kafka.events_topic,
        concurrency=options.concurrency,
        connections=options.connections,
        compression=None if settings.kafka.compression == "none" else settings.kafka.compression,
        show_progress=not options.no_progress and sys.stderr.isatty(),
    )
    print(summary.line())
    if options.json is not None:
        options.json.write_text(orjson.dumps(summary.to_dict()).decode() + "\n", encoding="utf-8")
    return 0 if summary.rejected == 0 else 1
