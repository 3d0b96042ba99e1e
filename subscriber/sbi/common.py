"""TS 29.571 common data types, and the JSON parsing every SBI module shares.

Wire names follow ``TS29571_CommonData.yaml`` exactly; Python attributes are snake_case and both
are accepted on input (``populate_by_name``). Serialization uses the wire names.

Leniency, decided from what real cores send (see docs/free5gc.md, "What each core sends"):

* hex identifiers (TAC, NR and E-UTRA cell ids, gNB ids) accept either case and are lower-cased,
  the way free5GC writes them;
* unknown fields are ignored, and enumerations are plain strings, so a value a newer release adds
  is kept rather than rejected (the StrEnum classes name the values we know);
* ``ageOfLocationInformation`` is not range-checked: free5GC puts raw NTP seconds in it.

Strictness: MCC is 3 digits, MNC 2 or 3, a TAC 4 or 6 hex digits, an NR cell id 9, an E-UTRA cell
id 7. Anything else is a malformed body.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from subscriber import errors

PROBLEM_JSON: Final = "application/problem+json"
# Caps the size of a 400 answer to a body full of errors; the first ones are enough to fix it.
MAX_INVALID_PARAMS: Final = 20


def wire_name(name: str) -> str:
    """The 3GPP wire name of a snake_case attribute: ``n3ga_location`` -> ``n3gaLocation``.

    Unlike pydantic's ``to_camel`` it never capitalizes after a digit.
    """
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class SbiModel(BaseModel):
    """Base of every 3GPP model: wire-name aliases, snake_case accepted, extra fields ignored."""

    model_config = ConfigDict(
        alias_generator=wire_name,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="ignore",
    )

    def to_json(self) -> bytes:
        """Serialize with wire names, leaving out unset optional fields."""
        return self.model_dump_json(exclude_none=True).encode()


Mcc = Annotated[str, StringConstraints(pattern=r"^[0-9]{3}$")]
Mnc = Annotated[str, StringConstraints(pattern=r"^[0-9]{2,3}$")]
Tac = Annotated[
    str, StringConstraints(pattern=r"^(?:[A-Fa-f0-9]{4}|[A-Fa-f0-9]{6})$", to_lower=True)
]
NrCellId = Annotated[str, StringConstraints(pattern=r"^[A-Fa-f0-9]{9}$", to_lower=True)]
EutraCellId = Annotated[str, StringConstraints(pattern=r"^[A-Fa-f0-9]{7}$", to_lower=True)]
Nid = Annotated[str, StringConstraints(pattern=r"^[A-Fa-f0-9]{11}$", to_lower=True)]
HexId = Annotated[str, StringConstraints(pattern=r"^[A-Fa-f0-9]+$", to_lower=True)]


class PlmnId(SbiModel):
    """A PLMN identity: MCC and MNC as decimal strings."""

    mcc: Mcc
    mnc: Mnc

    def as_string(self) -> str:
        """MCC followed by MNC, e.g. ``"20893"`` (the form :class:`subscriber.events.Cell` uses)."""
        return self.mcc + self.mnc


class Tai(SbiModel):
    """Tracking area identity (TS 23.003)."""

    plmn_id: PlmnId
    tac: Tac
    nid: Nid | None = None


class Ncgi(SbiModel):
    """NR cell global identity: PLMN and 36-bit cell id as 9 hex digits."""

    plmn_id: PlmnId
    nr_cell_id: NrCellId
    nid: Nid | None = None


class Ecgi(SbiModel):
    """E-UTRA cell global identity: PLMN and 28-bit cell id as 7 hex digits."""

    plmn_id: PlmnId
    eutra_cell_id: EutraCellId
    nid: Nid | None = None


class GNbId(SbiModel):
    """A gNB identifier: its bit length (22..32) and value in hex."""

    bit_length: int
    g_nb_value: Annotated[str, StringConstraints(pattern=r"^[A-Fa-f0-9]{6,8}$", to_lower=True)] = (
        Field(alias="gNBValue")
    )


class GlobalRanNodeId(SbiModel):
    """The RAN node (gNB, ng-eNB, eNB, N3IWF...) a UE is attached through."""

    plmn_id: PlmnId
    n3_iwf_id: HexId | None = None
    g_nb_id: GNbId | None = None
    nge_nb_id: str | None = None
    wagf_id: str | None = None
    tngf_id: str | None = None
    e_nb_id: str | None = None
    nid: Nid | None = None


class NrLocation(SbiModel):
    """Where an NR-attached UE is: tracking area and cell, and when the AMF last learned it."""

    tai: Tai
    ncgi: Ncgi
    ignore_ncgi: bool | None = None
    age_of_location_information: int | None = None
    ue_location_timestamp: datetime | None = None
    geographical_information: str | None = None
    geodetic_information: str | None = None
    global_gnb_id: GlobalRanNodeId | None = None


class EutraLocation(SbiModel):
    """Where an E-UTRA-attached UE is: tracking area and cell."""

    tai: Tai
    ignore_tai: bool | None = None
    ecgi: Ecgi
    ignore_ecgi: bool | None = None
    age_of_location_information: int | None = None
    ue_location_timestamp: datetime | None = None
    geographical_information: str | None = None
    geodetic_information: str | None = None
    global_ngenb_id: GlobalRanNodeId | None = None
    global_e_nb_id: GlobalRanNodeId | None = Field(None, alias="globalENbId")


class N3gaLocation(SbiModel):
    """Where a UE on non-3GPP access is (for free5GC's N3IWF: a fake TAI and the UE's address)."""

    n3gpp_tai: Tai | None = None
    n3_iwf_id: HexId | None = None
    ue_ipv4_addr: str | None = None
    ue_ipv6_addr: str | None = None
    port_number: int | None = None
    protocol: str | None = None


class IpAddr(SbiModel):
    """A UE address: IPv4, IPv6 address or IPv6 prefix."""

    ipv4_addr: str | None = None
    ipv6_addr: str | None = None
    ipv6_prefix: str | None = None


class UserLocation(SbiModel):
    """A UE's location on one or more accesses; any of the members may be absent.

    free5GC sends ``{}`` before the UE's first NGAP User Location Information.
    """

    eutra_location: EutraLocation | None = None
    nr_location: NrLocation | None = None
    n3ga_location: N3gaLocation | None = None
    utra_location: dict[str, object] | None = None
    gera_location: dict[str, object] | None = None


class InvalidParam(SbiModel):
    """One invalid attribute of a request, named by its JSON pointer."""

    param: str
    reason: str | None = None


class ProblemDetails(SbiModel):
    """An error answer (RFC 7807 extended by TS 29.571), served as ``application/problem+json``."""

    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    cause: str | None = None
    invalid_params: list[InvalidParam] | None = None
    supported_features: str | None = None


def problem_details(
    exc: errors.InvalidCallback,
    *,
    status: int = 400,
    title: str = "Malformed request syntax",
    cause: str | None = "MANDATORY_IE_INCORRECT",
) -> ProblemDetails:
    """The ProblemDetails that answers a rejected callback body.

    Args:
        exc: the rejection, with its invalid parameters.
        status: the HTTP status the receiver answers with.
        title: short summary; free5GC uses "Malformed request syntax" for its 400s.
        cause: TS 29.500 application error cause, or None to leave it out.
    """
    params = [InvalidParam(param=p.param, reason=p.reason) for p in exc.invalid_params]
    return ProblemDetails(
        title=title,
        status=status,
        detail=exc.detail,
        cause=cause,
        invalid_params=params or None,
    )


def problem_json(exc: errors.InvalidCallback, *, status: int = 400) -> bytes:
    """The ``application/problem+json`` body answering a rejected callback body."""
    return problem_details(exc, status=status).to_json()


def json_pointer(loc: tuple[int | str, ...]) -> str:
    """RFC 6901 pointer of a pydantic error location; ``""`` is the whole body."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)


# Readable reasons for the identifiers whose pattern a 3GPP reader knows by its length.
_PATTERN_REASONS: Final = {
    "mcc": "must be 3 decimal digits",
    "mnc": "must be 2 or 3 decimal digits",
    "tac": "must be 4 or 6 hex digits",
    "trackingAreaId": "must be a TAC of 4 or 6 hex digits",
    "nrCellId": "must be 9 hex digits (36-bit NR cell id)",
    "eutraCellId": "must be 7 hex digits (28-bit E-UTRA cell id)",
    "cellId": "must be 9 (NR) or 7 (E-UTRA) hex digits",
    "nid": "must be 11 hex digits",
}


def invalid_params(exc: ValidationError) -> list[errors.InvalidParam]:
    """The invalid parameters of a validation error, never echoing the offending value."""
    params: list[errors.InvalidParam] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        if len(params) == MAX_INVALID_PARAMS:
            break
        loc = error["loc"]
        reason = error["msg"]
        if error["type"] == "string_pattern_mismatch" and loc:
            reason = _PATTERN_REASONS.get(str(loc[-1]), reason)
        params.append(errors.InvalidParam(param=json_pointer(loc), reason=reason))
    return params


M = TypeVar("M", bound=BaseModel)


def validate_json(model: type[M], body: bytes | bytearray | str) -> M:
    """Parse and validate a JSON body in one pass (faster than ``json.loads`` then validate).

    Raises:
        InvalidCallback: the body is not JSON or does not satisfy ``model``; its
            ``invalid_params`` name each offending attribute by JSON pointer.
    """
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise errors.InvalidCallback(
            f"invalid {model.__name__}: {exc.error_count()} error(s)", invalid_params(exc)
        ) from exc
