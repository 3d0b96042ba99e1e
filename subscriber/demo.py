"""``subscriber demo``: the edge-relocation scenario, end to end, on the local stack.

1. The stack comes up: real Kafka, Temporal and PowerDNS on loopback.
2. A free5GC-faithful fake core (NRF with OAuth2, an AMF that never notifies) registers a UE
   in the cell of tower 1. An instance of ``video-analytics`` serves that UE from edge cluster 1
   (a real HTTP service on 127.0.10.1) and its name is published in PowerDNS.
   The application keeps a counter per user and registers its user with the worker's
   Application Mobility Service (ETSI GS MEC 021).
3. A client (the UE, from its own address) resolves the name through PowerDNS and advances its
   counter at whatever answers, ten times a second.
4. The daemon runs: the poller (NRF registration, tokens, discovery, poll-and-diff) publishes
   location changes to Kafka; the consumer decides with the example policy and signals the
   relocation workflow; the worker deploys on edge-2, waits until it is ready, tells the
   instance on edge-1 that its user moves (INTERHOST_MOVEOUT_TRIGGERED), waits for it to hand
   the user's counter to edge-2 (USER_CONTEXT_TRANSFER_COMPLETED), switches DNS, confirms it,
   and removes the instance on edge-1.
5. The UE roams to the cell of tower 2. Each step is printed as it happens, with its time.

With ``--prewarm`` the policy pre-warms (docs/policy.md): before the UE appears, six commuters
went from tower 1 to tower 2 (their reports go on Kafka first), so the predictor expects the UE
at tower 2 next; the app is deployed on edge-2 and made ready while the UE is still at tower 1,
and the move on its arrival only transfers the context, steers and removes the old instance.

Exits 0 only if the client really reached the new instance on edge-2, the old one is gone, no
request failed, and the count went on at edge-2 exactly where edge-1 left it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import subscriber
from subscriber.act.dns import PowerDns, record_name
from subscriber.act.signals import connect
from subscriber.ams.service import BASE_PATH
from subscriber.app.consumer import open_consumer
from subscriber.app.lifecycle import running
from subscriber.app.receiver import serving_receiver
from subscriber.app.tracker import open_tracker
from subscriber.app.worker import open_worker
from subscriber.decide.engine import InstancesHolder, PolicyHolder
from subscriber.errors import SubscriberError
from subscriber.events import EventRecord, decode_event
from subscriber.fakes.core import FakeCoreServer
from subscriber.fakes.core.upf import FakeUserPlane
from subscriber.fakes.edge_user import EdgeUser, Resolve
from subscriber.fakes.local_orchestrator import LocalOrchestrator
from subscriber.ingress.publisher import Publisher
from subscriber.ingress.subscriptions import registry_for
from subscriber.logs import configure_logging, pseudonym, require_pseudonym_key
from subscriber.options import DemoOptions
from subscriber.relocation import (
    MoveOutcome,
    Placement,
    Readiness,
    RelocationState,
    Step,
    workflow_id,
)
from subscriber.settings import LogSettings, PolicySettings, Settings
from subscriber.stack import settings_for, status, up
from subscriber.stack.procs import free_port, port_free_on

DATA = Path(subscriber.__file__).parent / "data"
UE = "imsi-208930000000001"
APP = "video-analytics"
TOWERS = {
    "tower-1": ("000001", "000000010"),
    "tower-2": ("000002", "000000020"),
    "tower-3": ("000003", "000000030"),
}
EDGE = {"edge-1": "127.0.10.1", "edge-2": "127.0.10.2"}
UE_ADDRESS = "127.0.77.1"
"""The UE's address: the demo app keys the user's state by it (MEC 012 AssociateId type 1)."""
DATA_NETWORK = "127.0.30.1"
"""Where the client reaches the app under traffic influence: the fake user plane, which sends
each connection on to the instance at the DNAI the UE's path is on."""
DNAIS = {"mec-tower-1": EDGE["edge-1"], "mec-tower-2": EDGE["edge-2"]}


class Timeline:
    """Prints each step with the seconds since the demo started."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self.marks: dict[str, float] = {}

    def say(self, what: str, mark: str | None = None) -> None:
        """Print one step; ``mark`` remembers its time under that name."""
        now = time.monotonic() - self._t0
        if mark is not None:
            self.marks.setdefault(mark, now)
        print(f"[{now:6.2f}s] {what}", flush=True)


COMMUTERS = 6
"""Route-following UEs that went tower 1 -> tower 2 before the demo's UE (``--prewarm``)."""
PREWARM = {"enabled": True, "min_evidence": 3, "half_life_s": 86400}
"""The example policy's ``prewarm`` section, turned on, with the commuters enough evidence."""


def demo_settings(
    base: Settings,
    work: Path,
    run: str,
    nrf_url: str,
    port: int,
    steering: str = "dns",
    prewarm: bool = False,
) -> Settings:
    """Settings for one demo run: its own topics, group, task queue and directories; with
    ``steering`` traffic_influence, a topology that steers the app so; with ``prewarm``, a
    policy that pre-warms."""
    instances = work / "instances.yaml"
    instances.write_text(
        f"instances:\n  - {{ue: {UE}, app: {APP}, instance: ue-{run}, cluster: edge-1, "
        f"ue_ipv4: {UE_ADDRESS}}}\n"
    )
    topology = DATA / "topology.example.yaml"
    if steering != "dns":
        doc = yaml.safe_load(topology.read_text())
        for app in doc["applications"]:
            if app["name"] == APP:
                app["steering"] = {"via": steering}
        topology = work / "topology.yaml"
        topology.write_text(yaml.safe_dump(doc))
    policy = DATA / "policy.example.yaml"
    if prewarm:
        doc = yaml.safe_load(policy.read_text())
        doc["prewarm"].update(PREWARM)
        policy = work / "policy.yaml"
        policy.write_text(yaml.safe_dump(doc))
    k, r, c = base.kafka, base.relocation, base.core
    return base.model_copy(
        update={
            "kafka": k.model_copy(
                update={
                    "events_topic": f"demo-{run}.events",
                    "decisions_topic": f"demo-{run}.decisions",
                    "dead_letter_topic": f"demo-{run}.dead-letter",
                    "state_topic": f"demo-{run}.ue-state",
                    "outcomes_topic": f"demo-{run}.outcomes",
                    "consumer_group": f"demo-{run}",
                }
            ),
            "temporal": base.temporal.model_copy(update={"task_queue": f"demo-{run}"}),
            "policy": PolicySettings(
                topology_file=topology,
                policy_file=policy,
            ),
            "act": base.act.model_copy(update={"instances_file": instances, "app_port": port}),
            "core": c.model_copy(
                update={
                    "nrf_url": nrf_url,
                    "oauth": True,
                    "amf_tracking": "poll",
                    "poll_interval_s": 0.5,
                    "state_dir": work / "core",
                }
            ),
            "relocation": r.model_copy(
                update={"local_dir": work / "clusters", "local_warmup_s": 0.5, "drain_s": 1.0}
            ),
            "receiver": base.receiver.model_copy(update={"spool_dir": work / "spool"}),
            "powerdns": base.powerdns.model_copy(update={"record_ttl_s": 1}),
            "ams": base.ams.model_copy(
                update={
                    "port": free_port(),
                    "db": work / "ams.sqlite3",
                    "callback_networks": ["127.0.10.0/24"],
                }
            ),
        }
    )


class ShowingSink:
    """Forwards the poller's events to the publisher and shows each one."""

    def __init__(self, publisher: Publisher, timeline: Timeline) -> None:
        self._publisher = publisher
        self._timeline = timeline

    async def publish(self, records: Sequence[EventRecord]) -> None:
        """Publish durably, then print."""
        await self._publisher.publish(records)
        for e in (decode_event(record.value) for record in records):
            where = f"TAC {e.location.tac} cell {e.location.cell_id}" if e.location else "?"
            mark = "moved_seen" if e.location and e.location.tac == "000002" else None
            self._timeline.say(
                f"poller: UE {pseudonym(e.ue.key())} is in {where}; event on Kafka", mark
            )


async def _user(
    user: EdgeUser, name: str, timeline: Timeline, seen: set[str], stop: asyncio.Event
) -> None:
    """The app's user: resolves the name through PowerDNS (TTL 1 s) at every request and
    advances its counter, ten times a second; prints each change of instance."""
    last = None
    async with user:
        while not stop.is_set():
            answer = await user.step()
            where = answer.cluster or f"no answer ({answer.error})"
            if where != last:
                count = f", count {answer.count}" if answer.count is not None else ""
                timeline.say(
                    f"client: {name} -> {where}{count}",
                    "client_edge2" if where == "edge-2" else None,
                )
                last = where
            if answer.cluster:
                seen.add(answer.cluster)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)


async def _decisions(settings: Settings, instance: str, timeline: Timeline) -> None:
    """Show every decision the consumer publishes on the audit topic about ``instance``."""
    reader = AIOKafkaConsumer(
        settings.kafka.decisions_topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await reader.start()
    try:
        async for msg in reader:
            d = orjson.loads(msg.value)
            if d.get("kind") == "prewarm" and d.get("app") == APP:
                timeline.say(
                    f"prewarm: {d['verdict']} {d['app']} on {d['target']}, "
                    f"confidence {d['confidence']:.0%}: {d['explain'] or 'ended'}",
                    "prewarm" if d["verdict"] == "PREWARM" else None,
                )
                continue
            if d.get("instance") != instance:
                continue
            target = f" -> {d['target']}" if d.get("target") else ""
            recheck = ""
            if d["action"] == "defer" and d.get("recheck_at_s") and d.get("decided_at_s"):
                recheck = f", look again in {d['recheck_at_s'] - d['decided_at_s']:.0f} s"
            timeline.say(
                f"policy: {d['action'].upper()} {d['reason']} ({d['trigger']}) "
                f"{d['app']} on {d['source']}{target}{recheck}",
                "decided" if d["action"] == "relocate" else None,
            )
    finally:
        await reader.stop()


async def _workflow_steps(client: object, wf_id: str, timeline: Timeline) -> None:
    """Show the relocation workflow's step changes, from its state query."""
    handle = client.get_workflow_handle(wf_id)  # type: ignore[attr-defined]
    last = None
    while True:
        with contextlib.suppress(Exception):
            state = await handle.query("state", result_type=RelocationState)
            step = state.step.value if state.step is not None else None
            where = state.placement.cluster if state.placement else "?"
            warm = state.warm.cluster if state.warm else None
            now = (step, where, warm)
            if now != last:
                if step is not None and state.in_flight and state.in_flight.kind != "move":
                    timeline.say(f"workflow: {state.in_flight.kind} step {step}")
                elif step is not None:
                    timeline.say(f"workflow: step {step}", f"step_{step}")
                elif last is not None and warm is not None:
                    timeline.say(f"workflow: warm on {warm}, still serving from {where}")
                elif last is not None:
                    timeline.say(f"workflow: move done, instance on {where}", "workflow_done")
                last = now
        await asyncio.sleep(0.05)


@asynccontextmanager
async def _background(*coros: Coroutine[Any, Any, object]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


async def _wait(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False


async def scenario(
    base: Settings,
    work: Path,
    timeline: Timeline,
    timeout_s: float,
    steering: str = "dns",
    prewarm: bool = False,
) -> bool:
    """Run the scenario on a running stack; True when the client reached the new instance."""
    run = uuid.uuid4().hex[:6]
    # The instance keeps its port when it moves between the edge addresses.
    port = port_free_on(*EDGE.values(), DATA_NETWORK)
    planes = []
    if steering != "dns":
        planes.append(
            FakeUserPlane(
                af_app_id=APP, host=DATA_NETWORK, port=port, dnais=DNAIS, default=EDGE["edge-1"]
            )
        )
    async with AsyncExitStack() as stack:
        fake = await stack.enter_async_context(FakeCoreServer(oauth=True, user_planes=planes))
        timeline.say(f"core: fake free5GC (NRF + OAuth2, AMF) at {fake.url}")
        s = demo_settings(base, work, run, fake.url, port, steering, prewarm)
        await _create_topics(s)
        resolve: Resolve | None = None
        if steering != "dns":
            fake.core.establish_session(UE, UE_ADDRESS)
            served = await stack.enter_async_context(
                serving_receiver(
                    s.model_copy(update={"receiver": s.receiver.model_copy(update={"port": 0})}),
                    registry=registry_for(s),
                )
            )
            s = served.settings
            resolve = _fixed(DATA_NETWORK, port)
            timeline.say(
                f"core: NEF traffic influence, SMF and user plane ({DATA_NETWORK}:{port}, the UE "
                f"on the default route to edge-1); receiver for UP_PATH_CH at {served.url}"
            )

        client = await connect(s.temporal)
        local = await stack.enter_async_context(
            LocalOrchestrator(
                state_dir=s.relocation.local_dir,
                warmup_s=s.relocation.local_warmup_s,
                ams_url=s.ams.url + BASE_PATH,
            )
        )
        stack.callback(local.remove_all)
        dns = await stack.enter_async_context(PowerDns(s.powerdns))
        await dns.ensure_zone()
        await stack.enter_async_context(
            running(open_worker(s, client=client, orchestrator=local, dns=dns))
        )
        await stack.enter_async_context(running(open_consumer(s, temporal=client)))
        publisher = await stack.enter_async_context(Publisher(kafka=s.kafka, receiver=s.receiver))
        if prewarm:
            await publisher.publish(_commuters(time.time()))
            timeline.say(
                f"commuters: {COMMUTERS} UEs went tower-3 -> 1 -> 2 in the last 15 min "
                "(their reports on Kafka): the predictor learns the route"
            )
        await stack.enter_async_context(
            running(open_tracker(s, sink=ShowingSink(publisher, timeline)))
        )
        timeline.say("daemon: poller registered with the NRF, polling the AMF every 0.5 s")
        move = Move(ue=UE, app=APP, instance=f"ue-{run}", port=port, core_url=fake.url)
        return await _follow(move, s, client, local, dns, timeline, timeout_s, resolve, prewarm)


def _commuters(now: float) -> list[EventRecord]:
    """Route-following UEs' reports as the AMF sends them: each passes towers 3, 1 and 2, a
    minute at each (how long UEs stay at tower 1 is what tells a warm instance will be used
    soon), all in the last quarter of an hour."""
    from subscriber.ingress.normalize import BodyKind, normalize_body
    from subscriber.sre.simulate import RadioCell, location_report

    out = []
    for k in range(COMMUTERS):
        for i, tower in enumerate(("tower-3", "tower-1", "tower-2")):
            at = datetime.fromtimestamp(now - 900 + 120 * k + 60 * i, UTC)
            tac, cell = TOWERS[tower]
            body = location_report(
                f"imsi-2089300000001{k:02d}",
                RadioCell("20893", tac, cell, f"zone-{tower}"),
                at,
                f"commuter-{k}",
            )
            out += normalize_body(BodyKind.AMF_NOTIFICATION, body, ingest_time=at).records
    return out


async def deployed_scenario(settings: Settings, timeline: Timeline, timeout_s: float) -> bool:
    """The scenario against a deployed system (compose) whose fake core, receiver, consumer and
    worker already run: this process only seeds the first instance, moves the UE through the fake
    core's control API and runs the client.

    It runs inside the worker's container, so the instances it starts are the worker's (the local
    orchestrator's records and processes are shared) and the client sees the clusters' loopback
    addresses. The instance is the first of the instances file; the UE is moved from tower 1 to
    tower 2, so that instance must start on edge-1.
    """
    core_url = settings.core.nrf_url
    if core_url is None or settings.act.instances_file is None:
        raise SubscriberError(
            "--deployed needs core.nrf_url (the fake core) and act.instances_file"
        )
    async with AsyncExitStack() as stack:
        policy = await stack.enter_async_context(PolicyHolder(settings.policy))
        path = settings.act.instances_file
        registry = InstancesHolder(
            path, policy=policy, interval_s=settings.policy.reload_interval_s
        )
        instances = (await stack.enter_async_context(registry)).current
        first = next((i for docs in instances.by_ue.values() for i in docs), None)
        if first is None or first.cluster != "edge-1":
            raise SubscriberError(f"{path}: its first instance must start on edge-1")
        timeline.say(f"core: fake free5GC at {core_url}; deployment at {settings.temporal.address}")
        client = await connect(settings.temporal)
        r = settings.relocation
        local = await stack.enter_async_context(
            LocalOrchestrator(
                state_dir=r.local_dir,
                warmup_s=r.local_warmup_s,
                ams_url=settings.ams.url + BASE_PATH,
            )
        )
        dns = await stack.enter_async_context(PowerDns(settings.powerdns))
        await dns.ensure_zone()
        move = Move(
            ue=first.ue,
            app=first.app,
            instance=first.instance,
            port=settings.act.app_port,
            core_url=core_url,
        )
        return await _follow(move, settings, client, local, dns, timeline, timeout_s)


@dataclass(frozen=True)
class Move:
    """Whose application moves, where clients reach it, and the fake core that moves the UE."""

    ue: str
    app: str
    instance: str
    port: int
    core_url: str

    async def place(self, http: aiohttp.ClientSession, tower: str, *, roam: bool) -> None:
        """Register the UE in ``tower`` (or, with ``roam``, move it there) in the fake AMF."""
        tac, cell = TOWERS[tower]
        path = f"{self.core_url}/fake/ues/{self.ue}" + ("/move" if roam else "")
        call = http.post if roam else http.put
        async with call(path, json={"tac": tac, "nrCellId": cell}) as answer:
            if answer.status != 204:
                raise SubscriberError(f"the fake core answered {answer.status} to {path}")


async def _follow(
    move: Move,
    s: Settings,
    client: Any,
    local: LocalOrchestrator,
    dns: PowerDns,
    timeline: Timeline,
    timeout_s: float,
    resolve: Resolve | None = None,
    prewarm: bool = False,
) -> bool:
    """Serve the app on edge-1, run the client, roam the UE to tower 2, watch the move.

    The client finds the app through its DNS name, or at ``resolve`` (the user plane). With
    ``prewarm`` the UE roams once the app is warm on edge-2.
    """
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        await move.place(http, "tower-1", roam=False)
        timeline.say(f"core: UE {pseudonym(move.ue)} in tower-1 cell {TOWERS['tower-1'][1]}")
        source = Placement(cluster="edge-1", address=EDGE["edge-1"], port=move.port)
        endpoint = await local.deploy(move.app, move.instance, source)
        await _wait_ready(local, endpoint)
        name = record_name(move.app, move.instance, dns.zone)
        await dns.replace_a(name, [EDGE["edge-1"]])
        timeline.say(
            f"app: {move.app}/{move.instance} serving on edge-1 "
            f"({source.address}:{move.port}); DNS {name}"
        )
        seen: set[str] = set()
        stop = asyncio.Event()
        user = EdgeUser(UE_ADDRESS, resolve or _resolver(dns, name, move.port))
        stack.callback(stop.set)
        await stack.enter_async_context(
            _background(
                _user(user, name, timeline, seen, stop),
                _decisions(s, move.instance, timeline),
                _workflow_steps(client, workflow_id(move.app, move.instance), timeline),
            )
        )
        if not await _wait(lambda: "edge-1" in seen, 20):
            timeline.say("FAILED: the client never reached edge-1")
            return False
        await asyncio.sleep(2)
        wf = workflow_id(move.app, move.instance)
        if prewarm and not await _warm(client, wf, timeout_s):
            timeline.say(f"FAILED: the app was not warm on edge-2 within {timeout_s:.0f} s")
            return False

        await move.place(http, "tower-2", roam=True)
        tac, cell = TOWERS["tower-2"]
        timeline.say(f"UE roams: tower-1 -> tower-2 cell {cell} (TAC {tac})", "roamed")
        if not await _wait(lambda: "edge-2" in seen, timeout_s):
            timeline.say(f"FAILED: the client did not reach edge-2 within {timeout_s:.0f} s")
            return False
        await _wait(lambda: "workflow_done" in timeline.marks, 30)
        if not await _show_outcome(client, wf, timeline, prewarm):
            return False
        before = len(user.answers)
        await _wait(lambda: len(user.answers) >= before + 5, 10)
        stop.set()
        gone = await local.readiness(endpoint) is not Readiness.READY
        timeline.say(f"old instance on edge-1 {'gone' if gone else 'STILL RUNNING'}")
        target = Placement(cluster="edge-2", address=EDGE["edge-2"], port=move.port)
        return gone and await _prove_continuity(user, target, timeline)


def _fixed(address: str, port: int) -> Resolve:
    async def resolve() -> tuple[str, int]:
        return address, port

    return resolve


def _resolver(dns: PowerDns, name: str, port: int) -> Resolve:
    async def resolve() -> tuple[str, int]:
        (address,) = await dns.query_a(name)
        return address, port

    return resolve


async def _prove_continuity(user: EdgeUser, target: Placement, timeline: Timeline) -> bool:
    """The user's state at the new instance is exactly what it was at the old one, and no
    request failed across the switch."""
    await asyncio.sleep(0.2)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
        http.get(f"http://{target.address}:{target.port}/fake/state") as resp,
    ):
        held = (await resp.json()).get("counts", {}).get(UE_ADDRESS)
    at_old = [a.count for a in user.answers if a.cluster == "edge-1"]
    at_new = [a.count for a in user.answers if a.cluster == "edge-2"]
    last_old = at_old[-1] if at_old else None
    first_new = at_new[0] if at_new else None
    proof = [
        ("no request failed", not user.failures, f"{len(user.answers)} requests"),
        (
            "the count went on at edge-2 where edge-1 left it",
            last_old is not None and first_new == last_old + 1,
            f"last at edge-1 {last_old}, first at edge-2 {first_new}",
        ),
        ("no count lost or repeated", user.continuous(), f"{len(user.counts)} counts"),
        (
            "edge-2 holds exactly the user's state",
            held is not None and held == user.counts[-1],
            f"edge-2 holds {held}, the user last saw {user.counts[-1] if user.counts else None}",
        ),
    ]
    for what, ok, how in proof:
        timeline.say(f"proof: {what}: {'yes' if ok else 'NO'} ({how})")
    return all(ok for _, ok, _ in proof)


async def _warm(client: Any, wf_id: str, timeout_s: float) -> bool:
    """Wait until the workflow holds a warm instance on edge-2."""
    handle = client.get_workflow_handle(wf_id)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            state = await handle.query("state", result_type=RelocationState)
            if state.warm is not None and state.warm.cluster == "edge-2":
                return True
        await asyncio.sleep(0.1)
    return False


async def _show_outcome(client: Any, wf_id: str, timeline: Timeline, prewarm: bool) -> bool:
    """The move's outcome as the workflow recorded it, with each step's duration; with
    ``prewarm``, whether it was pre-warmed (no deploy, no readiness wait). False when the
    outcome is not there, or a pre-warmed move deployed after all."""
    handle = client.get_workflow_handle(wf_id)
    moved: MoveOutcome | None = None
    for _ in range(100):  # the outcome is recorded as the last step ends
        history = await handle.query("history", result_type=list[MoveOutcome])
        moves = [o for o in history if Step.REMOVE_SOURCE.value in o.step_ms]
        if moves:
            moved = moves[-1]
            break
        await asyncio.sleep(0.1)
    if moved is None:
        timeline.say("FAILED: the workflow recorded no completed move")
        return False
    steps = ", ".join(f"{k} {v} ms" for k, v in moved.step_ms.items())
    timeline.say(
        f"workflow: {moved.status.value} {moved.source_cluster} -> {moved.target_cluster}: {steps}"
    )
    timeline.say(f"workflow: the user's context: {moved.context}")
    if not prewarm:
        return True
    warm = Step.DEPLOY.value not in moved.step_ms and Step.READINESS.value not in moved.step_ms
    timeline.say(
        "workflow: pre-warmed move: "
        + ("yes (no deploy, no readiness wait)" if warm else "NO (it deployed)")
    )
    return warm


async def _create_topics(settings: Settings) -> None:
    """The demo's topics, made before any client asks for them (quiet logs)."""
    k = settings.kafka
    admin = AIOKafkaAdminClient(bootstrap_servers=k.bootstrap_servers)
    await admin.start()
    try:
        topics = (k.events_topic, k.decisions_topic, k.dead_letter_topic)
        await admin.create_topics([NewTopic(t, 1, 1) for t in topics])
    finally:
        await admin.close()


async def _wait_ready(local: LocalOrchestrator, endpoint: object) -> None:
    for _ in range(100):
        if await local.readiness(endpoint) is Readiness.READY:  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the first instance never became ready")


def _summary(timeline: Timeline) -> None:
    m = timeline.marks
    rows = [
        ("roam -> poller saw the move", "roamed", "moved_seen"),
        ("poller -> relocation decided", "moved_seen", "decided"),
        ("decided -> context transferred", "decided", "step_dns"),
        ("decided -> DNS switched, confirmed", "decided", "step_remove_source"),
        ("roam -> client on edge-2", "roamed", "client_edge2"),
    ]
    print("\nsummary")
    for label, start, end in rows:
        if start in m and end in m:
            print(f"  {label:<36} {m[end] - m[start]:6.2f} s")


async def run(settings: Settings, options: DemoOptions) -> int:
    """The CLI entry: stack up, scenario, summary; exit 0 only when the move really happened.

    With ``--deployed`` it starts nothing: the scenario runs against the deployment the settings
    name (``docker compose exec worker subscriber demo --deployed``).
    """
    # A fresh secret per run unless one is configured: the pseudonyms the demo prints (and its
    # processes log) cannot be reversed.
    key = settings.log.pseudonym_key
    try:
        require_pseudonym_key(settings.log)
    except SubscriberError:
        key = secrets.token_hex(16)
    settings = settings.model_copy(
        update={"log": settings.log.model_copy(update={"pseudonym_key": key})}
    )
    configure_logging(LogSettings(level="warning", format=settings.log.format, pseudonym_key=key))
    timeline = Timeline()
    if options.deployed:
        ok = await deployed_scenario(settings, timeline, options.timeout_s)
    else:
        state, how = await up(settings)
        for name, what in how.items():
            timeline.say(f"stack: {name} {what}")
        report = await status(settings)
        timeline.say("stack: " + ", ".join(f"{k} {v}" for k, v in report.items()))
        base = settings_for(settings, state.info())
        with tempfile.TemporaryDirectory(prefix="subscriber-demo-") as work:
            ok = await scenario(
                base, Path(work), timeline, options.timeout_s, options.steering, options.prewarm
            )
    _summary(timeline)
    print(
        "\nresult: "
        + (
            "the client now talks to edge-2, its state intact: stateful relocation done"
            if ok
            else "FAILED"
        )
    )
    if not options.deployed:
        print("the stack keeps running for the next run; stop it with: subscriber stack down")
    return 0 if ok else 1
