"""TS 29.510 Nnrf models: NF profiles, discovery results and OAuth2 access tokens.

Only the fields the daemon reads or sends. Unknown fields are ignored and enumerations are open
strings, as elsewhere in :mod:`subscriber.sbi`. What the free5GC NRF does with them is in
docs/free5gc.md, "NRF and OAuth2" (free5gc/nrf ``processor/nf_discovery.go``): ``nfInstances`` is
``null`` when nothing matches, and each AMF service carries an ``apiPrefix``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from subscriber.errors import CoreUnavailable


class NrfModel(BaseModel):
    """Base of the Nnrf models: camelCase wire names, snake_case accepted, extras ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True, extra="ignore"
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict with wire names, unset optional fields left out."""
        return self.model_dump(mode="json", exclude_none=True)


class NfServiceVersion(NrfModel):
    """One API version of a service."""

    api_version_in_uri: str
    api_full_version: str


class IpEndPoint(NrfModel):
    """An address and port a service listens on."""

    ipv4_address: str | None = None
    ipv6_address: str | None = None
    transport: str | None = None
    port: int | None = None


class NfService(NrfModel):
    """One service of an NF instance (e.g. ``namf-evts``)."""

    service_instance_id: str
    service_name: str
    versions: list[NfServiceVersion] = Field(default_factory=list)
    scheme: str = "http"
    nf_service_status: str = "REGISTERED"
    api_prefix: str | None = None
    fqdn: str | None = None
    ip_end_points: list[IpEndPoint] | None = None


class NfProfile(NrfModel):
    """An NF instance as registered with, or discovered from, the NRF."""

    nf_instance_id: str
    nf_type: str
    nf_status: str = "REGISTERED"
    fqdn: str | None = None
    ipv4_addresses: list[str] | None = None
    nf_services: list[NfService] | None = None
    heart_beat_timer: int | None = None
    custom_info: dict[str, Any] | None = None

    def api_root(self, service_name: str) -> str | None:
        """The apiRoot to call ``service_name`` on, or None when the profile lacks it.

        Preference: the service's ``apiPrefix`` (free5GC always sets it: nrf
        ``processor/nf_discovery.go``), then its first IP endpoint, then the service's or
        profile's FQDN, then the first IPv4 address.
        """
        for service in self.nf_services or []:
            if service.service_name != service_name or service.nf_service_status != "REGISTERED":
                continue
            if service.api_prefix:
                return service.api_prefix.rstrip("/")
            for end_point in service.ip_end_points or []:
                host = end_point.ipv4_address or (
                    f"[{end_point.ipv6_address}]" if end_point.ipv6_address else None
                )
                if host:
                    port = f":{end_point.port}" if end_point.port else ""
                    return f"{service.scheme}://{host}{port}"
            host = service.fqdn or self.fqdn or next(iter(self.ipv4_addresses or []), None)
            if host:
                return f"{service.scheme}://{host}"
        return None


class SearchResult(NrfModel):
    """The answer to an NF discovery; free5GC sends ``nfInstances: null`` when nothing matches."""

    validity_period: int | None = None
    nf_instances: list[NfProfile] | None = None


class AccessTokenRsp(NrfModel):
    """A granted OAuth2 access token (RFC 6749 names, snake_case on the wire)."""

    model_config = ConfigDict(alias_generator=None, extra="ignore")

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 -- the RFC 6749 token type, not a secret
    expires_in: int | None = None
    scope: str | None = None


class AccessTokenErr(NrfModel):
    """A refused token request: ``invalid_client``, ``invalid_scope``, ``invalid_request``..."""

    model_config = ConfigDict(alias_generator=None, extra="ignore")

    error: str
    error_description: str | None = None


def af_profile(nf_instance_id: str, *, callback_service: str = "nnef-callback") -> NfProfile:
    """The profile the daemon registers: an AF, as free5GC's own e2e test registers one.

    Shape from free5gc/free5gc test/callback_test.go (tests/vectors, V6).
    """
    return NfProfile(
        nf_instance_id=nf_instance_id,
        nf_type="AF",
        nf_status="REGISTERED",
        nf_services=[
            NfService(
                service_instance_id="1",
                service_name=callback_service,
                versions=[NfServiceVersion(api_version_in_uri="v1", api_full_version="1.0.0")],
            )
        ],
    )


def parse_search_result(body: bytes) -> SearchResult:
    """Parse a discovery answer.

    Raises:
        CoreUnavailable: the body is not a SearchResult.
    """
    try:
        return SearchResult.model_validate_json(body)
    except ValidationError as exc:
        raise CoreUnavailable(f"NRF discovery answer is not a SearchResult: {exc}") from exc


def parse_token(body: bytes) -> AccessTokenRsp:
    """Parse a token answer.

    Raises:
        CoreUnavailable: the body is not an AccessTokenRsp.
    """
    try:
        return AccessTokenRsp.model_validate_json(body)
    except ValidationError as exc:
        raise CoreUnavailable(f"NRF token answer is not an AccessTokenRsp: {exc}") from exc


def parse_token_error(body: bytes) -> str:
    """The ``error`` code of a refused token request, or ``""`` if the body has none."""
    try:
        return AccessTokenErr.model_validate_json(body).error
    except ValidationError:
        return ""
