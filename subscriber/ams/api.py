"""The AMS's HTTP API, ``/amsi/v1`` (ETSI GS MEC 021 clause 8), served by the worker.

Bodies are JSON, validated by :mod:`subscriber.ams.models`; every error is an RFC 7807
ProblemDetails (``application/problem+json``, as ETSI GS MEC 009 asks) with the right status and
no stack trace: 400 for a body that is not JSON or breaks the schema (the detail names the
fields), 404 for an unknown resource, 405, 413 past ``ams.max_body_bytes``, 415 for a body that
is not JSON, 422 for a callback the AMS may not deliver to, 503 when the store cannot be used.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from subscriber.ams.models import MAX_ID, ProblemDetails, RegistrationInfo
from subscriber.ams.service import BASE_PATH, Ams
from subscriber.ams.store import StoreUnusable
from subscriber.errors import RequestRejected

log = structlog.get_logger()

_PROBLEM = "application/problem+json"
_AMS: web.AppKey[Ams] = web.AppKey("ams", Ams)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, title: str, detail: str | None = None, **headers: str) -> web.Response:
    """An RFC 7807 answer."""
    body = ProblemDetails(title=title, status=status, detail=detail)
    return web.Response(
        status=status,
        body=orjson.dumps(body.model_dump(exclude_none=True)),
        content_type=_PROBLEM,
        headers=headers,
    )


def _json(data: Any, status: int = 200, **headers: str) -> web.Response:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json", by_alias=True, exclude_none=True)
    elif isinstance(data, list):
        data = [
            d.model_dump(mode="json", by_alias=True, exclude_none=True)
            if isinstance(d, BaseModel)
            else d
            for d in data
        ]
    return web.Response(
        status=status, body=orjson.dumps(data), content_type="application/json", headers=headers
    )


def _fields(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:10]:
        where = ".".join(str(p) for p in err["loc"]) or "(body)"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


@web.middleware
async def _problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RequestRejected as exc:
        return problem(exc.status, exc.title, exc.detail)
    except ValidationError as exc:
        return problem(400, "Bad Request", _fields(exc))
    except StoreUnusable:
        log.error("ams.store_failed", path=request.path)
        return problem(503, "Service Unavailable", "the AMS cannot write its store now")
    except web.HTTPRequestEntityTooLarge:
        return problem(413, "Payload Too Large", "the body is over ams.max_body_bytes")
    except web.HTTPMethodNotAllowed as exc:
        return problem(405, "Method Not Allowed", None, Allow=",".join(sorted(exc.allowed_methods)))
    except web.HTTPNotFound:
        return problem(404, "Not Found", "no such resource")
    except web.HTTPException as exc:
        return problem(exc.status, exc.reason)
    except Exception:
        log.exception("ams.failed", path=request.path)
        return problem(500, "Internal Server Error", "unexpected failure")


async def _body(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise RequestRejected(415, "Unsupported Media Type", "the body must be application/json")
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestRejected(400, "Bad Request", "the body is not valid JSON") from exc


def _id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if len(value) > MAX_ID:
        raise RequestRejected(404, "Not Found", "no resource with this id")
    return value


def _ams(request: web.Request) -> Ams:
    return request.app[_AMS]


async def _list_registrations(request: web.Request) -> web.Response:
    return _json(await _ams(request).registrations())


async def _register(request: web.Request) -> web.Response:
    info = RegistrationInfo.model_validate(await _body(request))
    stored = await _ams(request).register(info)
    location = f"{_ams(request).base_url}/app_mobility_services/{stored.appMobilityServiceId}"
    return _json(stored, 201, Location=location)


async def _get_registration(request: web.Request) -> web.Response:
    return _json(await _ams(request).registration(_id(request, "rid")))


async def _put_registration(request: web.Request) -> web.Response:
    rid = _id(request, "rid")
    info = RegistrationInfo.model_validate(await _body(request))
    return _json(await _ams(request).update(rid, info))


async def _delete_registration(request: web.Request) -> web.Response:
    await _ams(request).deregister(_id(request, "rid"))
    return web.Response(status=204)


async def _list_subscriptions(request: web.Request) -> web.Response:
    return _json(await _ams(request).subscriptions(request.query.get("subscriptionType")))


async def _subscribe(request: web.Request) -> web.Response:
    body = await _body(request)
    stored = await _ams(request).subscribe(body)
    return _json(stored, 201, Location=stored["_links"]["self"]["href"])


async def _get_subscription(request: web.Request) -> web.Response:
    return _json(await _ams(request).subscription(_id(request, "sid")))


async def _put_subscription(request: web.Request) -> web.Response:
    sid = _id(request, "sid")
    return _json(await _ams(request).resubscribe(sid, await _body(request)))


async def _delete_subscription(request: web.Request) -> web.Response:
    await _ams(request).unsubscribe(_id(request, "sid"))
    return web.Response(status=204)


async def _adjacent(request: web.Request) -> web.Response:
    # ETSI GS MEC 009 attribute filtering, the one form this query needs.
    text = request.query.get("filter", "")
    prefix, suffix = "(eq,appInstanceId,", ")"
    if not (text.startswith(prefix) and text.endswith(suffix)):
        raise RequestRejected(
            400, "Bad Request", "filter: give (eq,appInstanceId,<id>) to name the instance"
        )
    instance = text[len(prefix) : -len(suffix)]
    if not 0 < len(instance) <= MAX_ID:
        raise RequestRejected(400, "Bad Request", "filter: the appInstanceId is empty or too long")
    return _json(await _ams(request).adjacent(instance))


def ams_app(ams: Ams, *, max_body_bytes: int) -> web.Application:
    """The aiohttp application serving ``/amsi/v1`` over ``ams``."""
    app = web.Application(middlewares=[_problems], client_max_size=max_body_bytes)
    app[_AMS] = ams
    r = app.router
    base = BASE_PATH
    r.add_get(f"{base}/app_mobility_services", _list_registrations, allow_head=False)
    r.add_post(f"{base}/app_mobility_services", _register)
    one = f"{base}/app_mobility_services/{{rid}}"
    r.add_get(one, _get_registration, allow_head=False)
    r.add_put(one, _put_registration)
    r.add_delete(one, _delete_registration)
    r.add_post(f"{one}/deregister_task", _delete_registration)
    r.add_get(f"{base}/subscriptions", _list_subscriptions, allow_head=False)
    r.add_post(f"{base}/subscriptions", _subscribe)
    sub = f"{base}/subscriptions/{{sid}}"
    r.add_get(sub, _get_subscription, allow_head=False)
    r.add_put(sub, _put_subscription)
    r.add_delete(sub, _delete_subscription)
    r.add_get(f"{base}/queries/adjacent_app_instances", _adjacent, allow_head=False)
    return app
