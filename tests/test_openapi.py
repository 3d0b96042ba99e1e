"""docs/openapi.yaml is current, valid OpenAPI 3.0, and describes what the receiver really does."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from subscriber.app.receiver import serving_receiver
from subscriber.ingress.metrics import KINDS
from subscriber.openapi import openapi_document, render_openapi
from subscriber.settings import Settings
from tests.support.registry import StaticRegistry
from tests.support.settings import closed_kafka

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "tests" / "vectors"
NEF_BODY = {
    "subscription": "http://nef.example/3gpp-monitoring-event/v1/af-1/subscriptions/sub-7",
    "monitoringEventReports": [
        {
            "monitoringType": "LOCATION_REPORTING",
            "externalId": "ue1@example.com",
            "eventTime": "2026-07-01T08:15:30.123456789Z",
            "locationInfo": {"plmnId": "208-93", "trackingAreaId": "00000A", "cellId": "00000001F"},
        }
    ],
}


def _validator(doc: Mapping[str, Any], schema_name: str) -> OAS30Validator:
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": doc["components"]}
    return OAS30Validator(root)


def test_checked_in_document_matches_the_code() -> None:
    """docs/openapi.yaml equals what subscriber/openapi.py renders."""
    checked_in = (ROOT / "docs" / "openapi.yaml").read_text(encoding="utf-8")
    assert checked_in == render_openapi(), "docs/openapi.yaml is out of date; run: subscriber docs"


def test_document_is_valid_openapi_30() -> None:
    """The rendered document passes openapi-spec-validator and parses back to the same mapping."""
    doc = openapi_document()
    assert doc["openapi"].startswith("3.0.")
    validate(doc)
    assert yaml.safe_load(render_openapi()) == doc


def test_every_route_and_answer_is_described() -> None:
    """Each callback kind, health route and problem status the receiver answers has an entry."""
    paths = openapi_document()["paths"]
    assert {f"/callbacks/{kind}/{{key}}" for kind in KINDS} <= set(paths)
    assert {"/healthz", "/readyz", "/metrics"} <= set(paths)
    for kind in KINDS:
        responses = paths[f"/callbacks/{kind}/{{key}}"]["post"]["responses"]
        assert set(responses) == {
            *("204", "400", "401", "403", "404", "405", "408", "413", "415", "500", "503")
        }
    unavailable = openapi_document()["components"]["responses"]["Unavailable"]
    assert unavailable["headers"]["Retry-After"]["required"] is True


@pytest.mark.parametrize(
    ("vector", "schema"),
    [
        ("d1-amf-notification-location.json", "AmfEventNotification"),
        ("v4-amf-notification-reachability.json", "AmfEventNotification"),
        ("d3-smf-up-path-ch-early.json", "NsmfEventExposureNotification"),
        ("d3-smf-up-path-ch-late.json", "NsmfEventExposureNotification"),
        ("v6-smf-notification-early.json", "NsmfEventExposureNotification"),
    ],
)
def test_free5gc_bodies_validate_against_the_request_schemas(vector: str, schema: str) -> None:
    """The test vectors of what free5GC sends are valid request bodies of the document."""
    body = orjson.loads((VECTORS / vector).read_bytes())
    errors = list(_validator(openapi_document(), schema).iter_errors(body))
    assert errors == []


def test_nef_body_validates_and_a_bad_body_does_not() -> None:
    """A NEF notification validates; one without its mandatory subscription link does not."""
    validator = _validator(openapi_document(), "MonitoringNotification")
    assert list(validator.iter_errors(NEF_BODY)) == []
    assert list(validator.iter_errors({"monitoringEventReports": []})) != []


@pytest.mark.parametrize(
    ("method", "path", "content_type", "body", "status"),
    [
        ("POST", "/callbacks/amf/unknown", b"application/json", b"{}", 404),
        ("GET", "/callbacks/amf/loc-1", b"application/json", b"", 405),
        ("POST", "/callbacks/amf/loc-1", b"text/plain", b"{}", 415),
        ("POST", "/callbacks/amf/loc-1", b"application/json", b"x" * 200, 413),
        ("POST", "/callbacks/amf/loc-1", b"application/json", b'{"reportList": 5}', 400),
        ("POST", "/callbacks/amf/loc-1", b"application/json", b'{"notifyCorrelationId": "x"}', 400),
    ],
)
async def test_receiver_problems_match_the_documented_answers(
    method: str, path: str, content_type: bytes, body: bytes, status: int, tmp_path: Path
) -> None:
    """The receiver's error answers, served by granian, have the documented status, media type
    and body schema."""
    settings = closed_kafka(Settings())
    receiver = settings.receiver.model_copy(
        update={"port": 0, "max_body_bytes": 100, "spool_dir": tmp_path / "spool"}
    )
    settings = settings.model_copy(update={"receiver": receiver})
    async with (
        serving_receiver(settings, registry=StaticRegistry([("amf", "loc-1")])) as served,
        httpx.AsyncClient(http2=True, http1=False) as http,
    ):
        reply = await http.request(
            method, served.url + path, content=body, headers={"content-type": content_type.decode()}
        )
    got, answer = reply.status_code, reply.content
    headers = {k.encode(): v.encode() for k, v in reply.headers.items()}
    doc = openapi_document()
    documented = doc["paths"]["/callbacks/amf/{key}"]["post"]["responses"][str(got)]
    name = documented["$ref"].rsplit("/", 1)[-1]
    response = doc["components"]["responses"][name]
    assert got == status
    assert headers[b"content-type"] == b"application/problem+json"
    assert list(_validator(doc, "ProblemDetails").iter_errors(orjson.loads(answer))) == []
    for header in response.get("headers", {}):
        assert header.lower().encode() in headers
