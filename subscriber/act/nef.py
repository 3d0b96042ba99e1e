"""The NEF's traffic-influence API (TS 29.522) as an AF uses it: create, read, re-route, delete.

Written to the dialect of free5GC's NEF (free5gc/nef ``internal/sbi/processor/ti.go``,
``internal/sbi/api_ti.go``, ``internal/sbi/server.go``; docs/free5gc.md, "Traffic influence"):

* resources ``{apiRoot}/3gpp-traffic-influence/v1/{afId}/subscriptions[/{subscriptionId}]``;
  a create answers 201 with a ``Location`` header and the request echoed with ``self``, a read, a
  replace and a patch 200 with the subscription, a delete 204;
* it refuses, with a 400 ProblemDetails, a request without ``notificationDestination`` (a URI
  with scheme and host), without ``afAppId``, without a UE or without ``trafficRoutes``; the PCF's
  refusals come back unchanged: 500 ``PDU_SESSION_NOT_AVAILABLE`` for a UE with no PDU session,
  403 ``REQUESTED_SERVICE_NOT_AUTHORIZED`` unless ``suppFeat`` sets feature 1, 400 without ``dnn``;
* from free5GC v4.2.2 the API is mounted only when the NEF's service list names it, and wants a
  bearer token with scope ``3gpp-traffic-influence`` (401 ``{"error": ...}`` without); earlier
  versions take none (free5gc/free5gc#859). We send one whenever the NRF grants it;
* a PATCH is refused by its PCF (400, no ``spVal``) and, even when taken, loses the UP_PATH_CH
  subscription; a PUT reposts the whole request and moves the path with notifications. So a
  re-route is a PUT unless ``traffic_influence.modify_with`` says patch.

Failures are :class:`~subscriber.errors.InfluenceRefused` when asking again cannot help (4xx, or a
5xx whose cause says so) and :class:`~subscriber.errors.CoreUnavailable` otherwise (no answer, a
timeout, another 5xx). One request is one attempt: the caller (a Temporal activity) retries.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
import orjson
import structlog

from subscriber.errors import CoreUnavailable, InfluenceRefused, InvalidCallback
from subscriber.ingress.nrf import NrfClient
from subscriber.sbi.smf import RouteToLocation
from subscriber.sbi.traffic_influence import (
    UP_PATH_CHANGE,
    Snssai,
    TrafficInfluSub,
    TrafficInfluSubPatch,
    parse_traffic_influ_sub,
)
from subscriber.settings import TrafficInfluenceSettings

log = structlog.get_logger()

SCOPE = "3gpp-traffic-influence"
PATH = "/3gpp-traffic-influence/v1"
# 5xx answers that mean "not for this UE", not "try later": the PCF's causes (TS 29.514) that
# free5GC maps to 500 (free5gc/pcf internal/util/pcf_util.go PcpErrHttpStatusMap).
_PERMANENT_CAUSES = frozenset({"PDU_SESSION_NOT_AVAILABLE"})


class TrafficInfluenceClient:
    """Traffic-influence subscriptions at the NEF, one HTTP/1.1 request per call.

    Args:
        nrf: finds the NEF (``core.nef_url`` or discovery) and gets tokens.
        session: the HTTP session requests go out on.
        settings: the ``traffic_influence`` group.
        af_id: our afId in the paths (``core.nef_af_id``).
    """

    def __init__(
        self,
        *,
        nrf: NrfClient,
        session: aiohttp.ClientSession,
        settings: TrafficInfluenceSettings,
        af_id: str,
    ) -> None:
        self._nrf = nrf
        self._session = session
        self._settings = settings
        self._af_id = af_id
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout_s)
        self._no_token = False

    async def nef_root(self) -> str:
        """The apiRoot of the NEF to ask.

        Raises:
            CoreUnavailable: no NEF is configured or discovered.
        """
        producers = await self._nrf.discover("NEF")
        if not producers:
            raise CoreUnavailable("no NEF is registered")
        return producers[0].api_root

    def collection(self, api_root: str) -> str:
        """Where our subscriptions are created."""
        return f"{api_root.rstrip('/')}{PATH}/{self._af_id}/subscriptions"

    def subscription(
        self,
        *,
        af_app_id: str,
        af_trans_id: str,
        ue: str,
        dnai: str,
        notification_destination: str,
    ) -> TrafficInfluSub:
        """The request that routes ``ue``'s traffic of ``af_app_id`` to ``dnai``.

        Args:
            af_app_id: the application, as the core's PCC rules and PFDs know it.
            af_trans_id: our transaction id, echoed in the specification's notifications.
            ue: the UE: an IPv4 address (its PDU session's), else a GPSI (``msisdn-...``).
            dnai: where its user plane must reach.
            notification_destination: our callback URI for this subscription.
        """
        s = self._settings
        is_gpsi = ue.startswith(("msisdn-", "extid-"))
        return TrafficInfluSub(
            af_app_id=af_app_id,
            af_trans_id=af_trans_id,
            dnn=s.dnn,
            snssai=Snssai(sst=s.snssai_sst, sd=s.snssai_sd),
            gpsi=ue if is_gpsi else None,
            ipv4_addr=None if is_gpsi else ue,
            subscribed_events=[UP_PATH_CHANGE],
            dnai_chg_type=s.dnai_change_type,
            notification_destination=notification_destination,
            traffic_routes=[RouteToLocation(dnai=dnai)],
            af_ack_ind=True if s.af_ack else None,
            supp_feat=s.supported_features or None,
        )

    async def create(self, api_root: str, request: TrafficInfluSub) -> tuple[str, TrafficInfluSub]:
        """Create a subscription; its resource URI and the NEF's answer.

        Raises:
            InfluenceRefused: the NEF refused it.
            CoreUnavailable: no usable answer.
        """
        url = self.collection(api_root)
        status, body, headers = await self._send("POST", url, request.to_json())
        if status != 201:
            raise _unexpected("create", status)
        answer = _subscription(body)
        location = headers.get("Location") or answer.self_
        if not location:
            raise CoreUnavailable("the NEF's 201 names no subscription resource", status=status)
        log.info("influence.created", subscription=location.rsplit("/", 1)[-1])
        return location, answer

    async def read(self, uri: str) -> TrafficInfluSub | None:
        """The subscription as the NEF holds it; None when it does not know it.

        Raises:
            InfluenceRefused: the NEF refused the read (other than with 404).
            CoreUnavailable: no usable answer.
        """
        try:
            _, body, _ = await self._send("GET", uri, None)
        except InfluenceRefused as exc:
            if exc.status == 404:
                return None
            raise
        return _subscription(body)

    async def replace(self, uri: str, request: TrafficInfluSub) -> TrafficInfluSub:
        """Replace the subscription with ``request`` (PUT).

        Raises:
            InfluenceRefused: the NEF refused it (404: it does not know the subscription).
            CoreUnavailable: no usable answer.
        """
        status, body, _ = await self._send("PUT", uri, request.to_json())
        if status != 200:
            raise _unexpected("replace", status)
        return _subscription(body)

    async def patch(self, uri: str, change: TrafficInfluSubPatch) -> TrafficInfluSub:
        """Change part of the subscription (merge patch).

        Raises:
            InfluenceRefused: the NEF refused it.
            CoreUnavailable: no usable answer.
        """
        status, body, _ = await self._send(
            "PATCH", uri, change.to_json(), "application/merge-patch+json"
        )
        if status != 200:
            raise _unexpected("patch", status)
        return _subscription(body)

    async def reroute(self, uri: str, request: TrafficInfluSub) -> None:
        """Route an existing subscription to ``request``'s traffic routes, the configured way.

        Raises:
            InfluenceRefused: the NEF refused it.
            CoreUnavailable: no usable answer.
        """
        if self._settings.modify_with == "patch":
            await self.patch(
                uri,
                TrafficInfluSubPatch(
                    traffic_routes=request.traffic_routes, af_ack_ind=request.af_ack_ind
                ),
            )
        else:
            await self.replace(uri, request)

    async def delete(self, uri: str) -> None:
        """Delete the subscription; one the NEF does not know is already gone.

        Raises:
            InfluenceRefused: the NEF refused it (other than with 404).
            CoreUnavailable: no usable answer.
        """
        try:
            await self._send("DELETE", uri, None)
        except InfluenceRefused as exc:
            if exc.status != 404:
                raise
        log.info("influence.deleted", subscription=uri.rsplit("/", 1)[-1])

    async def _headers(self) -> dict[str, str]:
        if self._no_token:
            return {}
        try:
            return await self._nrf.auth_headers("NEF", SCOPE)
        except CoreUnavailable as exc:
            if exc.status is None:
                raise
            # The NRF grants the scope only when the NEF's profile lists the service; a NEF
            # before free5GC v4.2.2 neither lists it nor wants a token.
            log.info("influence.no_token", status=exc.status)
            self._no_token = True
            return {}

    async def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        content_type: str = "application/json",
    ) -> tuple[int, bytes, Mapping[str, str]]:
        for attempt in (1, 2):
            headers = await self._headers()
            if body is not None:
                headers["Content-Type"] = content_type
            try:
                async with self._session.request(
                    method, url, data=body, headers=headers, timeout=self._timeout
                ) as response:
                    status, data = response.status, await response.read()
                    answer_headers = dict(response.headers)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise CoreUnavailable(f"NEF {method}: {type(exc).__name__}") from exc
            if status == 401 and attempt == 1:
                # A refused token (expired, or the NEF now checks them): ask for a new one.
                self._no_token = False
                self._nrf.forget_token("NEF", SCOPE)
                continue
            if status < 300:
                return status, data, answer_headers
            cause, detail = _problem(data)
            text = f"NEF {method} answered {status}" + (f" {cause}" if cause else "")
            if detail:
                text += f": {detail}"
            log.info("influence.refused", method=method, status=status, cause=cause)
            if status < 500 or cause in _PERMANENT_CAUSES:
                raise InfluenceRefused(text, status=status, cause=cause)
            raise CoreUnavailable(text, status=status)
        raise AssertionError("unreachable")


def _problem(body: bytes) -> tuple[str | None, str | None]:
    """The cause and detail of an error answer: a ProblemDetails, or gin's ``{"error": ...}``."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    cause, detail = doc.get("cause"), doc.get("detail") or doc.get("error")
    return (str(cause)[:100] if cause else None), (str(detail)[:200] if detail else None)


def _subscription(body: bytes) -> TrafficInfluSub:
    try:
        return parse_traffic_influ_sub(body or b"{}")
    except InvalidCallback as exc:
        raise CoreUnavailable(f"the NEF's answer is not a TrafficInfluSub: {exc}") from exc


def _unexpected(what: str, status: int) -> CoreUnavailable:
    return CoreUnavailable(f"NEF {what} answered {status}", status=status)
