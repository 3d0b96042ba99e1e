"""How free5GC writes things on the wire: times, errors, tokens.

Shared by the fake NRF, AMF and SMF. Every helper names the free5GC code it imitates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import jwt
import orjson
from aiohttp import web
from cryptography import x509

ClockNs = Callable[[], int]
"""Wall-clock time in nanoseconds since the epoch; ``time.time_ns`` unless a test injects one."""

SERVICE_NAMES: dict[str, tuple[str, ...]] = {
    # Service lists as each free5GC NF registers them (the nfServices of its NFProfile, built in
    # <nf>/internal/context/context.go InitNFService from the default serviceNameList).
    "NRF": ("nnrf-nfm", "nnrf-disc", "nnrf-oauth2"),
    "AMF": ("namf-comm", "namf-evts", "namf-mt", "namf-loc", "namf-oam"),
    "SMF": ("nsmf-pdusession", "nsmf-event-exposure", "nsmf-oam"),
    # The NEF's list names 3gpp-traffic-influence as free5GC >= v4.2.2 needs it for the API to
    # be mounted at all (nef internal/sbi/server.go), and for the NRF to grant its scope.
    "NEF": ("nnef-pfdmanagement", "nnef-oam", "nnef-callback", "3gpp-traffic-influence"),
}

NF_TYPES = frozenset(
    # nrf internal/sbi/processor/nf_discovery.go validateQueryParameters / nf_management.go
    # validNfType: the NF types the free5GC NRF knows (nrf v1.4.5 processor/nf_discovery.go).
    [
        "NRF",
        "UDM",
        "AMF",
        "SMF",
        "AUSF",
        "NEF",
        "PCF",
        "SMSF",
        "NSSF",
        "UDR",
        "LMF",
        "GMLC",
        "5G_EIR",
        "SEPP",
        "UPF",
        "N3IWF",
        "AF",
        "UDSF",
        "BSF",
        "CHF",
        "NWDAF",
    ]
)


def go_time(ns: int) -> str:
    """Format a UTC time as Go's ``time.Time`` marshals it.

    RFC 3339 with up to 9 fractional digits, trailing zeros trimmed, and ``Z``
    (Go ``time.Time`` MarshalJSON, RFC 3339), e.g. ``2026-07-01T08:15:30.123456789Z``.
    """
    seconds, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if frac == 0:
        return base + "Z"
    return f"{base}.{frac:09d}".rstrip("0") + "Z"


def json_response(body: Any, status: int = 200) -> web.Response:
    """A gin ``c.JSON`` reply: Go's encoding/json body, ``application/json; charset=utf-8``."""
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json", charset="utf-8"
    )


def raw_json_response(body: bytes, status: int = 200) -> web.Response:
    """A gin ``c.JSON`` reply whose body is already serialized."""
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


def problem(status: int, cause: str, detail: str | None = None) -> web.Response:
    """A free5GC ProblemDetails reply: status and cause, mostly no title (amf v1.4.5
    processor/event_exposure.go)."""
    body: dict[str, Any] = {"status": status, "cause": cause}
    if detail:
        body["detail"] = detail
    return json_response(body, status)


def malformed(detail: str) -> web.Response:
    """The 400 free5GC sends when a body does not decode (amf internal/sbi/api_eventexposure.go)."""
    return json_response(
        {"title": "Malformed request syntax", "status": 400, "detail": detail}, 400
    )


def gin_unauthorized(message: str) -> web.Response:
    """The router's OAuth refusal: 401 with gin.H ``{"error": ...}``, not ProblemDetails.

    Source: amf v1.4.5 internal/util/router_auth_check.go.
    """
    return json_response({"error": message}, 401)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and checks the NRF's access tokens.

    The real NRF signs RS512 JWTs and the AMF verifies them with the NRF certificate (openapi
    oauth/oauth.go VerifyOAuth, nrf v1.4.5 processor/access_token.go). The fake signs HS256 with
    one secret shared by its
    NRF and AMF: the consumer sees an opaque JWT either way, and the AMF-side checks that matter
    (signature, scope) are the same. As in free5GC, ``exp`` is not enforced by the AMF (nrf v1.4.5
    processor/access_token.go).
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, claims: dict[str, Any]) -> str:
        """Return a compact JWS for ``claims``."""
        header = _b64(b'{"alg":"HS256","typ":"JWT"}')
        payload = _b64(orjson.dumps(claims))
        mac = hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(mac)}"

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a token this signer issued.

        Raises:
            ValueError: the token is malformed or its signature does not match.
        """
        try:
            header, payload, mac = token.split(".")
            expected = hmac.new(
                self._secret, f"{header}.{payload}".encode(), hashlib.sha256
            ).digest()
            if not hmac.compare_digest(expected, _unb64(mac)):
                raise ValueError("token signature is invalid")
            claims: dict[str, Any] = orjson.loads(_unb64(payload))
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"token is invalid: {exc}") from exc
        return claims


class TokenVerifier(Protocol):
    """Returns a token's claims, or raises ``ValueError`` for a token it does not accept."""

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of an accepted token."""
        ...


class NrfTokenVerifier:
    """Checks tokens of a real NRF the way free5GC's AMF does.

    free5gc/openapi ``oauth/oauth.go`` VerifyOAuth parses the JWT with the public key of the
    NRF's certificate (``nrfCertPem``), RS512 as the NRF signs; the route then checks the scope.
    It does not check ``aud``, and ``exp`` is not enforced (nrf v1.4.5 processor/access_token.go).

    Args:
        certificate: the NRF's ``nrf.pem`` (it is rewritten at each NRF start, same key).
    """

    def __init__(self, certificate: Path) -> None:
        self._certificate = certificate

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a token the NRF signed."""
        key = x509.load_pem_x509_certificate(self._certificate.read_bytes()).public_key()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=["RS512"],
                options={"verify_exp": False, "verify_aud": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError as exc:
            raise ValueError(f"token is invalid: {exc}") from exc
        return claims


def check_bearer(
    request: web.Request, signer: TokenVerifier, service: str, *, enabled: bool
) -> web.Response | None:
    """Apply free5GC's router OAuth check; return the 401 to send, or None to go on.

    The header must be ``<word> <jwt>`` (the second field is taken, openapi oauth.go) and the
    token's space-separated ``scope`` must contain the route's service name (nrf v1.4.5
    processor/access_token.go).
    """
    if not enabled:
        return None
    fields = request.headers.get("Authorization", "").split(" ")
    if len(fields) < 2 or not fields[1]:
        return gin_unauthorized("Authorization header is missing or malformed")
    try:
        claims = signer.verify(fields[1])
    except ValueError as exc:
        return gin_unauthorized(str(exc))
    if service not in str(claims.get("scope", "")).split(" "):
        return gin_unauthorized(f"scope does not contain {service}")
    return None


async def read_json(request: web.Request) -> tuple[Any, web.Response | None]:
    """Decode a body the way openapi.Deserialize does: encoding/json, Content-Type unchecked."""
    raw = await request.read()
    try:
        return orjson.loads(raw), None
    except orjson.JSONDecodeError as exc:
        return None, malformed(str(exc))
