"""The fake NEF: the Monitoring Event API's subscription lifecycle, and traffic influence.

The newer free5GC NEF adds this API (free5gc/nef ``internal/sbi/processor/monitoring.go``,
free5gc/free5gc#1143): it
requires ``maximumNumberOfReports`` or ``monitorExpireTime`` and rejects IP-only UE targeting. Its
monitoring API takes no OAuth token (free5gc/free5gc#859). It forwards only what the AMF sends, and
a free5GC AMF sends nothing, so the fake NEF never notifies monitoring events either. Traffic
influence is :mod:`.nef_ti`.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from subscriber.fakes.core.nef_ti import FakeTrafficInfluence
from subscriber.fakes.core.wire import SERVICE_NAMES, json_response, problem, read_json

_PREFIX = "/3gpp-monitoring-event/v1/{af_id}/subscriptions"
_TARGETS = ("externalId", "msisdn", "externalGroupId")


class FakeNef:
    """Monitoring-event subscriptions held in memory."""

    def __init__(self, traffic_influence: FakeTrafficInfluence | None = None) -> None:
        self.instance_id = str(uuid.uuid4())
        self.traffic_influence = traffic_influence
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self._next_id = 0

    def routes(self) -> list[web.RouteDef]:
        """The NEF's HTTP routes."""
        routes = [
            web.post(_PREFIX, self._create),
            web.put(_PREFIX + "/{sub_id}", self._replace),
            web.delete(_PREFIX + "/{sub_id}", self._delete),
        ]
        if self.traffic_influence is not None:
            routes += self.traffic_influence.routes()
        return routes

    def profile(self, api_prefix: str, port: int) -> dict[str, Any]:
        """The NFProfile the NEF registers; it has no event-exposure service name (free5gc/nef
        internal/context)."""
        services = [
            {
                "serviceInstanceId": str(index),
                "serviceName": name,
                "versions": [{"apiVersionInUri": "v1", "apiFullVersion": "1.0.0"}],
                "scheme": "http",
                "nfServiceStatus": "REGISTERED",
                "apiPrefix": api_prefix,
                "ipEndPoints": [{"ipv4Address": "127.0.0.1", "transport": "TCP", "port": port}],
            }
            for index, name in enumerate(SERVICE_NAMES["NEF"])
        ]
        return {
            "nfInstanceId": self.instance_id,
            "nfType": "NEF",
            "nfStatus": "REGISTERED",
            "nfServices": services,
        }

    def restart(self) -> None:
        """Forget every subscription and take a new instance id."""
        self.subscriptions.clear()
        self._next_id = 0
        self.instance_id = str(uuid.uuid4())
        if self.traffic_influence is not None:
            self.traffic_influence.restart()

    @staticmethod
    def _invalid(body: Any) -> web.Response | None:
        if not isinstance(body, dict) or not body.get("notificationDestination"):
            return problem(400, "MANDATORY_IE_MISSING", "notificationDestination")
        if not body.get("monitoringType"):
            return problem(400, "MANDATORY_IE_MISSING", "monitoringType")
        # monitoring.go: one of maximumNumberOfReports / monitorExpireTime is required, and a
        # UE named only by IP address is refused (free5gc/nef processor/monitoring.go).
        if not body.get("maximumNumberOfReports") and not body.get("monitorExpireTime"):
            return problem(400, "MANDATORY_IE_MISSING", "maximumNumberOfReports")
        if not any(body.get(k) for k in _TARGETS):
            return problem(400, "MANDATORY_IE_INCORRECT", "UE identity")
        return None

    async def _create(self, request: web.Request) -> web.Response:
        body, error = await read_json(request)
        if error is not None:
            return error
        refusal = self._invalid(body)
        if refusal is not None:
            return refusal
        self._next_id += 1
        sub_id = str(self._next_id)
        link = f"{request.url.origin()}{request.path}/{sub_id}"
        self.subscriptions[sub_id] = {**body, "self": link}
        response = json_response(self.subscriptions[sub_id], 201)
        response.headers["Location"] = link
        return response

    async def _replace(self, request: web.Request) -> web.Response:
        sub_id = request.match_info["sub_id"]
        body, error = await read_json(request)
        if error is not None:
            return error
        if sub_id not in self.subscriptions:
            return problem(404, "SUBSCRIPTION_NOT_FOUND")
        refusal = self._invalid(body)
        if refusal is not None:
            return refusal
        self.subscriptions[sub_id] = {**body, "self": self.subscriptions[sub_id]["self"]}
        return json_response(self.subscriptions[sub_id])

    async def _delete(self, request: web.Request) -> web.Response:
        if self.subscriptions.pop(request.match_info["sub_id"], None) is None:
            return problem(404, "SUBSCRIPTION_NOT_FOUND")
        return web.Response(status=204)
