"""The fake NRF: NF registration, OAuth2 client-credentials tokens, discovery.

Behaviour follows the free5GC NRF (free5gc/nrf v1.4.5) ``internal/sbi/processor/access_token.go``
and ``nf_discovery.go``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from subscriber.fakes.core.wire import (
    NF_TYPES,
    SERVICE_NAMES,
    ClockNs,
    TokenSigner,
    check_bearer,
    json_response,
    problem,
    read_json,
)

TOKEN_TTL_S = 1000
"""``expires_in`` of every token (nrf v1.4.5 processor/access_token.go)."""

# The yaml tags of openapi models.AccessTokenReq; any other form key gives 400
# (nrf v1.4.5 internal/sbi/api_accesstoken.go).
_TOKEN_FORM_KEYS = frozenset(
    [
        "grant_type",
        "nfInstanceId",
        "nfType",
        "targetNfType",
        "scope",
        "targetNfInstanceId",
        "requesterPlmn",
        "requesterPlmnList",
        "requesterSnssaiList",
        "requesterFqdn",
        "requesterSnpnList",
        "targetPlmn",
        "targetSnpn",
        "targetSnssaiList",
        "targetNsiList",
        "targetNfSetId",
        "targetNfServiceSetId",
        "hnrfAccessTokenUri",
        "sourceNfInstanceId",
    ]
)


def _is_uuid4(text: str) -> bool:
    try:
        return uuid.UUID(text).version == 4
    except ValueError:
        return False


def _oauth_error(error: str, description: str) -> web.Response:
    # nrf processor/access_token.go answers AccessTokenErr {"error": ...} with 400.
    return json_response({"error": error, "error_description": description}, 400)


class FakeNrf:
    """An in-memory NRF.

    Args:
        signer: signs the access tokens the fake AMF verifies.
        oauth: whether discovery needs a token (``sbi.oauth``, true in every shipped nrfcfg.yaml).
        clock_ns: wall clock for ``iat``/``exp``.
        core_profiles: the profiles of the fake's own NFs, registered again after a restart.
    """

    def __init__(
        self,
        *,
        signer: TokenSigner,
        oauth: bool,
        clock_ns: ClockNs,
        core_profiles: Callable[[], list[dict[str, Any]]],
    ) -> None:
        self.instance_id = str(uuid.uuid4())
        self.signer = signer
        self.oauth = oauth
        self._clock_ns = clock_ns
        self._core_profiles = core_profiles
        self.profiles: dict[str, dict[str, Any]] = {}
        self.tokens_issued = 0

    def register_core(self) -> None:
        """(Re-)register the fake's own NFs, as they do at start-up."""
        for profile in self._core_profiles():
            self.profiles[profile["nfInstanceId"]] = profile

    def restart(self) -> None:
        """Forget every registration, as the NRF does on shutdown.

        nrf pkg/service/init.go terminateProcedure drops the NfProfile collection (nrf v1.4.5
        "NRF restart"). The fake's own NFs register again at once; a real AMF/SMF does so when it
        restarts or its heartbeat fails (an assumption of the fake, not read from source).
        """
        self.profiles.clear()
        self.register_core()

    def routes(self) -> list[web.RouteDef]:
        """The NRF's HTTP routes."""
        return [
            web.put("/nnrf-nfm/v1/nf-instances/{nf_id}", self._register),
            web.delete("/nnrf-nfm/v1/nf-instances/{nf_id}", self._deregister),
            web.post("/oauth2/token", self._token),
            web.get("/nnrf-disc/v1/nf-instances", self._discover),
        ]

    async def _register(self, request: web.Request) -> web.Response:
        # Register sits outside the OAuth middleware: "OAuth2 must exclude NfRegister"
        # (nrf v1.4.5 internal/sbi/server.go).
        nf_id = request.match_info["nf_id"]
        body, error = await read_json(request)
        if error is not None:
            return error
        if not isinstance(body, dict):
            return problem(400, "MANDATORY_IE_INCORRECT", "NFProfile must be an object")
        body_id = body.get("nfInstanceId", nf_id)
        if not _is_uuid4(nf_id) or body_id != nf_id:
            return problem(400, "MANDATORY_IE_INCORRECT", "nfInstanceId must be a UUID v4")
        if body.get("nfType") not in NF_TYPES:
            return problem(400, "MANDATORY_IE_INCORRECT", "nfType is not valid")
        existed = nf_id in self.profiles
        profile = {**body, "nfInstanceId": nf_id}
        self.profiles[nf_id] = profile
        # The register reply tells the NF whether OAuth2 is on (nrf internal/context/
        # nrf v1.4.5 internal/context/management_data.go customInfo.oauth2).
        reply = {**profile, "customInfo": {"oauth2": self.oauth}}
        response = json_response(reply, 200 if existed else 201)
        if not existed:
            response.headers["Location"] = f"{request.url.origin()}{request.path}"
        return response

    async def _deregister(self, request: web.Request) -> web.Response:
        refused = check_bearer(request, self.signer, "nnrf-nfm", enabled=self.oauth)
        if refused is not None:
            return refused
        if self.profiles.pop(request.match_info["nf_id"], None) is None:
            return problem(404, "RESOURCE_NOT_FOUND")
        return web.Response(status=204)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        unknown = set(form) - _TOKEN_FORM_KEYS
        if unknown:
            return _oauth_error("invalid_request", f"unsupported form key: {sorted(unknown)[0]}")
        if form.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type", "grant_type must be client_credentials")
        client_id = str(form.get("nfInstanceId", ""))
        client_type = str(form.get("nfType", ""))
        target_type = str(form.get("targetNfType", ""))
        scope = str(form.get("scope", ""))
        if not client_id or not scope:
            return _oauth_error("invalid_request", "nfInstanceId and scope are required")
        # AccessTokenScopeCheck needs the consumer's profile, with the same nfType
        # (nrf v1.4.5 internal/sbi/processor/access_token.go).
        client = self.profiles.get(client_id)
        if client is None or client.get("nfType") != client_type:
            return _oauth_error("invalid_client", "client is not registered")
        if not self._scope_allowed(target_type, scope):
            return _oauth_error("invalid_scope", "scope is not a service of the target NF")
        now_s = self._clock_ns() // 1_000_000_000
        claims = {
            "iss": self.instance_id,
            "sub": client_id,
            "aud": target_type,
            "scope": scope,
            "iat": now_s,
            "exp": now_s + TOKEN_TTL_S,
        }
        self.tokens_issued += 1
        return json_response(
            {
                "access_token": self.signer.sign(claims),
                "token_type": "Bearer",
                "expires_in": TOKEN_TTL_S,
                "scope": scope,
            }
        )

    def _scope_allowed(self, target_type: str, scope: str) -> bool:
        # The scope must name services of the first profile of the target type; AMF services
        # carry no allowedNfTypes, so any consumer type is allowed (nrf v1.4.5
        # processor/access_token.go).
        if target_type == "NRF":
            services: tuple[str, ...] = SERVICE_NAMES["NRF"]
        else:
            first = next(
                (p for p in self.profiles.values() if p.get("nfType") == target_type), None
            )
            if first is None:
                return False
            services = tuple(s.get("serviceName", "") for s in first.get("nfServices") or ())
        return all(part in services for part in scope.split(" ") if part)

    async def _discover(self, request: web.Request) -> web.Response:
        refused = check_bearer(request, self.signer, "nnrf-disc", enabled=self.oauth)
        if refused is not None:
            return refused
        query = request.query
        target = query.get("target-nf-type", "")
        requester = query.get("requester-nf-type", "")
        # nrf v1.4.5 processor/nf_discovery.go validateQueryParameters.
        if target not in NF_TYPES or requester not in NF_TYPES:
            return json_response(
                {"title": "Invalid Parameter", "status": 400, "detail": "Loss mandatory parameter"},
                400,
            )
        wanted = {n for v in query.getall("service-names", []) for n in v.split(",") if n}
        found = []
        for profile in self.profiles.values():
            if profile.get("nfType") != target:
                continue
            if wanted:
                services = profile.get("nfServices") or []
                if not any(
                    s.get("serviceName") in wanted and s.get("nfServiceStatus") == "REGISTERED"
                    for s in services
                ):
                    continue
            found.append(profile)
        # nfInstances is a nil slice when nothing matches, so it serializes as null (nrf v1.4.5
        # processor/nf_discovery.go).
        return json_response({"validityPeriod": 100, "nfInstances": found or None})
