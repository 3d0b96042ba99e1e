"""The OpenAPI 3.0 document of the callback receiver, generated from the code.

Request bodies come from the pydantic models of :mod:`subscriber.sbi` (``model_json_schema`` with
references into ``components/schemas``), converted from JSON Schema 2020-12 to the OpenAPI 3.0
schema dialect (``nullable`` instead of a ``null`` type, ``enum`` instead of ``const``). Error
answers are TS 29.571 ProblemDetails (``application/problem+json``), as
:mod:`subscriber.ingress.receiver` writes them.

``docs/openapi.yaml`` is this module's :func:`render_openapi`; ``subscriber docs`` writes it and
``tests/test_openapi.py`` keeps it in sync.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from subscriber.ams.openapi import TAG as AMS_TAG
from subscriber.ams.openapi import ams_paths, ams_responses, ams_schemas
from subscriber.sbi.amf import AmfEventNotification
from subscriber.sbi.common import ProblemDetails
from subscriber.sbi.nef import MonitoringNotification
from subscriber.sbi.smf import NsmfEventExposureNotification
from subscriber.sbi.traffic_influence import TrafficInfluenceNotification
from subscriber.settings import ReceiverSettings

OPENAPI_VERSION = "3.0.3"
API_VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"
_PROBLEM = "application/problem+json"

CALLBACKS: dict[str, tuple[type[BaseModel], str, str]] = {
    "amf": (
        AmfEventNotification,
        "AMF event notification (TS 29.518 Namf_EventExposure)",
        "The subscription's secret callback key; the body's notifyCorrelationId (and each "
        "report's subscriptionId) must be that subscription's.",
    ),
    "smf": (
        NsmfEventExposureNotification,
        "SMF event notification (TS 29.508 Nsmf_EventExposure), e.g. UP_PATH_CH",
        "The subscription's secret callback key; the body's notifId must be that subscription's.",
    ),
    "nef": (
        MonitoringNotification,
        "NEF monitoring event notification (TS 29.122 MonitoringEvent API)",
        "The subscription's secret callback key; the body's subscription link must name "
        "that subscription.",
    ),
    "ti": (
        TrafficInfluenceNotification,
        "UP_PATH_CHANGE notification on a traffic-influence subscription (TS 29.522), as the "
        "specification's EventNotification or as free5GC's NEF forwards the SMF's (TS 29.508)",
        "The traffic-influence subscription's secret callback key (docs/relocation.md); "
        "free5GC's notifId must be the first one seen on the key, the specification's "
        "afTransId ours. The events carry the UE and application the key is bound to.",
    ),
}
"""Callback kind -> (body model, summary, meaning of the path key)."""


def to_oas30(schema: Any) -> Any:
    """Convert a pydantic (JSON Schema 2020-12) schema to the OpenAPI 3.0 schema dialect."""
    if isinstance(schema, list):
        return [to_oas30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "const":
            out["enum"] = [value]
        elif key == "examples" and isinstance(value, list):
            if value:
                out["example"] = value[0]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "$defs":
            continue
        else:
            out[key] = to_oas30(value)
    for combiner in ("anyOf", "oneOf"):
        _drop_null_option(out, combiner)
    if out.get("default", 0) is None and not out.get("nullable"):
        del out["default"]
    return out


def _drop_null_option(schema: dict[str, Any], combiner: str) -> None:
    """``anyOf: [X, {type: null}]`` becomes X with ``nullable: true`` (3.0 has no null type)."""
    options = schema.get(combiner)
    if not isinstance(options, list):
        return
    rest = [o for o in options if o != {"type": "null"}]
    if len(rest) == len(options):
        return
    del schema[combiner]
    if len(rest) == 1:
        (only,) = rest
        # In 3.0 a $ref ignores its siblings, so a nullable reference needs allOf.
        schema.update({"allOf": [only]} if "$ref" in only else only)
    else:
        schema[combiner] = rest
    schema["nullable"] = True


def _schemas() -> dict[str, Any]:
    """Every model a body or answer refers to, by name, converted to 3.0."""
    found: dict[str, Any] = {}
    models: list[type[BaseModel]] = [m for m, _, _ in CALLBACKS.values()]
    models.append(ProblemDetails)
    for model in models:
        schema = model.model_json_schema(ref_template=_REF)
        for name, sub in schema.pop("$defs", {}).items():
            found[name] = to_oas30(sub)
        found[model.__name__] = to_oas30(schema)
    found["Status"] = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["ok", "ready", "not ready"]}},
    }
    return dict(sorted(found.items()))


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {_PROBLEM: {"schema": {"$ref": _REF.format(model="ProblemDetails")}}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def _responses() -> dict[str, Any]:
    ref = "#/components/responses/{}".format
    return {
        "BadRequest": _problem(
            "The body is not valid JSON, violates the 3GPP schema, or names another "
            "subscription than its callback URI; invalidParams names the fields (cause "
            "MANDATORY_IE_INCORRECT). Nothing was published."
        ),
        "Unauthorized": _problem(
            "receiver.bearer_key_file is set and the Authorization header holds no bearer "
            "token the NRF signed, or an expired one; the body was not read.",
            {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
        ),
        "Forbidden": _problem(
            "The bearer token is valid but lacks receiver.bearer_scope.",
            {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
        ),
        "NotFound": _problem(
            "No live subscription of ours has this key, or no such resource "
            "(cause SUBSCRIPTION_NOT_FOUND or RESOURCE_URI_STRUCTURE_NOT_FOUND)."
        ),
        "MethodNotAllowed": _problem(
            "Callbacks are POSTed.",
            {"Allow": {"schema": {"type": "string", "enum": ["POST"]}}},
        ),
        "PayloadTooLarge": _problem(
            "The body (declared or read so far) is over receiver.max_body_bytes."
        ),
        "RequestTimeout": _problem(
            "The body was not complete within 10 s of its headers (free5GC's client has given "
            "up by then); nothing was accepted."
        ),
        "UnsupportedMediaType": _problem(
            "The body is not application/json.",
            {"Accept-Post": {"schema": {"type": "string", "enum": ["application/json"]}}},
        ),
        "InternalError": _problem("Unexpected failure (cause SYSTEM_FAILURE); no stack trace."),
        "Unavailable": _problem(
            "Kafka is unreachable and the local spool is full (cause NF_CONGESTION); "
            "nothing was accepted: send again after Retry-After seconds.",
            {
                "Retry-After": {
                    "description": "Seconds to wait before sending again.",
                    "schema": {"type": "integer", "minimum": 1},
                    "required": True,
                }
            },
        ),
        "_refs": {
            "400": {"$ref": ref("BadRequest")},
            "401": {"$ref": ref("Unauthorized")},
            "403": {"$ref": ref("Forbidden")},
            "404": {"$ref": ref("NotFound")},
            "405": {"$ref": ref("MethodNotAllowed")},
            "408": {"$ref": ref("RequestTimeout")},
            "413": {"$ref": ref("PayloadTooLarge")},
            "415": {"$ref": ref("UnsupportedMediaType")},
            "500": {"$ref": ref("InternalError")},
            "503": {"$ref": ref("Unavailable")},
        },
    }


def _callback_path(kind: str, refs: dict[str, Any]) -> dict[str, Any]:
    model, summary, key_text = CALLBACKS[kind]
    return {
        "post": {
            "operationId": f"{kind}Notify",
            "tags": ["callbacks"],
            "summary": summary,
            "description": (
                "Answered 204 only once every event normalized from the body is acknowledged by "
                "Kafka or fsync'ed to the local spool (docs/receiver.md). A W3C traceparent "
                "header, when sent, becomes the parent of the receiver's span."
            ),
            "parameters": [
                {
                    "name": "key",
                    "in": "path",
                    "required": True,
                    "description": key_text,
                    "schema": {"type": "string", "pattern": "^[^/]+$"},
                },
                {
                    "name": "traceparent",
                    "in": "header",
                    "required": False,
                    "description": "W3C trace context (e.g. from free5GC's otelhttp client).",
                    "schema": {"type": "string"},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}
                },
            },
            "responses": {
                "204": {"description": "Every event is durably accepted."},
                **refs,
            },
        }
    }


def _status(description: str, codes: dict[str, str]) -> dict[str, Any]:
    return {
        "get": {
            "tags": ["operations"],
            "summary": description,
            "responses": {
                code: {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": _REF.format(model="Status")}}
                    },
                }
                for code, text in codes.items()
            },
        }
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document as a mapping."""
    responses = _responses()
    refs = responses.pop("_refs")
    defaults = ReceiverSettings()
    paths: dict[str, Any] = {
        f"/callbacks/{kind}/{{key}}": _callback_path(kind, refs) for kind in CALLBACKS
    }
    paths["/healthz"] = _status("Liveness", {"200": "The process is serving."})
    paths["/readyz"] = _status(
        "Readiness",
        {
            "200": "Callbacks can be accepted: Kafka is reachable or the spool (and its disk) "
            "has room, and the subscriptions file is readable.",
            "503": "Callbacks cannot be accepted now (they would get 503, or 404 for lack of "
            "a readable subscriptions file).",
        },
    )
    paths.update(ams_paths())
    paths["/metrics"] = {
        "get": {
            "tags": ["operations"],
            "summary": "Prometheus metrics of the serving worker process",
            "responses": {
                "200": {
                    "description": "Prometheus text exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "subscriber callback receiver",
            "version": API_VERSION,
            "description": (
                "Where the 5G core (AMF, SMF, NEF) POSTs its notifications. Served over h2c "
                "(HTTP/2 prior knowledge, as 3GPP SBI clients speak it) and HTTP/1.1 on one "
                "port, or over TLS with ALPN. Generated by subscriber/openapi.py; "
                "do not edit: run 'subscriber docs'."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "servers": [
            {
                "url": f"http://{defaults.host}:{defaults.port}",
                "description": "receiver.host and receiver.port defaults",
            }
        ],
        "tags": [
            {"name": "callbacks", "description": "3GPP notifications"},
            {"name": "operations", "description": "Health and metrics"},
            {
                "name": AMS_TAG,
                "description": "Application Mobility Service (ETSI GS MEC 021), served by "
                "'subscriber worker'",
            },
        ],
        "paths": paths,
        "components": {
            "schemas": _merged(_schemas(), ams_schemas(to_oas30)),
            "responses": {**responses, **ams_responses()},
        },
    }


def _merged(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """Both sets of schemas; a name both define must mean the same schema."""
    for name, schema in theirs.items():
        if name in ours and ours[name] != schema:
            raise ValueError(f"schema {name} is defined twice, differently")
    return dict(sorted({**ours, **theirs}.items()))


class _NoAliases(yaml.SafeDumper):
    """Writes shared sub-documents out in full: readers of the file should see no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_openapi() -> str:
    """The exact text of ``docs/openapi.yaml``."""
    header = "# Generated by subscriber/openapi.py: do not edit; run 'subscriber docs'.\n"
    body = yaml.dump(
        openapi_document(),
        Dumper=_NoAliases,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return header + body
