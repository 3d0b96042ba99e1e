"""Tests for the TS 29.571 common types and the shared JSON parsing."""

from __future__ import annotations

import json

import pytest

from subscriber.errors import InvalidCallback, InvalidParam
from subscriber.sbi.amf import parse_amf_notification
from subscriber.sbi.common import (
    MAX_INVALID_PARAMS,
    Ncgi,
    PlmnId,
    ProblemDetails,
    Tai,
    UserLocation,
    json_pointer,
    problem_details,
    problem_json,
    validate_json,
    wire_name,
)


@pytest.mark.parametrize(
    ("attribute", "wire"),
    [
        ("ue_location_timestamp", "ueLocationTimestamp"),
        ("n3ga_location", "n3gaLocation"),
        ("n3gpp_tai", "n3gppTai"),
        ("ue_ipv4_addr", "ueIpv4Addr"),
        ("enode_b_id", "enodeBId"),
        ("tac", "tac"),
    ],
)
def test_wire_name(attribute: str, wire: str) -> None:
    """snake_case attributes map to the 3GPP camelCase names, never capitalizing after a digit."""
    assert wire_name(attribute) == wire


@pytest.mark.parametrize(
    ("tac", "expected"),
    [("000001", "000001"), ("Aa19", "aa19"), ("ABCDEF", "abcdef"), ("00ff", "00ff")],
)
def test_tac_accepts_4_or_6_hex_digits_and_lowercases(tac: str, expected: str) -> None:
    """A TAC of 4 or 6 hex digits in any case is accepted and lower-cased."""
    tai = Tai.model_validate({"plmnId": {"mcc": "208", "mnc": "93"}, "tac": tac})
    assert tai.tac == expected


@pytest.mark.parametrize("tac", ["", "1", "001", "00001", "0000001", "00000g", " 0001", "0x01"])
def test_tac_rejects_other_lengths_and_non_hex(tac: str) -> None:
    """A TAC that is not 4 or 6 hex digits is rejected, naming /tac."""
    body = json.dumps({"plmnId": {"mcc": "208", "mnc": "93"}, "tac": tac})
    with pytest.raises(InvalidCallback) as info:
        validate_json(Tai, body)
    assert [p.param for p in info.value.invalid_params] == ["/tac"]
    assert info.value.invalid_params[0].reason == "must be 4 or 6 hex digits"


@pytest.mark.parametrize(
    ("cell", "ok"),
    [
        ("000000010", True),
        ("9B1b0FfAa", True),
        ("00000001", False),
        ("0000000100", False),
        ("00000001z", False),
    ],
)
def test_nr_cell_id_is_9_hex_digits(cell: str, ok: bool) -> None:
    """An NR cell id must be exactly 9 hex digits; accepted ones are lower-cased."""
    body = json.dumps({"plmnId": {"mcc": "208", "mnc": "93"}, "nrCellId": cell})
    if ok:
        assert validate_json(Ncgi, body).nr_cell_id == cell.lower()
    else:
        with pytest.raises(InvalidCallback) as info:
            validate_json(Ncgi, body)
        assert info.value.invalid_params[0].param == "/nrCellId"


@pytest.mark.parametrize(
    ("mcc", "mnc", "bad"),
    [
        ("208", "93", None),
        ("208", "093", None),
        ("20", "93", "/mcc"),
        ("2080", "93", "/mcc"),
        ("2a8", "93", "/mcc"),
        ("208", "9", "/mnc"),
        ("208", "9301", "/mnc"),
        ("٢٠٨", "93", "/mcc"),
    ],
)
def test_plmn_digits(mcc: str, mnc: str, bad: str | None) -> None:
    """MCC is 3 ASCII digits, MNC 2 or 3; anything else names the offending member."""
    body = json.dumps({"mcc": mcc, "mnc": mnc})
    if bad is None:
        assert validate_json(PlmnId, body).as_string() == mcc + mnc
    else:
        with pytest.raises(InvalidCallback) as info:
            validate_json(PlmnId, body)
        assert [p.param for p in info.value.invalid_params] == [bad]


def test_user_location_may_be_empty() -> None:
    """free5GC's ``{}`` location before the first ULI parses to a location with no member."""
    location = validate_json(UserLocation, b"{}")
    assert location.nr_location is None
    assert location.eutra_location is None
    assert location.n3ga_location is None


def test_unknown_fields_are_ignored() -> None:
    """Fields a newer release adds are ignored, not errors."""
    tai = validate_json(
        Tai, b'{"plmnId":{"mcc":"208","mnc":"93","future":1},"tac":"0001","newField":[1,2]}'
    )
    assert tai.tac == "0001"


def test_snake_case_names_are_accepted_and_wire_names_serialized() -> None:
    """Models accept attribute names too, and serialize with the wire names."""
    tai = Tai(plmn_id=PlmnId(mcc="208", mnc="93"), tac="00AB01")
    assert json.loads(tai.to_json()) == {"plmnId": {"mcc": "208", "mnc": "93"}, "tac": "00ab01"}


@pytest.mark.parametrize(
    ("loc", "pointer"),
    [
        ((), ""),
        (("reportList", 0, "type"), "/reportList/0/type"),
        (("a/b", "c~d"), "/a~1b/c~0d"),
    ],
)
def test_json_pointer(loc: tuple[int | str, ...], pointer: str) -> None:
    """Error locations become RFC 6901 pointers, escaping ``/`` and ``~``."""
    assert json_pointer(loc) == pointer


def test_malformed_json_names_the_whole_body() -> None:
    """A body that is not JSON is rejected with the root pointer."""
    with pytest.raises(InvalidCallback) as info:
        validate_json(Tai, b'{"tac":')
    assert [p.param for p in info.value.invalid_params] == [""]


def test_invalid_params_never_echo_the_value() -> None:
    """Reasons describe the rule, never the value (which may be a SUPI)."""
    with pytest.raises(InvalidCallback) as info:
        validate_json(PlmnId, b'{"mcc":"imsi-208930000000001","mnc":"93"}')
    assert "imsi" not in str(info.value.invalid_params)
    assert "imsi" not in str(info.value)


def test_invalid_params_are_capped() -> None:
    """A body full of errors yields at most MAX_INVALID_PARAMS entries."""
    body = json.dumps({"reportList": [{} for _ in range(50)]})
    with pytest.raises(InvalidCallback) as info:
        parse_amf_notification(body)
    assert len(info.value.invalid_params) == MAX_INVALID_PARAMS


def test_problem_json_body() -> None:
    """A rejection becomes a TS 29.571 ProblemDetails with its invalid parameters."""
    exc = InvalidCallback(
        "bad", [InvalidParam(param="/reportList/0/type", reason="Field required")]
    )
    body = json.loads(problem_json(exc))
    assert body == {
        "title": "Malformed request syntax",
        "status": 400,
        "detail": "bad",
        "cause": "MANDATORY_IE_INCORRECT",
        "invalidParams": [{"param": "/reportList/0/type", "reason": "Field required"}],
    }
    assert ProblemDetails.model_validate(body).invalid_params is not None


def test_problem_details_without_params_omits_the_list() -> None:
    """invalidParams has minItems 1, so it is left out when there is none."""
    details = problem_details(InvalidCallback("unsupported"), status=415, cause=None)
    assert json.loads(details.to_json()) == {
        "title": "Malformed request syntax",
        "status": 415,
        "detail": "unsupported",
    }
