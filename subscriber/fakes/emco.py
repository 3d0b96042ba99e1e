"""A fake EMCO orchestrator: the slice of its REST API a relocation uses, with its states.

EMCO (a Kubernetes multi-cluster orchestrator) cannot run here, so the tests and the demo use
this. It follows the documented API of project-emco/core/emco-base (GitHub copy
satra124/emco-base-test, ``e2ed7392``), not its code:

* routes and response codes: ``docs/swagger-specs-for-APIs/emco_apis.yaml``: deployment intent
  groups (POST 201, 409 for a name taken; GET 200, 404), their generic placement intents, app
  intents and intents (POST 201/409, GET 200/404, PUT 200), ``approve``/``instantiate``/
  ``update``/``terminate`` (POST 202), ``status`` (GET 200, 404 for an unknown DIG); a composite
  app that was never onboarded is 404;
* the update handler answers 202 with the new revision number as its JSON body
  (``src/orchestrator/api/update_handler.go``);
* DIG states Created/Approved/Instantiated/Updated/Terminated, and their rules
  (``docs/design/Resource_Lifecycle_and_Status.md``; ``Approve`` in
  ``src/orchestrator/pkg/module/instantiation.go`` and the instantiate check in
  ``instantiation_appcontext_helper.go``): a modified intent sets an Approved DIG back to
  Created; approve takes Created, Terminated or Updated (Approved: nothing to do); instantiate
  needs Approved or Terminated; update needs Instantiated; terminate removes what runs;
  AppContext statuses Instantiated/InstantiateFailed/Updated/UpdateFailed
  (``src/orchestrator/pkg/state/types.go``, ``src/orchestrator/pkg/appcontext/appcontext.go``);
* what a DIG deploys: every app of its composite app on the clusters of that app's intent
  (``src/orchestrator/pkg/module/appContextMaker.go``); one DIG never touches another's;
* the status result with ``status=ready``: ``deployedStatus``, ``readyStatus`` (Ready or
  NotReady), ``deployedCounts``, ``readyCounts``, ``apps[].clusters[]`` with ``clusterProvider``,
  ``cluster``, ``connectivity`` and ``resources[]`` (``src/orchestrator/pkg/status/types.go``,
  ``status_helper.go``); ``app`` and ``cluster`` (``provider+cluster``) filter the result.

A cluster added by an instantiate or update turns ready ``ready_delay_s`` later; clusters named
in ``failing_clusters`` make it end ``InstantiateFailed``/``UpdateFailed``.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from subscriber.app.lifecycle import stop_on_signals
from subscriber.options import EmcoFakeOptions
from subscriber.settings import Settings

DIGS_ROUTE = "/v2/projects/{project}/composite-apps/{ca}/{version}/deployment-intent-groups"
DIG_ROUTE = DIGS_ROUTE + "/{dig}"
_RUNNING = ("Instantiated", "Updated")


@dataclass
class FakeDig:
    """One deployment intent group: its intents, lifecycle and what runs where."""

    name: str
    composite_app: str
    spec: dict[str, Any]
    placement_intents: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    state: str = "Created"
    app_context_status: str = ""
    revision: int = 0
    actions: list[dict[str, Any]] = field(default_factory=list)
    # (app, cluster) -> monotonic time when the app turns ready there
    deployed: dict[tuple[str, str], float] = field(default_factory=dict)

    def record(self, state: str) -> None:
        """Append a state change, as the status query's ``states.actions`` lists them."""
        self.state = state
        self.actions.append(
            {"state": state, "instance": "1000", "time": "2026-01-01T00:00:00Z",
             "revision": self.revision}
        )  # fmt: skip

    def modified(self) -> None:
        """An intent changed: an Approved DIG goes back to Created."""
        if self.state == "Approved":
            self.record("Created")

    def wanted(self) -> set[tuple[str, str]]:
        """(app, cluster) pairs its app intents ask for."""
        return {
            (intent["spec"]["app"], entry["cluster"])
            for gpi in self.placement_intents.values()
            for intent in gpi.values()
            for entry in intent["spec"].get("intent", {}).get("allOf", [])
        }


@dataclass
class FakeEmcoState:
    """Everything the fake knows: onboarded composite apps, and their DIGs."""

    project: str = "proj1"
    version: str = "v1"
    provider: str = "edge-provider"
    ready_delay_s: float = 0.3
    failing_clusters: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.monotonic
    composite_apps: set[str] = field(default_factory=set)
    digs: dict[tuple[str, str], FakeDig] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def onboard(self, app: str) -> None:
        """A composite app named like ``app`` holding that one app (as our adapter expects)."""
        self.composite_apps.add(app)

    def place(self, app: str, instance: str, clusters: Iterable[str]) -> None:
        """An instance of ``app`` already deployed and ready on ``clusters``, in its own DIG."""
        self.onboard(app)
        clusters = list(clusters)
        dig = FakeDig(instance, app, {"version": instance})
        dig.record("Created")
        all_of = [{"clusterProvider": self.provider, "cluster": c} for c in clusters]
        dig.placement_intents["placement"] = {
            app: {"metadata": {"name": app}, "spec": {"app": app, "intent": {"allOf": all_of}}}
        }
        dig.intents["placement"] = {"spec": {"intent": {"genericPlacementIntent": "placement"}}}
        dig.record("Approved")
        dig.record("Instantiated")
        dig.app_context_status = "Instantiated"
        for c in clusters:
            dig.deployed[(app, c)] = self.clock()
        self.digs[(app, instance)] = dig

    def placed(self) -> set[tuple[str, str, str]]:
        """(app, instance, cluster) the running DIGs' intents ask for."""
        return {
            (app, dig.name, cluster)
            for dig in self.digs.values()
            if dig.state in _RUNNING
            for app, cluster in dig.wanted()
        }

    def running(self) -> set[tuple[str, str, str]]:
        """(app, instance, cluster) deployed now."""
        return {(app, d.name, cluster) for d in self.digs.values() for app, cluster in d.deployed}

    def apply(self, dig: FakeDig, *, failed: str, done: str) -> None:
        """Bring what runs in line with the intents (instantiate, update)."""
        wanted = dig.wanted()
        now = self.clock()
        if any(c in self.failing_clusters for _, c in wanted - set(dig.deployed)):
            dig.app_context_status = failed
        else:
            dig.app_context_status = done
            for key in wanted - set(dig.deployed):
                dig.deployed[key] = now + self.ready_delay_s
        for key in set(dig.deployed) - wanted:
            del dig.deployed[key]


def _status(state: FakeEmcoState, dig: FakeDig, query: Any) -> dict[str, Any]:
    apps_filter = set(query.getall("app", []))
    clusters_filter = {c.split("+", 1)[-1] for c in query.getall("cluster", [])}
    ready_mode = query.get("status", "ready") == "ready" or query.get("type") == "cluster"
    now = state.clock()
    apps: dict[str, list[dict[str, Any]]] = {}
    ready_counts: dict[str, int] = {}
    deployed_counts: dict[str, int] = {}
    for (app, cluster), ready_at in sorted(dig.deployed.items()):
        if (apps_filter and app not in apps_filter) or (
            clusters_filter and cluster not in clusters_filter
        ):
            continue
        ready = "Ready" if now >= ready_at else "NotReady"
        ready_counts[ready] = ready_counts.get(ready, 0) + 1
        deployed_counts["Applied"] = deployed_counts.get("Applied", 0) + 1
        resource = {
            "GVK": {"Group": "apps", "Version": "v1", "Kind": "Deployment"},
            "name": f"{dig.spec.get('version', dig.name)}-{app}",
            "deployedStatus": "Applied",
        }
        if ready_mode:
            resource["readyStatus"] = ready
        apps.setdefault(app, []).append(
            {"clusterProvider": state.provider, "cluster": cluster,
             "connectivity": "Available", "resources": [resource]}
        )  # fmt: skip
    result: dict[str, Any] = {
        "project": state.project,
        "compositeApp": dig.composite_app,
        "compositeAppVersion": state.version,
        "compositeProfile": dig.spec.get("compositeProfile", ""),
        "name": dig.name,
        "states": {"statusctxid": "1000", "actions": dig.actions},
        "apps": [{"name": a, "clusters": cs} for a, cs in apps.items()],
    }
    if dig.app_context_status:
        result["deployedStatus"] = dig.app_context_status
        result["deployedCounts"] = deployed_counts
    if ready_mode:
        result["readyCounts"] = ready_counts
        result["readyStatus"] = "NotReady" if ready_counts.get("NotReady") else "Ready"
    return result


class _Api:
    """The request handlers, over one state."""

    def __init__(self, state: FakeEmcoState) -> None:
        self.state = state

    def composite_app(self, request: web.Request) -> str:
        m, st = request.match_info, self.state
        st.requests.append(f"{request.method} {request.path_qs}")
        if (m["project"], m["version"]) != (st.project, st.version) or (
            m["ca"] not in st.composite_apps
        ):
            raise web.HTTPNotFound(text="composite app not found")
        return m["ca"]

    def dig(self, request: web.Request) -> FakeDig:
        ca = self.composite_app(request)
        found = self.state.digs.get((ca, request.match_info["dig"]))
        if found is None:
            raise web.HTTPNotFound(text="deployment intent group not found")
        return found

    async def create_dig(self, request: web.Request) -> web.Response:
        ca = self.composite_app(request)
        body = await request.json()
        name = body.get("metadata", {}).get("name")
        spec = body.get("spec") or {}
        if not name or not all(
            spec.get(k) for k in ("compositeProfile", "version", "logicalCloud")
        ):
            raise web.HTTPBadRequest(
                text="metadata.name and spec.{compositeProfile,version,logicalCloud}"
            )
        if (ca, name) in self.state.digs:
            raise web.HTTPConflict(text="deployment intent group already exists")
        dig = FakeDig(name, ca, spec)
        dig.record("Created")
        self.state.digs[(ca, name)] = dig
        return web.json_response(body, status=201)

    async def get_dig(self, request: web.Request) -> web.Response:
        dig = self.dig(request)
        return web.json_response({"metadata": {"name": dig.name}, "spec": dig.spec})

    async def create_gpi(self, request: web.Request) -> web.Response:
        dig = self.dig(request)
        body = await request.json()
        name = body.get("metadata", {}).get("name")
        if not name:
            raise web.HTTPBadRequest(text="metadata.name required")
        if name in dig.placement_intents:
            raise web.HTTPConflict(text="generic placement intent already exists")
        dig.placement_intents[name] = {}
        dig.modified()
        return web.json_response(body, status=201)

    async def list_gpis(self, request: web.Request) -> web.Response:
        dig = self.dig(request)
        return web.json_response([{"metadata": {"name": n}} for n in dig.placement_intents])

    def gpi(self, request: web.Request) -> tuple[FakeDig, dict[str, dict[str, Any]]]:
        dig = self.dig(request)
        gpi = dig.placement_intents.get(request.match_info["gpi"])
        if gpi is None:
            raise web.HTTPNotFound(text="generic placement intent not found")
        return dig, gpi

    async def create_app_intent(self, request: web.Request) -> web.Response:
        dig, gpi = self.gpi(request)
        body = await request.json()
        name = body.get("metadata", {}).get("name")
        if not name or "app" not in body.get("spec", {}):
            raise web.HTTPBadRequest(text="metadata.name and spec.app required")
        if name in gpi:
            raise web.HTTPConflict(text="intent already exists")
        gpi[name] = copy.deepcopy(body)
        dig.modified()
        return web.json_response(body, status=201)

    async def list_app_intents(self, request: web.Request) -> web.Response:
        _, gpi = self.gpi(request)
        return web.json_response(list(gpi.values()))

    async def get_app_intent(self, request: web.Request) -> web.Response:
        _, gpi = self.gpi(request)
        intent = gpi.get(request.match_info["name"])
        if intent is None:
            raise web.HTTPNotFound(text="intent not found")
        return web.json_response(intent)

    async def put_app_intent(self, request: web.Request) -> web.Response:
        dig, gpi = self.gpi(request)
        name = request.match_info["name"]
        body = await request.json()
        if body.get("metadata", {}).get("name") != name or "app" not in body.get("spec", {}):
            raise web.HTTPBadRequest(text="metadata.name must match the URL; spec.app required")
        gpi[name] = copy.deepcopy(body)
        dig.modified()
        return web.json_response(body, status=200)

    async def create_intent(self, request: web.Request) -> web.Response:
        dig = self.dig(request)
        body = await request.json()
        name = body.get("metadata", {}).get("name")
        if not name:
            raise web.HTTPBadRequest(text="metadata.name required")
        if name in dig.intents:
            raise web.HTTPConflict(text="intent already exists")
        dig.intents[name] = body
        dig.modified()
        return web.json_response(body, status=201)

    async def lifecycle(self, request: web.Request) -> web.Response:
        dig = self.dig(request)
        op = request.match_info["op"]
        st = self.state
        if op == "approve":
            if dig.state in _RUNNING and dig.state != "Updated":
                raise web.HTTPConflict(text=f"cannot approve a DIG in state {dig.state}")
            if dig.state != "Approved":  # approving an Approved DIG is a no-op
                dig.record("Approved")
        elif op == "instantiate":
            if dig.state not in ("Approved", "Terminated"):
                raise web.HTTPConflict(text=f"cannot instantiate a DIG in state {dig.state}")
            if not dig.intents or not dig.wanted():
                raise web.HTTPBadRequest(text="no compatible clusters in the placement intents")
            dig.revision += 1
            dig.record("Instantiated")
            st.apply(dig, failed="InstantiateFailed", done="Instantiated")
        elif op == "update":
            if dig.state not in _RUNNING:
                raise web.HTTPConflict(text=f"cannot update a DIG in state {dig.state}")
            dig.revision += 1
            dig.record("Updated")
            st.apply(dig, failed="UpdateFailed", done="Updated")
            return web.json_response(dig.revision, status=202)
        elif op == "terminate":
            if dig.state not in _RUNNING:
                raise web.HTTPConflict(text=f"cannot terminate a DIG in state {dig.state}")
            dig.record("Terminated")
            dig.app_context_status = "Terminated"
            dig.deployed.clear()
        return web.Response(status=202)

    async def status(self, request: web.Request) -> web.Response:
        dig = self.dig(request)
        return web.json_response(_status(self.state, dig, request.query))


def fake_emco_app(state: FakeEmcoState) -> web.Application:
    """The aiohttp application serving ``state``."""
    api = _Api(state)
    app = web.Application()
    gpis = DIG_ROUTE + "/generic-placement-intents"
    intents = gpis + "/{gpi}/app-intents"
    app.router.add_post(DIGS_ROUTE, api.create_dig)
    app.router.add_get(DIG_ROUTE, api.get_dig)
    app.router.add_post(gpis, api.create_gpi)
    app.router.add_get(gpis, api.list_gpis)
    app.router.add_post(intents, api.create_app_intent)
    app.router.add_get(intents, api.list_app_intents)
    app.router.add_get(intents + "/{name}", api.get_app_intent)
    app.router.add_put(intents + "/{name}", api.put_app_intent)
    app.router.add_post(DIG_ROUTE + "/intents", api.create_intent)
    app.router.add_post(DIG_ROUTE + "/{op:approve|instantiate|update|terminate}", api.lifecycle)
    app.router.add_get(DIG_ROUTE + "/status", api.status)
    return app


async def serve(settings: Settings, options: EmcoFakeOptions) -> int:
    """``subscriber emco-fake``: serve a fake EMCO with one instance placed on one cluster."""
    reloc = settings.relocation
    state = FakeEmcoState(
        project=reloc.emco_project,
        version=reloc.emco_composite_app_version,
        provider=reloc.emco_cluster_provider,
    )
    state.place(options.app, options.instance, [options.cluster])
    runner = web.AppRunner(fake_emco_app(state))
    await runner.setup()
    await web.TCPSite(runner, options.host, options.port).start()
    stop = asyncio.Event()
    stop_on_signals(stop)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
