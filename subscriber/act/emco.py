"""EMCO adapter: one deployment intent group per application instance, so a move touches one UE.

EMCO deploys a composite app through a deployment intent group (DIG): every app of the composite
app is placed on the clusters its app intent names (the DIG's generic placement intent), rendered
as a Helm release named by the DIG's ``spec.version`` (emco-base at ``e2ed7392``,
``src/orchestrator/pkg/module/appContextMaker.go``: ``rName := ...Spec.Version //rName is
releaseName``; every app needs an app intent, or instantiation fails). So the unit EMCO can move
is a DIG: here each application is its own composite app (named like the app), and each instance
of it its own DIG (named like the instance), whose release is the instance's. Moving one UE's
instance edits that DIG's app intent only; other UEs' instances, in other DIGs, are not touched.

The calls follow the orchestrator API documented in emco-base (``e2ed7392``,
``docs/swagger-specs-for-APIs/emco_apis.yaml``; states in
``docs/design/Resource_Lifecycle_and_Status.md``):

* deploy: a DIG not there yet is created with its generic placement intent, the app intent
  (``allOf: [target]``) and the DIG intent naming the placement intent, then approved and
  instantiated (201/202; 409 for a step a retried activity already did). An instantiated DIG
  gets the target added to ``allOf`` (the source kept, for service continuity), ``PUT``, and
  ``POST .../update`` (202); a DIG left ``Created`` or ``Approved``, or ``Terminated``, by an
  earlier attempt is approved and instantiated;
* readiness: ``GET .../status?status=ready&app=A&cluster=provider+cluster`` of the instance's
  DIG: ready when ``deployedStatus`` is Instantiated or Updated, ``readyStatus`` Ready and the
  cluster is listed; ``InstantiateFailed``/``UpdateFailed`` is a failure;
* remove: the cluster leaves ``allOf`` (``PUT``, ``update``); when it was the last one, the DIG is
  terminated instead.

EMCO knows nothing of service addresses, so the endpoint's address is the one the placement
carries (from our topology).
"""

from __future__ import annotations

import hashlib
import json
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog

from subscriber.act.orchestrator import OrchestratorError
from subscriber.relocation import Endpoint, Placement, Readiness
from subscriber.settings import RelocationSettings

log = structlog.get_logger()

PLACEMENT_INTENT = "placement"
"""The name of each DIG's generic placement intent, and of the DIG intent naming it."""

_DEPLOYED = frozenset({"Instantiated", "Updated"})
_FAILED = frozenset({"InstantiateFailed", "UpdateFailed", "Terminated", "TerminateFailed"})
_RELEASE_MAX = 53  # Helm's limit on release names


def release_name(instance: str) -> str:
    """The Helm release of an instance: its name, shortened by a hash past Helm's 53 characters."""
    if len(instance) <= _RELEASE_MAX:
        return instance
    digest = hashlib.blake2b(instance.encode(), digest_size=6).hexdigest()
    return f"{instance[: _RELEASE_MAX - 13].rstrip('-')}-{digest}"


class EmcoOrchestrator:
    """Deploys each instance through its own EMCO deployment intent group.

    Args:
        base_url: the EMCO orchestrator service, e.g. ``http://emco:9015``.
        project: the EMCO project.
        version: the composite apps' version.
        composite_profile: the composite profile each DIG uses.
        logical_cloud: the logical cloud each DIG deploys to.
        cluster_provider: the provider our cluster names belong to.
        timeout_s: per request.
    """

    def __init__(
        self,
        *,
        base_url: str,
        project: str,
        version: str,
        composite_profile: str,
        logical_cloud: str,
        cluster_provider: str,
        timeout_s: float = 10.0,
    ) -> None:
        self._project_url = f"{base_url.rstrip('/')}/v2/projects/{project}"
        self._version = version
        self._profile = composite_profile
        self._cloud = logical_cloud
        self._provider = cluster_provider
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: RelocationSettings) -> EmcoOrchestrator:
        """Built from the ``relocation.emco_*`` settings."""
        return cls(
            base_url=settings.emco_url,
            project=settings.emco_project,
            version=settings.emco_composite_app_version,
            composite_profile=settings.emco_composite_profile,
            logical_cloud=settings.emco_logical_cloud,
            cluster_provider=settings.emco_cluster_provider,
            timeout_s=settings.emco_request_timeout_s,
        )

    async def __aenter__(self) -> EmcoOrchestrator:
        self._http = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _digs(self, app: str) -> str:
        return f"{self._project_url}/composite-apps/{app}/{self._version}/deployment-intent-groups"

    def _dig(self, app: str, instance: str) -> str:
        return f"{self._digs(app)}/{instance}"

    def _app_intent(self, app: str, instance: str) -> str:
        placement = f"{self._dig(app, instance)}/generic-placement-intents/{PLACEMENT_INTENT}"
        return f"{placement}/app-intents/{app}"

    async def _request(
        self, method: str, url: str, *, expect: set[int], body: object = None
    ) -> tuple[int, Any]:
        assert self._http is not None, "use EmcoOrchestrator as an async context manager"
        try:
            async with self._http.request(method, url, json=body) as resp:
                text = await resp.text()
                if resp.status in expect:
                    # EMCO answers errors (409 included) in plain text: only a success has JSON.
                    if resp.status >= 300 or not text.strip():
                        return resp.status, None
                    return resp.status, json.loads(text)
                # EMCO answers 4xx for requests it will never accept (swagger responses).
                raise OrchestratorError(
                    f"EMCO {method} {url.removeprefix(self._project_url)}: {resp.status} "
                    f"{text[:200]}",
                    permanent=400 <= resp.status < 500,
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OrchestratorError(f"EMCO unreachable: {exc!r}", permanent=False) from exc
        except ValueError as exc:
            raise OrchestratorError(f"EMCO {method}: not JSON: {exc}", permanent=False) from exc

    def _entry(self, cluster: str) -> dict[str, str]:
        return {"clusterProvider": self._provider, "cluster": cluster}

    def _has(self, intent: dict[str, Any], cluster: str) -> bool:
        return self._entry(cluster) in intent["spec"].get("intent", {}).get("allOf", [])

    async def _create(self, app: str, instance: str, cluster: str) -> None:
        """The instance's DIG with its placement on ``cluster``; steps already done answer 409."""
        dig = self._dig(app, instance)
        steps: list[tuple[str, dict[str, Any]]] = [
            (
                self._digs(app),
                {
                    "metadata": {"name": instance, "description": f"{app}/{instance}"},
                    "spec": {
                        "compositeProfile": self._profile,
                        "version": release_name(instance),
                        "logicalCloud": self._cloud,
                        "overrideValues": [],
                    },
                },
            ),
            (f"{dig}/generic-placement-intents", {"metadata": {"name": PLACEMENT_INTENT}}),
            (
                f"{dig}/generic-placement-intents/{PLACEMENT_INTENT}/app-intents",
                {
                    "metadata": {"name": app},
                    "spec": {"app": app, "intent": {"allOf": [self._entry(cluster)]}},
                },
            ),
            (
                f"{dig}/intents",
                {
                    "metadata": {"name": PLACEMENT_INTENT},
                    "spec": {"intent": {"genericPlacementIntent": PLACEMENT_INTENT}},
                },
            ),
        ]
        for url, body in steps:
            await self._request("POST", url, expect={201, 409}, body=body)

    async def _state(self, app: str, instance: str) -> str | None:
        """The DIG's latest lifecycle state (Created, Approved, Instantiated, ...); None if no
        DIG."""
        status, body = await self._request(
            "GET", f"{self._dig(app, instance)}/status?type=rsync&output=summary", expect={200, 404}
        )
        if status == 404 or not body:
            return None
        actions = (body.get("states") or {}).get("actions") or []
        return str(actions[-1].get("state")) if actions else "Created"

    async def _start(self, app: str, instance: str, state: str) -> None:
        """Approve and instantiate a DIG that is not running."""
        dig = self._dig(app, instance)
        if state == "Created":
            await self._request("POST", f"{dig}/approve", expect={202, 201})
        await self._request("POST", f"{dig}/instantiate", expect={202, 201})
        log.info("emco.instantiated", app=app, dig=instance)

    async def _put_and_update(
        self, app: str, instance: str, intent: dict[str, Any], all_of: list[Any]
    ) -> None:
        spec = intent["spec"]
        body = {
            "metadata": intent["metadata"],
            "spec": {**spec, "intent": {**spec.get("intent", {}), "allOf": all_of}},
        }
        await self._request("PUT", self._app_intent(app, instance), expect={200}, body=body)
        _, revision = await self._request(
            "POST", f"{self._dig(app, instance)}/update", expect={202}
        )
        log.info("emco.updated", app=app, dig=instance, revision=revision)

    async def _status(self, app: str, instance: str, cluster: str) -> dict[str, Any]:
        target = quote(f"{self._provider}+{cluster}", safe="")
        url = f"{self._dig(app, instance)}/status?status=ready&app={quote(app)}&cluster={target}"
        _, status = await self._request("GET", url, expect={200})
        return status or {}

    def _listed(self, status: dict[str, Any], app: str, cluster: str) -> bool:
        return any(
            a.get("name") == app and c.get("cluster") == cluster
            for a in status.get("apps") or []
            for c in a.get("clusters") or []
        )

    async def deploy(self, app: str, instance: str, placement: Placement) -> Endpoint:
        """Place the instance on the target cluster too (its source kept) through its own DIG."""
        endpoint = Endpoint(app=app, instance=instance, placement=placement)
        cluster = placement.cluster
        state = await self._state(app, instance)
        if state is None:
            await self._create(app, instance, cluster)
            state = await self._state(app, instance) or "Created"
        _, intent = await self._request("GET", self._app_intent(app, instance), expect={200})
        if state not in _DEPLOYED:
            # Nothing runs (a DIG left half-made, or terminated): place it on the target only.
            if intent["spec"].get("intent", {}).get("allOf") != [self._entry(cluster)]:
                body = {
                    **intent,
                    "spec": {**intent["spec"], "intent": {"allOf": [self._entry(cluster)]}},
                }
                await self._request("PUT", self._app_intent(app, instance), expect={200}, body=body)
                state = "Created"  # a modified intent unapproves the DIG
            await self._start(app, instance, state)
            return endpoint
        if self._has(intent, cluster):
            # Already placed: a retried deploy must not issue a second update once EMCO has it.
            if not self._listed(await self._status(app, instance, cluster), app, cluster):
                await self._request("POST", f"{self._dig(app, instance)}/update", expect={202})
            return endpoint
        all_of = [*intent["spec"].get("intent", {}).get("allOf", []), self._entry(cluster)]
        await self._put_and_update(app, instance, intent, all_of)
        return endpoint

    async def readiness(self, endpoint: Endpoint) -> Readiness:
        """Ready per the instance DIG's status query with ``status=ready``, by app and cluster."""
        cluster = endpoint.placement.cluster
        try:
            status = await self._status(endpoint.app, endpoint.instance, cluster)
        except OrchestratorError as exc:
            if exc.permanent:
                raise
            return Readiness.NOT_READY
        deployed = status.get("deployedStatus") or status.get("status")
        if deployed in _FAILED:
            return Readiness.FAILED
        if (
            deployed in _DEPLOYED
            and status.get("readyStatus") == "Ready"
            and self._listed(status, endpoint.app, cluster)
        ):
            return Readiness.READY
        return Readiness.NOT_READY

    async def remove(self, app: str, instance: str, placement: Placement) -> None:
        """Take the cluster out of the instance's placement; terminate its DIG if it was the
        last. A no-op when the instance does not run there."""
        state = await self._state(app, instance)
        if state is None or state == "Terminated":
            return
        _, intent = await self._request("GET", self._app_intent(app, instance), expect={200})
        if not self._has(intent, placement.cluster):
            return
        entry = self._entry(placement.cluster)
        all_of = [e for e in intent["spec"].get("intent", {}).get("allOf", []) if e != entry]
        if not all_of and not intent["spec"].get("intent", {}).get("anyOf"):
            await self._request("POST", f"{self._dig(app, instance)}/terminate", expect={202, 200})
            log.info("emco.terminated", app=app, dig=instance)
            return
        await self._put_and_update(app, instance, intent, all_of)
