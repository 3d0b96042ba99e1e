"""A fake EMCO orchestrator: the slice of its REST API a relocation uses, with its status states.

EMCO (a Kubernetes multi-cluster orchestrator) cannot run here, so the tests and the demo use
this. It follows the documented API of project-emco/core/emco-base (GitHub copy
satra124/emco-base-test, ``e2ed7392``), not its code:

* routes and response codes: ``docs/swagger-specs-for-APIs/emco_apis.yaml`` (generic placement
  intents and app intents: GET 200, PUT 200; ``approve``/``instantiate``/``update`` POST 202;
  ``terminate`` 202; ``status`` GET 200, 404 for an unknown DIG);
* the update handler answers 202 with the new revision number as its JSON body
  (``src/orchestrator/api/update_handler.go``);
* DIG states Created/Approved/Instantiated/Terminated/Updated and AppContext statuses
  Instantiating/Instantiated/InstantiateFailed/Updating/Updated/UpdateFailed
  (``docs/design/Resource_Lifecycle_and_Status.md``, ``src/orchestrator/pkg/state/types.go``,
  ``src/orchestrator/pkg/appcontext/appcontext.go``);
* the status result with ``status=ready``: ``deployedStatus``, ``readyStatus`` (Ready or
  NotReady), ``deployedCounts``, ``readyCounts``, ``apps[].clusters[]`` with ``clusterProvider``,
  ``cluster``, ``connectivity`` and ``resources[]`` (``src/orchestrator/pkg/status/types.go``,
  ``status_helper.go``); ``app`` and ``cluster`` (``provider+cluster``) filter the result.

A cluster added by an update turns ready ``ready_delay_s`` after the update; clusters named in
``failing_clusters`` make the update end ``UpdateFailed``.
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

DIG_ROUTE = "/v2/projects/{project}/composite-apps/{ca}/{version}/deployment-intent-groups/{dig}"


@dataclass
class FakeEmcoState:
    """Everything the fake knows: one DIG, its app intents and what each cluster runs."""

    project: str = "proj1"
    composite_app: str = "edge-apps"
    version: str = "v1"
    dig: str = "edge-dig"
    gpi: str = "edge-placement"
    provider: str = "edge-provider"
    ready_delay_s: float = 0.3
    failing_clusters: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.monotonic
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (app, cluster) -> monotonic time when the app turns ready there
    deployed: dict[tuple[str, str], float] = field(default_factory=dict)
    app_context_status: str = "Instantiated"
    revision: int = 1
    actions: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A DIG is Created, then Approved, then Instantiated before anything can be updated.
        for state in ("Created", "Approved", "Instantiated"):
            self.record_action(state)

    def place(self, app: str, clusters: Iterable[str]) -> None:
        """Add an app intent placing ``app`` on ``clusters``, already deployed and ready."""
        all_of = [{"clusterProvider": self.provider, "cluster": c} for c in clusters]
        self.intents[f"{app}-intent"] = {
            "metadata": {
                "name": f"{app}-intent",
                "description": "",
                "userData1": "",
                "userData2": "",
            },
            "spec": {"app": app, "intent": {"allOf": all_of}},
        }
        for c in clusters:
            self.deployed[(app, c)] = self.clock()

    def placed(self) -> set[tuple[str, str]]:
        """(app, cluster) pairs the intents ask for."""
        return {
            (intent["spec"]["app"], entry["cluster"])
            for intent in self.intents.values()
            for entry in intent["spec"]["intent"].get("allOf", [])
        }

    def record_action(self, state: str) -> None:
        """Append a DIG state change, as the status query's ``states.actions`` lists them."""
        self.actions.append(
            {"state": state, "instance": "1000", "time": "2026-01-01T00:00:00Z",
             "revision": self.revision}
        )  # fmt: skip

    def update(self) -> int:
        """What ``POST .../update`` does: apply the intents to the clusters."""
        wanted = self.placed()
        now = self.clock()
        if any(c in self.failing_clusters for _, c in wanted - set(self.deployed)):
            self.app_context_status = "UpdateFailed"
        else:
            self.app_context_status = "Updated"
            for key in wanted - set(self.deployed):
                self.deployed[key] = now + self.ready_delay_s
        for key in set(self.deployed) - wanted:
            del self.deployed[key]
        self.revision += 1
        self.record_action("Updated")
        return self.revision


def _status(state: FakeEmcoState, query: Any) -> dict[str, Any]:
    apps_filter = set(query.getall("app", []))
    clusters_filter = {c.split("+", 1)[-1] for c in query.getall("cluster", [])}
    ready_mode = query.get("status", "ready") == "ready" or query.get("type") == "cluster"
    now = state.clock()
    apps: dict[str, list[dict[str, Any]]] = {}
    ready_counts: dict[str, int] = {}
    deployed_counts: dict[str, int] = {}
    for (app, cluster), ready_at in sorted(state.deployed.items()):
        if (apps_filter and app not in apps_filter) or (
            clusters_filter and cluster not in clusters_filter
        ):
            continue
        ready = "Ready" if now >= ready_at else "NotReady"
        ready_counts[ready] = ready_counts.get(ready, 0) + 1
        deployed_counts["Applied"] = deployed_counts.get("Applied", 0) + 1
        resource = {
            "GVK": {"Group": "apps", "Version": "v1", "Kind": "Deployment"},
            "name": f"{app}-deployment",
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
        "compositeApp": state.composite_app,
        "compositeAppVersion": state.version,
        "compositeProfile": f"{state.composite_app}-profile",
        "name": state.dig,
        "states": {"statusctxid": "1000", "actions": state.actions},
        "deployedStatus": state.app_context_status,
        "deployedCounts": deployed_counts,
        "apps": [{"name": a, "clusters": cs} for a, cs in apps.items()],
    }
    if ready_mode:
        result["readyCounts"] = ready_counts
        result["readyStatus"] = "NotReady" if ready_counts.get("NotReady") else "Ready"
    return result


class _Api:
    """The request handlers, over one state."""

    def __init__(self, state: FakeEmcoState) -> None:
        self.state = state

    def check(self, request: web.Request) -> None:
        m, st = request.match_info, self.state
        st.requests.append(f"{request.method} {request.path_qs}")
        if (m["project"], m["ca"], m["version"], m["dig"]) != (
            st.project, st.composite_app, st.version, st.dig
        ):  # fmt: skip
            raise web.HTTPNotFound(text="deployment intent group not found")

    async def list_gpis(self, request: web.Request) -> web.Response:
        self.check(request)
        return web.json_response([{"metadata": {"name": self.state.gpi, "description": ""}}])

    async def list_app_intents(self, request: web.Request) -> web.Response:
        self.check(request)
        if request.match_info["gpi"] != self.state.gpi:
            raise web.HTTPNotFound(text="generic placement intent not found")
        return web.json_response(list(self.state.intents.values()))

    async def get_app_intent(self, request: web.Request) -> web.Response:
        self.check(request)
        intent = self.state.intents.get(request.match_info["name"])
        if intent is None:
            raise web.HTTPNotFound(text="intent not found")
        return web.json_response(intent)

    async def put_app_intent(self, request: web.Request) -> web.Response:
        self.check(request)
        name = request.match_info["name"]
        body = await request.json()
        if body.get("metadata", {}).get("name") != name or "app" not in body.get("spec", {}):
            raise web.HTTPBadRequest(text="metadata.name must match the URL; spec.app required")
        self.state.intents[name] = copy.deepcopy(body)
        return web.json_response(body, status=200)

    async def update(self, request: web.Request) -> web.Response:
        self.check(request)
        return web.json_response(self.state.update(), status=202)

    async def lifecycle(self, request: web.Request) -> web.Response:
        self.check(request)
        op = request.match_info["op"]
        if op == "instantiate":
            self.state.app_context_status = "Instantiated"
            self.state.record_action("Instantiated")
        elif op == "terminate":
            self.state.app_context_status = "Terminated"
            self.state.deployed.clear()
            self.state.record_action("Terminated")
        return web.Response(status=202)

    async def status(self, request: web.Request) -> web.Response:
        self.check(request)
        return web.json_response(_status(self.state, request.query))


def fake_emco_app(state: FakeEmcoState) -> web.Application:
    """The aiohttp application serving ``state``."""
    api = _Api(state)
    app = web.Application()
    gpis = DIG_ROUTE + "/generic-placement-intents"
    app.router.add_get(gpis, api.list_gpis)
    app.router.add_get(gpis + "/{gpi}/app-intents", api.list_app_intents)
    app.router.add_get(gpis + "/{gpi}/app-intents/{name}", api.get_app_intent)
    app.router.add_put(gpis + "/{gpi}/app-intents/{name}", api.put_app_intent)
    app.router.add_post(DIG_ROUTE + "/update", api.update)
    app.router.add_post(DIG_ROUTE + "/{op:approve|instantiate|terminate}", api.lifecycle)
    app.router.add_get(DIG_ROUTE + "/status", api.status)
    return app


async def serve(settings: Settings, options: EmcoFakeOptions) -> int:
    """``subscriber emco-fake``: serve a fake EMCO with one app placed on one cluster."""
    reloc = settings.relocation
    state = FakeEmcoState(
        project=reloc.emco_project,
        composite_app=reloc.emco_composite_app,
        version=reloc.emco_composite_app_version,
        dig=reloc.emco_deployment_intent_group,
        provider=reloc.emco_cluster_provider,
    )
    state.place(options.app, [options.cluster])
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
