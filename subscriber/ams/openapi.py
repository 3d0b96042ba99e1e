"""The AMS's part of the OpenAPI document (``docs/openapi.yaml``): its paths, served by the
worker on ``ams.host:ams.port``, and the MEC 021 schemas from :mod:`subscriber.ams.models`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from subscriber.ams.models import (
    AdjacentAppInfoNotification,
    AdjacentAppInfoSubscription,
    AdjacentAppInstanceInfo,
    MobilityProcedureNotification,
    MobilityProcedureSubscription,
    ProblemDetails,
    RegistrationInfo,
    SubscriptionLinkList,
)
from subscriber.ams.service import BASE_PATH
from subscriber.settings import AmsSettings

TAG = "ams"
_REF = "#/components/schemas/{model}"
_PROBLEM_SCHEMA = "MecProblemDetails"
_MODELS: list[type[BaseModel]] = [
    RegistrationInfo,
    MobilityProcedureSubscription,
    AdjacentAppInfoSubscription,
    SubscriptionLinkList,
    AdjacentAppInstanceInfo,
    MobilityProcedureNotification,
    AdjacentAppInfoNotification,
]
_ERRORS = {
    "400": "The body is not JSON or breaks MEC 021's schema; the detail names the fields.",
    "404": "No such resource (an unknown id, or one longer than any the AMS hands out).",
    "405": "The resource has no such method.",
    "413": "The body is over ams.max_body_bytes.",
    "415": "The body is not application/json.",
    "422": "The callbackReference is not an allowed destination (ams.callback_networks), or "
    "websockNotifConfig was asked for.",
    "503": "The AMS holds as many resources as it may, or cannot write its store.",
}


def _ref(model: str) -> dict[str, Any]:
    return {"$ref": _REF.format(model=model)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(
    op_id: str,
    summary: str,
    ok: tuple[str, dict[str, Any]],
    errors: tuple[str, ...],
    body: dict[str, Any] | None = None,
    clause: str = "",
) -> dict[str, Any]:
    code, answer = ok
    op: dict[str, Any] = {
        "operationId": op_id,
        "tags": [TAG],
        "summary": summary,
        "description": f"ETSI GS MEC 021 {clause}." if clause else summary,
        "responses": {
            code: answer,
            **{e: {"$ref": f"#/components/responses/Mec{e}"} for e in errors},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _id_param(name: str, what: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": what,
        "schema": {"type": "string", "maxLength": 256},
    }


def ams_paths() -> dict[str, Any]:
    """The ``/amsi/v1`` paths, each served by the worker (a path-level server)."""
    defaults = AmsSettings()
    servers = [
        {
            "url": f"http://{defaults.host}:{defaults.port}",
            "description": "ams.host and ams.port defaults ('subscriber worker')",
        }
    ]
    sub_one_of = {"oneOf": [_ref(m.__name__) for m in _MODELS[1:3]]}
    no_content = {"description": "Done."}
    reg, regs = _ref("RegistrationInfo"), {"type": "array", "items": _ref("RegistrationInfo")}
    paths: dict[str, Any] = {
        "/app_mobility_services": {
            "get": _op(
                "appMobilityServicesGet",
                "Every registration",
                ("200", _json(regs, "The registrations.")),
                (),
                clause="clause 8.3",
            ),
            "post": _op(
                "appMobilityServicesPost",
                "Register an application instance and its devices",
                ("201", _json(reg, "Registered; Location names it.")),
                ("400", "413", "415", "503"),
                reg,
                "clause 8.3",
            ),
        },
        "/app_mobility_services/{appMobilityServiceId}": {
            "parameters": [_id_param("appMobilityServiceId", "The registration.")],
            "get": _op(
                "appMobilityServiceGet",
                "One registration",
                ("200", _json(reg, "It.")),
                ("404",),
                clause="clause 8.4",
            ),
            "put": _op(
                "appMobilityServicePut",
                "Replace a registration: its devices, their level, their context transfer state",
                ("200", _json(reg, "Updated.")),
                ("400", "404", "413", "415", "503"),
                reg,
                "clause 8.4",
            ),
            "delete": _op(
                "appMobilityServiceDelete",
                "Deregister",
                ("204", no_content),
                ("404",),
                clause="clause 8.4",
            ),
        },
        "/app_mobility_services/{appMobilityServiceId}/deregister_task": {
            "parameters": [_id_param("appMobilityServiceId", "The registration.")],
            "post": _op(
                "appMobilityServiceDeregister",
                "Deregister",
                ("204", no_content),
                ("404",),
                clause="clause 8.5",
            ),
        },
        "/subscriptions": {
            "get": {
                **_op(
                    "subscriptionsGet",
                    "Links to the subscriptions",
                    ("200", _json(_ref("SubscriptionLinkList"), "The links.")),
                    ("400",),
                    clause="clause 8.6",
                ),
                "parameters": [
                    {
                        "name": "subscriptionType",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["mobility_proc", "adj_app_info"]},
                    }
                ],
            },
            "post": {
                **_op(
                    "subscriptionsPost",
                    "Subscribe to mobility procedure or adjacent instance notifications",
                    ("201", _json(sub_one_of, "Subscribed; Location names it.")),
                    ("400", "413", "415", "422", "503"),
                    sub_one_of,
                    "clause 8.6",
                ),
                "callbacks": {
                    "notification": {
                        "{$request.body#/callbackReference}": {
                            "post": {
                                "requestBody": {
                                    "required": True,
                                    "content": {
                                        "application/json": {
                                            "schema": {
                                                "oneOf": [_ref(m.__name__) for m in _MODELS[5:]]
                                            }
                                        }
                                    },
                                },
                                "responses": {"204": {"description": "Taken."}},
                            }
                        }
                    }
                },
            },
        },
        "/subscriptions/{subscriptionId}": {
            "parameters": [_id_param("subscriptionId", "The subscription.")],
            "get": _op(
                "subscriptionGet",
                "One subscription",
                ("200", _json(sub_one_of, "It.")),
                ("404",),
                clause="clause 8.7",
            ),
            "put": _op(
                "subscriptionPut",
                "Replace a subscription (its type and self link cannot change)",
                ("200", _json(sub_one_of, "Updated.")),
                ("400", "404", "413", "415", "422"),
                sub_one_of,
                "clause 8.7",
            ),
            "delete": _op(
                "subscriptionDelete",
                "Unsubscribe",
                ("204", no_content),
                ("404",),
                clause="clause 8.7",
            ),
        },
        "/queries/adjacent_app_instances": {
            "get": {
                **_op(
                    "adjacentAppInstancesGet",
                    "The other known instances of an application instance's application",
                    (
                        "200",
                        _json({"type": "array", "items": _ref("AdjacentAppInstanceInfo")}, "Them."),
                    ),
                    ("400",),
                    clause="clause 8.2",
                ),
                "parameters": [
                    {
                        "name": "filter",
                        "in": "query",
                        "required": True,
                        "description": "(eq,appInstanceId,<id>), as ETSI GS MEC 009 writes it.",
                        "schema": {"type": "string"},
                    }
                ],
            }
        },
    }
    out = {}
    for path, item in paths.items():
        out[f"{BASE_PATH}{path}"] = {"servers": servers, **item}
    return out


def ams_schemas(convert: Callable[[Any], Any]) -> dict[str, Any]:
    """The MEC 021 schemas, converted with ``convert`` (to the OpenAPI 3.0 dialect)."""
    found: dict[str, Any] = {}
    models: list[type[BaseModel]] = [*_MODELS, ProblemDetails]
    for model in models:
        schema = model.model_json_schema(ref_template=_REF, by_alias=True)
        for name, sub in schema.pop("$defs", {}).items():
            found[name] = convert(sub)
        name = _PROBLEM_SCHEMA if model is ProblemDetails else model.__name__
        found[name] = convert(schema)
    return found


def ams_responses() -> dict[str, Any]:
    """The shared error answers, RFC 7807 ProblemDetails (ETSI GS MEC 009)."""
    return {
        f"Mec{code}": {
            "description": text,
            "content": {"application/problem+json": {"schema": _ref(_PROBLEM_SCHEMA)}},
        }
        for code, text in _ERRORS.items()
    }
