"""Run inside a container of the deployment (``python - COMMAND ARGS < probe.py``).

The deployment test drives and reads the system from where its services' names resolve, with the
image's own Python and libraries. Each command prints JSON lines on stdout and never prints a UE
identity (the session's log scan would, rightly, fail it):

* ``move FIRST ROUNDS UE...``: move each UE to a new cell ROUNDS times through the fake core's
  control API (cells FIRST, FIRST+1, ... of TAC 0000ff, which no topology knows, so nothing moves
  an application); a line after every round.
* ``verify FIRST ROUNDS TIMEOUT UE...``: wait until every move of ``move`` is a ``notified``
  event on Kafka and every event of those UEs has a decision on the audit topic; print what is
  missing, the fake AMF's notification counts and how many duplicates were delivered.
* ``metrics URL``: GET the URL; print its status and the names of the metrics it lists.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

TAC = "0000ff"
CORE = os.environ.get("SUBSCRIBER_CORE__NRF_URL", "http://fakecore:8000")
KAFKA = os.environ.get("SUBSCRIBER_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092")
EVENTS = "subscriber.events.v1"
DECISIONS = "subscriber.decisions.v1"


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def cell(first: int, round_: int) -> str:
    return f"{first + round_:09x}"


def request(method: str, url: str, body: object | None = None) -> tuple[int, bytes]:
    import httpx

    answer = httpx.request(method, url, json=body, timeout=10)
    return answer.status_code, answer.content


def move(first: int, rounds: int, ues: list[str]) -> None:
    for r in range(rounds):
        for ue in ues:
            # The fake AMF answers once its notification to the receiver has been answered.
            status, _ = request(
                "POST", f"{CORE}/fake/ues/{ue}/move", {"tac": TAC, "nrCellId": cell(first, r)}
            )
            if status != 204:
                say(error=f"move answered {status}", round=r)
                sys.exit(1)
        say(round=r + 1)
        time.sleep(0.05)


async def read_all(topic: str, deadline: float) -> list[object]:
    """Every record of ``topic`` up to its end as of now (or the deadline)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=KAFKA, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[object] = []
    try:
        while time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                records.extend(batch)
            parts = list(consumer.assignment())
            if parts:
                end = await consumer.end_offsets(parts)
                if all([await consumer.position(tp) >= end[tp] for tp in parts]):
                    break
    finally:
        await consumer.stop()
    return records


async def verify(first: int, rounds: int, timeout_s: float, ues: list[str]) -> None:
    from subscriber.events import Delivery, decode_event

    deadline = time.monotonic() + timeout_s
    wanted = {(ue, cell(first, r)) for r in range(rounds) for ue in ues}
    while True:
        notified: dict[tuple[str, str | None], int] = {}
        ids: set[str] = set()
        for record in await read_all(EVENTS, deadline):
            event = decode_event(record.value)  # type: ignore[attr-defined]
            if event.ue.key() not in ues:
                continue
            ids.add(event.event_id)
            where = (event.ue.key(), event.location.cell_id if event.location else None)
            if event.source.delivery is Delivery.NOTIFIED and where in wanted:
                notified[where] = notified.get(where, 0) + 1
        decided = set()
        for record in await read_all(DECISIONS, deadline):
            doc = json.loads(record.value)  # type: ignore[attr-defined]
            if doc.get("event_id") in ids:
                decided.add(doc["event_id"])
        missing_events = len(wanted - set(notified))
        missing_decisions = len(ids - decided)
        if (missing_events == 0 and missing_decisions == 0) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    _, status = request("GET", f"{CORE}/fake/status")
    core = json.loads(status)
    say(
        moves=len(wanted),
        missing_events=missing_events,
        duplicate_deliveries=sum(n - 1 for n in notified.values()),
        events=len(ids),
        missing_decisions=missing_decisions,
        notifications_sent=core.get("notificationsSent"),
        notification_failures=core.get("notificationFailures"),
    )


def metrics(url: str) -> None:
    status, body = request("GET", url)
    names = sorted(
        {
            line.split("{")[0].split(" ")[0]
            for line in body.decode().splitlines()
            if line and not line.startswith("#")
        }
    )
    say(status=status, names=names)


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "move":
        move(int(args[0]), int(args[1]), args[2:])
    elif command == "verify":
        asyncio.run(verify(int(args[0]), int(args[1]), float(args[2]), args[3:]))
    elif command == "metrics":
        metrics(args[0])
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
