"""EMCO adapter: relocate an app by editing its generic placement intent and updating the DIG.

This is the REST sequence EMCO's own relocate workflow uses (jacobtrvl/temporal-migrate-workflow,
branch EdgeRelocation, ``src/emcorelocate/activity.go``: ``GetDigAppIntents``,
``UpdateAppIntents``, ``DoDigUpdate``), against the orchestrator API documented in
project-emco/core/emco-base (GitHub copy satra124/emco-base-test, ``e2ed7392``):
``docs/swagger-specs-for-APIs/emco_apis.yaml`` and ``docs/design/Resource_Lifecycle_and_Status.md``.

* deploy = add ``{clusterProvider, cluster}`` to the app intent's ``allOf`` (keeping the source,
  for service continuity), ``PUT`` the app intent, ``POST .../update`` (202);
* readiness = ``GET .../status?status=ready&app=A&cluster=provider+cluster``: ready when the
  DIG's ``deployedStatus`` is ``Instantiated`` or ``Updated``, its ``readyStatus`` is ``Ready``
  and the cluster is listed for the app; ``InstantiateFailed``/``UpdateFailed`` is a failure.
  Unlike the relocate workflow's gRPC watcher, which dropped its errors, every outcome counts;
* remove = drop the cluster from ``allOf``, ``PUT``, ``POST .../update``.

EMCO knows nothing of service addresses, so the endpoint's address is the one the placement
carries (from our topology).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog

from subscriber.act.orchestrator import OrchestratorError
from subscriber.relocation import Endpoint, Placement, Readiness
from subscriber.settings import RelocationSettings

log = structlog.get_logger()

_DEPLOYED = frozenset({"Instantiated", "Updated"})
_FAILED = frozenset({"InstantiateFailed", "UpdateFailed", "Terminated", "TerminateFailed"})


class EmcoOrchestrator:
    """One EMCO deployment intent group (DIG) whose app intents place our apps.

    Args:
        base_url: the EMCO orchestrator service, e.g. ``http://emco:9015``.
        project, composite_app, version, dig: the DIG that deploys the apps.
        cluster_provider: the provider our cluster names belong to.
        timeout_s: per request.
    """

    def __init__(
        self,
        *,
        base_url: str,
        project: str,
        composite_app: str,
        version: str,
        dig: str,
        cluster_provider: str,
        timeout_s: float = 10.0,
    ) -> None:
        self._dig_url = (
            f"{base_url.rstrip('/')}/v2/projects/{project}/composite-apps/{composite_app}"
            f"/{version}/deployment-intent-groups/{dig}"
        )
        self._provider = cluster_provider
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: RelocationSettings) -> EmcoOrchestrator:
        """Built from the ``relocation.emco_*`` settings."""
        return cls(
            base_url=settings.emco_url,
            project=settings.emco_project,
            composite_app=settings.emco_composite_app,
            version=settings.emco_composite_app_version,
            dig=settings.emco_deployment_intent_group,
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

    async def _request(
        self, method: str, url: str, *, expect: set[int], body: object = None
    ) -> Any:
        assert self._http is not None, "use EmcoOrchestrator as an async context manager"
        try:
            async with self._http.request(method, url, json=body) as resp:
                text = await resp.text()
                if resp.status in expect:
                    return await resp.json(content_type=None) if text.strip() else None
                # EMCO answers 4xx for requests it will never accept (swagger responses).
                raise OrchestratorError(
                    f"EMCO {method} {url.removeprefix(self._dig_url)}: {resp.status} {text[:200]}",
                    permanent=400 <= resp.status < 500,
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OrchestratorError(f"EMCO unreachable: {exc!r}", permanent=False) from exc

    async def _app_intent(self, app: str) -> tuple[str, dict[str, Any]]:
        """The URL and body of the app intent that places ``app`` (GetDigAppIntents)."""
        gpis = await self._request(
            "GET", f"{self._dig_url}/generic-placement-intents", expect={200}
        )
        for gpi in gpis or []:
            base = f"{self._dig_url}/generic-placement-intents/{gpi['metadata']['name']}"
            intents = await self._request("GET", f"{base}/app-intents", expect={200})
            for intent in intents or []:
                if str(intent.get("spec", {}).get("app", "")).lower() == app.lower():
                    return f"{base}/app-intents/{intent['metadata']['name']}", intent
        raise OrchestratorError(f"no app intent places {app!r} in the DIG", permanent=True)

    def _has(self, intent: dict[str, Any], cluster: str) -> bool:
        return any(
            entry.get("clusterProvider") == self._provider and entry.get("cluster") == cluster
            for entry in intent["spec"].get("intent", {}).get("allOf", [])
        )

    async def _put_and_update(self, url: str, intent: dict[str, Any], all_of: list[Any]) -> None:
        spec = intent["spec"]
        body = {
            "metadata": intent["metadata"],
            "spec": {**spec, "intent": {**spec.get("intent", {}), "allOf": all_of}},
        }
        await self._request("PUT", url, expect={200}, body=body)
        revision = await self._request("POST", f"{self._dig_url}/update", expect={202})
        log.info("emco.updated", revision=revision)

    async def _status(self, app: str, cluster: str) -> dict[str, Any]:
        target = quote(f"{self._provider}+{cluster}", safe="")
        url = f"{self._dig_url}/status?status=ready&app={quote(app)}&cluster={target}"
        status: dict[str, Any] = await self._request("GET", url, expect={200}) or {}
        return status

    def _listed(self, status: dict[str, Any], app: str, cluster: str) -> bool:
        return any(
            a.get("name") == app and c.get("cluster") == cluster
            for a in status.get("apps") or []
            for c in a.get("clusters") or []
        )

    async def deploy(self, app: str, instance: str, placement: Placement) -> Endpoint:
        """Add the target cluster to the app's placement (source kept) and update the DIG."""
        url, intent = await self._app_intent(app)
        endpoint = Endpoint(app=app, instance=instance, placement=placement)
        if self._has(intent, placement.cluster):
            # Already placed: a retried deploy must not issue a second update once EMCO has it.
            if self._listed(await self._status(app, placement.cluster), app, placement.cluster):
                return endpoint
            await self._request("POST", f"{self._dig_url}/update", expect={202})
            return endpoint
        all_of = list(intent["spec"].get("intent", {}).get("allOf", []))
        all_of.append({"clusterProvider": self._provider, "cluster": placement.cluster})
        await self._put_and_update(url, intent, all_of)
        return endpoint

    async def readiness(self, endpoint: Endpoint) -> Readiness:
        """Ready per the DIG status query with ``status=ready``, filtered by app and cluster."""
        cluster = endpoint.placement.cluster
        try:
            status = await self._status(endpoint.app, cluster)
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
        """Drop the cluster from the app's placement and update the DIG; no-op when absent."""
        url, intent = await self._app_intent(app)
        if not self._has(intent, placement.cluster):
            return
        all_of = [
            entry
            for entry in intent["spec"].get("intent", {}).get("allOf", [])
            if not (
                entry.get("clusterProvider") == self._provider
                and entry.get("cluster") == placement.cluster
            )
        ]
        if not all_of and not intent["spec"].get("intent", {}).get("anyOf"):
            raise OrchestratorError(
                f"removing {placement.cluster} would leave {app!r} on no cluster", permanent=True
            )
        await self._put_and_update(url, intent, all_of)
