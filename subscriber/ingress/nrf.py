"""NRF client: registration as an AF, OAuth2 tokens, discovery, and authorized SBI calls.

The flow is the one free5GC's own e2e test uses (free5gc/free5gc test/callback_test.go, notes
nrf v1.4.5 processor/access_token.go): PUT our AF profile (no token needed), then ask
``/oauth2/token`` for a
client-credentials token per target NF type and scope, then call the producer with
``Authorization: Bearer``. Tokens are refreshed before they expire. When the NRF restarts it
forgets every registration and answers ``invalid_client``; we then register again and retry.

Outbound calls use HTTP/1.1 (aiohttp): free5GC's SBI server accepts it (free5gc/util
httpwrapper.go).
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from subscriber.errors import CoreUnavailable, SubscriberError
from subscriber.ingress.statefile import write_atomic
from subscriber.sbi.nrf import (
    NfProfile,
    af_profile,
    parse_search_result,
    parse_token,
    parse_token_error,
)
from subscriber.settings import CoreSettings

log = structlog.get_logger()

_INSTANCE_FILE = "nf-instance-id"
_DISCOVERY_TTL_S = 100.0  # free5GC's validityPeriod (nrf v1.4.5 processor/nf_discovery.go)
_STATIC_ROOTS = {"AMF": "amf_url", "SMF": "smf_url", "NEF": "nef_url"}
# The free5GC NEF registers no event-exposure service name: take its first service (free5gc/nef
# processor/monitoring.go).
_SERVICE = {"AMF": "namf-evts", "SMF": "nsmf-event-exposure", "NEF": ""}


@dataclass(frozen=True, slots=True)
class Producer:
    """An NF instance we call: its type, instance id and apiRoot."""

    nf_type: str
    nf_instance_id: str
    api_root: str


@dataclass(frozen=True, slots=True)
class SbiResponse:
    """What a producer answered."""

    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        """The decoded body.

        Raises:
            CoreUnavailable: the body is not JSON.
        """
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise CoreUnavailable(f"answer is not JSON: {exc}", status=self.status) from exc


class _Transient(Exception):
    """A failure worth retrying: no connection, timeout, or a 5xx other than 501."""

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.status = status


@dataclass(slots=True)
class _Token:
    value: str
    refresh_at: float


def sbi_ssl_context(settings: CoreSettings) -> ssl.SSLContext | bool:
    """TLS for https SBI calls: ``core.tls_ca`` to verify servers, ``core.tls_cert``/``tls_key``
    to present our certificate (mutual TLS); the system's defaults without them.

    Raises:
        SubscriberError: a file is missing or not PEM, or only one of cert and key is set.
    """
    if settings.tls_ca is None and settings.tls_cert is None and settings.tls_key is None:
        return True
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise SubscriberError("core.tls_cert and core.tls_key go together")
    try:
        context = ssl.create_default_context(
            cafile=str(settings.tls_ca) if settings.tls_ca else None
        )
        if settings.tls_cert is not None and settings.tls_key is not None:
            context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise SubscriberError(f"core TLS settings: {exc}") from exc
    return context


def load_instance_id(settings: CoreSettings) -> str:
    """This daemon's NF instance id: from settings, else from ``state_dir``, else a new UUID v4.

    A new id is written to ``state_dir`` so a restarted daemon registers under the same id.
    """
    if settings.nf_instance_id:
        return settings.nf_instance_id
    path = settings.state_dir / _INSTANCE_FILE
    try:
        text = path.read_text().strip()
        if uuid.UUID(text).version == 4:
            return text
    except (FileNotFoundError, ValueError):
        pass
    new_id = str(uuid.uuid4())
    write_atomic(path, new_id.encode())
    return new_id


class NrfClient:
    """Registers with the NRF, holds OAuth2 tokens, discovers producers and calls them.

    An async context manager. It owns no HTTP session: the caller passes one in (HTTP/1.1).
    With no ``nrf_url`` it uses the static producer URLs and sends no token.

    Args:
        settings: the ``core`` settings group.
        session: the aiohttp session every SBI call goes through.
        clock: monotonic seconds; injected by tests.
    """

    def __init__(
        self,
        *,
        settings: CoreSettings,
        session: aiohttp.ClientSession,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._session = session
        self._clock = clock
        self._nrf = settings.nrf_url.rstrip("/") if settings.nrf_url else None
        self.instance_id = load_instance_id(settings)
        self._registered = False
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._discovered: dict[tuple[str, str], tuple[float, list[Producer]]] = {}
        self.registrations = 0
        self._timeout = aiohttp.ClientTimeout(total=settings.request_timeout_s)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.deregister()

    # -- registration and tokens ------------------------------------------------------------

    async def register(self) -> None:
        """PUT our AF profile to the NRF (no token needed: nrf v1.4.5 internal/sbi/server.go).

        Raises:
            CoreUnavailable: the NRF is unreachable or refused the profile.
        """
        if self._nrf is None:
            return
        url = f"{self._nrf}/nnrf-nfm/v1/nf-instances/{self.instance_id}"
        body = orjson.dumps(af_profile(self.instance_id).to_wire())
        response = await self._send("PUT", url, body, {"Content-Type": "application/json"})
        if response.status not in (200, 201):
            raise CoreUnavailable(
                f"NRF refused registration: {response.status}", status=response.status
            )
        self._registered = True
        self.registrations += 1
        self._tokens.clear()
        log.info("nrf_registered", nf_instance_id=self.instance_id, status=response.status)

    async def deregister(self) -> None:
        """Remove our profile from the NRF, best effort (on clean shutdown)."""
        if self._nrf is None or not self._registered:
            return
        url = f"{self._nrf}/nnrf-nfm/v1/nf-instances/{self.instance_id}"
        try:
            headers = await self.auth_headers("NRF", "nnrf-nfm")
            await self._send("DELETE", url, None, headers, attempts=1)
        except CoreUnavailable as exc:
            log.info("nrf_deregister_failed", error=str(exc))
        self._registered = False

    async def bearer(self, target_nf_type: str, scope: str) -> str | None:
        """A valid access token for ``scope`` at ``target_nf_type``, or None without OAuth.

        Registers first if needed, and again when the NRF answers ``invalid_client`` (it
        forgot us in a restart, nrf v1.4.5 pkg/service/init.go).

        Raises:
            CoreUnavailable: the NRF cannot be reached or refuses the token.
        """
        if self._nrf is None or not self._settings.oauth:
            return None
        key = (target_nf_type, scope)
        token = self._tokens.get(key)
        if token is not None and self._clock() < token.refresh_at:
            return token.value
        if not self._registered:
            await self.register()
        for attempt in (1, 2):
            response = await self._request_token(target_nf_type, scope)
            if response.status == 200:
                granted = parse_token(response.body)
                lifetime = float(granted.expires_in or 60)
                # Refresh at 80% of the lifetime so a token never expires in flight.
                refresh_at = self._clock() + lifetime * 0.8
                self._tokens[key] = _Token(granted.access_token, refresh_at)
                return granted.access_token
            error = parse_token_error(response.body)
            if error == "invalid_client" and attempt == 1:
                log.info("nrf_forgot_us", target_nf_type=target_nf_type)
                await self.register()
                continue
            raise CoreUnavailable(
                f"NRF refused a {scope} token: {response.status} {error}", status=response.status
            )
        raise AssertionError("unreachable")

    async def _request_token(self, target_nf_type: str, scope: str) -> SbiResponse:
        assert self._nrf is not None
        # Form keys must be AccessTokenReq's yaml tags, nothing else (nrf v1.4.5
        # processor/access_token.go).
        form = {
            "grant_type": "client_credentials",
            "nfInstanceId": self.instance_id,
            "nfType": "AF",
            "targetNfType": target_nf_type,
            "scope": scope,
        }
        body = "&".join(f"{k}={v}" for k, v in form.items()).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return await self._send("POST", f"{self._nrf}/oauth2/token", body, headers)

    def forget_token(self, target_nf_type: str, scope: str) -> None:
        """Drop a cached token the producer refused, so the next call asks for a new one."""
        self._tokens.pop((target_nf_type, scope), None)

    async def auth_headers(self, target_nf_type: str, scope: str) -> dict[str, str]:
        """``Authorization`` for a call to ``target_nf_type``, empty without OAuth.

        An empty ``scope`` means a northbound API outside the NRF's OAuth (the NEF's
        ``3gpp-monitoring-event``): no token is asked for.
        """
        if not scope:
            return {}
        token = await self.bearer(target_nf_type, scope)
        return {"Authorization": f"Bearer {token}"} if token else {}

    # -- discovery ---------------------------------------------------------------------------

    async def discover(self, nf_type: str, *, refresh: bool = False) -> list[Producer]:
        """The instances of ``nf_type`` offering its event-exposure service (found by type).

        A static URL in settings (``amf_url``, ``smf_url``, ``nef_url``) wins over the NRF.
        Results are cached for the NRF's validity period unless ``refresh``.

        Raises:
            CoreUnavailable: no static URL and the NRF cannot be asked.
        """
        static = getattr(self._settings, _STATIC_ROOTS.get(nf_type, ""), None)
        if static:
            return [Producer(nf_type, f"static-{nf_type.lower()}", str(static).rstrip("/"))]
        if self._nrf is None:
            raise CoreUnavailable(f"no NRF and no static URL for {nf_type}")
        service = _SERVICE.get(nf_type, "")
        key = (nf_type, service)
        cached = self._discovered.get(key)
        if cached is not None and not refresh and self._clock() < cached[0]:
            return cached[1]
        # By type only, the service filtered here: free5GC's NRF on FerretDB answers 500 to
        # service-names (an $elemMatch FerretDB v1 refuses; docs/free5gc.md), and a profile
        # without the service is skipped below on any NRF.
        url = f"{self._nrf}/nnrf-disc/v1/nf-instances?target-nf-type={nf_type}&requester-nf-type=AF"
        response = await self.call("NRF", "nnrf-disc", "GET", url)
        if response.status != 200:
            raise CoreUnavailable(
                f"NRF discovery failed: {response.status}", status=response.status
            )
        result = parse_search_result(response.body)
        producers = [
            Producer(nf_type, profile.nf_instance_id, root)
            for profile in result.nf_instances or []
            if (root := _api_root(profile, service)) is not None
        ]
        ttl = float(result.validity_period or _DISCOVERY_TTL_S)
        self._discovered[key] = (self._clock() + ttl, producers)
        return producers

    def forget_discovery(self, nf_type: str) -> None:
        """Drop cached discovery results for ``nf_type`` (after a producer restart)."""
        for key in [k for k in self._discovered if k[0] == nf_type]:
            del self._discovered[key]

    # -- calls -------------------------------------------------------------------------------

    async def call(
        self,
        target_nf_type: str,
        scope: str,
        method: str,
        url: str,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> SbiResponse:
        """One authorized SBI call, with retries on transient failures.

        A 401 (free5GC's gin ``{"error": ...}``, amf v1.4.5 internal/util/router_auth_check.go)
        drops the token and retries
        once with a new one. Connection errors, timeouts and 5xx other than 501 are retried
        with exponential backoff, ``retry_attempts`` times.

        Raises:
            CoreUnavailable: still failing after the retries.
        """
        headers = {"Content-Type": content_type} if body is not None else {}
        for attempt in (1, 2):
            auth = await self.auth_headers(target_nf_type, scope)
            response = await self._send(method, url, body, {**headers, **auth})
            if response.status == 401 and auth and attempt == 1:
                self.forget_token(target_nf_type, scope)
                continue
            return response
        return response

    async def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        *,
        attempts: int | None = None,
    ) -> SbiResponse:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts or self._settings.retry_attempts),
            wait=wait_exponential_jitter(multiplier=0.1, max=2.0),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._send_once(method, url, body, headers)
        except _Transient as exc:
            raise CoreUnavailable(f"{method} failed: {exc}", status=exc.status) from exc
        raise AssertionError("unreachable")

    async def _send_once(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> SbiResponse:
        try:
            async with self._session.request(
                method, url, data=body, headers=dict(headers), timeout=self._timeout
            ) as response:
                data = await response.read()
                status = response.status
                answer = SbiResponse(status, data, dict(response.headers))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Transient(type(exc).__name__) from exc
        if status >= 500 and status != 501:
            raise _Transient(f"status {status}", status)
        return answer


def _api_root(profile: NfProfile, service: str) -> str | None:
    if service:
        return profile.api_root(service)
    services = profile.nf_services or []
    return profile.api_root(services[0].service_name) if services else None
